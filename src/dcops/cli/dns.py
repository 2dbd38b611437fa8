"""``dcops dns``: the zone of the province domain (served by the data centre's unbound) and the resolver's networks."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from dcops import DEFAULT_INVENTORY
from dcops.cli.common import InventoryOpt, JsonOpt, console, emit_json, err_console, fail, load_or_exit
from dcops.cli.mail import check_zone
from dcops.fsio import atomic_write
from dcops.inventory import Inventory
from dcops.mail import dkim as dkim_mod
from dcops.mail import txn
from dcops.mail.vault import SecretsError
from dcops.paths import secrets_dir
from dcops.render.dns import DnsError, access_networks, nameservers, province_zone
from dcops.render.maildns import DMARC_POLICIES, MailDnsError

app = typer.Typer(help="DNS of the province: the zone of its domain, the networks its resolvers answer.", no_args_is_help=True)


@contextmanager
def _reading(inventory: Path | None, as_json: bool) -> Iterator[Inventory]:
    """The inventory, with no `dcops mail` change under way or unfinished while its DKIM keys are read."""
    directory = inventory or DEFAULT_INVENTORY
    try:
        with txn.reading(directory):
            yield load_or_exit(directory, as_json).inventory
    except txn.TxnError as e:
        fail(str(e))


@app.command()
def zone(
    inventory: InventoryOpt = None,  # type: ignore[assignment]
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the zone file here (default: print it).", show_default=False)
    ] = None,
    check: Annotated[bool, typer.Option("--check", help="Check the zone with named-checkzone (bind9-utils).")] = False,
    require_dkim: Annotated[
        bool, typer.Option("--require-dkim", help="Fail if an agency domain has no DKIM key (default: render it without).")
    ] = False,
    dmarc_policy: Annotated[str, typer.Option(help=f"DMARC policy: {', '.join(DMARC_POLICIES)}.")] = "quarantine",
    as_json: JsonOpt = False,
) -> None:
    """The whole zone of the province domain: SOA/NS, A records of every host and internal service, mail records.

    DKIM public keys come from the province's secrets folder (`dcops mail dkim-keys`); domains
    without a key are rendered without a DKIM record (a warning names them). The SOA serial is
    derived from the records: the same inventory and keys give the same file, byte for byte.
    """
    with _reading(inventory, as_json) as inv:
        try:
            z = province_zone(inv, dkim_mod.public_keys(inv), dmarc_policy=dmarc_policy, require_dkim=require_dkim)
        except (SecretsError, MailDnsError, DnsError) as e:
            fail(str(e))
    try:
        checked = check_zone(z.origin, z.text) if check else None
    except MailDnsError as e:
        fail(str(e))
    written = False
    if out is not None:
        try:
            written = atomic_write(out, z.text, only_if_changed=True)
        except OSError as e:
            fail(f"cannot write the zone to {out}: {e}")
    warnings = list(z.warnings)
    if z.missing_dkim:
        warnings.append(
            f"{len(z.missing_dkim)} agency domain(s) without a DKIM key in {secrets_dir(inv) / 'mail' / 'dkim'}"
            f" (rendered without DKIM): {', '.join(z.missing_dkim)}; run `dcops mail dkim-keys -i {inv.source}`"
        )
    if as_json:
        emit_json(
            {
                "ok": True,
                "origin": z.origin,
                "serial": z.serial,
                "file": str(out) if out else None,
                "written": written,
                "missing_dkim": list(z.missing_dkim),
                "warnings": warnings,
                "named_checkzone": checked,
                **({} if out else {"zone": z.text}),
            }
        )
        return
    for w in warnings:
        err_console.print(f"[yellow]warning:[/] {escape(w)}", highlight=False, soft_wrap=True)
    if out is None:
        sys.stdout.write(z.text)
    else:
        console.print(
            f"[green]✓[/] zone {escape(z.origin)} serial {z.serial}: {escape(str(out))}"
            f" ({'written' if written else 'unchanged'})",
            highlight=False,
        )
    if checked is not None:
        err_console.print(f"[green]✓[/] named-checkzone: {escape(checked)}", highlight=False)


@app.command()
def networks(
    inventory: InventoryOpt = None,  # type: ignore[assignment]
    as_json: JsonOpt = False,
) -> None:
    """Networks the province's resolvers answer (address ranges, site LANs, loopbacks, circuits, management).

    One CIDR per line; with --json also the domain and the addresses clients query.
    """
    with _reading(inventory, as_json) as inv:
        nets = access_networks(inv)
    if as_json:
        emit_json({"ok": True, "domain": inv.province.domain, "networks": nets, "nameservers": nameservers(inv)})
        return
    sys.stdout.write("".join(n + "\n" for n in nets))
