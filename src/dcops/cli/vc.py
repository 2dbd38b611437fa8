"""``dcops vc``: the video-conference rooms' SIP accounts (list, passwd) and their registration state.

Every command takes the inventory's lock and first finishes or undoes a change that a crash
interrupted (the mail commands' machinery, :mod:`dcops.mail.txn`), then loads the inventory.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from dcops import DEFAULT_INVENTORY
from dcops.cli.common import InventoryOpt, JsonOpt, console, emit_json, fail, load_or_exit
from dcops.inventory import Loaded
from dcops.mail.txn import TxnError, settled
from dcops.mail.vault import SecretsError, Vault, vault_password_file
from dcops.vc import accounts as acc
from dcops.vc.metrics import MetricsError, registered

app = typer.Typer(help="Video-conference rooms: their SIP accounts, secrets and registration state.", no_args_is_help=True)

VaultOpt = Annotated[
    Path | None,
    typer.Option("--vault-password-file", help="Ansible Vault password file (default: $DCOPS_VAULT_PASSWORD_FILE,"
                 " $ANSIBLE_VAULT_PASSWORD_FILE, or a lab's own).", show_default=False),
]


@contextmanager
def _session(inventory: Path | None, as_json: bool) -> Iterator[Loaded]:
    directory = inventory or DEFAULT_INVENTORY
    try:
        with settled(directory):
            yield load_or_exit(directory, as_json)
    except (acc.VcError, SecretsError, TxnError, MetricsError) as e:
        fail(str(e))


@app.command()
def passwd(
    site: Annotated[str | None, typer.Argument(help="The site whose room gets a new SIP secret.", show_default=False)] = None,
    missing: Annotated[bool, typer.Option("--missing", help="Every room that has no secret yet.")] = False,
    inventory: InventoryOpt = None,  # type: ignore[assignment]
    vault_password: VaultOpt = None,
    print_: Annotated[bool, typer.Option("--print", help="Print the new secret(s) once (to configure a room system).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Give one room (or, with --missing, every room without one) a new random SIP secret; converge to apply it."""
    if (site is None) == (not missing):
        fail("give a SITE or --missing (not both)")
    with _session(inventory, as_json) as loaded:
        inv = loaded.inventory
        vault = Vault(vault_password_file(inv, vault_password))
        sites = [site] if site is not None else acc.missing(inv)
        issued = acc.issue(loaded, vault, sites) if sites else {}
        realm = acc.realm(inv)
    out: dict[str, object] = {"ok": True, "changed": [f"{s}@{realm}" for s in sorted(issued)]}
    if print_:
        out["secrets"] = {f"{s}@{realm}": v for s, v in sorted(issued.items())}
    if as_json:
        emit_json(out)
        return
    console.print(f"[green]✓[/] new SIP secret for {len(issued)} room{'s' * (len(issued) != 1)}"
                  " (in the vault; converge videoconf.yml to apply it)")
    if print_:
        for a, v in sorted(issued.items()):
            console.print(f"  {escape(a)}@{escape(realm)}  {escape(v)}", highlight=False)


@app.command("list")
def list_(
    inventory: InventoryOpt = None,  # type: ignore[assignment]
    metrics: Annotated[str | None, typer.Option("--metrics", help="Kamailio's metrics URL (http://dc-vc:9180/metrics)"
                                                " to show which rooms are registered now.", show_default=False)] = None,
    as_json: JsonOpt = False,
) -> None:
    """Every room's SIP account, its transport, whether it has a secret (never shown), and with --metrics its state."""
    with _session(inventory, as_json) as loaded:
        inv = loaded.inventory
        have = acc.load_secrets(inv).entries
        rows: list[dict[str, object]] = [
            {"site": a.site, "account": a.address, "room": a.room, "endpoint": a.endpoint, "subnet": a.subnet,
             "transport": a.transport, "tier": a.tier, "district": a.district, "secret": a.site in have}
            for a in acc.accounts(inv)
        ]
        if metrics:
            state = registered(metrics)
            for r in rows:
                r["registered"] = state.get(str(r["site"]), 0) > 0
    if as_json:
        emit_json({"ok": True, "accounts": rows})
        return
    t = Table(title=f"{len(rows)} video-conference rooms", header_style="bold")
    cols = ["account", "room", "transport", "subnet", "secret"] + (["registered"] if metrics else [])
    for c in cols:
        t.add_column(c)
    for r in rows:
        cells = [str(r["account"]), str(r["room"]), str(r["transport"]), str(r["subnet"]),
                 "yes" if r["secret"] else "[red]none[/]"]
        if metrics:
            cells.append("yes" if r["registered"] else "[red]no[/]")
        t.add_row(*cells)
    console.print(t)

