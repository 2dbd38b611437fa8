"""``dcops lab``: boot an inventory as real Debian hosts on this machine."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Annotated

import typer

from dcops.cli.common import InventoryOpt, JsonOpt, console, emit_json, err_console, fail, load_or_exit
from dcops.lab import LabError, drills, hosts, lifecycle, reach_table, ssh, state
from dcops.lab.image import ensure_image
from dcops.lab.progress import Reporter
from dcops.paths import lab_dir

app = typer.Typer(help="Boot an inventory as a lab of real Debian hosts on this machine.", no_args_is_help=True)


@app.callback()
def _signals() -> None:
    """Boot an inventory as a lab of real Debian hosts on this machine."""

    # SIGTERM (and SIGINT, even when inherited as ignored) unwind like Ctrl-C, so an image
    # build discards its temporary tree and `up` leaves a state file that `down` can use
    def stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
drill_app = typer.Typer(help="Break and restore parts of a running lab (status shows drills in force).", no_args_is_help=True)
app.add_typer(drill_app, name="drill")


def _code(inventory: Path | None) -> str:
    return load_or_exit(inventory).inventory.province.code


@app.command()
def up(
    inventory: InventoryOpt = None,  # type: ignore[assignment]
    light: Annotated[bool, typer.Option("--light", help="Namespaces per site, no systemd (for scale).")] = False,
) -> None:
    """Boot the lab (build the image first if its package list changed); wait until every host is ready."""
    inv = load_or_exit(inventory).inventory
    try:
        res = lifecycle.up(inv, light=light, console=err_console)
    except LabError as e:
        fail(str(e))
    except KeyboardInterrupt:
        fail("interrupted: what was started is recorded; `dcops lab down` removes it", 130)
    if not res.already and not light:
        console.print(reach_table(res.code))


@app.command()
def down(
    inventory: InventoryOpt = None,  # type: ignore[assignment]
    all_labs: Annotated[bool, typer.Option("--all", help="Every lab found on this machine.")] = False,
    code: Annotated[
        str | None, typer.Option("--code", help="The lab's province code (when its inventory does not load).")
    ] = None,
) -> None:
    """Remove every host, link, namespace and process the lab made (also after a failed up)."""
    codes = lifecycle.known_labs() if all_labs else [code or _code(inventory)]
    try:
        for c in codes:
            lifecycle.down(c, console=err_console)
    except LabError as e:
        fail(str(e))
    if all_labs and not codes:
        err_console.print("no lab on this machine")


@app.command()
def status(inventory: InventoryOpt = None, as_json: JsonOpt = False) -> None:  # type: ignore[assignment]
    """Every host with its state and addresses, and the drills in force."""
    st = lifecycle.status(_code(inventory))
    if as_json:
        emit_json(st)
        return
    if st["phase"] == "down":
        left = st["leftovers"]
        dirty = left["nspawn"] or left["netns"] or left["root_link"]
        console.print(f"lab {st['code']!r} is down" + (f"; leftovers (run down): {left}" if dirty else ""))
        return
    console.print(f"lab {st['code']!r}: {st['mode']}, phase {st['phase']}, inventory {st['inventory']}")
    console.print(reach_table(st["code"]))
    for d in st["drills"]:
        console.print(f"drill in force: {d['drill']} {d['target']}")


@app.command("ssh")
def ssh_cmd(host: str, inventory: InventoryOpt = None) -> None:  # type: ignore[assignment]
    """Open an SSH session to HOST as the lab admin (strict host key checking)."""
    args = ssh.ssh_args(lab_dir(_code(inventory)), host)
    os.execvp(args[0], args)


@app.command("exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def exec_cmd(
    host: str,
    command: Annotated[list[str], typer.Argument(help="The command (after --).")],
    inventory: InventoryOpt = None,  # type: ignore[assignment]
) -> None:
    """Run a command as root inside HOST (through nsenter, no SSH needed): dcops lab exec HOST -- CMD."""
    st = state.load(_code(inventory))
    if st is None or host not in st.hosts or st.mode != "full":
        fail(f"no running host {host!r}: see `dcops lab status`")
    h = st.hosts[host]
    lead = h.leader or (hosts.leader(h.pid) if h.pid else None)
    if lead is None or not hosts.alive(lead):
        fail(f"host {host} is not running (stopped by a drill?): see `dcops lab status`")
    args = hosts.nsenter(lead, *command)
    os.execvp(args[0], args)


@app.command()
def image(force: Annotated[bool, typer.Option("--force", help="Rebuild even if cached.")] = False) -> None:
    """Build (or show) the cached base image for the current package list."""
    try:
        img = ensure_image(Reporter(err_console), force=force)
    except LabError as e:
        fail(str(e))
    except KeyboardInterrupt:
        fail("interrupted: the partial image was discarded", 130)
    console.print(f"{img.path} ({img.digest}): built in {img.built_seconds:.0f} s, {img.size_bytes / 1e6:.0f} MB")


def _drill(fn: object) -> None:
    try:
        assert callable(fn)
        fn()
    except LabError as e:
        fail(str(e))


@drill_app.command("link-down")
def link_down(a: str, b: str, inventory: InventoryOpt = None) -> None:  # type: ignore[assignment]
    """Take the circuit between sites (or hosts) A and B down at both ends."""
    inv = load_or_exit(inventory).inventory
    _drill(lambda: console.print(f"circuit {drills.link(inv, a, b, False)} down"))


@drill_app.command("link-up")
def link_up(a: str, b: str, inventory: InventoryOpt = None) -> None:  # type: ignore[assignment]
    """Bring the circuit between A and B back up."""
    inv = load_or_exit(inventory).inventory
    _drill(lambda: console.print(f"circuit {drills.link(inv, a, b, True)} up"))


@drill_app.command("host-stop")
def host_stop(host: str, inventory: InventoryOpt = None) -> None:  # type: ignore[assignment]
    """Power HOST off (its network namespace and links stay)."""
    inv = load_or_exit(inventory).inventory
    _drill(lambda: drills.host_stop(inv, host))


@drill_app.command("host-start")
def host_start(host: str, inventory: InventoryOpt = None) -> None:  # type: ignore[assignment]
    """Boot HOST again and wait until it is ready."""
    inv = load_or_exit(inventory).inventory
    _drill(lambda: drills.host_start(inv, host, Reporter(err_console)))


@drill_app.command("service-stop")
def service_stop(host: str, unit: str, inventory: InventoryOpt = None) -> None:  # type: ignore[assignment]
    """Stop a systemd UNIT on HOST."""
    inv = load_or_exit(inventory).inventory
    _drill(lambda: drills.service(inv, host, unit, False))


@drill_app.command("service-start")
def service_start(host: str, unit: str, inventory: InventoryOpt = None) -> None:  # type: ignore[assignment]
    """Start a systemd UNIT on HOST again."""
    inv = load_or_exit(inventory).inventory
    _drill(lambda: drills.service(inv, host, unit, True))
