"""Ansible inventory plugin: a dcops province folder as an Ansible inventory.

Enabled by ``playbooks/ansible.cfg``; then ``ansible-playbook -i inventory/lab ...`` reads the
province through dcops' model (validated first), and every YAML file of the folder is
claimed by this plugin so Ansible's own YAML plugin does not misread it.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: dcops_province
short_description: A dcops province inventory folder (inventory/<name>/)
description:
  - Loads and validates the province with dcops, then adds the province, district, site,
    tier, role and service groups and the host variables that dcops renders.
  - Accepts the folder itself or any YAML file inside a folder holding C(province.yml).
  - Also sets C(dcops_net_hosts) on C(all) (host name to its site, tier, district, subnet,
    loopback, address, router flag, circuits and roles), which the dcops_net filters read
    instead of C(hostvars), and C(dcops_paths) (the controller's secrets folder and, for a lab,
    the lab folder, by the rule of dcops.paths).
options: {}
"""

from pathlib import Path
from typing import Any

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin

MARKER = "province.yml"


def _province_dir(path: str) -> Path | None:
    p = Path(path)
    start = p if p.is_dir() else p.parent
    if not p.is_dir() and p.suffix not in (".yml", ".yaml"):
        return None
    for d in (start, *start.parents):
        if (d / MARKER).is_file():
            return d
        if d.name == "inventory":
            break
    return None


class InventoryModule(BaseInventoryPlugin):  # type: ignore[misc]
    NAME = "dcops_province"

    def __init__(self) -> None:
        super().__init__()
        self._loaded_dirs: set[Path] = set()

    def verify_file(self, path: str) -> bool:
        return _province_dir(path) is not None

    def parse(self, inventory: Any, loader: Any, path: str, cache: bool = True) -> None:
        super().parse(inventory, loader, path, cache)
        root = _province_dir(path)
        if root is None or root in self._loaded_dirs:
            return  # the whole folder was read already, through another of its files
        from dcops.inventory import InventoryError, load_inventory
        from dcops.paths import controller_paths
        from dcops.render.ansible import NET_PLAN_KEYS, ansible_inventory

        try:
            inv = load_inventory(root)
            data = ansible_inventory(inv)
        except InventoryError as e:
            raise AnsibleParserError(str(e)) from None
        self._loaded_dirs.add(root)
        hostvars = data.pop("_meta")["hostvars"]
        all_vars = data.pop("all").get("vars", {})
        for k, v in all_vars.items():
            self.inventory.set_variable("all", k, v)
        for g in data:
            self.inventory.add_group(g)
        for g, entry in data.items():
            for c in entry.get("children", []):
                self.inventory.add_child(g, c)
            for h in entry.get("hosts", []):
                self.inventory.add_host(h, group=g)
        for h, hv in hostvars.items():
            self.inventory.add_host(h)
            for k, v in hv.items():
                self.inventory.set_variable(h, k, v)
        # Every host's plan variables in one plain variable: the dcops_net filters read it in
        # O(1) instead of computing every host's variables through `hostvars` at each render.
        plan = {h: {k: hv.get(k) for k in NET_PLAN_KEYS} for h, hv in hostvars.items()}
        self.inventory.set_variable("all", "dcops_net_hosts", plan)
        # Controller folders (secrets, a lab's state) by dcops' one rule (dcops.paths): the roles
        # default to these instead of restating the rule.
        self.inventory.set_variable("all", "dcops_paths", controller_paths(inv))
