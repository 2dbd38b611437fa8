"""The audit's scope and transport: every managed host of the inventory, one SSH connection and
one read-only fact collection each (:mod:`dcops.audit.collector_script`), hosts in a bounded
thread pool with a progress bar on a terminal and plain lines otherwise.

The hosts and addresses are the Ansible inventory's (:func:`dcops.render.ansible.site_hosts`,
each host's management address); for a lab province the SSH settings are the lab's own
``ssh_config`` (user, key, exact known_hosts), as the converge uses them.
"""

from __future__ import annotations

import fnmatch
import json
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paramiko  # type: ignore[import-untyped]

from dcops.audit.checks import HostContext
from dcops.audit.errors import CollectError
from dcops.inventory.model import Inventory
from dcops.lab.ssh import config_path, lab_user
from dcops.paths import lab_dir
from dcops.render.ansible import NODE_EXPORTER, WIREGUARD, site_hosts

SCRIPT = Path(__file__).with_name("collector_script.py")
SSH_PORT = 22
#: WireGuard legs a router may listen on (one port per leg from the base).
WG_LEGS = 256
#: Output larger than this from a host is refused (a collector prints well under 1 MiB).
MAX_OUTPUT = 32 * 1024 * 1024


@dataclass
class Target:
    """One host to audit: how to reach it and what the inventory says about it."""

    ctx: HostContext
    address: str
    port: int = SSH_PORT
    user: str = "root"
    key_file: str | None = None
    known_hosts: str | None = None


def script_text() -> str:
    return SCRIPT.read_text(encoding="utf-8")


def _ports(inv: Inventory, host: str, router: bool) -> tuple[frozenset[tuple[str, int]], tuple[tuple[str, int, int], ...]]:
    ports = {("tcp", SSH_PORT), ("tcp", int(NODE_EXPORTER["port"]))}  # type: ignore[call-overload]
    ranges: list[tuple[str, int, int]] = []
    for svc in inv.services:
        if host not in svc.hosts:
            continue
        for p in svc.ports:
            if p.port is None:
                continue
            if p.port_end is not None:
                ranges.append((p.proto.value, p.port, p.port_end))
            else:
                ports.add((p.proto.value, p.port))
    if router:
        base = int(WIREGUARD["port_base"])  # type: ignore[call-overload]
        ranges.append(("udp", base, base + WG_LEGS - 1))
    return frozenset(ports), tuple(ranges)


def matches(ctx: HostContext, limit: str | None) -> bool:
    """Ansible-like ``-l``: comma-separated patterns on host, site, tier or role; ``!pat`` excludes."""
    if not limit:
        return True
    pats = [p.strip() for p in limit.split(",") if p.strip()]
    names = [ctx.name, ctx.site, ctx.tier, *ctx.roles]
    inc = [p for p in pats if not p.startswith("!")]
    exc = [p[1:] for p in pats if p.startswith("!")]
    hit = any(fnmatch.fnmatchcase(n, p) for p in inc for n in names) if inc else True
    return hit and not any(fnmatch.fnmatchcase(n, p) for p in exc for n in names)


def scope(
    inv: Inventory,
    limit: str | None = None,
    user: str | None = None,
    key_file: str | None = None,
    known_hosts: str | None = None,
    ssh_config: Path | None = None,
) -> list[Target]:
    """The hosts to audit (every managed host, ``limit`` applied) with their SSH settings."""
    cfg: paramiko.SSHConfig | None = None
    if ssh_config is None and inv.province.lab:
        ssh_config = config_path(lab_dir(inv.province.code))
    if ssh_config is not None and Path(ssh_config).exists():
        cfg = paramiko.SSHConfig.from_path(str(ssh_config))
    admins = tuple(a.name for a in inv.province.admins)
    out = []
    for site in inv.sites:
        r = inv.router_of(site)
        for h in site_hosts(inv, site):
            router = (h.name == r.name) if r is not None else not site.hosts
            ports, ranges = _ports(inv, h.name, router)
            ctx = HostContext(
                name=h.name,
                site=site.name,
                tier=site.tier.value,
                roles=tuple(h.roles),
                router=router,
                management=str(h.management),
                management_network=str(inv.province.management_network),
                admins=admins,
                ports=ports,
                port_ranges=ranges,
            )
            if not matches(ctx, limit):
                continue
            t = Target(
                ctx=ctx,
                address=str(h.management),
                user=user or (lab_user(inv.province) if inv.province.lab else "root"),
                key_file=key_file,
                known_hosts=known_hosts,
            )
            if cfg is not None:
                c = cfg.lookup(h.name)
                t.address = str(c.get("hostname", t.address))
                t.port = int(c.get("port", SSH_PORT))
                t.user = user or str(c.get("user", t.user))
                ids = c.get("identityfile")
                t.key_file = key_file or (str(ids[0]) if ids else None)
                kh = c.get("userknownhostsfile")
                t.known_hosts = known_hosts or (str(kh).split()[0] if kh else None)
            out.append(t)
    return out


def command(target: Target) -> str:
    textfile = str(NODE_EXPORTER["textfile_dir"])
    base = f"python3 - --textfile-dir {textfile}"
    return base if target.user == "root" else f"sudo -n {base}"


def collect_one(target: Target, timeout: float = 30.0, script: str | None = None) -> dict[str, Any]:
    """The host's facts over one SSH connection (strict host key checking); :class:`CollectError` otherwise."""
    client = paramiko.SSHClient()
    try:
        if target.known_hosts:
            client.load_host_keys(target.known_hosts)
        else:
            client.load_system_host_keys()
    except OSError as e:
        raise CollectError(f"cannot read known_hosts {target.known_hosts}: {e}") from None
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(
            hostname=target.address,
            port=target.port,
            username=target.user,
            key_filename=target.key_file,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
            allow_agent=False,
            look_for_keys=target.key_file is None,
        )
        stdin, stdout, stderr = client.exec_command(command(target), timeout=timeout * 10)
        stdin.write(script if script is not None else script_text())
        stdin.channel.shutdown_write()
        out = stdout.read(MAX_OUTPUT + 1)
        err = stderr.read(64 * 1024).decode("utf-8", "replace").strip()
        rc = stdout.channel.recv_exit_status()
    except paramiko.SSHException as e:
        raise CollectError(f"SSH to {target.user}@{target.address}:{target.port}: {e}") from None
    except (TimeoutError, OSError) as e:
        raise CollectError(f"cannot reach {target.address}:{target.port}: {e}") from None
    finally:
        client.close()
    if rc != 0:
        raise CollectError(f"collector exited {rc} on {target.ctx.name}: {err[:300] or '(no message)'}")
    if len(out) > MAX_OUTPUT:
        raise CollectError(f"collector output of {target.ctx.name} over {MAX_OUTPUT} bytes: refused")
    try:
        facts = json.loads(out)
    except ValueError as e:
        raise CollectError(f"collector output of {target.ctx.name} is not JSON: {e}") from None
    if not isinstance(facts, dict):
        raise CollectError(f"collector output of {target.ctx.name} is not a JSON object")
    return facts


@dataclass
class Collected:
    facts: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def collect_all(
    targets: Iterable[Target],
    workers: int = 16,
    timeout: float = 30.0,
    progress: bool | None = None,
    collect: Callable[[Target, float], dict[str, Any]] = collect_one,
) -> Collected:
    """Collect every target's facts in a pool of ``workers`` threads; unreachable hosts are errors."""
    targets = list(targets)
    res = Collected()
    interactive = sys.stderr.isatty() if progress is None else progress
    script = script_text()

    def one(t: Target) -> tuple[Target, dict[str, Any] | None, str | None, float]:
        t0 = time.monotonic()
        try:
            if collect is collect_one:
                return t, collect_one(t, timeout, script), None, time.monotonic() - t0
            return t, collect(t, timeout), None, time.monotonic() - t0
        except CollectError as e:
            return t, None, str(e), time.monotonic() - t0

    bar: Any = None
    task: Any = None
    if interactive and targets:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        bar = Progress(
            TextColumn("audit"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.description}"),
            transient=True,
        )
        bar.start()
        task = bar.add_task("", total=len(targets))
    try:
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(targets) or 1))) as pool:
            futs = [pool.submit(one, t) for t in targets]
            for n, fut in enumerate(as_completed(futs), 1):
                t, facts, err, secs = fut.result()
                res.seconds[t.ctx.name] = round(secs, 3)
                if facts is not None:
                    res.facts[t.ctx.name] = facts
                else:
                    res.errors[t.ctx.name] = err or "unknown error"
                if bar is not None:
                    bar.update(task, advance=1, description=t.ctx.name)
                else:
                    word = "ok" if facts is not None else f"error: {err}"
                    print(f"audit [{n}/{len(targets)}] {t.ctx.name}: {word} ({secs:.1f} s)", file=sys.stderr, flush=True)
    finally:
        if bar is not None:
            bar.stop()
    return res
