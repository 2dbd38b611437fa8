"""The lab's networks: namespaces, the management bridge, site LANs and circuits.

All bridges live in one "switch" namespace (``dcl-<code>-sw``); the controller joins the
management bridge with a single veth ``dcl-<code>`` holding the controller's address. So
the controller's own namespace gains one link and a few routes, and deleting the lab's
namespaces removes every other link the lab made.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable

from dcops.lab.errors import LabError
from dcops.lab.plan import PREFIX, Plan
from dcops.lab.system import run


def _batch(lines: Iterable[str], what: str, netns: str | None = None, force: bool = False) -> None:
    text = "\n".join(lines) + "\n"
    if not text.strip():
        return
    args = ["ip"] + (["-n", netns] if netns else []) + (["-force"] if force else []) + ["-batch", "-"]
    run(args, what=what, input=text, check=not force)


def check_ranges_free(plan: Plan) -> None:
    """Refuse when a declared range is already routed here (the default route aside)."""
    nets = [ipaddress.ip_network(r) for r in plan.ranges]
    out = run(["ip", "-j", "-4", "route", "show", "table", "all"], what="list routes").stdout
    clashes = []
    for r in json.loads(out or "[]"):
        dst = r.get("dst", "")
        if dst in ("default", "") or r.get("type") in ("broadcast",):
            continue
        try:
            net = ipaddress.ip_network(dst, strict=False)
        except ValueError:
            continue
        if net.prefixlen == 0:
            continue
        for n in nets:
            if net.overlaps(n):
                dev = r.get("dev", "?")
                clashes.append(f"{n} overlaps the route {dst} dev {dev} (table {r.get('table', 'main')})")
    if clashes:
        ours = any(f"dev {plan.root_link} " in c for c in clashes)
        hint = (
            f"a lab {plan.code!r} seems to be up already or half torn down: run `dcops lab down`"
            if ours
            else "the lab refuses to start where its addresses are already in use; free the range "
            "or change the lab inventory's address_ranges"
        )
        raise LabError("address range(s) already routed on this machine: " + "; ".join(clashes) + f" — {hint}")


def create_namespaces(names: list[str]) -> None:
    _batch([f"netns add {n}" for n in names], "create network namespaces")


def build(plan: Plan) -> None:
    """Make every link, bridge and address of the plan (namespaces must exist)."""
    sw = plan.switch_ns
    sw_lines = ["link set lo up"]
    for br in plan.bridges:
        sw_lines += [f"link add {br} type bridge", f"link set {br} up"]
    _batch(sw_lines, "create the lab bridges", netns=sw)
    root_lines = [f"link add dev {plan.root_link} type veth peer name up netns {sw}"]
    sw_ports: list[str] = ["link set dev up master br-mgmt up"]
    node_lines: dict[str, list[str]] = {n.netns: ["link set lo up"] for n in plan.nodes}
    for n in plan.nodes:
        lines = node_lines[n.netns]
        for lo in n.loopbacks:
            lines.append(f"addr add {lo} dev lo")
        for i in n.ifaces:
            if i.kind == "bridge":
                lines.append(f"link add {i.name} type bridge")
            elif i.peer_ns is not None and i.peer_if is not None:
                root_lines.append(f"link add dev {i.name} netns {n.netns} type veth peer name {i.peer_if} netns {i.peer_ns}")
                if i.bridge:
                    sw_ports.append(f"link set {i.peer_if} master {i.bridge} up")
            for a in i.addresses:
                lines.append(f"addr add {a} dev {i.name}")
    _batch(root_lines, "create the lab links")
    _batch(sw_ports, "attach the lab links to their bridges", netns=sw)
    # the far end of a circuit is brought up by its own namespace's batch
    for n in plan.nodes:
        for i in n.ifaces:
            node_lines[n.netns].append(f"link set {i.name} up")
    for ns, lines in node_lines.items():
        _batch(lines, f"configure namespace {ns}", netns=ns)
    ctl = [f"addr add {plan.controller} dev {plan.root_link}", f"link set {plan.root_link} up"]
    for n in plan.nodes:
        ctl += [f"route replace {dst} via {via} dev {plan.root_link}" for dst, via in n.routes]
    _batch(ctl, "give the controller its lab address")


def all_namespaces() -> list[str]:
    out = run(["ip", "-j", "netns", "list"], what="list network namespaces", check=False).stdout
    return [d["name"] for d in json.loads(out)] if out.strip() else []


def lab_namespaces(code: str) -> list[str]:
    return [n for n in all_namespaces() if n.startswith(f"{PREFIX}-{code}-")]


def link_exists(name: str, netns: str | None = None) -> bool:
    args = ["ip"] + (["-n", netns] if netns else []) + ["link", "show", "dev", name]
    return run(args, check=False).returncode == 0


def teardown(code: str, root_link: str, recorded: list[str]) -> None:
    names = sorted(set(recorded) | set(lab_namespaces(code)))
    if link_exists(root_link):
        run(["ip", "link", "del", "dev", root_link], what=f"delete link {root_link}", check=False)
    _batch([f"netns del {n}" for n in names], "delete the lab namespaces", force=True)
    left = lab_namespaces(code)
    if left:
        raise LabError(f"could not delete namespace(s) {', '.join(left)}: see `ip netns list`")


def set_link(netns: str, ifname: str, up: bool) -> None:
    run(["ip", "-n", netns, "link", "set", ifname, "up" if up else "down"], what=f"set {ifname} in {netns}")
