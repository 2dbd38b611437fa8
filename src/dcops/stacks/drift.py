"""Drift: a real stack's exported outputs (``pulumi stack output --json``) against the inventory.

The outputs hold, per host, the VM id, the node, the MAC addresses and the addresses the program
exported; the expected values are what :mod:`dcops.stacks.spec` makes of the inventory. Every
difference is listed: a VM the inventory does not know, a host without a VM, a VM on another
node (moved), another VM id, other MAC addresses, other addresses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dcops.inventory.model import Inventory
from dcops.stacks.spec import build_spec


class DriftInputError(Exception):
    """The outputs file is not what ``pulumi stack output --json`` of this stack writes."""


@dataclass(frozen=True)
class Difference:
    host: str
    kind: str  # unknown-vm, missing-vm, moved, vm-id, mac-addresses, addresses
    expected: Any
    actual: Any
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"host": self.host, "kind": self.kind, "expected": self.expected, "actual": self.actual, "message": self.message}


def read_outputs(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise DriftInputError(f"{path}: cannot read: {e.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DriftInputError(f"{path}: not JSON ({e}); write it with `pulumi stack output --json > {path.name}`") from None
    if not isinstance(data, dict) or not isinstance(data.get("hosts"), dict):
        raise DriftInputError(f"{path}: no 'hosts' mapping: not the outputs of the dcops-datacentre stack")
    hosts: dict[str, dict[str, Any]] = data["hosts"]
    for name, entry in hosts.items():
        if not isinstance(entry, dict):
            raise DriftInputError(f"{path}: hosts.{name}: expected a mapping, got {type(entry).__name__}")
    return hosts


def drift(inv: Inventory, outputs: dict[str, dict[str, Any]]) -> list[Difference]:
    spec = build_spec(inv)
    expected = {v.host: v for v in spec.vms}
    out: list[Difference] = []
    for host in sorted(set(outputs) - set(expected)):
        got = outputs[host]
        out.append(Difference(host, "unknown-vm", None, got.get("vmId"),
                              f"{host}: VM {got.get('vmId')} on node {got.get('node')} is in the stack but not in the inventory"))
    for host in sorted(set(expected) - set(outputs)):
        out.append(Difference(host, "missing-vm", expected[host].vm_id, None, f"{host}: in the inventory, no VM in the stack"))
    for host in sorted(set(expected) & set(outputs)):
        v, got = expected[host], outputs[host]
        if got.get("node") != v.node:
            out.append(Difference(host, "moved", v.node, got.get("node"),
                                  f"{host}: on node {got.get('node')}, the inventory places it on {v.node}"))
        vm_id = got.get("vmId")
        if not (isinstance(vm_id, int | float) and int(vm_id) == v.vm_id):
            out.append(Difference(host, "vm-id", v.vm_id, vm_id, f"{host}: VM id {vm_id}, the inventory says {v.vm_id}"))
        macs = [str(m).upper() for m in got.get("macAddresses") or []]
        want_macs = [n.mac for n in v.nics]
        if macs != want_macs:
            out.append(Difference(host, "mac-addresses", want_macs, got.get("macAddresses"),
                                  f"{host}: MAC addresses {', '.join(macs) or 'none'}, expected {', '.join(want_macs)}"))
        want_addr = {"management": v.management, "lan": v.address}
        if got.get("addresses") != want_addr:
            out.append(Difference(host, "addresses", want_addr, got.get("addresses"),
                                  f"{host}: addresses {got.get('addresses')}, the inventory says {want_addr}"))
    return out
