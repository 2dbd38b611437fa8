"""The handover file: new mailbox passwords given to a person once, as CSV, mode 0600.

Columns (:data:`FIELDS`): ``agency,address,display_name,initial_password``, one row per mailbox,
sorted by address. ``dcops mail import|add|passwd`` write a new file outside the repository; a
lab's :func:`dcops.mail.labsecrets.ensure` appends to the lab's own. Either way the file is one of
the targets of the mailbox change's transaction (:func:`dcops.mail.txn.commit`): it exists,
complete, exactly when the hashes of its passwords are in the vault. Plaintext passwords are
written nowhere else.
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from dcops.mail.txn import Change

FIELDS = ("agency", "address", "display_name", "initial_password")
MODE = 0o600


@dataclass
class Issued:
    """A password handed to a person (initial or reset): written or printed once, never stored."""

    agency: str
    address: str
    display_name: str
    password: str


def render(issued: Iterable[Issued], existing: bytes = b"") -> bytes:
    """``existing`` (a handover file's content, or nothing: then the header) and one row per password."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if not existing.strip():
        existing = b""
        w.writerow(FIELDS)
    elif not existing.endswith(b"\n"):
        existing += b"\n"
    for i in sorted(issued, key=lambda x: x.address):
        w.writerow([i.agency, i.address, i.display_name, i.password])
    return existing + buf.getvalue().encode("utf-8")


def read_passwords(path: Path) -> dict[str, str]:
    """``{address: password}`` from a handover file (a later row wins); empty if there is no file."""
    try:
        f = path.open(encoding="utf-8", newline="")
    except FileNotFoundError:
        return {}
    with f:
        return {row["address"]: row["initial_password"] for row in csv.DictReader(f)}


@dataclass(frozen=True)
class Handover:
    """Where a change's new passwords go: a new file, or (``append``) the end of an existing one."""

    path: Path
    append: bool = False

    def change(self, issued: list[Issued]) -> Change:
        """The file's new content, for the transaction that issues ``issued``."""
        existing = b""
        if self.append:
            with contextlib.suppress(FileNotFoundError):
                existing = self.path.read_bytes()
        return Change(render(issued, existing), MODE)
