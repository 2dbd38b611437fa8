"""``dcops noc``: the NOC's alerting rendered from the inventory, silences, the webhook receiver."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dcops.cli.common import InventoryOpt, JsonOpt, console, emit_json, err_console, fail, load_or_exit
from dcops.fsio import atomic_write
from dcops.noc import PRODUCTION, ruletests
from dcops.noc import alertmanager as am
from dcops.noc import federation as fed
from dcops.noc import rules as noc_rules
from dcops.noc import silences as sil

app = typer.Typer(help="NOC alerting: topology rules, Alertmanager routes, silences, federation.", no_args_is_help=True)

AlertmanagerOpt = Annotated[str, typer.Option("--alertmanager", help="Alertmanager's base URL.")]
OutDirOpt = Annotated[Path, typer.Option("--out", "-o", help="Folder to write into (created).")]


@app.command("rules")
def rules_cmd(
    out: OutDirOpt,
    inventory: InventoryOpt = None,  # type: ignore[assignment]
    tests: Annotated[bool, typer.Option(help="Write the promtool tests beside the rules (topology.test.yml).")] = True,
    circuits: Annotated[bool, typer.Option(help="Tests cut every circuit too (small provinces).")] = False,
    per_test: Annotated[int, typer.Option(help="Unrelated sites down together in one test (large provinces).")] = 15,
    as_json: JsonOpt = False,
) -> None:
    """Topology rules (topology.rules.yml) and their promtool tests, from the inventory's circuits."""
    inv = load_or_exit(inventory, as_json).inventory
    try:
        text = noc_rules.dump(noc_rules.render(inv))
        test_text = ruletests.dump_tests(ruletests.render_tests(inv, circuits=circuits, max_per_test=per_test)) if tests else None
    except noc_rules.TopologyError as e:
        fail(str(e), 2)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "topology.rules.yml"]
    atomic_write(written[0], text, only_if_changed=True)
    if test_text is not None:
        written.append(out / "topology.test.yml")
        atomic_write(written[1], test_text, only_if_changed=True)
    if as_json:
        emit_json({"ok": True, "files": [str(p) for p in written], "budget_seconds": PRODUCTION.budget()})
    else:
        for p in written:
            console.print(f"wrote {p}", highlight=False)


@app.command("alertmanager")
def alertmanager_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="alertmanager.yml to write.")],
    inventory: InventoryOpt = None,  # type: ignore[assignment]
    webhook_url: Annotated[str, typer.Option(help="The NOC's webhook receiver (empty: none).")] = "",
    deadman_url: Annotated[str, typer.Option(help="Where the Watchdog goes (an outside dead-man's switch).")] = "",
    email: Annotated[str, typer.Option(help="NOC mailbox (default: noc@ of the data centre's agency).")] = "",
    smarthost: Annotated[str, typer.Option(help="HOST:PORT of the mail server (default: the inventory's mail service).")] = "",
    templates_dir: Annotated[str, typer.Option(help="Folder of the notification templates on the Alertmanager host.")]
    = am.Receivers.templates_dir,
    auth_password_file: Annotated[str, typer.Option(
        help="The NOC mailbox's password file on the Alertmanager host: log in on the submission port (STARTTLS) "
             "and send as the mailbox.")] = "",
) -> None:
    """Alertmanager's routes, receivers and inhibit rules, from the inventory."""
    inv = load_or_exit(inventory).inventory
    try:
        cfg = am.render(inv, am.Receivers(webhook_url, deadman_url, email, smarthost, templates_dir, auth_password_file))
    except am.AlertmanagerConfigError as e:
        fail(str(e), 2)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, am.dump(cfg), only_if_changed=True)
    console.print(f"wrote {out}", highlight=False)


@app.command("federation")
def federation_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="prometheus.yml of the national server.")],
    province: Annotated[list[str], typer.Option("--province", help="CODE=HOST:PORT of a province's Prometheus (repeat).")],
    scrape_interval: Annotated[str, typer.Option(help="How often each province is federated.")] = "30s",
) -> None:
    """A national Prometheus's configuration federating the provinces' site-state series."""
    try:
        cfg = fed.render(fed.parse_provinces(province), scrape_interval=scrape_interval)
    except fed.FederationError as e:
        fail(str(e), 2)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, fed.dump(cfg), only_if_changed=True)
    console.print(f"wrote {out}", highlight=False)


@app.command("silence")
def silence_cmd(
    site: Annotated[str, typer.Argument(help="Site under maintenance (the sites behind it are covered too).")],
    duration: Annotated[str, typer.Option("--for", help="How long: 10m, 2h, 1h30m, 1d.")] = "2h",
    comment: Annotated[str, typer.Option("--comment", "-m", help="Why (ticket, planned work).")] = "",
    inventory: InventoryOpt = None,  # type: ignore[assignment]
    alertmanager: AlertmanagerOpt = sil.DEFAULT_URL,
    as_json: JsonOpt = False,
) -> None:
    """A maintenance window: silence a site and every site behind it."""
    inv = load_or_exit(inventory, as_json).inventory
    try:
        sid, sites = sil.create(inv, site, duration, comment or f"maintenance of {site}", url=alertmanager)
    except sil.SilenceError as e:
        fail(str(e), 2)
    if as_json:
        emit_json({"ok": True, "id": sid, "sites": sites})
    else:
        console.print(f"silence {sid}: {', '.join(sites)} for {duration}", highlight=False)


@app.command("silences")
def silences_cmd(
    alertmanager: AlertmanagerOpt = sil.DEFAULT_URL,
    expire: Annotated[list[str] | None, typer.Option("--expire", help="Expire this silence (repeat).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Include expired silences.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List the silences (active and pending), or expire some."""
    try:
        for sid in expire or []:
            sil.expire(sid, url=alertmanager)
            if not as_json:
                console.print(f"expired {sid}", highlight=False)
        found = sil.list_silences(url=alertmanager, include_expired=all_)
    except sil.SilenceError as e:
        fail(str(e), 2)
    if as_json:
        emit_json([s.as_dict() for s in found])
        return
    if not found:
        err_console.print("no silences", highlight=False)
    for s in found:
        console.print(f"{s.id}  {s.state:8}  until {s.ends_at}  {','.join(s.sites) or '-'}  "
                      f"{s.created_by}: {s.comment}", highlight=False, markup=False, soft_wrap=True)


@app.command("webhook")
def webhook_cmd(
    listen: Annotated[str, typer.Option("--listen", "-l", help="HOST:PORT (port 0: any free port).")] = "127.0.0.1:9099",
    log: Annotated[Path | None, typer.Option(help="Append every notification to this JSON-lines file.")] = None,
) -> None:
    """Run the NOC's webhook receiver (Alertmanager webhook_configs)."""
    from dcops.noc.webhook import main

    main(listen, log)
