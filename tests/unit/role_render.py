"""A role's templates and variables as a converge renders them for one host of an inventory,
without a host: the role's defaults, the inventory's variables of that host (the same
``dcops.render.ansible`` output the inventory plugin gives Ansible), the role's vars and extra
variables, in Ansible's order of precedence, rendered by the module the probe renders with
(:func:`dcops.ansible_plugins.templating.render_template`). Templated defaults resolve as in a
play (the values are loaded by Ansible's own loader, so they are trusted templates).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.conftest import LAB, ROOT

ROLES = ROOT / "playbooks" / "roles"


@functools.cache
def _inventory(folder: str) -> dict[str, Any]:
    from dcops.inventory import load_inventory
    from dcops.render.ansible import ansible_inventory

    data: dict[str, Any] = ansible_inventory(load_inventory(Path(folder)))
    return data


def _groups(data: Mapping[str, Any]) -> dict[str, list[str]]:
    def hosts(name: str, seen: frozenset[str] = frozenset()) -> list[str]:
        g = data.get(name, {})
        out = list(g.get("hosts", []))
        for child in g.get("children", []):
            if child not in seen:
                out += hosts(child, seen | {name})
        return sorted(set(out))

    names = [k for k in data if k != "_meta"]
    return {n: hosts(n) for n in names}


class RoleRender:
    """Role ``role`` for ``host`` of the inventory ``inventory`` (default: the lab)."""

    def __init__(self, role: str, host: str, inventory: Path = LAB, extra: Mapping[str, Any] | None = None) -> None:
        from ansible.parsing.dataloader import DataLoader

        self.role = ROLES / role
        self.loader = DataLoader()
        self.loader.set_basedir(str(self.role))
        data = _inventory(str(inventory))
        variables: dict[str, Any] = {}
        defaults = self.role / "defaults" / "main.yml"
        if defaults.exists():
            variables.update(self.loader.load_from_file(str(defaults), trusted_as_template=True) or {})
        variables.update(data["all"].get("vars", {}))
        variables.update(data["_meta"]["hostvars"][host])
        role_vars = self.role / "vars" / "main.yml"
        if role_vars.exists():
            variables.update(self.loader.load_from_file(str(role_vars), trusted_as_template=True) or {})
        groups = _groups(data)
        variables.update(
            {
                "inventory_hostname": host,
                "inventory_hostname_short": host,
                "groups": groups,
                "group_names": sorted(g for g, hs in groups.items() if host in hs and g != "all"),
                "hostvars": data["_meta"]["hostvars"],
                "ansible_inventory_sources": [str(inventory)],
                "ansible_facts": {},
                "role_path": str(self.role),
                "ansible_search_path": [str(self.role)],
            }
        )
        variables.update(self.loader.load(_yaml(extra or {})) or {})
        self.variables = variables

    def templar(self) -> Any:
        from ansible.template import Templar

        return Templar(loader=self.loader, variables=self.variables)

    def value(self, name: str) -> Any:
        """A variable's value for this host, templated."""
        from ansible.template import trust_as_template

        return self.templar().template(trust_as_template("{{ " + name + " }}"))

    def render(self, template: str, dest: str | None = None) -> str:
        """A template of the role's templates/ folder, as the template module would write it."""
        from dcops.ansible_plugins.templating import render_template

        source = self.role / "templates" / template
        return render_template(self.templar(), self.loader, self.variables, str(source), name=template, dest=dest)

    def files(self, name: str) -> dict[str, dict[str, Any]]:
        """The entries of a role's file list (``baseline__files``, ...) that are enabled, by destination."""
        out = {}
        for e in self.value(name):
            if str(e.get("enabled", True)).lower() not in ("false", "0"):
                out[str(e["dest"])] = dict(e)
        return out


def _yaml(values: Mapping[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(dict(values))
