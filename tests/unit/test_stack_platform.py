"""The platform section: bad input is refused with file, line and reason, like the rest of the inventory."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from dcops.cli import app
from dcops.inventory import InventoryError, load
from dcops.inventory.errors import Problem
from tests.unit.stack_support import copy_inventory, replace_once


def _problems(d: Path) -> list[Problem]:
    with pytest.raises(InventoryError) as e:
        load(d)
    return e.value.problems


def _line(path: Path, text: str, nth: int = 1) -> int:
    """The line of ``text`` (its ``nth`` occurrence when it is there twice, else the only one)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    hits = [i + 1 for i, line in enumerate(lines) if text in line]
    assert len(hits) == (1 if nth == 1 else nth), f"{text!r} is on lines {hits} of {path}"
    return hits[nth - 1]


def test_both_inventories_have_a_valid_platform() -> None:
    for name in ("lab", "yenbai"):
        inv = load(Path(__file__).resolve().parents[2] / "inventory" / name).inventory
        assert inv.platform is not None
        dc = sorted(h.name for s in inv.sites if s.tier.value == "datacentre" for h in s.hosts)
        assert sorted(inv.platform.vms) == dc


# (file to edit, old text, new text, the line to report (text on it, in the edited file), reason)
CASES = [
    ("sites.yml", "        management: 10.250.0.13\n", "        management: 10.250.0.13\n        memory_mb: 65536\n",
     "platform.yml", "    dc-web:", "is larger than every node (at most 8 cores and 14336 MiB for VMs)"),
    ("platform.yml", "      vm_id: 2504\n", "      vm_id: 2502\n",
     "platform.yml", "      vm_id: 2502#2", "VM id 2502 is already the VM id of dc-mail"),
    ("platform.yml", "      nics: {net0: management, net1: dc-lan}\n    dc-web:",
     "      nics: {net0: management, net1: dc-lun}\n    dc-web:",
     "platform.yml", "dc-lun", "network 'dc-lun' is not declared in platform.networks"),
    ("platform.yml", "    - {name: datanet, carries: uplink, bridge: vmbr1, vlan: 252}\n",
     "    - {name: datanet, carries: uplink, bridge: vmbr9, vlan: 252}\n",
     "platform.yml", "vmbr9", "bridge 'vmbr9' is not declared in platform.bridges"),
    ("platform.yml", "    - {name: datanet, carries: uplink, bridge: vmbr1, vlan: 252}\n",
     "    - {name: datanet, carries: uplink, bridge: vmbr1, vlan: 5000}\n",
     "platform.yml", "vlan: 5000", "less than or equal to 4094"),
    ("platform.yml", "        scsi1: {datastore: local-lvm, size_gb: 100}\n", "        scsi1: {datastore: ceph, size_gb: 100}\n",
     "platform.yml", "datastore: ceph", "datastore 'ceph' is not on node pve-lab-2"),
    ("platform.yml", "        scsi0: {datastore: shared, size_gb: 20}\n", "        scsi0: {datastore: local-lvm, size_gb: 20}\n",
     "platform.yml",
     "        scsi0: {datastore: local-lvm, size_gb: 20}\n      nics: {net0: management, net1: dc-lan}\n    dc-web",
     "dc-vc is HA but datastore local-lvm on node pve-lab-1, pve-lab-2 is not shared"),
    ("platform.yml", "    dc-web:\n", "    dc-ghost:\n      vm_id: 2599\n      node: pve-lab-2\n"
     "      disks: {scsi0: {datastore: local-lvm, size_gb: 8}}\n      nics: {net0: management}\n    dc-web:\n",
     "platform.yml", "    dc-ghost:", "host 'dc-ghost' does not exist"),
    ("platform.yml", "      node: pve-lab-2\n      disks:\n        scsi0: {datastore: local-lvm, size_gb: 20}\n",
     "      node: pve-lab-3\n      disks:\n        scsi0: {datastore: local-lvm, size_gb: 20}\n",
     "platform.yml", "pve-lab-3", "node 'pve-lab-3' is not a node of cluster pve-lab"),
    ("platform.yml", "      stateful: true  # mailboxes\n", "      statefull: true  # mailboxes\n",
     "platform.yml", "statefull", "unknown key 'statefull' (a typo?)"),
    ("platform.yml", "    url: https://cloud", "    url: ftp://cloud",
     "platform.yml", "    url: ftp://cloud", "should match pattern"),
]


@pytest.mark.parametrize("edit, old, new, report, on_line, reason", CASES, ids=[c[-1][:40] for c in CASES])
def test_bad_platform_input(tmp_path: Path, edit: str, old: str, new: str, report: str, on_line: str, reason: str) -> None:
    d = copy_inventory("lab", tmp_path)
    replace_once(d / edit, old, new)
    probs = _problems(d)
    assert len(probs) == 1, "\n".join(map(str, probs))
    p = probs[0]
    assert p.file == d / report
    text, _, nth = on_line.partition("#")
    if "\n" in text:  # the line where a multi-line text starts
        body = (d / report).read_text(encoding="utf-8")
        assert body.count(text) == 1
        want = body[: body.index(text)].count("\n") + 1
    else:
        want = _line(d / report, text, int(nth or 1))
    assert p.line == want, str(p)
    assert reason in p.reason, str(p)


def test_a_datacentre_host_without_a_vm(tmp_path: Path) -> None:
    d = copy_inventory("lab", tmp_path)
    text = (d / "platform.yml").read_text(encoding="utf-8")
    head, _web = text.split("    dc-web:\n")
    (d / "platform.yml").write_text(head, encoding="utf-8")
    probs = _problems(d)
    assert [str(p.reason) for p in probs] == ["data-centre host dc-web (site dc) has no VM in platform.vms"]
    assert probs[0].line == _line(d / "platform.yml", "  vms:")


def test_a_vm_for_a_host_outside_the_datacentre(tmp_path: Path) -> None:
    d = copy_inventory("lab", tmp_path)
    (d / "platform.yml").write_text((d / "platform.yml").read_text(encoding="utf-8") + (
        "    luc-yen:\n      vm_id: 2590\n      node: pve-lab-1\n"
        "      disks: {scsi0: {datastore: local-lvm, size_gb: 8}}\n      nics: {net0: management}\n"), encoding="utf-8")
    probs = _problems(d)
    assert len(probs) == 1 and "not in the data centre" in probs[0].reason
    assert probs[0].line == _line(d / "platform.yml", "    luc-yen:")


def test_two_platform_sections(tmp_path: Path) -> None:
    d = copy_inventory("lab", tmp_path)
    (d / "platform2.yml").write_text((d / "platform.yml").read_text(encoding="utf-8"), encoding="utf-8")
    probs = _problems(d)
    assert len(probs) == 1 and "'platform' is already defined in" in probs[0].reason


def test_cli_plan_refuses_a_bad_platform(tmp_path: Path) -> None:
    d = copy_inventory("lab", tmp_path)
    replace_once(d / "platform.yml", "      vm_id: 2504\n", "      vm_id: 2502\n")
    r = CliRunner().invoke(app, ["stack", "plan", "-i", str(d)])
    assert r.exit_code == 2
    assert f"{d / 'platform.yml'}:{_line(d / 'platform.yml', 'vm_id: 2502', 2)}" in r.output
    assert "VM id 2502 is already the VM id of dc-mail" in r.output


def test_cli_plan_without_platform(tmp_path: Path) -> None:
    d = copy_inventory("lab", tmp_path)
    (d / "platform.yml").unlink()
    r = CliRunner().invoke(app, ["stack", "plan", "-i", str(d)])
    assert r.exit_code == 2
    assert "has no platform section (platform.yml): nothing to plan" in " ".join(r.output.split())
