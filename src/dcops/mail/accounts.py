"""Mailboxes in the inventory and their password hashes in the vault, changed together.

Layout (one file of each kind per agency, so a change to one mailbox is a one-entry diff):

- ``inventory/<name>/mail-accounts/<agency>.yml``: the agency's mailboxes in the ``accounts``
  section, one line each, sorted by user::

      accounts:
        - {agency: "so-tttt", user: "giamdoc", display_name: "Giám đốc Sở", quota_mb: 2048}

- ``<secrets>/mail/<agency>.yml``: their password hashes, one ``!vault`` value each (see
  :mod:`dcops.mail.vault`).

Accounts written by hand elsewhere (inline in ``agencies[].accounts``, or in another file) are
valid mailboxes too; dcops will not edit them and says where they are.
A change is planned in full (every problem listed), the inventory it would make is loaded and
validated in a scratch copy (nothing is written if it fails), then the accounts files, the hash
files and the handover file of the new passwords are written together, all or nothing, crash or
not (:func:`dcops.mail.txn.commit`, journal in the inventory folder).
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from dcops.inventory import InventoryError, Loaded, load
from dcops.inventory.files import data_files
from dcops.inventory.model import Agency, MailAccount
from dcops.mail import hashing
from dcops.mail.handover import Handover, Issued
from dcops.mail.names import display_name_problem
from dcops.mail.txn import Change, commit
from dcops.mail.vault import HashFile, Vault, hash_file, q

ACCOUNTS_DIR = "mail-accounts"


class AccountError(Exception):
    """A change to mailboxes that cannot be made; every reason is listed."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("\n".join(reasons))
        self.reasons = reasons


def accounts_file(inventory_dir: Path, agency: str) -> Path:
    return inventory_dir / ACCOUNTS_DIR / f"{agency}.yml"


def render_accounts(agency: Agency, accounts: Iterable[MailAccount]) -> bytes:
    """The agency's accounts file: a header, then one flow mapping per mailbox, sorted by user."""
    lines = [
        f"# Mail accounts of {agency.display_name} ({agency.name}, {agency.domain}).\n",
        "# Written by `dcops mail` (import, add, remove): one line per mailbox, sorted by user;\n",
        f"# quota_mb only where it differs from the agency's default ({agency.quota_mb} MB).\n",
        "accounts:\n",
    ]
    for a in sorted(accounts, key=lambda x: x.user):
        fields = [f"agency: {q(a.agency)}", f"user: {q(a.user)}", f"display_name: {q(a.display_name)}"]
        if a.quota_mb is not None:
            fields.append(f"quota_mb: {a.quota_mb}")
        lines.append("  - {" + ", ".join(fields) + "}\n")
    if len(lines) == 4:
        lines[-1] = "accounts: []\n"
    return "".join(lines).encode("utf-8")


@dataclass
class Plan:
    """Mailbox changes, keyed by agency name."""

    add: list[MailAccount] = field(default_factory=list)
    update: list[MailAccount] = field(default_factory=list)  # new display name / quota; password kept
    remove: list[tuple[str, str]] = field(default_factory=list)  # (agency, user)
    passwd: list[tuple[str, str]] = field(default_factory=list)  # (agency, user): a new random password

    def agencies(self) -> set[str]:
        return {a.agency for a in self.add + self.update} | {a for a, _ in self.remove + self.passwd}


class Store:
    """The mailboxes of a loaded inventory, and where each one is kept."""

    def __init__(self, loaded: Loaded) -> None:
        self.loaded = loaded
        self.inv = loaded.inventory
        self.dir = Path(self.inv.source)
        self.agencies = {a.name: a for a in reversed(self.inv.agencies)}  # the first definition wins
        self.by_domain = {a.domain: a for a in self.agencies.values()}
        #: agency -> user -> (account, "file:line" where it is defined, managed by dcops?)
        self.accounts: dict[str, dict[str, tuple[MailAccount, str, bool]]] = {a: {} for a in self.agencies}
        for i, a in enumerate(self.inv.agencies):
            o = loaded.origin("agencies", i)
            for j, inline in enumerate(a.accounts):
                where = f"{o.file}:{o.at('accounts', j).line}"
                m = MailAccount(agency=a.name, user=inline.user, display_name=inline.display_name, quota_mb=inline.quota_mb)
                self.accounts.setdefault(a.name, {}).setdefault(inline.user, (m, where, False))
        for k, acc in enumerate(self.inv.accounts):
            o = loaded.origin("accounts", k)
            managed = o.file.resolve() == accounts_file(self.dir, acc.agency).resolve()
            self.accounts.setdefault(acc.agency, {}).setdefault(acc.user, (acc, f"{o.file}:{o.line}", managed))

    def agency_of(self, ref: str) -> Agency | None:
        """An agency by name or by domain."""
        return self.agencies.get(ref) or self.by_domain.get(ref)

    def find(self, address: str) -> tuple[Agency, str]:
        """``user@domain`` -> (agency, user); AccountError if either is unknown."""
        user, at, domain = address.strip().lower().rpartition("@")
        if not at or not user:
            raise AccountError([f"{address!r} is not an address (user@domain)"])
        ag = self.by_domain.get(domain)
        if ag is None:
            raise AccountError([f"no agency has the mail domain {domain!r} (known: {', '.join(sorted(self.by_domain))})"])
        return ag, user

    def exists(self, agency: str, user: str) -> bool:
        return user in self.accounts.get(agency, {})

    def missing_hashes(self) -> list[tuple[str, str]]:
        """(agency, user) of every mailbox that has no password hash in the vault yet."""
        out: list[tuple[str, str]] = []
        for a in sorted(self.agencies):
            have = HashFile.read(hash_file(self.inv, a), a, self.agencies[a].domain).entries
            out += [(a, u) for u in sorted(self.accounts.get(a, {})) if u not in have]
        return out

    def check(self, plan: Plan) -> list[str]:
        """Why ``plan`` cannot be applied (empty: it can)."""
        out: list[str] = []
        for a, u in [*plan.remove, *((x.agency, x.user) for x in plan.update)]:
            entry = self.accounts.get(a, {}).get(u)
            if entry is None:
                out.append(f"{u}@{self.agencies[a].domain} does not exist")
            elif not entry[2]:
                out.append(f"{u}@{self.agencies[a].domain} is defined by hand at {entry[1]}; change it there")
        for a, u in plan.passwd:
            if u not in self.accounts.get(a, {}):
                out.append(f"{u}@{self.agencies[a].domain} does not exist")
        for x in plan.add:
            entry = self.accounts.get(x.agency, {}).get(x.user)
            if entry is not None:
                out.append(f"{x.user}@{self.agencies[x.agency].domain} already exists ({entry[1]})")
        for x in plan.add + plan.update:
            why = display_name_problem(x.display_name)
            if why:
                out.append(f"{x.user}@{self.agencies[x.agency].domain}: {why}")
        return out

    def apply(
        self,
        plan: Plan,
        vault: Vault,
        *,
        scheme: hashing.Scheme = hashing.Scheme.SHA512_CRYPT,
        workers: int = 2,
        progress: Callable[[int], None] | None = None,
        handover: Handover | None = None,
    ) -> list[Issued]:
        """Write ``plan``; return the passwords issued. Raises AccountError, nothing written.

        ``handover``: the file the issued passwords are written to, in the same transaction as
        the inventory and the vault (None: the caller shows them)."""
        problems = self.check(plan)
        if problems:
            raise AccountError(problems)
        touched = plan.agencies()
        removed = set(plan.remove)
        updated = {(x.agency, x.user): x for x in plan.update}

        # The hash files first: reading them checks the vault password before anything is hashed.
        files: dict[str, HashFile] = {}
        for a in sorted(touched):
            ag = self.agencies[a]
            hf = HashFile.read(hash_file(self.inv, a), a, ag.domain)
            if hf.entries:
                first = next(iter(hf.entries))
                vault.decrypt(hf.entries[first], f"{hash_file(self.inv, a)} ({first})")
            files[a] = hf

        issue = [(x.agency, x.user, x.display_name) for x in plan.add]
        issue += [(a, u, self.accounts[a][u][0].display_name) for a, u in plan.passwd]
        passwords = [hashing.new_password() for _ in issue]

        def one(pw: str) -> str:
            ct = vault.encrypt(hashing.hash_password(pw, scheme))
            if progress is not None:
                progress(1)
            return ct

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:  # libcrypt and OpenSSL release the GIL
            ciphertexts = list(pool.map(one, passwords))
        issued: list[Issued] = []
        for (a, u, name), pw, ct in zip(issue, passwords, ciphertexts, strict=True):
            files[a].entries[u] = ct
            issued.append(Issued(a, f"{u}@{self.agencies[a].domain}", name, pw))
        for a, u in removed:
            files[a].entries.pop(u, None)

        changes: dict[Path, Change] = {}
        for a in sorted(touched):
            ag = self.agencies[a]
            managed = [m for u, (m, _, mine) in self.accounts.get(a, {}).items() if mine and (a, u) not in removed]
            managed = [updated.get((m.agency, m.user), m) for m in managed]
            managed += [x for x in plan.add if x.agency == a]
            if any(x.agency == a for x in plan.add + plan.update) or any(r[0] == a for r in plan.remove):
                changes[accounts_file(self.dir, a)] = Change(render_accounts(ag, managed))
            changes[hash_file(self.inv, a)] = Change(files[a].render(), 0o600)
        self.check_result(changes)
        about = ""
        if handover is not None and issued:
            changes[handover.path] = handover.change(issued)
            about = f"the new passwords are in {handover.path} (mode 0600): hand them over, then delete the file"
        elif issued:
            shown = ", ".join(i.address for i in issued[:10]) + (f" and {len(issued) - 10} more" if len(issued) > 10 else "")
            about = f"the new passwords of {shown} were never shown: give them others with `dcops mail passwd ADDRESS`"
        commit(changes, self.dir, about=about)
        return issued

    def check_result(self, changes: Mapping[Path, Change]) -> None:
        """Load and validate the inventory as ``changes`` would leave it, in a scratch copy; AccountError if it fails."""
        mine = {p.relative_to(self.dir): ch for p, ch in changes.items() if p.is_relative_to(self.dir)}
        if not mine:
            return
        with tempfile.TemporaryDirectory(prefix="dcops-mail-check-") as tmp:
            scratch = Path(tmp) / self.dir.name
            for f in data_files(self.dir).files:
                dst = scratch / f.relative_to(self.dir)
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, dst)
            for rel, ch in mine.items():
                dst = scratch / rel
                if ch.content is None:
                    dst.unlink(missing_ok=True)
                else:
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    dst.write_bytes(ch.content)
            try:
                load(scratch)
            except InventoryError as e:
                problems = [dataclasses.replace(p, file=self.dir / p.file.relative_to(scratch))
                            if p.file.is_relative_to(scratch) else p for p in e.problems]
                reasons = ["the inventory would not validate after the change (nothing written):", *map(str, problems)]
                raise AccountError(reasons) from e
