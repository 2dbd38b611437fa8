"""``dcops exporter``: the connectivity and security exporters, and what Prometheus needs to scrape them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from dcops.cli.common import InventoryOpt, JsonOpt, console, emit_json, err_console, fail, load_or_exit
from dcops.exporters import promconfig
from dcops.exporters.config import ExporterConfig, load_config, read_raw
from dcops.exporters.errors import ConfigError
from dcops.exporters.targets import Target, check_targets, inventory_targets, load_target_list
from dcops.fsio import atomic_write
from dcops.render.filesd import file_sd
from dcops.vc import scrape as vc_scrape

if TYPE_CHECKING:
    from dcops.exporters.serving import Exporter

app = typer.Typer(help="Prometheus exporters: connectivity (probes) and security posture.", no_args_is_help=True)

ListenOpt = Annotated[str, typer.Option("--listen", "-l", help="HOST:PORT to serve on (port 0: any free port).")]
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="Exporter config (YAML): modules, concurrency, allowed_networks, ...")
]
TargetsOpt = Annotated[
    Path | None,
    typer.Option("--targets", help="Sweep these targets ('TARGET MODULE' per line) instead of the inventory's."),
]
CheckOpt = Annotated[bool, typer.Option("--check", help="Validate config and targets, print a summary, exit.")]


def _config_or_exit(path: Path | None) -> ExporterConfig:
    try:
        return load_config(path)
    except ConfigError as e:
        raise _config_fail(e) from None


def _config_fail(e: ConfigError) -> NoReturn:
    n = len(e.problems)
    err_console.print(f"[bold red]error:[/] {e.source}: {n} problem{'s' if n != 1 else ''}", highlight=False)
    for p in e.problems:
        err_console.print(f"  {p}", highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(2)


def _targets(inventory: Path | None, targets_file: Path | None) -> tuple[list[Target], list[str], str]:
    """Sweep targets, continuous-ICMP targets, and where they came from."""
    if targets_file is not None:
        try:
            ts = load_target_list(str(targets_file))
        except ConfigError as e:
            _config_fail(e)
        return ts, sorted({t.target for t in ts if t.module == "icmp"}), str(targets_file)
    inv = load_or_exit(inventory).inventory
    smoke = sorted({str(inv.gateway_of(s)) for s in inv.datanet_sites()})
    return inventory_targets(inv), smoke, inv.source


def _serve(exporter: Exporter, listen: str) -> None:
    from dcops.exporters.serving import run

    try:
        run(exporter, listen)
    except ValueError as e:
        fail(str(e))


@app.command()
def connectivity(inventory: InventoryOpt = None, listen: ListenOpt = "127.0.0.1:9115",  # type: ignore[assignment]
                 config: ConfigOpt = None, targets: TargetsOpt = None, check: CheckOpt = False) -> None:
    """Serve /probe?target=&module= (multi-target), /sweep (every inventory target) and /metrics."""
    from dcops.exporters.connectivity import ConnectivityExporter

    cfg = _config_or_exit(config)
    ts, smoke, source = _targets(inventory, targets)
    try:
        check_targets(cfg, ts, source)
    except ConfigError as e:
        _config_fail(e)
    if cfg.smokeping.targets is not None:
        smoke = list(cfg.smokeping.targets)
    if check:
        console.print(f"config ok: {len(cfg.modules)} modules, {len(ts)} sweep targets, {len(smoke)} continuous ICMP targets")
        return
    _serve(ConnectivityExporter(cfg, ts, smoke), listen)


@app.command("targets")
def list_targets(inventory: InventoryOpt = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:  # type: ignore[assignment]
    """The targets an inventory sweep probes, with their modules."""
    ts, _, _ = _targets(inventory, None)
    if as_json:
        emit_json([{"target": t.target, "module": t.module} for t in ts])
        return
    for t in ts:
        console.print(f"{t.target} {t.module}", highlight=False, markup=False)


@app.command("prometheus-config")
def prometheus_config(
    filesd_dir: Annotated[Path, typer.Option("--filesd-dir", help="Where Prometheus reads the file_sd files.")],
    exporter: Annotated[list[str], typer.Option("--exporter", help="HOST:PORT of an exporter instance (repeat to shard).")],
    inventory: InventoryOpt = None,  # type: ignore[assignment]
    out: Annotated[
        Path | None, typer.Option("--out", help="Write prometheus.yml here (and the file_sd files to --filesd-dir).")
    ] = None,
    scrape_interval: str = "15s",
    scrape_timeout: str = "10s",
) -> None:
    """Render a Prometheus config scraping the exporters with file_sd from the inventory (hashmod-sharded)."""
    inv = load_or_exit(inventory).inventory
    cfg = promconfig.render(filesd_dir, exporter, scrape_interval=scrape_interval, scrape_timeout=scrape_timeout)
    cfg["scrape_configs"] += vc_scrape.jobs(inv)  # Kamailio's and rtpengine's own metrics (issue 13)
    text = promconfig.dump(cfg)
    if out is None:
        console.print(text, highlight=False, markup=False)
        return
    filesd_dir.mkdir(parents=True, exist_ok=True)
    for name, body in file_sd(inv).items():
        (filesd_dir / name).write_text(body, encoding="utf-8")
    out.write_text(text, encoding="utf-8")
    console.print(f"wrote {out} and {len(file_sd(inv))} file_sd files in {filesd_dir}")


@app.command()
def security(inventory: InventoryOpt = None, listen: ListenOpt = "127.0.0.1:9116",  # type: ignore[assignment]
             config: ConfigOpt = None, check: CheckOpt = False) -> None:
    """Serve /metrics: TLS certificates (incl. STARTTLS), SSH posture, open ports vs flows, mail DNS records."""
    from dcops.exporters.security.exporter import SecurityExporter, from_inventory

    cfg = _config_or_exit(config)
    inv = load_or_exit(inventory).inventory
    ts = from_inventory(inv, cfg)
    if check:
        unknown = sorted(m.domain for m in ts.mail if m.dkim_selector is None)
        note = f"; no DKIM selector (reported as no key published) for: {', '.join(unknown)}" if unknown else ""
        console.print(f"config ok: {ts.count()} checks{note}", highlight=False, soft_wrap=True)
        return
    _serve(SecurityExporter(cfg, ts), listen)


@app.command("config")
def exporter_config(
    inventory: InventoryOpt = None,  # type: ignore[assignment]
    base: Annotated[
        Path | None, typer.Option("--base", help="Exporter config (YAML) to start from (concurrency, allowed_networks, ...).")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the config here (mode 0644) instead of stdout.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Render the exporters' config on the controller: --base with security.dkim_selectors set from the
    DKIM key files (the selector each domain's key is published under; no vault password needed).

    Check the result with `dcops exporter connectivity --check --config FILE` (and `security --check`)."""
    from dcops.exporters import controller
    from dcops.mail.vault import SecretsError

    loaded = load_or_exit(inventory)
    try:
        raw = read_raw(base) if base is not None else {}
        cfg = controller.exporter_config(loaded.inventory, raw, source=str(base) if base else "(rendered config)")
    except ConfigError as e:
        _config_fail(e)
    except SecretsError as e:
        fail(str(e), 2)
    missing = controller.without_dkim_key(loaded.inventory, cfg)
    if missing:
        err_console.print(f"warning: no DKIM key (run `dcops mail dkim-keys`) for: {', '.join(missing)}; the security "
                          "exporter reports them with dcops_security_mail_dkim_key_published 0", highlight=False, soft_wrap=True)
    text = controller.dump(cfg, loaded.inventory.source, as_json=as_json)
    if out is None:
        sys.stdout.write(text)
        return
    atomic_write(out, text, 0o644, only_if_changed=True)
    n = len(cfg["security"]["dkim_selectors"])
    err_console.print(f"wrote {out}: DKIM selectors of {n} mail domain{'s' if n != 1 else ''}", highlight=False, soft_wrap=True)
