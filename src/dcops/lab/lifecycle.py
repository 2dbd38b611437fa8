"""``up``, ``down`` and ``status`` of a lab (full hosts or light namespaces)."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from dcops import DEFAULT_INVENTORY, lab_dir
from dcops.inventory import Inventory, load
from dcops.lab import cgroups, hosts, image, net, responder, ssh, state
from dcops.lab.errors import LabError
from dcops.lab.plan import PREFIX, Plan, build, root_link_name, uses_only_declared_ranges
from dcops.lab.system import require_root, require_tools

BOOT_TIMEOUT = float(os.environ.get("DCOPS_LAB_BOOT_TIMEOUT", "180"))


@dataclass
class UpResult:
    code: str
    mode: str
    seconds: float
    already: bool
    hosts: list[dict[str, Any]] = field(default_factory=list)


def load_inventory(path: Path | None) -> Inventory:
    return load(path or DEFAULT_INVENTORY).inventory


def up(inv: Inventory, light: bool = False, console: Console | None = None) -> UpResult:
    """Boot the lab of ``inv`` (full hosts, or light namespaces); see the module's commands."""
    require_root()
    with state.locked(inv.province.code):
        return _up(inv, light, console)


def _up(inv: Inventory, light: bool, console: Console | None) -> UpResult:
    con = console or Console(stderr=True)
    t0 = time.monotonic()
    require_root()
    require_tools("ip", *(() if light else ("systemd-nspawn", "debootstrap", "nsenter", "ssh", "ssh-keygen")))
    prov = inv.province
    if not light and not prov.lab:
        raise LabError(
            f"province {prov.code!r} is not a lab province (province.lab is false): only light mode "
            "(`dcops lab up --light`) may model it on this machine"
        )
    code = prov.code
    mode = "light" if light else "full"
    existing = state.load(code)
    if existing is not None:
        if existing.phase == "up" and _healthy(existing):
            con.print(f"lab {code!r} ({existing.mode}) is already up; nothing changed")
            return UpResult(code, existing.mode, time.monotonic() - t0, True, status(code)["hosts"])
        raise LabError(
            f"lab {code!r} is partly up or was interrupted (phase {existing.phase}): run "
            f"`dcops lab down{'' if code == 'lab' else ' -i ' + existing.inventory}` first"
        )
    plan = build(inv, light=light)
    bad = uses_only_declared_ranges(plan)
    if bad:
        raise LabError(f"lab addresses outside the inventory's address_ranges: {', '.join(bad)}")
    net.check_ranges_free(plan)
    img = None if light else image.ensure_image(log=lambda m: con.print(m, highlight=False))
    if not light:
        _ensure_inotify_instances(len(plan.nodes), con)
    labdir = lab_dir(code)
    st = state.State(code=code, inventory=inv.source, mode=mode, image=str(img.path) if img else None, root_link=plan.root_link)
    st.netns = [plan.switch_ns] + [n.netns for n in plan.nodes]
    st.addresses = {n.name: [a for i in n.ifaces for a in i.addresses] + n.loopbacks for n in plan.nodes}
    for n in plan.nodes:
        st.hosts[n.name] = state.HostState(netns=n.netns, machine=n.machine, management=n.management)
    state.save(st)  # before anything is made: `down` knows what to look for
    net.create_namespaces(st.netns)
    net.build(plan)
    if light:
        st.responder_pid = responder.start(labdir, responder.spec(inv, plan))
        state.save(st)
    else:
        assert img is not None
        user = prov.admins[0].name if prov.admins else "dcops"
        ssh.prepare(labdir, code, user, {n.name: n.management for n in plan.nodes})
        _boot(st, plan, img.path, labdir, con)
    st.phase = "up"
    state.save(st)
    took = time.monotonic() - t0
    con.print(
        f"lab {code!r} ({mode}) up: {len(plan.nodes)} {'hosts' if not light else 'sites'}, "
        f"{len(plan.circuits)} circuits in {took:.1f} s"
    )
    return UpResult(code, mode, took, False, status(code)["hosts"])


def _boot(st: state.State, plan: Plan, img: Path, labdir: Path, con: Console) -> None:
    cfg = ssh.config_path(labdir)
    with Progress(
        TextColumn("{task.fields[host]:<12}"),
        BarColumn(bar_width=20),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=con,
    ) as progress:
        tasks = {}
        for n in plan.nodes:
            st.hosts[n.name].pid = hosts.start(img, n, labdir)
            state.save(st)
            tasks[n.name] = progress.add_task("started", total=3, completed=1, host=n.name)
        pending = set(tasks)
        deadline = time.monotonic() + BOOT_TIMEOUT
        while pending:
            for name in sorted(pending):
                hs = st.hosts[name]
                if not hosts.alive(hs.pid):
                    st.phase = "failed"
                    state.save(st)
                    raise LabError(
                        f"host {name} stopped while booting; console:\n"
                        + hosts.journal_tail(labdir, name, None)
                        + "\nrun `dcops lab down` to clean up"
                    )
                if hs.leader is None and hs.pid is not None:
                    hs.leader = hosts.leader(hs.pid)
                    if hs.leader:
                        state.save(st)
                if hs.leader is None:
                    continue
                sysstate = hosts.system_state(hs.leader)
                if sysstate not in ("running", "degraded"):
                    progress.update(tasks[name], description=f"systemd {sysstate}")
                    continue
                progress.update(tasks[name], completed=2, description=f"systemd {sysstate}, waiting for ssh")
                if _ssh_ok(cfg, name):
                    progress.update(tasks[name], completed=3, description=f"ready (systemd {sysstate}, ssh)")
                    pending.discard(name)
            if pending and time.monotonic() > deadline:
                st.phase = "failed"
                state.save(st)
                late = sorted(pending)
                details = "\n".join(
                    f"--- {h} (last journal lines):\n" + hosts.journal_tail(labdir, h, st.hosts[h].leader) for h in late[:3]
                )
                if len(late) > 3:
                    details += f"\n--- and {len(late) - 3} more: `dcops lab exec HOST -- journalctl -b`"
                raise LabError(
                    f"host(s) {', '.join(sorted(pending))} not ready after {BOOT_TIMEOUT:.0f} s "
                    f"(systemd running and SSH answering)\n{details}\n"
                    "the lab is left as is for inspection (`dcops lab exec HOST -- journalctl -b`); "
                    "`dcops lab down` cleans it up"
                )
            if pending:
                time.sleep(0.3)


INOTIFY_INSTANCES_PER_HOST = 48  # about 10 in use per converged host (208 for two labs of 10): ample room


def _ensure_inotify_instances(hosts: int, con: Console) -> None:
    """The containers' root shares the machine's per-user inotify limit (no user namespaces);
    Debian's default (128) runs out with a converged lab (wireguard-go then fails with "too many
    open files"). Raise it, never lower it, and say so."""
    path = Path("/proc/sys/fs/inotify/max_user_instances")
    try:
        current = int(path.read_text())
    except (OSError, ValueError):
        return
    want = max(1024, hosts * INOTIFY_INSTANCES_PER_HOST)
    if current < want:
        path.write_text(f"{want}\n")
        con.print(f"fs.inotify.max_user_instances raised from {current} to {want} (every host's root shares it)")


def _ssh_ok(cfg: Path, host: str) -> bool:
    from dcops.lab.system import run

    return run(["ssh", "-F", str(cfg), host, "true"], check=False, timeout=15).returncode == 0


def _healthy(st: state.State) -> bool:
    if st.mode == "light":
        return st.responder_pid is not None and hosts.alive(st.responder_pid)
    return all(hosts.alive(h.pid) for h in st.hosts.values() if not h.stopped)


def down(code: str, console: Console | None = None) -> dict[str, Any]:
    """Remove everything lab ``code`` made; safe after a failed or interrupted ``up``."""
    require_root()
    with state.locked(code):
        return _down(code, console)


def _down(code: str, console: Console | None) -> dict[str, Any]:
    con = console or Console(stderr=True)
    t0 = time.monotonic()
    require_root()
    st = state.load(code)
    recorded_ns: list[str] = []
    pids: set[int] = set()
    leaders: set[int] = set()
    root_link = root_link_name(code)
    if st is not None:
        recorded_ns = st.netns
        root_link = st.root_link or root_link
        for h in st.hosts.values():
            if h.pid is not None and hosts.machine_of(h.pid) == h.machine:
                pids.add(h.pid)
            if h.leader is not None and h.pid in pids:
                leaders.add(h.leader)
        if st.responder_pid is not None and responder.is_responder(st.responder_pid):
            responder.stop(st.responder_pid)
    pids |= set(hosts.nspawn_processes(code))
    for pid in pids:
        lead = hosts.leader(pid)
        if lead is not None:
            leaders.add(lead)
    if pids:
        con.print(f"stopping {len(pids)} host(s) of lab {code!r}")
        hosts.stop(sorted(pids), sorted(leaders))
    left = hosts.nspawn_processes(code)
    if left:
        raise LabError(f"systemd-nspawn process(es) still running: {left}; kill them by PID and rerun down")
    net.teardown(code, root_link, recorded_ns)
    for d in cgroups.leftovers(f"{PREFIX}-{code}-"):
        cgroups.remove(Path(d).name)
    busy = cgroups.leftovers(f"{PREFIX}-{code}-")
    if busy:
        raise LabError(f"cgroup(s) still in use: {', '.join(busy)}; see `cat <dir>/cgroup.procs`")
    cgroups.remove_base()
    busy_disks = hosts.unmount_roots(lab_dir(code))
    if busy_disks:
        raise LabError(f"host disk(s) still mounted (busy): {', '.join(busy_disks)}; see `fuser -vm <dir>`")
    state.remove(code)
    shutil.rmtree(lab_dir(code) / "hosts", ignore_errors=True)
    took = time.monotonic() - t0
    con.print(f"lab {code!r} down in {took:.1f} s: no host, link or namespace left")
    return {"code": code, "seconds": took, "stopped": len(pids)}


def status(code: str) -> dict[str, Any]:
    st = state.load(code)
    left_ns = net.lab_namespaces(code)
    leftovers = {
        "nspawn": sorted(hosts.nspawn_processes(code)),
        "netns": left_ns,
        "root_link": net.link_exists(root_link_name(code)),
        "cgroups": cgroups.leftovers(f"{PREFIX}-{code}-"),
    }
    if st is None:
        return {"code": code, "up": False, "mode": None, "phase": "down", "hosts": [], "drills": [], "leftovers": leftovers}
    out_hosts = []
    for name, h in st.hosts.items():
        if st.mode == "light":
            s = "up" if h.netns in left_ns and _healthy(st) else "missing"
        elif h.stopped:
            s = "stopped (drill)"
        elif not hosts.alive(h.pid):
            s = "dead"
        else:
            lead = h.leader or (hosts.leader(h.pid) if h.pid else None)
            s = hosts.system_state(lead) if lead else "starting"
        out_hosts.append(
            {
                "name": name,
                "state": s,
                "management": h.management,
                "netns": h.netns,
                "machine": h.machine,
                "pid": h.pid,
                "addresses": st.addresses.get(name, []),
            }
        )
    return {
        "code": code,
        "up": st.phase == "up",
        "mode": st.mode,
        "phase": st.phase,
        "inventory": st.inventory,
        "ssh_config": str(ssh.config_path(lab_dir(code))) if st.mode == "full" else None,
        "hosts": out_hosts,
        "drills": st.drills,
        "leftovers": leftovers,
    }


def known_labs() -> list[str]:
    """Codes of every lab with a state file or a switch namespace on this machine."""
    codes = {f.parent.name for f in lab_dir("x").parent.glob(f"*/{state.STATE_FILE}")}
    codes |= {n[len(PREFIX) + 1 : -3] for n in net.all_namespaces() if n.startswith(f"{PREFIX}-") and n.endswith("-sw")}
    return sorted(codes)
