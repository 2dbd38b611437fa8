"""Mail secrets of a lab province, made on demand so that a lab converges with nothing by hand.

A real province issues passwords and DKIM keys deliberately (``dcops mail passwd``,
``dcops mail dkim-keys``) and hands the passwords over. A lab is the province-in-a-box: every
mailbox without a password hash gets one, every agency domain without a DKIM key gets one, and
the new passwords are appended to the lab's own handover file (``<lab dir>/mail-passwords.csv``,
mode 0600, never in the repository), where the lab tests read them, in the same transaction as
their hashes (:mod:`dcops.mail.txn`): after a crash, both or neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dcops.inventory import load
from dcops.mail import dkim
from dcops.mail.accounts import Plan, Store
from dcops.mail.handover import FIELDS, Handover, read_passwords
from dcops.mail.txn import settled
from dcops.mail.vault import Vault, vault_password_file
from dcops.paths import lab_dir

HANDOVER = "mail-passwords.csv"
__all__ = ["FIELDS", "HANDOVER", "LabMailSecrets", "LabSecretsError", "ensure", "handover_path", "passwords"]


class LabSecretsError(Exception):
    """Not a lab province (its secrets are never made implicitly)."""


@dataclass(frozen=True)
class LabMailSecrets:
    dkim_created: list[str]
    passwords_issued: list[str]
    handover: Path


def handover_path(code: str) -> Path:
    return lab_dir(code) / HANDOVER


def passwords(code: str) -> dict[str, str]:
    """``{address: password}`` of the lab's mailboxes, from its handover file (latest wins)."""
    return read_passwords(handover_path(code))


def ensure(inventory_dir: Path, handover: Path | None = None) -> LabMailSecrets:
    """DKIM keys and password hashes for everything of a lab province that has none.

    New passwords are appended to ``handover`` (default: the lab's ``mail-passwords.csv``) in
    the same transaction as their hashes. Runs under the inventory's lock, after finishing or
    undoing a ``dcops mail`` change that was interrupted."""
    with settled(Path(inventory_dir)):
        loaded = load(inventory_dir)
        inv = loaded.inventory
        if not inv.province.lab:
            raise LabSecretsError(f"{inventory_dir}: province {inv.province.code!r} is not a lab; use `dcops mail` explicitly")
        out = handover or handover_path(inv.province.code)
        if not inv.agencies:
            return LabMailSecrets([], [], out)
        vault = Vault(vault_password_file(inv))
        created, _kept = dkim.ensure_keys(inv, vault)
        store = Store(loaded)
        targets = store.missing_hashes()
        issued = store.apply(Plan(passwd=targets), vault, handover=Handover(out, append=True)) if targets else []
    return LabMailSecrets(created, [i.address for i in issued], out)
