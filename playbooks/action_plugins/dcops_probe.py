"""Action dcops_probe: one SSH exec reads what a role manages; the controller decides what differs.

The mechanism (arguments, result, how files are compared) is documented and implemented in
:mod:`dcops.ansible_plugins.probe`; this file is the plugin Ansible finds beside the playbooks.
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from dcops.ansible_plugins.probe import ProbeError, run_action
from dcops.ansible_plugins.templating import TemplatingError

DOCUMENTATION = """
name: dcops_probe
short_description: read what a role manages on a host in one exec, and say what differs
description:
  - See dcops.ansible_plugins.probe for the arguments and the result.
options:
  files: {description: the files and folders the role installs, type: list, elements: dict}
  units: {description: systemd units that must be enabled and active, type: list, elements: str}
  unwanted_units: {description: systemd units that must be disabled and stopped where loaded, type: list, elements: str}
  packages: {description: Debian packages that must be installed, type: list, elements: str}
  interfaces: {description: read the interface of every IPv4 address, type: bool, default: false}
  script: {description: role-specific checks run in the same exec (bash), type: str}
"""


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = True

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        self._supports_check_mode = True  # it only reads
        result: dict[str, Any] = super().run(tmp, task_vars)
        try:
            result.update(run_action(self, task_vars or {}))
        except (ProbeError, TemplatingError) as e:
            raise AnsibleActionFail(f"dcops_probe: {e}") from None
        return result
