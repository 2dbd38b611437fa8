"""``dcops inventory``: check, show and render a province inventory."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from dcops.cli.common import InventoryOpt, JsonOpt, console, emit_json, err_console, fail, load_or_exit
from dcops.fsio import fsync_dir, stage
from dcops.inventory.model import Inventory, Tier
from dcops.inventory.summary import counts, per_district
from dcops.render import dump_json
from dcops.render.ansible import ansible_inventory
from dcops.render.filesd import file_sd

app = typer.Typer(help="Check, show and render a province inventory.", no_args_is_help=True)

DirArg = Annotated[
    Path | None,
    typer.Argument(help="Inventory directory (default: the lab province).", show_default=False),
]


@app.command()
def check(directory: DirArg = None, as_json: JsonOpt = False) -> None:
    """Validate an inventory and print its counts; exit 2 listing every problem if it is invalid."""
    loaded = load_or_exit(directory, as_json)
    inv = loaded.inventory
    c = counts(inv)
    if as_json:
        emit_json({"ok": True, "inventory": inv.source, "files": len(loaded.files), "counts": c})
        return
    console.print(f"[green]✓[/] {inv.province.name}: {inv.source} is valid ({len(loaded.files)} files)")
    t = Table(show_header=True, header_style="bold")
    t.add_column("figure")
    t.add_column("count", justify="right")
    t.add_column("detail")
    t.add_row("districts", str(c["districts"]), "")
    t.add_row(
        "data-network sites",
        str(c["datanet_sites"]),
        " + ".join(f"{n} {tier}" for tier, n in c["datanet_sites_by_tier"].items() if n),
    )
    t.add_row("video-conference endpoints", str(c["videoconf_endpoints"]), _by_tier(c["videoconf_endpoints_by_tier"]))
    t.add_row("mail agencies", str(c["mail_agencies"]), "")
    t.add_row("mail accounts", f"{c['mail_accounts']:,}", "")
    t.add_row("sites (all)", str(c["sites"]), _by_tier(c["sites_by_tier"]))
    t.add_row("circuits", str(c["circuits"]), "")
    t.add_row("hosts", str(c["hosts"]), "")
    t.add_row("services", str(c["services"]), f"{c['external_services']} external")
    t.add_row("flows", str(c["flows"]), "")
    t.add_row("placeholder sites", str(c["placeholders"]), "names not published")
    console.print(t)


def _by_tier(d: dict[str, int]) -> str:
    return ", ".join(f"{n} {tier}" for tier, n in d.items() if n)


@app.command()
def show(inventory: InventoryOpt = None, as_json: JsonOpt = False) -> None:  # type: ignore[assignment]
    """Show the province: counts per tier and district, services, and every site's addresses."""
    inv = load_or_exit(inventory, as_json).inventory
    if as_json:
        emit_json(_show_json(inv))
        return
    console.rule(f"[bold]{inv.province.name}[/] ({inv.province.code}, {inv.province.domain})")
    tiers = [t.value for t in Tier if t is not Tier.DISTRICT or inv.province.has_districts]
    grouping = "district" if inv.province.has_districts else "area"
    t = Table(title=f"Sites per {grouping} and tier", header_style="bold")
    t.add_column(grouping, no_wrap=True)
    for tier in tiers:
        t.add_column(tier, justify="right")
    t.add_column("total", justify="right")
    names = {d.name: d.display_name for d in inv.districts} | {a.name: a.display_name for a in inv.areas}
    for district, cnt in sorted(per_district(inv).items(), key=lambda x: (x[0] != "province", x[0])):
        label = names.get(district, "provincial level")
        t.add_row(label, *(str(cnt.get(x, 0) or "") for x in tiers), str(sum(cnt.values())))
    console.print(t)

    s = Table(title="Services", header_style="bold")
    for col in ("service", "type", "where", "ports"):
        s.add_column(col)
    for svc in inv.services:
        addr = inv.service_address(svc)
        where = svc.url if svc.external else f"{', '.join(svc.hosts)} ({addr})"
        ports = ", ".join(
            f"{p.name} {p.proto.value}" + (f"/{p.port}" if p.port else "") + (f"-{p.port_end}" if p.port_end else "")
            for p in svc.ports
        )
        s.add_row(svc.name, svc.type.value + (" (external)" if svc.external else ""), where or "", ports)
    console.print(s)

    a = Table(title="Addresses", header_style="bold")
    for col in ("site", "tier", grouping, "subnet", "gateway", "loopback", "management", "hosts"):
        a.add_column(col)
    for site in inv.sites:
        mgmt = inv.management_of(site)
        a.add_row(
            site.name + (" *" if site.placeholder else ""),
            site.tier.value + ("" if site.datanet else " (internet)") + (" hub" if site.hub else ""),
            inv.district_of(site) or inv.area_of(site),
            str(site.subnet),
            str(inv.gateway_of(site)),
            str(site.loopback or ""),
            str(mgmt or ""),
            ", ".join(f"{h.name} {h.address}" for h in site.hosts),
        )
    console.print(a)
    c = counts(inv)
    console.print(
        f"{c['datanet_sites']} data-network sites, {c['videoconf_endpoints']} video-conference endpoints, "
        f"{c['mail_agencies']} mail agencies with {c['mail_accounts']:,} accounts, {c['hosts']} hosts, "
        f"{c['circuits']} circuits. * = placeholder name (not published)."
    )


def _show_json(inv: Inventory) -> dict[str, object]:
    return {
        "province": inv.province.model_dump(mode="json"),
        "counts": counts(inv),
        "per_district": {k: dict(v) for k, v in sorted(per_district(inv).items())},
        "services": [s.model_dump(mode="json") for s in inv.services],
        "sites": [
            {
                "name": s.name,
                "tier": s.tier.value,
                "district": inv.district_of(s),
                "area": inv.area_of(s),
                "hub": s.hub,
                "datanet": s.datanet,
                "subnet": str(s.subnet),
                "gateway": str(inv.gateway_of(s)),
                "loopback": str(s.loopback) if s.loopback else None,
                "management": str(m) if (m := inv.management_of(s)) else None,
                "hosts": [h.model_dump(mode="json") for h in s.hosts],
            }
            for s in inv.sites
        ],
    }


@app.command("ansible")
def ansible_cmd(
    inventory: InventoryOpt = None,  # type: ignore[assignment]
    list_: Annotated[bool, typer.Option("--list", help="The whole inventory (the default).")] = True,
    host: Annotated[str | None, typer.Option("--host", help="One host's variables.")] = None,
) -> None:
    """Print the Ansible inventory as JSON (the ``ansible-inventory --list`` and dynamic-script format)."""
    data = ansible_inventory(load_or_exit(inventory, True).inventory)
    if host is not None:
        hv = data["_meta"]["hostvars"]
        if host not in hv:
            fail(f"no host {host!r} in the inventory")
        emit_json(hv[host])
        return
    emit_json(data)


@app.command()
def render(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write into (created if missing).")],
    inventory: InventoryOpt = None,  # type: ignore[assignment]
    as_json: JsonOpt = False,
) -> None:
    """Render every tool's files: ansible/inventory.json and prometheus/file_sd/*.json.

    Nothing is written unless the inventory is valid and every file can be written: each is
    staged beside its target first, then all are renamed into place (exit 2 naming the path
    and the reason otherwise).
    """
    inv = load_or_exit(inventory, as_json).inventory
    files = rendered_files(inv)
    try:
        written = write_files(out, files)
    except OutputError as e:
        if as_json:
            emit_json({"ok": False, "out": str(out), "path": str(e.path), "reason": e.reason, "written": []})
        # one line however long the path (``fail`` would wrap it at the terminal's width)
        err_console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    if as_json:
        emit_json({"ok": True, "out": str(out), "files": written})
    else:
        for f in written:
            console.print(f"wrote {out / f}")


def rendered_files(inv: Inventory) -> dict[str, str]:
    files = {"ansible/inventory.json": dump_json(ansible_inventory(inv))}
    files.update({f"prometheus/file_sd/{name}": text for name, text in file_sd(inv).items()})
    return files


class OutputError(Exception):
    """The rendered files cannot be written at ``path``; ``reason`` says why. Nothing was written."""

    def __init__(self, path: Path, reason: str, what: str = "write") -> None:
        super().__init__(f"cannot {what} {path}: {reason}; nothing was written")
        self.path = path
        self.reason = reason


def write_files(out: Path, files: dict[str, str]) -> list[str]:
    """Write every file under ``out``, or none: :class:`OutputError` names the path and the reason.

    Every target is checked first (no file where a folder must be, no folder where a file
    goes), then each file is staged with :func:`dcops.fsio.stage` (written and synced to a
    hidden temporary file beside its target), and only when all are staged are they renamed
    into place; a reader sees each old file or each new one, never half of one. On a failure
    the staged files, and the folders this call made, are removed."""
    targets = {rel: out / rel for rel in files}
    _check_targets(out, list(targets.values()))
    made: list[Path] = []
    staged: list[tuple[Path, Path]] = []
    what = "make the folder"
    try:
        for folder in sorted({t.parent for t in targets.values()}):
            made += _make_folders(folder)
        what = "write"
        for rel, text in files.items():
            staged.append((stage(targets[rel], text.encode("utf-8")), targets[rel]))
    except OSError as e:
        _undo(staged, made)
        raise OutputError(Path(e.filename) if e.filename else out, e.strerror or str(e), what) from None
    for k, (tmp, dest) in enumerate(staged):
        try:
            os.replace(tmp, dest)
        except OSError as e:  # not met in practice: the targets were checked and staged beside
            _undo(staged[k:], [])
            raise OutputError(dest, f"{e.strerror or e} (after {k} of {len(staged)} files were replaced)") from None
    for folder in {dest.parent for _, dest in staged}:
        fsync_dir(folder)
    return sorted(files)


def _check_targets(out: Path, targets: list[Path]) -> None:
    """Refuse, before anything is written, a destination that cannot hold the files."""
    if os.path.lexists(out) and not out.exists():
        raise OutputError(out, "it is a broken symbolic link")
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(out, "it is a file, not a folder" if existing == out else f"{existing} is a file, not a folder")
    for target in targets:
        for folder in reversed(target.relative_to(out).parents[:-1]):
            if (out / folder).exists() and not (out / folder).is_dir():
                raise OutputError(out / folder, "it is a file, where a folder of rendered files goes")
        if target.is_dir():
            raise OutputError(target, "it is a folder, where a rendered file goes")


def _make_folders(folder: Path) -> list[Path]:
    """Make ``folder`` and its missing parents; return those made, outermost first."""
    missing: list[Path] = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    made: list[Path] = []
    try:
        for m in reversed(missing):
            m.mkdir(mode=0o755)
            made.append(m)
    except OSError:
        _undo([], made)
        raise
    return made


def _undo(staged: list[tuple[Path, Path]], made: list[Path]) -> None:
    for tmp, _ in staged:
        tmp.unlink(missing_ok=True)
    for folder in reversed(made):
        with contextlib.suppress(OSError):
            folder.rmdir()


@app.command()
def merge(
    a: Annotated[Path, typer.Argument(help="The inventory that stays the root (its province, code, data centre).")],
    b: Annotated[Path, typer.Argument(help="The inventory merged into it (its data centre becomes a hub).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="New folder for the merged inventory (must not exist, or be empty).")],
    link_subnet: Annotated[
        str | None,
        typer.Option("--link-subnet", help="A free /30 or /31 for the circuit between A's and B's data centres."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Merge two provinces' inventories into one; exit 2 listing every clash (file and line in both).

    Reports every clash (names, addresses, subnets and ranges, domains, structure) and writes
    nothing while there is one; otherwise writes the merged province to OUT, but only after it
    validated like any inventory.
    """
    import ipaddress

    from dcops.inventory.errors import InventoryError
    from dcops.inventory.merge import ClashError, MergeError, write

    try:
        link = ipaddress.IPv4Network(link_subnet) if link_subnet else None
    except ValueError as e:
        fail(f"--link-subnet {link_subnet!r}: {e}", 2)
    for d in (a, b):
        load_or_exit(d, as_json)  # every problem of an invalid input, with file and line
    try:
        loaded, files = write(a, b, out, link)
    except ClashError as e:
        if as_json:
            emit_json({"ok": False, "clashes": [c.to_json() for c in e.clashes]})
        else:
            err_console.print(f"[bold red]error:[/] {len(e.clashes)} clashes between {escape(str(a))} and {escape(str(b))};"
                              " nothing was written", highlight=False)
            for c in e.clashes:
                err_console.print(f"  {escape(str(c))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except (MergeError, InventoryError, OSError) as e:
        if as_json:
            emit_json({"ok": False, "clashes": [], "reason": str(e)})
        err_console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    figures = counts(loaded.inventory)
    if as_json:
        emit_json({"ok": True, "out": str(out), "files": [str(f) for f in files], "counts": figures})
        return
    for f in files:
        console.print(f"wrote {f}")
    console.print(
        f"merged province: {figures['sites']} sites, {figures['hosts']} hosts, {figures['circuits']} circuits, valid"
    )
