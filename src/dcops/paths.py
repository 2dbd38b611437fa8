"""Where dcops keeps things on the controller: the one place each folder rule is written.

- **Lab folder** (:func:`lab_dir`): a booted lab's state (SSH key, ``ssh_config``, known hosts,
  run files, its own vault password): ``$DCOPS_LAB_DIR/<code>``, default
  ``/var/lib/dcops/lab/<code>`` (beside the image cache; the lab runs as root).
- **Secrets folder** (:func:`secrets_dir`): Ansible Vault files (WireGuard keys, mail password
  hashes, DKIM keys, backup repository passwords): ``$DCOPS_SECRETS_DIR``; else, for a lab
  province, ``<lab folder>/secrets`` (never in the repository, since a lab's vault password is
  generated per lab); else ``<inventory>/secrets`` (committed, encrypted). The inventory loader
  never reads ``secrets/``.
- **Vault password of a lab** (:func:`ensure_lab_vault_password`): generated once, mode 0600, in
  the lab folder; a real province brings its own (``ANSIBLE_VAULT_PASSWORD_FILE``).

The Ansible side reads the same answers: the ``dcops_province`` inventory plugin publishes them
as ``dcops_paths`` (see :func:`controller_paths`), and the roles default to those.
"""

from __future__ import annotations

import os
import secrets as _secrets
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dcops.inventory.model import Inventory

LAB_BASE_DEFAULT = "/var/lib/dcops/lab"
VAULT_PASSWORD = "vault-password"
SECRETS = "secrets"


def lab_base() -> Path:
    """The folder of every lab (``$DCOPS_LAB_DIR``, default ``/var/lib/dcops/lab``)."""
    return Path(os.environ.get("DCOPS_LAB_DIR") or LAB_BASE_DEFAULT)


def lab_dir(code: str) -> Path:
    """Where a booted lab of province ``code`` keeps its state."""
    return lab_base() / code


def secrets_dir(inv: Inventory) -> Path:
    """The province's secrets folder (see the module's docstring)."""
    env = os.environ.get("DCOPS_SECRETS_DIR")
    if env:
        return Path(env)
    if inv.province.lab:
        return lab_dir(inv.province.code) / SECRETS
    return Path(inv.source) / SECRETS


def lab_vault_password(code: str) -> Path:
    return lab_dir(code) / VAULT_PASSWORD


def ensure_lab_vault_password(code: str) -> Path:
    """The lab's own vault password (generated once, 0600, in the lab folder; never in the repo)."""
    p = lab_vault_password(code)
    p.parent.mkdir(parents=True, exist_ok=True)
    if not p.exists():
        try:
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # made by a concurrent run meanwhile
            return p
        with os.fdopen(fd, "w") as f:
            f.write(_secrets.token_urlsafe(32) + "\n")
    return p


def controller_paths(inv: Inventory) -> dict[str, str]:
    """The folders above for one province, as the inventory plugin publishes them to the roles."""
    out = {"secrets_dir": str(secrets_dir(inv))}
    if inv.province.lab:
        out["lab_dir"] = str(lab_dir(inv.province.code))
    return out
