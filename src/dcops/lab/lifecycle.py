"""``up``, ``down`` and ``status`` of a lab (full hosts or light namespaces)."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

import dcops.lab.boot as boot
import dcops.lab.cgroups as cgroups
import dcops.lab.hosts as hosts
import dcops.lab.image as image
import dcops.lab.light as light_mode
import dcops.lab.net as net
import dcops.lab.ssh as ssh
import dcops.lab.state as state
from dcops.inventory.model import Inventory
from dcops.lab.errors import LabError
from dcops.lab.plan import PREFIX, build, root_link_name, uses_only_declared_ranges
from dcops.lab.progress import Reporter
from dcops.lab.system import require_root, require_tools
from dcops.paths import lab_dir


@dataclass
class UpResult:
    code: str
    mode: str
    seconds: float
    already: bool


def up(inv: Inventory, light: bool = False, console: Console | None = None) -> UpResult:
    """Boot the lab of ``inv`` (full hosts, or light namespaces); progress goes to ``console``
    (stderr by default): rich on a terminal, plain lines elsewhere."""
    require_root()
    with state.locked(inv.province.code):
        return _up(inv, light, Reporter(console))


def _up(inv: Inventory, light: bool, progress: Reporter) -> UpResult:
    t0 = time.monotonic()
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
            progress.say(f"lab {code!r} ({existing.mode}) is already up; nothing changed")
            return UpResult(code, existing.mode, time.monotonic() - t0, True)
        raise LabError(
            f"lab {code!r} is partly up or was interrupted (phase {existing.phase}): run "
            f"`dcops lab down{'' if code == 'lab' else ' -i ' + existing.inventory}` first"
        )
    plan = build(inv, light=light)
    bad = uses_only_declared_ranges(plan)
    if bad:
        raise LabError(f"lab addresses outside the inventory's address_ranges: {', '.join(bad)}")
    net.check_ranges_free(plan)
    img = None if light else image.ensure_image(progress)
    if not light:
        _ensure_inotify_instances(len(plan.nodes), progress)
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
        st.responder_pid = light_mode.start(labdir, light_mode.spec(inv, plan))
        state.save(st)
    else:
        assert img is not None
        ssh.prepare(labdir, code, ssh.lab_user(prov), {n.name: n.management for n in plan.nodes})
        boot.start(st, plan.nodes, img.path, labdir)
        try:
            boot.wait_ready(st, [n.name for n in plan.nodes], labdir, progress)
        except LabError:
            st.phase = "failed"
            state.save(st)
            raise
    st.phase = "up"
    state.save(st)
    took = time.monotonic() - t0
    progress.say(
        f"lab {code!r} ({mode}) up: {len(plan.nodes)} {'hosts' if not light else 'sites'}, "
        f"{len(plan.circuits)} circuits in {took:.1f} s"
    )
    return UpResult(code, mode, took, False)


INOTIFY_INSTANCES_PER_HOST = 48  # about 10 in use per converged host (208 for two labs of 10): ample room


def _ensure_inotify_instances(hosts: int, progress: Reporter) -> None:
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
        progress.say(f"fs.inotify.max_user_instances raised from {current} to {want} (every host's root shares it)")


def _healthy(st: state.State) -> bool:
    if st.mode == "light":
        return st.responder_pid is not None and hosts.alive(st.responder_pid)
    return all(hosts.alive(h.pid) for h in st.hosts.values() if not h.stopped)


def down(code: str, console: Console | None = None) -> dict[str, Any]:
    """Remove everything lab ``code`` made; safe after a failed or interrupted ``up``."""
    require_root()
    with state.locked(code):
        return _down(code, Reporter(console))


def _down(code: str, progress: Reporter) -> dict[str, Any]:
    t0 = time.monotonic()
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
        if st.responder_pid is not None and light_mode.is_responder(st.responder_pid):
            light_mode.stop(st.responder_pid)
    pids |= set(hosts.nspawn_processes(code))
    for pid in pids:
        lead = hosts.leader(pid)
        if lead is not None:
            leaders.add(lead)
    if pids:
        progress.say(f"stopping {len(pids)} host(s) of lab {code!r}")
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
    progress.say(f"lab {code!r} down in {took:.1f} s: no host, link or namespace left")
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
    codes = set(state.recorded())
    codes |= {n[len(PREFIX) + 1 : -3] for n in net.all_namespaces() if n.startswith(f"{PREFIX}-") and n.endswith("-sw")}
    return sorted(codes)
