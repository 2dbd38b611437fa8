"""Checks that need the whole province: references, duplicates, addressing, topology."""

from __future__ import annotations

import bisect
import ipaddress
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from typing import TypeVar

from dcops.inventory.errors import Problem
from dcops.inventory.loader import Loaded, Origin
from dcops.inventory.model import PARENT_TIERS, Tier

_T = TypeVar("_T")
IPv4 = ipaddress.IPv4Address
Net4 = ipaddress.IPv4Network

#: ``from`` selectors of a flow that take no argument.
PLAIN_SELECTORS = {"all-sites", "management", "internet", "datacentre"}
#: ``from`` selectors of the form ``kind:name``.
REF_SELECTORS = {"tier", "district", "site", "host", "service"}


def _dupes(items: Iterable[tuple[str, Origin]], what: str, failed: set[str] | None = None) -> Iterable[Problem]:
    first: dict[str, Origin] = {}
    for name, origin in items:
        if name in first:
            prev = first[name]
            yield origin.problem(f"duplicate {what} {name!r} (first defined at {prev.file}:{prev.line})")
        else:
            first[name] = origin


def cross_check(loaded: Loaded, prov: Origin, failed: dict[str, set[str]]) -> list[Problem]:
    inv = loaded.inventory
    o = loaded.origin
    out: list[Problem] = []
    bad_sites = failed.get("sites", set())
    bad_hosts = failed.get("hosts", set())
    bad_services = failed.get("services", set())
    bad_districts = failed.get("districts", set())

    # --- names --------------------------------------------------------------------------
    out += _dupes(((d.name, o("districts", i).at("name")) for i, d in enumerate(inv.districts)), "district")
    out += _dupes(((s.name, o("sites", i).at("name")) for i, s in enumerate(inv.sites)), "site")
    out += _dupes(((s.name, o("services", i).at("name")) for i, s in enumerate(inv.services)), "service")
    out += _dupes(((a.name, o("agencies", i).at("name")) for i, a in enumerate(inv.agencies)), "agency")
    out += _dupes(((a.domain, o("agencies", i).at("domain")) for i, a in enumerate(inv.agencies)), "mail domain")
    out += _dupes(
        ((h.name, o("sites", i).at("hosts", j, "name")) for i, s in enumerate(inv.sites) for j, h in enumerate(s.hosts)),
        "host",
    )
    site_names = {s.name for s in inv.sites}
    out += [
        o("sites", i).problem(f"host name {h.name!r} is also a site name; Ansible needs them apart", "hosts", j, "name")
        for i, s in enumerate(inv.sites)
        for j, h in enumerate(s.hosts)
        if h.name in site_names and h.name != s.name
    ]
    # Accounts of an agency: inline ones first, then the ``accounts`` section (file order).
    section_accounts: dict[str, list[tuple[str, Origin]]] = defaultdict(list)
    agency_index = _first((a.name, i) for i, a in enumerate(inv.agencies))
    bad_agencies = failed.get("agencies", set())
    for k, acc in enumerate(inv.accounts):
        if acc.agency in agency_index:
            section_accounts[acc.agency].append((acc.user, o("accounts", k).at("user")))
        elif acc.agency not in bad_agencies:
            out.append(o("accounts", k).problem(f"unknown agency {acc.agency!r} (not in any 'agencies' section)", "agency"))
    for i, a in enumerate(inv.agencies):
        inline = [(acc.user, o("agencies", i).at("accounts", j, "user")) for j, acc in enumerate(a.accounts)]
        if agency_index.get(a.name) != i:
            out += _dupes(inline, f"account in {a.domain}")
            continue
        out += _dupes([*inline, *section_accounts[a.name]], f"account in {a.domain}")

    districts = {d.name for d in inv.districts}
    # By name; a duplicate (reported above) does not shadow the first definition.
    sites = _first((s.name, s) for s in inv.sites)
    hosts = _first((h.name, (s, h)) for s in inv.sites for h in s.hosts)
    services = _first((s.name, s) for s in inv.services)
    ranges = inv.province.address_ranges

    def in_ranges(addr: IPv4 | Net4) -> bool:
        if isinstance(addr, Net4):
            return any(addr.subnet_of(r.cidr) for r in ranges)
        return any(addr in r.cidr for r in ranges)

    range_names = ", ".join(f"{r.name} {r.cidr}" for r in ranges)

    # --- the province's own ranges --------------------------------------------------------
    for (net_a, _), (net_b, k) in _overlaps([(r.cidr, k) for k, r in enumerate(ranges)]):
        out.append(prov.problem(f"address range {net_b} overlaps {net_a}", "address_ranges", k, "cidr"))
    mgmt = inv.province.management_network
    if not in_ranges(mgmt):
        out.append(prov.problem(f"{mgmt} is outside the declared address ranges ({range_names})", "management_network"))
    if inv.province.controller not in mgmt:
        out.append(prov.problem(f"{inv.province.controller} is outside the management network {mgmt}", "controller"))

    # --- sites: hierarchy -----------------------------------------------------------------
    dcs = [s for s in inv.sites if s.tier is Tier.DATACENTRE]
    if len(dcs) != 1 and not bad_sites:
        out.append(prov.problem(f"a province has exactly one site of tier 'datacentre'; found {len(dcs)}"))
    for i, s in enumerate(inv.sites):
        so = o("sites", i)
        allowed = PARENT_TIERS[s.tier]
        for k, u in enumerate(s.uses):
            if u not in services and u not in bad_services:
                out.append(so.problem(f"uses unknown service {u!r}", "uses", k))
        if s.district is not None and s.district not in districts and s.district not in bad_districts:
            out.append(so.problem(f"unknown district {s.district!r}", "district"))
        if s.tier in (Tier.DISTRICT, Tier.COMMUNE) and s.district is None:
            out.append(so.problem(f"a {s.tier.value} site needs a 'district'", "tier"))
        if not allowed:
            if s.parent is not None:
                out.append(so.problem(f"a {s.tier.value} site has no parent", "parent"))
            continue
        if s.parent is None:
            out.append(so.problem(f"a {s.tier.value} site needs a parent of tier {' or '.join(allowed)}", "tier"))
            continue
        parent = sites.get(s.parent)
        if parent is None:
            if s.parent not in bad_sites:
                out.append(so.problem(f"parent site {s.parent!r} does not exist", "parent"))
            continue
        if parent.tier not in allowed:
            out.append(
                so.problem(
                    f"a {s.tier.value} site cannot hang from {parent.name!r} of tier {parent.tier.value}"
                    f" (allowed: {', '.join(allowed)})",
                    "parent",
                )
            )
        elif s.tier is Tier.COMMUNE and parent.district != s.district:
            out.append(
                so.problem(
                    f"commune in district {s.district!r} hangs from {parent.name!r} of district {parent.district!r}",
                    "parent",
                )
            )

    # --- addresses ------------------------------------------------------------------------
    addrs: list[tuple[IPv4, Origin]] = []
    nets: list[tuple[Net4, Origin]] = []
    for i, s in enumerate(inv.sites):
        so = o("sites", i)
        nets.append((s.subnet, so.at("subnet")))
        if not in_ranges(s.subnet):
            out.append(so.problem(f"subnet {s.subnet} is outside the declared address ranges ({range_names})", "subnet"))
        router = inv.router_of(s)
        if s.hosts and router is None:
            out.append(so.problem("a site with several hosts needs one with role 'router'", "hosts"))
        if s.gateway is None and router is None:
            out.append(so.problem("a site needs a 'gateway' address or a router host", "gateway"))
        if s.gateway is not None and router is not None:
            out.append(so.problem(f"'gateway' is the router host {router.name!r}'s address; give it once", "gateway"))
        if s.management is not None and router is not None:
            out.append(so.problem(f"'management' is the router host {router.name!r}'s; give it once", "management"))
        on_lan: list[tuple[IPv4, tuple[str | int, ...]]] = []
        if s.gateway is not None:
            on_lan.append((s.gateway, ("gateway",)))
        if s.videoconf is not None:
            on_lan.append((s.videoconf.endpoint, ("videoconf", "endpoint")))
        on_lan += [(h.address, ("hosts", j, "address")) for j, h in enumerate(s.hosts)]
        for addr, sub in on_lan:
            addrs.append((addr, so.at(*sub)))
            if addr not in s.subnet:
                out.append(so.problem(f"{addr} is outside the site's subnet {s.subnet}", *sub))
            elif addr in (s.subnet.network_address, s.subnet.broadcast_address) and s.subnet.prefixlen < 31:
                out.append(so.problem(f"{addr} is the network or broadcast address of {s.subnet}", *sub))
        in_mgmt: list[tuple[IPv4, tuple[str | int, ...]]] = []
        if s.management is not None:
            in_mgmt.append((s.management, ("management",)))
        in_mgmt += [(h.management, ("hosts", j, "management")) for j, h in enumerate(s.hosts)]
        for addr, sub in in_mgmt:
            addrs.append((addr, so.at(*sub)))
            if addr not in mgmt:
                out.append(so.problem(f"{addr} is outside the management network {mgmt}", *sub))
            elif addr == inv.province.controller:
                out.append(so.problem(f"{addr} is the controller's address", *sub))
        if s.loopback is not None:
            addrs.append((s.loopback, so.at("loopback")))
            if not in_ranges(s.loopback):
                out.append(so.problem(f"loopback {s.loopback} is outside the declared address ranges", "loopback"))
        if s.datanet and s.tier is not Tier.DATACENTRE and s.loopback is None:
            out.append(so.problem("a site on the data network needs a 'loopback' (its router ID)", "loopback"))
    addrs.append((inv.province.controller, prov.at("controller")))

    # --- circuits -------------------------------------------------------------------------
    pairs: dict[frozenset[str], Origin] = {}
    adj: dict[str, set[str]] = defaultdict(set)
    for i, c in enumerate(inv.circuits):
        co = o("circuits", i)
        nets.append((c.subnet, co.at("subnet")))
        if not in_ranges(c.subnet):
            out.append(co.problem(f"subnet {c.subnet} is outside the declared address ranges ({range_names})", "subnet"))
        for end in ("a", "b"):
            name = getattr(c, end)
            if name not in sites:
                if name not in bad_sites:
                    out.append(co.problem(f"circuit to unknown site {name!r}", end))
            elif not sites[name].datanet:
                out.append(co.problem(f"site {name!r} is not on the data network (datanet: false)", end))
            elif sites[name].hosts and inv.router_of(sites[name]) is None:
                out.append(co.problem(f"site {name!r} has no router host to terminate the circuit", end))
        if c.a == c.b:
            out.append(co.problem(f"a circuit joins two different sites; both ends are {c.a!r}", "b"))
        key = frozenset((c.a, c.b))
        if key in pairs and c.a != c.b:
            out.append(co.problem(f"a second circuit between {c.a!r} and {c.b!r} (first at {pairs[key].file}:{pairs[key].line})"))
        pairs.setdefault(key, co)
        adj[c.a].add(c.b)
        adj[c.b].add(c.a)
        for end in ("a_address", "b_address"):
            addr = getattr(c, end)
            addrs.append((addr, co.at(end)))
            if addr not in c.subnet:
                out.append(co.problem(f"{addr} is outside the circuit's subnet {c.subnet}", end))
            elif c.subnet.prefixlen < 31 and addr in (c.subnet.network_address, c.subnet.broadcast_address):
                out.append(co.problem(f"{addr} is the network or broadcast address of {c.subnet}", end))

    # Every site on the data network must reach the data centre over circuits.
    # (skipped when a site or a circuit failed its own checks: the path may run through it)
    if len(dcs) == 1 and not bad_sites and not failed.get("circuits"):
        seen = {dcs[0].name}
        todo = deque([dcs[0].name])
        while todo:
            for nxt in adj[todo.popleft()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        for i, s in enumerate(inv.sites):
            if s.datanet and s.name not in seen:
                out.append(
                    o("sites", i).problem(
                        f"site {s.name!r} is on the data network but no circuit path reaches the data centre", "name"
                    )
                )

    # --- duplicates and overlaps ----------------------------------------------------------
    first: dict[IPv4, Origin] = {}
    for addr, origin in addrs:
        if addr in first:
            prev = first[addr]
            out.append(origin.problem(f"address {addr} is already used at {prev.file}:{prev.line} ({_p(prev)})"))
        else:
            first[addr] = origin
    nets.append((mgmt, prov.at("management_network")))
    for (_, first_o), (net, second_o) in _overlaps(nets):
        out.append(second_o.problem(f"subnet {net} overlaps {first_o.file}:{first_o.line} ({_p(first_o)})"))
    # An address must not sit inside another item's subnet (a loopback inside a site LAN, say).
    spans = sorted(
        ((int(n.network_address), int(n.broadcast_address), n, no) for n, no in nets if n != mgmt),
        key=lambda x: x[0],
    )
    starts = [x[0] for x in spans]
    for addr, origin in addrs:
        at = bisect.bisect_right(starts, int(addr)) - 1
        if at >= 0 and int(addr) <= spans[at][1] and not _owns(origin, spans[at][3]):
            net, norigin = spans[at][2], spans[at][3]
            out.append(origin.problem(f"address {addr} lies inside {net} of {norigin.file}:{norigin.line} ({_p(norigin)})"))

    # --- services and flows ---------------------------------------------------------------
    for i, svc in enumerate(inv.services):
        vo = o("services", i)
        for j, h in enumerate(svc.hosts):
            if h not in hosts and h not in bad_hosts:
                out.append(vo.problem(f"unknown host {h!r}", "hosts", j))
        if svc.external and svc.hosts:
            out.append(vo.problem("an external service is run by someone else: give 'url', not 'hosts'", "hosts"))
        if svc.external and not svc.url:
            out.append(vo.problem("an external service needs a 'url' to watch", "external"))
        if not svc.external and not svc.hosts and svc.address is None:
            out.append(vo.problem("an internal service needs 'hosts' (or an 'address')", "hosts"))
        out += _dupes(((p.name, vo.at("ports", j, "name")) for j, p in enumerate(svc.ports)), f"port of {svc.name}")
    for i, f in enumerate(inv.flows):
        fo = o("flows", i)
        target = services.get(f.to)
        if target is None:
            if f.to not in bad_services:
                out.append(fo.problem(f"flow to unknown service {f.to!r}", "to"))
        else:
            names = {p.name for p in target.ports}
            for j, port in enumerate(f.ports):
                if port not in names:
                    known = ", ".join(sorted(names)) or "none"
                    out.append(fo.problem(f"service {f.to!r} has no port {port!r} (it has: {known})", "ports", j))
        for j, sel in enumerate(f.from_):
            reason = _check_selector(sel, districts, sites, hosts, services, failed)
            if reason:
                out.append(fo.problem(reason, "from", j))

    # --- agencies -------------------------------------------------------------------------
    for i, a in enumerate(inv.agencies):
        ao = o("agencies", i)
        if a.site is not None and a.site not in sites and a.site not in bad_sites:
            out.append(ao.problem(f"unknown site {a.site!r}", "site"))
        kept = [acc for acc in inv.accounts if acc.agency == a.name] if agency_index.get(a.name) == i else []
        total = len(a.accounts) + len(kept)
        if total > a.mailboxes:
            if kept:
                out.append(ao.problem(
                    f"{total} named accounts ({len(a.accounts)} inline, {len(kept)} in the 'accounts' section)"
                    f" exceed the budget of {a.mailboxes} mailboxes", "mailboxes"))
            else:
                out.append(ao.problem(f"{total} named accounts exceed the budget of {a.mailboxes} mailboxes", "accounts"))
        quotas = [q if q is not None else a.quota_mb for q in [*(x.quota_mb for x in a.accounts), *(x.quota_mb for x in kept)]]
        storage = a.mailboxes * a.quota_mb
        if total <= a.mailboxes and sum(quotas) > storage:  # (over the count is reported once, above)
            out.append(ao.problem(
                f"the named accounts' quotas total {sum(quotas)} MB, over the agency's storage budget of"
                f" {a.mailboxes} mailboxes x {a.quota_mb} MB = {storage} MB", "quota_mb"))
    return out


def _first(items: Iterable[tuple[str, _T]]) -> dict[str, _T]:
    """A name table in which the first definition of a name wins."""
    out: dict[str, _T] = {}
    for name, item in items:
        out.setdefault(name, item)
    return out


def _p(o: Origin) -> str:
    from dcops.inventory.errors import format_path

    return format_path(o.path)


def _owns(addr_origin: Origin, net_origin: Origin) -> bool:
    """An address may sit in the subnet of the item that declares both (site LAN, circuit)."""
    return addr_origin.file == net_origin.file and addr_origin.path[:2] == net_origin.path[:2]


def _overlaps(nets: list[tuple[Net4, _T]]) -> Iterable[tuple[tuple[Net4, _T], tuple[Net4, _T]]]:
    """Pairs of overlapping networks, found in one sorted pass."""
    ordered = sorted(nets, key=lambda x: (int(x[0].network_address), -int(x[0].broadcast_address)))
    cover: tuple[Net4, _T] | None = None
    for item in ordered:
        if cover is not None and int(item[0].network_address) <= int(cover[0].broadcast_address):
            yield cover, item
            if int(item[0].broadcast_address) > int(cover[0].broadcast_address):
                cover = item
        else:
            cover = item


def _check_selector(
    sel: str,
    districts: set[str],
    sites: Mapping[str, object],
    hosts: Mapping[str, object],
    services: Mapping[str, object],
    failed: dict[str, set[str]],
) -> str | None:
    if sel in PLAIN_SELECTORS:
        return None
    kind, _, arg = sel.partition(":")
    if kind not in REF_SELECTORS or not arg:
        return (
            f"unknown source {sel!r}; use one of {', '.join(sorted(PLAIN_SELECTORS))}"
            f" or {', '.join(k + ':NAME' for k in sorted(REF_SELECTORS))}"
        )
    table: dict[str, set[str]] = {
        "tier": {t.value for t in Tier},
        "district": districts,
        "site": set(sites),
        "host": set(hosts),
        "service": set(services),
    }
    if arg in table[kind]:
        return None
    bad = {"district": "districts", "site": "sites", "host": "hosts", "service": "services"}.get(kind)
    if bad and arg in failed.get(bad, set()):
        return None
    return f"source {sel!r}: unknown {kind} {arg!r}"

