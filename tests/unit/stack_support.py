"""Shared by the stack tests: inventory copies, in-memory edits, the golden path."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from dcops.inventory.model import Inventory

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = ROOT / "stacks" / "datacentre" / "__main__.py"


def copy_inventory(name: str, tmp: Path) -> Path:
    d = tmp / name
    shutil.copytree(ROOT / "inventory" / name, d)
    return d


def replace_once(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} is not in {path} exactly once"
    path.write_text(text.replace(old, new), encoding="utf-8")


def with_vm(inv: Inventory, host: str, **changes: Any) -> Inventory:
    """A copy of ``inv`` (not validated again: a deliberately bad copy) with one VM spec changed."""
    assert inv.platform is not None
    vms = dict(inv.platform.vms)
    vms[host] = vms[host].model_copy(update=changes)
    return inv.model_copy(update={"platform": inv.platform.model_copy(update={"vms": vms})})


def with_platform(inv: Inventory, **changes: Any) -> Inventory:
    assert inv.platform is not None
    return inv.model_copy(update={"platform": inv.platform.model_copy(update=changes)})


def with_host(inv: Inventory, host: str, **changes: Any) -> Inventory:
    sites = []
    for s in inv.sites:
        hosts = [h.model_copy(update=changes) if h.name == host else h for h in s.hosts]
        sites.append(s.model_copy(update={"hosts": hosts}))
    return inv.model_copy(update={"sites": sites})
