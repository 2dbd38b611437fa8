"""Jinja filters shared by the dcops roles: the province's network plan, computed from hostvars.

Every value comes from the variables the ``dcops_province`` inventory plugin renders
(``dcops_site``, ``dcops_tier``, ``dcops_subnet``, ``dcops_circuits``, ``dcops_flows``, ...),
so the firewall and the data network agree on names, addresses and ports without any of
them being typed twice.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from dcops.render.ansible import NET_PLAN_KEYS

IFNAMSIZ = 15
DATACENTRE = "datacentre"


def _hosts(hostvars: Mapping[str, Any], groups: Mapping[str, list[str]]) -> dict[str, dict[str, Any]]:
    """Host name -> its plan variables.

    ``hostvars`` is either Ansible's ``hostvars`` (every access computes all of a host's
    variables: O(hosts) per call) or the precomputed ``dcops_net_hosts`` of the
    ``dcops_province`` inventory plugin (a plain dict of the same keys, read as is).
    """
    if isinstance(hostvars, dict):
        return {str(name): dict(hostvars[name]) for name in groups.get("all", []) if name in hostvars}
    out: dict[str, dict[str, Any]] = {}
    for name in groups.get("all", []):
        hv = hostvars[name]
        out[str(name)] = {k: hv.get(k) for k in NET_PLAN_KEYS}
    return out


def _site_nets(hosts: Mapping[str, Mapping[str, Any]], keep: Any) -> list[str]:
    nets: set[str] = set()
    for h in hosts.values():
        if h.get("dcops_subnet") and keep(h):
            nets.add(str(ipaddress.ip_network(str(h["dcops_subnet"]), strict=False)))
            if h.get("dcops_loopback"):
                nets.add(f"{h['dcops_loopback']}/32")
    return sorted(nets, key=lambda n: ipaddress.ip_network(n))


def selector_cidrs(
    selectors: Iterable[str],
    hostvars: Mapping[str, Any],
    groups: Mapping[str, list[str]],
    services: Mapping[str, Any],
    management: str,
    internet: Iterable[str] = ("0.0.0.0/0",),
) -> list[str]:
    """The source networks a flow's ``from`` selectors stand for (``0.0.0.0/0`` means any).

    The grammar is :mod:`dcops.inventory.selectors` (a selector outside it raises its
    ``SelectorError``, a ``ValueError``); here is what each kind means in hostvars."""
    from dcops.inventory.selectors import KINDS, parse_selector

    hosts = _hosts(hostvars, groups)

    def addresses(names: Iterable[str]) -> set[str]:
        return {f"{hosts[h]['dcops_address']}/32" for h in names if h in hosts and hosts[h].get("dcops_address")}

    def site_nets(var: str, match: Any) -> list[str]:
        """The LANs (and loopbacks) of the sites whose hosts' ``var`` matches."""
        return _site_nets(hosts, lambda h: match(h.get(var)))

    meaning: dict[str, Any] = {  # kind -> (arg -> source networks)
        "all-sites": lambda _: site_nets("dcops_tier", lambda v: v != DATACENTRE),
        "datacentre": lambda _: site_nets("dcops_tier", lambda v: v == DATACENTRE),
        "management": lambda _: [str(management)],
        "internet": lambda _: [str(n) for n in internet],
        "tier": lambda a: site_nets("dcops_tier", lambda v: v == a),
        "district": lambda a: site_nets("dcops_district", lambda v: v == a),
        "area": lambda a: site_nets("dcops_area", lambda v: v == a),
        "site": lambda a: site_nets("dcops_site", lambda v: v == a),
        "host": lambda a: addresses([a]),
        "service": lambda a: addresses((services.get(a) or {}).get("hosts") or []),
    }
    assert set(meaning) == set(KINDS), "every selector kind needs a meaning here"
    nets: set[str] = set()
    for sel in selectors:
        kind, arg = parse_selector(str(sel))
        nets.update(meaning[kind](arg))
    if "0.0.0.0/0" in nets:
        return ["0.0.0.0/0"]
    return sorted(nets, key=lambda n: ipaddress.ip_network(n))


def _dport(port: Mapping[str, Any]) -> str:
    end = port.get("port_end")
    return f"{port['port']}-{end}" if end else str(port["port"])


def firewall_rules(
    host: str,
    hostvars: Mapping[str, Any],
    groups: Mapping[str, list[str]],
    flows: Iterable[Any],
    services: Mapping[str, Any],
    management: str,
    internet: Iterable[str] = ("0.0.0.0/0",),
) -> dict[str, list[dict[str, Any]]]:
    """Input rules for the services ``host`` provides, forward rules (routers) for every flow.

    A rule is ``{comment, proto, dport, saddr: [cidr] (empty: any), daddr: [cidr] (forward)}``.
    """
    hosts = _hosts(hostvars, groups)
    me = hosts[host]
    rules: dict[str, list[dict[str, Any]]] = {"input": [], "forward": []}
    for flow in flows:
        svc_name = str(flow["to"])
        svc = services.get(svc_name)
        if not svc:
            raise ValueError(f"flow to unknown service {svc_name!r}")
        by_name = {str(p["name"]): p for p in svc.get("ports") or []}
        srcs = selector_cidrs(flow.get("from") or [], hostvars, groups, services, management, internet)
        saddr = [] if srcs == ["0.0.0.0/0"] else srcs
        dsts = {f"{hosts[h]['dcops_address']}/32" for h in svc.get("hosts") or [] if h in hosts and hosts[h].get("dcops_address")}
        if svc.get("address"):
            dsts.add(f"{svc['address']}/32")
        daddr = sorted(dsts)
        for pname in flow.get("ports") or []:
            port = by_name.get(str(pname))
            if port is None:
                raise ValueError(f"flow to {svc_name}: unknown port {pname!r}")
            base = {"comment": f"flow {svc_name}/{pname}", "proto": str(port["proto"]), "dport": _dport(port), "saddr": saddr}
            if host in (svc.get("hosts") or []):
                rules["input"].append(dict(base))
            if me.get("dcops_router") and daddr:
                rules["forward"].append(dict(base, daddr=daddr))
    return rules


def wg_ifname(peer_site: str, index: int) -> str:
    name = f"wg-{peer_site}"
    return name if len(name) <= IFNAMSIZ else f"wg-leg{index}"


def _legs(hosts: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Data centre <-> hub legs by circuit name (the sites the inventory declares ``hub: true``,
    whatever their administrative tier)."""
    routers = {h["dcops_site"]: name for name, h in hosts.items() if h.get("dcops_router")}
    tiers = {h["dcops_site"]: h.get("dcops_tier") for h in hosts.values()}
    hubs = {h["dcops_site"] for h in hosts.values() if h.get("dcops_router") and h.get("dcops_hub")}
    legs: dict[str, dict[str, Any]] = {}
    for name in sorted(routers.values()):
        h = hosts[name]
        for c in h.get("dcops_circuits") or []:
            if tiers.get(h["dcops_site"]) == DATACENTRE and str(c["peer"]) in hubs:
                legs[str(c["name"])] = {
                    "dc": name,
                    "hub": routers.get(str(c["peer"])),
                    "dc_site": h["dcops_site"],
                    "hub_site": str(c["peer"]),
                    "dc_underlay": str(c["address"]),
                    "hub_underlay": str(c["peer_address"]),
                    "cost": int(c.get("cost") or 10),
                }
    return legs


def wg_legs(
    host: str, hostvars: Mapping[str, Any], groups: Mapping[str, list[str]], pool: str, port_base: int
) -> list[dict[str, Any]]:
    """The WireGuard legs (data centre ↔ hub circuits) ``host`` terminates.

    Legs are numbered over the whole province by circuit name; leg ``i`` uses UDP port
    ``port_base + i`` at both ends and the ``i``-th /30 of ``pool`` inside the tunnel
    (data-centre end first address, hub end second).
    """
    legs = _legs(_hosts(hostvars, groups))
    net = ipaddress.ip_network(pool)
    out: list[dict[str, Any]] = []
    for i, cname in enumerate(sorted(legs)):
        leg = legs[cname]
        sub = net.network_address + 4 * i
        if sub + 3 > net.broadcast_address:
            raise ValueError(f"WireGuard tunnel pool {pool} too small for {len(legs)} legs")
        dc_ip, dist_ip = sub + 1, sub + 2
        for side, other in (("dc", "hub"), ("hub", "dc")):
            if leg[side] != host:
                continue
            out.append(
                {
                    "circuit": cname,
                    "ifname": wg_ifname(leg[f"{other}_site"], i),
                    "index": i,
                    "port": int(port_base) + i,
                    "peer": leg[other],
                    "peer_site": leg[f"{other}_site"],
                    "underlay": leg[f"{side}_underlay"],
                    "peer_underlay": leg[f"{other}_underlay"],
                    "address": f"{dc_ip if side == 'dc' else dist_ip}/30",
                    "peer_address": str(dist_ip if side == "dc" else dc_ip),
                    "cost": leg["cost"],
                }
            )
    return out


def wg_endpoints(hostvars: Mapping[str, Any], groups: Mapping[str, list[str]]) -> list[str]:
    """Every host that terminates a WireGuard leg (both ends of every data centre <-> hub leg)."""
    legs = _legs(_hosts(hostvars, groups)).values()
    return sorted({str(leg[side]) for leg in legs for side in ("dc", "hub") if leg[side]})


def ifname_of(address: str, facts: Mapping[str, Any]) -> str:
    """The interface holding IPv4 ``address``: from an address -> name mapping (a dcops_probe's
    ``ifaddrs``) or from gathered facts ('' when none)."""
    direct = facts.get(str(address))
    if isinstance(direct, str):
        return direct
    for value in facts.values():
        if not isinstance(value, Mapping) or "device" not in value:
            continue
        addrs = [value.get("ipv4") or {}, *list(value.get("ipv4_secondaries") or [])]
        if any(isinstance(a, Mapping) and str(a.get("address")) == str(address) for a in addrs):
            return str(value["device"])
    return ""


def static_routes(host: str, hostvars: Mapping[str, Any], groups: Mapping[str, list[str]]) -> list[dict[str, str]]:
    """Routes a non-router host needs: every other site's LAN and loopback via its site's router."""
    hosts = _hosts(hostvars, groups)
    me = hosts[host]
    if me.get("dcops_router"):
        return []
    gw = next(
        (h["dcops_address"] for h in hosts.values() if h.get("dcops_router") and h.get("dcops_site") == me.get("dcops_site")),
        None,
    )
    if gw is None:
        return []
    nets = _site_nets(hosts, lambda h: h.get("dcops_site") != me.get("dcops_site"))
    nets += _site_nets(hosts, lambda h: h.get("dcops_site") == me.get("dcops_site") and h.get("dcops_router"))
    own = str(ipaddress.ip_network(str(me["dcops_subnet"]), strict=False))
    return [{"prefix": n, "via": str(gw)} for n in sorted(set(nets) - {own}, key=lambda n: ipaddress.ip_network(n))]


class FilterModule:
    """dcops network-plan filters."""

    def filters(self) -> dict[str, Any]:
        return {
            "dcops_selector_cidrs": selector_cidrs,
            "dcops_firewall_rules": firewall_rules,
            "dcops_wg_legs": wg_legs,
            "dcops_wg_endpoints": wg_endpoints,
            "dcops_ifname_of": ifname_of,
            "dcops_static_routes": static_routes,
        }
