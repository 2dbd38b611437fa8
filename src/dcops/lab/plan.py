"""What a lab is made of, computed from the inventory alone (names, addresses, links).

Nothing here touches the machine, so the plan is cheap to compute and to test. Every name
the lab creates starts with ``dcl``: network namespaces ``dcl-<code>-<name>``, the one link
in the controller's namespace ``dcl-<code>`` (≤ 15 characters), container machine names
``dcl-<code>-<host>``. Teardown finds exactly what the lab made by these prefixes.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, field

from dcops.inventory.model import Inventory, Tier

PREFIX = "dcl"
IFNAMSIZ = 15


@dataclass
class Iface:
    """An interface inside a namespace: ``kind`` veth (to ``peer_ns``/``peer_if``) or a port-less bridge (a stand-alone LAN)."""

    name: str
    kind: str  # "veth" | "bridge"
    addresses: list[str] = field(default_factory=list)  # CIDR notation
    peer_ns: str | None = None
    peer_if: str | None = None
    bridge: str | None = None  # the peer is enslaved to this bridge in the switch namespace


@dataclass
class Node:
    """A namespace of the lab: a full host (container) or, in light mode, a site."""

    name: str  # host name (full) or site name (light)
    site: str
    netns: str
    machine: str
    management: str  # address on the management network
    ifaces: list[Iface] = field(default_factory=list)
    loopbacks: list[str] = field(default_factory=list)  # /32s on lo
    routes: list[tuple[str, str]] = field(default_factory=list)  # controller routes: (dst, via)


@dataclass
class Circuit:
    name: str  # "<a>--<b>"
    a: str  # node names
    b: str
    a_if: str
    b_if: str
    a_addr: str
    b_addr: str


@dataclass
class Plan:
    code: str
    light: bool
    controller: str  # CIDR on the root link
    root_link: str
    switch_ns: str
    bridges: list[str]
    nodes: list[Node]
    circuits: list[Circuit]
    ranges: list[str]

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def circuit_between(self, a: str, b: str) -> Circuit:
        for c in self.circuits:
            if {c.a, c.b} == {a, b} or {c.name} & {f"{a}--{b}", f"{b}--{a}"}:
                return c
        raise KeyError(f"{a}--{b}")


def root_link_name(code: str) -> str:
    name = f"{PREFIX}-{code}"
    if len(name) <= IFNAMSIZ:
        return name
    return f"{PREFIX}-{code[:6]}{hashlib.sha1(code.encode()).hexdigest()[:5]}"


def netns_name(code: str, name: str) -> str:
    return f"{PREFIX}-{code}-{name}"


def _ifname(base: str, used: set[str], fallback: str) -> str:
    name = base if len(base) <= IFNAMSIZ and base not in used else fallback
    used.add(name)
    return name


def build(inv: Inventory, light: bool = False) -> Plan:
    prov = inv.province
    code = prov.code
    mgmt_len = prov.management_network.prefixlen
    switch = netns_name(code, "sw")
    nodes: list[Node] = []
    bridges = ["br-mgmt"]
    port = 0
    used: dict[str, set[str]] = {}

    def mgmt_iface(ns: str, addrs: list[str]) -> Iface:
        nonlocal port
        port += 1
        used.setdefault(ns, set()).add("eth-mgmt")
        return Iface("eth-mgmt", "veth", [f"{a}/{mgmt_len}" for a in addrs], switch, f"m{port}", "br-mgmt")

    router_node: dict[str, str] = {}  # site -> node holding its circuits
    if light:
        sites = [s for s in inv.sites if s.datanet or s.tier is Tier.DATACENTRE]
        for s in sites:
            mg = inv.management_of(s)
            if mg is None:
                continue
            ns = netns_name(code, s.name)
            mgmts = [str(mg)] + [str(h.management) for h in s.hosts if h.management != mg]
            lan = sorted({str(inv.gateway_of(s))} | {str(h.address) for h in s.hosts})
            node = Node(s.name, s.name, ns, ns, str(mg), [mgmt_iface(ns, mgmts)])
            node.ifaces.append(Iface("eth-lan", "bridge", [f"{a}/{s.subnet.prefixlen}" for a in lan]))
            used[ns].add("eth-lan")
            if s.loopback is not None:
                node.loopbacks.append(f"{s.loopback}/32")
                node.routes.append((f"{s.loopback}/32", str(mg)))
            node.routes.append((str(s.subnet), str(mg)))
            nodes.append(node)
            router_node[s.name] = s.name
    else:
        for s in inv.sites:
            router = inv.router_of(s)
            lan_bridge = None
            if len(s.hosts) > 1:
                lan_bridge = f"br-{len(bridges)}"
                bridges.append(lan_bridge)
            for h in s.hosts:
                ns = netns_name(code, h.name)
                node = Node(h.name, s.name, ns, ns, str(h.management), [mgmt_iface(ns, [str(h.management)])])
                lan_addr = f"{h.address}/{s.subnet.prefixlen}"
                if lan_bridge:
                    port += 1
                    node.ifaces.append(Iface("eth-lan", "veth", [lan_addr], switch, f"l{port}", lan_bridge))
                else:
                    node.ifaces.append(Iface("eth-lan", "bridge", [lan_addr]))
                used[ns].add("eth-lan")
                if router is not None and h.name == router.name:
                    router_node[s.name] = h.name
                    if s.loopback is not None:
                        node.loopbacks.append(f"{s.loopback}/32")
                nodes.append(node)
    by_name = {n.name: n for n in nodes}
    circuits: list[Circuit] = []
    for i, c in enumerate(inv.circuits):
        na, nb = router_node.get(c.a), router_node.get(c.b)
        if na is None or nb is None:
            continue
        a_node, b_node = by_name[na], by_name[nb]
        a_if = _ifname(f"to-{c.b}", used.setdefault(a_node.netns, set()), f"circ{i}")
        b_if = _ifname(f"to-{c.a}", used.setdefault(b_node.netns, set()), f"circ{i}")
        plen = c.subnet.prefixlen
        a_node.ifaces.append(Iface(a_if, "veth", [f"{c.a_address}/{plen}"], b_node.netns, b_if))
        b_node.ifaces.append(Iface(b_if, "veth", [f"{c.b_address}/{plen}"]))  # created with its peer
        circuits.append(Circuit(c.name, na, nb, a_if, b_if, str(c.a_address), str(c.b_address)))
    return Plan(
        code=code,
        light=light,
        controller=f"{prov.controller}/{mgmt_len}",
        root_link=root_link_name(code),
        switch_ns=switch,
        bridges=bridges,
        nodes=nodes,
        circuits=circuits,
        ranges=[str(r.cidr) for r in prov.address_ranges],
    )


def uses_only_declared_ranges(plan: Plan) -> list[str]:
    """Addresses of the plan outside the inventory's declared ranges (should be none)."""
    nets = [ipaddress.ip_network(r) for r in plan.ranges]
    bad = []
    addrs = [plan.controller] + [a for n in plan.nodes for i in n.ifaces for a in i.addresses]
    addrs += [lo for n in plan.nodes for lo in n.loopbacks]
    for a in addrs:
        ip = ipaddress.ip_interface(a).ip
        if not any(ip in n for n in nets):
            bad.append(a)
    return bad
