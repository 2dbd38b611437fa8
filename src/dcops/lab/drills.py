"""Drills: break and restore parts of a running lab (links, hosts, services), recorded in state.

``status`` lists the drills in force; ``down`` clears them with the lab.
"""

from __future__ import annotations

from pathlib import Path

import dcops.lab.boot as boot
import dcops.lab.cgroups as cgroups
import dcops.lab.hosts as hosts
import dcops.lab.net as net
import dcops.lab.state as state
from dcops.inventory.model import Inventory
from dcops.lab.errors import LabError
from dcops.lab.plan import Circuit, build
from dcops.lab.progress import Reporter
from dcops.lab.system import run
from dcops.paths import lab_dir


def _running(inv: Inventory) -> state.State:
    st = state.load(inv.province.code)
    if st is None or st.phase != "up":
        raise LabError(f"lab {inv.province.code!r} is not up: run `dcops lab up` first")
    return st


def _record(st: state.State, kind: str, target: str, on: bool) -> None:
    entry = {"drill": kind, "target": target}
    st.drills = [d for d in st.drills if d["target"] != target or not d["drill"].startswith(kind)]
    if on:
        st.drills.append(entry)
    state.save(st)


def _circuit(inv: Inventory, st: state.State, a: str, b: str) -> Circuit:
    plan = build(inv, light=st.mode == "light")
    # accept site names or host names for either end: a site means its router
    names = {}
    if st.mode == "full":
        for s in inv.sites:
            r = inv.router_of(s)
            if r is not None:
                names[s.name] = r.name
    try:
        return plan.circuit_between(names.get(a, a), names.get(b, b))
    except KeyError:
        known = ", ".join(f"{c.a} {c.b}" for c in plan.circuits)
        raise LabError(f"no circuit between {a} and {b}; circuits: {known}") from None


def link(inv: Inventory, a: str, b: str, up: bool) -> str:
    st = _running(inv)
    c = _circuit(inv, st, a, b)
    net.set_link(st.hosts[c.a].netns, c.a_if, up)
    net.set_link(st.hosts[c.b].netns, c.b_if, up)
    _record(st, "link-down", c.name, not up)
    return c.name


def _host(st: state.State, name: str) -> state.HostState:
    if st.mode != "full":
        raise LabError("host and service drills need a full lab (light mode has no hosts)")
    if name not in st.hosts:
        raise LabError(f"no host {name!r} in lab {st.code!r}; hosts: {', '.join(st.hosts)}")
    return st.hosts[name]


def host_stop(inv: Inventory, name: str) -> None:
    st = _running(inv)
    h = _host(st, name)
    if h.pid is not None and hosts.machine_of(h.pid) == h.machine:
        hosts.stop([h.pid], [h.leader] if h.leader else [])
    cgroups.remove(h.machine)
    h.stopped, h.pid, h.leader = True, None, None
    _record(st, "host-stop", name, True)


def host_start(inv: Inventory, name: str, progress: Reporter | None = None, timeout: float = boot.BOOT_TIMEOUT) -> None:
    """Boot a host stopped by :func:`host_stop` again (same disk) and wait until it is ready."""
    st = _running(inv)
    h = _host(st, name)
    if not h.stopped and hosts.alive(h.pid):
        raise LabError(f"host {name} is already running")
    assert st.image is not None
    labdir = lab_dir(st.code)
    boot.start(st, [build(inv).node(name)], Path(st.image), labdir)
    _record(st, "host-stop", name, False)
    boot.wait_ready(st, [name], labdir, progress or Reporter(), timeout)


def service(inv: Inventory, name: str, unit: str, start: bool) -> None:
    st = _running(inv)
    h = _host(st, name)
    if h.stopped or h.leader is None:
        raise LabError(f"host {name} is not running")
    verb = "start" if start else "stop"
    # a socket-activated service (rsyslog: syslog.socket) comes back on the next request
    # unless its sockets are stopped too; start brings them back
    show = run(hosts.nsenter(h.leader, "systemctl", "show", "-p", "TriggeredBy", "--value", unit), check=False)
    units = [unit, *show.stdout.split()]
    run(hosts.nsenter(h.leader, "systemctl", verb, *units), what=f"systemctl {verb} {' '.join(units)} on {name}")
    _record(st, "service-stop", f"{name}:{unit}", not start)
