"""``dcops mail``: mailboxes (import, add, remove, passwd, list), DKIM keys, mail DNS records, recovery.

Every command takes the inventory's lock and first finishes or undoes a change that a crash
interrupted (:mod:`dcops.mail.txn`), then loads the inventory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from dcops import DEFAULT_INVENTORY, ROOT
from dcops.cli.common import InventoryOpt, JsonOpt, console, emit_json, err_console, fail, load_or_exit
from dcops.fsio import atomic_write
from dcops.inventory import Loaded
from dcops.inventory.errors import Problem
from dcops.inventory.model import MailAccount
from dcops.mail import dkim as dkim_mod
from dcops.mail.accounts import AccountError, Plan, Store
from dcops.mail.csvimport import HEADER, local_part_problem, read_accounts_csv
from dcops.mail.handover import Handover, Issued
from dcops.mail.hashing import HashError, Scheme
from dcops.mail.names import display_name_problem
from dcops.mail.txn import Recovery, TxnError, settled
from dcops.mail.vault import HashFile, SecretsError, Vault, hash_file, vault_password_file
from dcops.paths import secrets_dir
from dcops.render.maildns import DMARC_POLICIES, MailDnsError, assembled_zone, mail_dns

app = typer.Typer(help="Mail of the agencies: mailboxes and their passwords, DKIM keys, DNS records.", no_args_is_help=True)

VaultOpt = Annotated[
    Path | None,
    typer.Option("--vault-password-file", help="Ansible Vault password file (default: $DCOPS_VAULT_PASSWORD_FILE,"
                 " $ANSIBLE_VAULT_PASSWORD_FILE, or a lab's own).", show_default=False),
]
HandoverOpt = Annotated[
    Path | None,
    typer.Option("--handover", help="Where to write the new passwords (CSV, mode 0600, outside the repository;"
                 " default: ~/dcops-mail-<province>-<time>.csv).", show_default=False),
]
ADDRESS_HELP = "user@agency-domain"
AddressArg = Annotated[str, typer.Argument(help=ADDRESS_HELP, show_default=False)]
PrintOpt = Annotated[bool, typer.Option("--print", help="Print the new passwords once instead of writing a handover file.")]
SchemeOpt = Annotated[Scheme, typer.Option("--scheme", help="Password hash scheme Dovecot reads.")]


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except AccountError as e:
        for r in e.reasons:
            err_console.print(f"[bold red]error:[/] {escape(r)}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except (SecretsError, HashError, MailDnsError, TxnError) as e:
        fail(str(e))


def _recovered(rec: Recovery | None) -> None:
    if rec is None:
        return
    if rec.outcome == "finished":
        what = f"finished ({len(rec.files)} files written)" + (f"; {rec.about}" if rec.about else "")
    else:
        what = "undone (nothing of it was kept)"
    err_console.print(f"[yellow]note:[/] an interrupted `dcops mail` change ({rec.id}) was {escape(what)}",
                      highlight=False, soft_wrap=True)


@contextmanager
def _session(inventory: Path | None, as_json: bool) -> Iterator[Loaded]:
    """The inventory, loaded under its lock once an interrupted change is finished or undone."""
    directory = inventory or DEFAULT_INVENTORY
    with _errors(), settled(directory) as rec:
        _recovered(rec)
        yield load_or_exit(directory, as_json)


def _vault(loaded: Loaded, password_file: Path | None) -> Vault:
    return Vault(vault_password_file(loaded.inventory, password_file))


def _handover(loaded: Loaded, explicit: Path | None, print_: bool) -> Handover | None:
    """Where new passwords go: None to print them; else a new file, refused now if it cannot be written."""
    if print_:
        return None
    inv = loaded.inventory
    path = explicit or Path.home() / f"dcops-mail-{inv.province.code}-{datetime.now():%Y%m%d-%H%M%S}.csv"
    path = path.expanduser().resolve()
    for inside in (ROOT.resolve(), Path(inv.source).resolve()):
        if path.is_relative_to(inside):
            raise SecretsError(f"the handover file {path} would be inside {inside}:"
                               " keep plaintext passwords out of the repository")
    if path.exists():
        raise SecretsError(f"the handover file {path} exists already; give another --handover path")
    return Handover(path)


def _hand_over(issued: list[Issued], handover: Handover | None, as_json: bool) -> dict[str, object]:
    """Tell the sysadmin where the new passwords are (written with the change), or show them once."""
    if not issued:
        return {}
    if handover is not None:
        if not as_json:
            console.print(f"new passwords: [bold]{escape(str(handover.path))}[/] (mode 0600; hand them over,"
                          " then delete the file)")
        return {"handover": str(handover.path)}
    if as_json:
        return {"passwords": [{"address": i.address, "password": i.password} for i in issued]}
    t = Table(title="new passwords (shown once; not stored anywhere)", header_style="bold")
    for c in ("address", "display name", "password"):
        t.add_column(c)
    for i in sorted(issued, key=lambda x: x.address):
        t.add_row(i.address, i.display_name, i.password)
    console.print(t)
    return {}


def _print_problems(source: Path, problems: list[Problem], as_json: bool) -> None:
    if as_json:
        emit_json({"ok": False, "file": str(source), "problems": [p.as_dict() for p in problems]})
        return
    n = len(problems)
    err_console.print(f"[bold red]{escape(str(source))}: {n} problem{'s' if n != 1 else ''}; nothing written[/]",
                      highlight=False, soft_wrap=True)
    for p in problems:
        where = f"{p.file}:{p.line}" if p.line is not None else str(p.file)
        col = f" [{p.path[0]}]" if p.path else ""
        err_console.print(f"  [cyan]{escape(where)}{escape(col)}[/]: {escape(p.reason)}", highlight=False, soft_wrap=True)


def _apply_with_progress(store: Store, plan: Plan, vault: Vault, n: int, handover: Handover | None, *,
                         scheme: Scheme, workers: int = 2) -> list[Issued]:
    """``store.apply`` with a progress bar over the ``n`` passwords it hashes (shown from 20 on)."""
    with Progress(TextColumn("hashing and encrypting passwords"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=err_console, transient=True, disable=n < 20) as prog:
        task = prog.add_task("hash", total=n)
        return store.apply(plan, vault, scheme=scheme, workers=workers, progress=lambda k: prog.advance(task, k),
                           handover=handover)


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help=f"CSV, UTF-8, header: {HEADER}", show_default=False)],
    inventory: InventoryOpt = None,  # type: ignore[assignment]
    update: Annotated[bool, typer.Option("--update", help="Change name/quota of addresses that exist (passwords kept).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check the file only; write nothing.")] = False,
    vault_password: VaultOpt = None,
    handover: HandoverOpt = None,
    print_: PrintOpt = False,
    scheme: SchemeOpt = Scheme.SHA512_CRYPT,
    workers: Annotated[int, typer.Option(help="Threads that hash and encrypt.")] = os.cpu_count() or 2,
    as_json: JsonOpt = False,
) -> None:
    """Add the accounts of a CSV file (agency,user,display_name,quota_mb) to the inventory and the vault.

    Every problem in the file is listed (line, column, reason) and nothing is written while any
    remains. Each new account gets a random password: its hash goes to the vault, the password
    to a mode-0600 handover file outside the repository (or, with --print, to the terminal); the
    inventory, the vault and the handover file are written together or not at all.
    """
    t0 = time.monotonic()
    with _session(inventory, as_json) as loaded:
        store = Store(loaded)
        rows, problems = read_accounts_csv(file, store, update=update)
        if problems:
            _print_problems(file, problems, as_json)
            raise typer.Exit(2)
        plan = Plan()
        for r in rows:
            (plan.update if store.exists(r.account.agency, r.account.user) else plan.add).append(r.account)
        if dry_run:
            if as_json:
                emit_json({"ok": True, "dry_run": True, "add": len(plan.add), "update": len(plan.update)})
            else:
                console.print(f"[green]✓[/] {file}: {len(plan.add)} accounts to add, {len(plan.update)} to update;"
                              " nothing written (--dry-run)")
            return
        vault = _vault(loaded, vault_password)
        to = _handover(loaded, handover, print_)  # refused before any work
        issued = _apply_with_progress(store, plan, vault, len(plan.add), to, scheme=scheme, workers=workers)
        seconds = time.monotonic() - t0
        out: dict[str, object] = {"ok": True, "added": len(plan.add), "updated": len(plan.update),
                                  "agencies": len(plan.agencies()), "seconds": round(seconds, 2)}
        if not as_json:
            console.print(f"[green]✓[/] {len(plan.add)} accounts added, {len(plan.update)} updated in {len(plan.agencies())}"
                          f" agencies ({seconds:.1f} s); hashes in {secrets_dir(loaded.inventory) / 'mail'}")
        out |= _hand_over(issued, to, as_json)
    if as_json:
        emit_json(out)


@app.command()
def add(
    address: AddressArg,
    name: Annotated[str, typer.Option("--name", help="Display name (the person's full name).", show_default=False)],
    quota: Annotated[int | None, typer.Option("--quota", min=1, help="Quota in MB (default: the agency's).")] = None,
    inventory: InventoryOpt = None,  # type: ignore[assignment]
    vault_password: VaultOpt = None,
    handover: HandoverOpt = None,
    to_file: Annotated[bool, typer.Option("--to-file", help="Write the password to a handover file, not the terminal.")] = False,
    scheme: SchemeOpt = Scheme.SHA512_CRYPT,
    as_json: JsonOpt = False,
) -> None:
    """Add one mailbox; its initial password is printed once (or written with --to-file/--handover)."""
    with _session(inventory, as_json) as loaded:
        store = Store(loaded)
        ag, user = store.find(address)
        why = local_part_problem(user)
        why_name = display_name_problem(name.strip())
        if why or why_name:
            raise AccountError([w for w in (why, why_name and f"--name: {why_name}") if w])
        acc = MailAccount(agency=ag.name, user=user, display_name=name.strip(), quota_mb=quota)
        to = _handover(loaded, handover, not (to_file or handover))
        issued = store.apply(Plan(add=[acc]), _vault(loaded, vault_password), scheme=scheme, handover=to)
        out: dict[str, object] = {"ok": True, "added": f"{user}@{ag.domain}"}
        if not as_json:
            console.print(f"[green]✓[/] {user}@{ag.domain} added ({ag.display_name})")
        out |= _hand_over(issued, to, as_json)
    if as_json:
        emit_json(out)


@app.command()
def remove(
    address: AddressArg,
    inventory: InventoryOpt = None,  # type: ignore[assignment]
    vault_password: VaultOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove one mailbox from the inventory and its hash from the vault (the next converge removes it)."""
    with _session(inventory, as_json) as loaded:
        store = Store(loaded)
        ag, user = store.find(address)
        store.apply(Plan(remove=[(ag.name, user)]), _vault(loaded, vault_password))
    if as_json:
        emit_json({"ok": True, "removed": f"{user}@{ag.domain}"})
    else:
        console.print(f"[green]✓[/] {user}@{ag.domain} removed; its mail stays on the server until the next converge")


@app.command()
def passwd(
    address: Annotated[str | None, typer.Argument(help=ADDRESS_HELP, show_default=False)] = None,
    missing: Annotated[
        bool, typer.Option("--missing", help="Every mailbox that has no hash yet (a new lab, hand-added accounts).")
    ] = False,
    inventory: InventoryOpt = None,  # type: ignore[assignment]
    vault_password: VaultOpt = None,
    handover: HandoverOpt = None,
    print_: PrintOpt = False,
    scheme: SchemeOpt = Scheme.SHA512_CRYPT,
    as_json: JsonOpt = False,
) -> None:
    """Give one mailbox (or, with --missing, every mailbox without one) a new random password."""
    if (address is None) == (not missing):
        fail("give an ADDRESS or --missing (not both)")
    with _session(inventory, as_json) as loaded:
        store = Store(loaded)
        vault = _vault(loaded, vault_password)
        if address is not None:
            ag, user = store.find(address)
            targets = [(ag.name, user)]
            print_ = print_ or handover is None
        else:
            targets = store.missing_hashes()
        to = _handover(loaded, handover, print_)
        issued = _apply_with_progress(store, Plan(passwd=targets), vault, len(targets), to, scheme=scheme)
        out: dict[str, object] = {"ok": True, "changed": [i.address for i in issued]}
        if not as_json:
            console.print(f"[green]✓[/] new password for {len(issued)} mailbox{'es' * (len(issued) != 1)}")
        out |= _hand_over(issued, to, as_json)
    if as_json:
        emit_json(out)


@app.command()
def recover(inventory: InventoryOpt = None, as_json: JsonOpt = False) -> None:  # type: ignore[assignment]
    """Finish or undo a mailbox change that was interrupted (a crash, kill -9); every dcops mail command does it first.

    A change interrupted after its commit point is finished (inventory, vault and handover file
    all written); one interrupted before it is undone (nothing of it kept, no handover file left).
    """
    directory = inventory or DEFAULT_INVENTORY
    with _errors(), settled(directory) as rec:
        load_or_exit(directory, as_json)
    if as_json:
        emit_json({"ok": True, "recovered": None if rec is None else {"id": rec.id, "outcome": rec.outcome,
                                                                      "files": rec.files, "about": rec.about}})
    elif rec is None:
        console.print(f"[green]✓[/] {escape(str(directory))}: no interrupted `dcops mail` change")
    else:
        _recovered(rec)
        console.print(f"[green]✓[/] {escape(str(directory))}: consistent again")


@app.command("list")
def list_(inventory: InventoryOpt = None, as_json: JsonOpt = False) -> None:  # type: ignore[assignment]
    """Every named mailbox, its quota, and whether it has a password hash in the vault."""
    with _session(inventory, as_json) as loaded:
        inv = loaded.inventory
        hashed = {(a.name, u) for a in inv.agencies for u in HashFile.read(hash_file(inv, a.name), a.name, a.domain).entries}
        boxes = inv.mailboxes()
    rows = [{"address": m.address, "agency": m.agency, "display_name": m.display_name, "quota_mb": m.quota_mb,
             "password": (m.agency, m.user) in hashed} for m in boxes]
    if as_json:
        emit_json({"ok": True, "mailboxes": rows})
        return
    t = Table(title=f"{len(rows)} mailboxes", header_style="bold")
    for c in ("address", "display name", "quota MB", "password"):
        t.add_column(c)
    for r in rows:
        t.add_row(str(r["address"]), str(r["display_name"]), str(r["quota_mb"]), "yes" if r["password"] else "[red]none[/]")
    console.print(t)


@app.command("dkim-keys")
def dkim_keys(
    inventory: InventoryOpt = None,  # type: ignore[assignment]
    selector: Annotated[str, typer.Option(help="Selector of new keys.")] = dkim_mod.DEFAULT_SELECTOR,
    rotate: Annotated[list[str] | None, typer.Option("--rotate", help="Replace this domain's key (new selector).")] = None,
    vault_password: VaultOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Generate the DKIM key of every agency domain that has none; existing keys are kept."""
    with _session(inventory, as_json) as loaded:
        domains = {a.domain for a in loaded.inventory.agencies}
        unknown = sorted(set(rotate or []) - domains)
        if unknown:
            fail(f"--rotate: not an agency domain: {', '.join(unknown)}")
        created, kept = dkim_mod.ensure_keys(loaded.inventory, _vault(loaded, vault_password), selector=selector,
                                             rotate=frozenset(rotate or []))
    if as_json:
        emit_json({"ok": True, "created": created, "kept": kept})
    else:
        console.print(f"[green]✓[/] DKIM keys: {len(created)} generated, {len(kept)} kept"
                      f" ({secrets_dir(loaded.inventory) / 'mail' / 'dkim'}); publish them with `dcops mail dns`")


@app.command()
def dns(
    inventory: InventoryOpt = None,  # type: ignore[assignment]
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write one fragment per domain into this folder.")] = None,
    check: Annotated[bool, typer.Option("--check", help="Check the assembled zone with named-checkzone.")] = False,
    dmarc_policy: Annotated[str, typer.Option(help=f"DMARC policy: {', '.join(DMARC_POLICIES)}.")] = "quarantine",
    allow_missing_dkim: Annotated[bool, typer.Option("--allow-missing-dkim", help="Render domains without a DKIM key.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """MX, SPF, DKIM and DMARC records of every agency domain, as zone-file fragments."""
    with _session(inventory, as_json) as loaded:
        inv = loaded.inventory
        files = mail_dns(inv, dkim_mod.public_keys(inv), dmarc_policy=dmarc_policy, require_dkim=not allow_missing_dkim)
        checked = check_zone(inv.province.domain, assembled_zone(inv, files)) if check else None
    if output is not None:
        for name, text in files.items():
            atomic_write(output / name, text, only_if_changed=True)
    if as_json:
        emit_json({"ok": True, "files": files if output is None else sorted(files), "named_checkzone": checked})
        return
    if output is None:
        for text in files.values():
            sys.stdout.write(text)
    else:
        console.print(f"[green]✓[/] {len(files)} zone fragments in {output}")
    if checked is not None:
        err_console.print(f"[green]✓[/] named-checkzone: {checked}", highlight=False)


def check_zone(origin: str, zone: str) -> str:
    """Run ``named-checkzone`` on ``zone``; its last line, or MailDnsError with its output."""
    tool = shutil.which("named-checkzone")
    if tool is None:
        raise MailDnsError("named-checkzone not found: apt-get install bind9-utils")
    with tempfile.NamedTemporaryFile("w", suffix=".zone", encoding="utf-8") as f:
        f.write(zone)
        f.flush()
        r = subprocess.run([tool, "-k", "fail", "-n", "fail", origin, f.name], capture_output=True, text=True, check=False)
    text = (r.stdout + r.stderr).strip()
    if r.returncode != 0:
        raise MailDnsError(f"named-checkzone rejected the zone:\n{text}")
    return text.splitlines()[-1] if text else "OK"
