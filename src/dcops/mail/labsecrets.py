"""Mail secrets of a lab province, made on demand so that a lab converges with nothing by hand.

A real province issues passwords and DKIM keys deliberately (``dcops mail passwd``,
``dcops mail dkim-keys``) and hands the passwords over. A lab is the province-in-a-box: every
mailbox without a password hash gets one, every agency domain without a DKIM key gets one, and
the new passwords are appended to the lab's own handover file (``<lab dir>/mail-passwords.csv``,
mode 0600, never in the repository), where the lab tests read them.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from dcops import lab_dir
from dcops.inventory import load
from dcops.mail import dkim
from dcops.mail.accounts import Plan, Store
from dcops.mail.txn import locked
from dcops.mail.vault import HashFile, Vault, hash_file, vault_password_file

HANDOVER = "mail-passwords.csv"
FIELDS = ["agency", "address", "display_name", "initial_password"]


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
    path = handover_path(code)
    if not path.exists():
        return {}
    with path.open(encoding="utf-8", newline="") as f:
        return {row["address"]: row["initial_password"] for row in csv.DictReader(f)}


def ensure(inventory_dir: Path, handover: Path | None = None) -> LabMailSecrets:
    """DKIM keys and password hashes for everything of a lab province that has none.

    New passwords are appended to ``handover`` (default: the lab's ``mail-passwords.csv``)."""
    loaded = load(inventory_dir)
    inv = loaded.inventory
    if not inv.province.lab:
        raise LabSecretsError(f"{inventory_dir}: province {inv.province.code!r} is not a lab; use `dcops mail` explicitly")
    out = handover or handover_path(inv.province.code)
    if not inv.agencies:
        return LabMailSecrets([], [], out)
    with locked(Path(inv.source)):
        vault = Vault(vault_password_file(inv))
        created, _kept = dkim.ensure_keys(inv, vault)
        store = Store(loaded)
        targets = []
        for a in sorted(store.agencies):
            have = HashFile.read(hash_file(inv, a), a, store.agencies[a].domain).entries
            targets += [(a, u) for u in sorted(store.accounts.get(a, {})) if u not in have]
        issued = store.apply(Plan(passwd=targets), vault) if targets else []
    if issued:
        out.parent.mkdir(parents=True, exist_ok=True)
        new = not out.exists()
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            if new:
                w.writerow(FIELDS)
            for i in sorted(issued, key=lambda x: x.address):
                w.writerow([i.agency, i.address, i.display_name, i.password])
    return LabMailSecrets(created, [i.address for i in issued], out)
