"""Checks that need the whole province: references, duplicates, addressing, topology.

One function per concern (names, the province's ranges, the hierarchy, site addressing,
circuits and the path to the data centre, duplicate addresses and overlapping subnets,
services and flows, mail agencies), each reading a :class:`Context` of name tables built
once; :func:`cross_check` runs them all. An item that failed its own (model) checks is in
``failed``: references to it are not reported a second time.
"""

from __future__ import annotations

import bisect
import ipaddress
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from dcops.inventory.errors import Problem, format_path, short
from dcops.inventory.model import PARENT_TIERS, THREE_LEVEL, Host, Inventory, MailAccount, Service, Site, Tier
from dcops.inventory.origin import Loaded, Origin
from dcops.inventory.selectors import SelectorError, parse_selector
from dcops.inventory.topology import Topology

_T = TypeVar("_T")
IPv4 = ipaddress.IPv4Address
Net4 = ipaddress.IPv4Network
#: A path below an item's origin (``("hosts", 0, "address")``).
Sub = tuple[str | int, ...]


@dataclass
class Context:
    """What every check reads: the inventory, where its items came from, what failed, name tables.

    Name tables keep the first definition of a name (a duplicate is reported, not used)."""

    loaded: Loaded
    prov: Origin
    failed: dict[str, set[str]]
    sites: dict[str, Site] = field(init=False)
    hosts: dict[str, tuple[Site, Host]] = field(init=False)
    services: dict[str, Service] = field(init=False)
    districts: set[str] = field(init=False)
    areas: set[str] = field(init=False)
    agency_index: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        inv = self.inv
        self.sites = _first((s.name, s) for s in inv.sites)
        self.hosts = _first((h.name, (s, h)) for s in inv.sites for h in s.hosts)
        self.services = _first((s.name, s) for s in inv.services)
        self.districts = {d.name for d in inv.districts}
        self.areas = {a.name for a in inv.areas}
        self.agency_index = _first((a.name, i) for i, a in enumerate(inv.agencies))

    @property
    def inv(self) -> Inventory:
        return self.loaded.inventory

    def o(self, section: str, index: int) -> Origin:
        return self.loaded.origin(section, index)

    def bad(self, section: str) -> set[str]:
        """Names of the items of ``section`` that failed their own checks."""
        return self.failed.get(section, set())

    @property
    def mgmt(self) -> Net4:
        return self.inv.province.management_network

    @property
    def datacentres(self) -> list[Site]:
        return [s for s in self.inv.sites if s.tier is Tier.DATACENTRE]

    def in_ranges(self, addr: IPv4 | Net4) -> bool:
        ranges = self.inv.province.address_ranges
        if isinstance(addr, Net4):
            return any(addr.subnet_of(r.cidr) for r in ranges)
        return any(addr in r.cidr for r in ranges)

    @property
    def range_names(self) -> str:
        return ", ".join(f"{r.name} {r.cidr}" for r in self.inv.province.address_ranges)


def _dupes(items: Iterable[tuple[str, Origin]], what: str) -> Iterator[Problem]:
    first: dict[str, Origin] = {}
    for name, origin in items:
        if name in first:
            prev = first[name]
            yield origin.problem(f"duplicate {what} {name!r} (first defined at {prev.file}:{prev.line})")
        else:
            first[name] = origin


# --- names --------------------------------------------------------------------------------
def check_names(c: Context) -> Iterator[Problem]:
    """Duplicate names (districts, sites, hosts, services, agencies, mail domains, accounts)."""
    inv, o = c.inv, c.o
    yield from _dupes(((d.name, o("districts", i).at("name")) for i, d in enumerate(inv.districts)), "district")
    yield from _dupes(((a.name, o("areas", i).at("name")) for i, a in enumerate(inv.areas)), "area")
    yield from _dupes(((s.name, o("sites", i).at("name")) for i, s in enumerate(inv.sites)), "site")
    yield from _dupes(((s.name, o("services", i).at("name")) for i, s in enumerate(inv.services)), "service")
    yield from _dupes(((a.name, o("agencies", i).at("name")) for i, a in enumerate(inv.agencies)), "agency")
    # Domain names do not depend on case (the model refuses upper case; compare folded all the same).
    yield from _dupes(((a.domain.lower(), o("agencies", i).at("domain")) for i, a in enumerate(inv.agencies)), "mail domain")
    yield from _dupes(
        ((h.name, o("sites", i).at("hosts", j, "name")) for i, s in enumerate(inv.sites) for j, h in enumerate(s.hosts)),
        "host",
    )
    for i, s in enumerate(inv.sites):
        for j, h in enumerate(s.hosts):
            if h.name in c.sites and h.name != s.name:
                reason = f"host name {h.name!r} is also a site name; Ansible needs them apart"
                yield o("sites", i).problem(reason, "hosts", j, "name")
    # Accounts of an agency: inline ones first, then the ``accounts`` section (file order).
    section_accounts: dict[str, list[tuple[str, Origin]]] = defaultdict(list)
    for k, acc in enumerate(inv.accounts):
        if acc.agency in c.agency_index:
            section_accounts[acc.agency].append((acc.user, o("accounts", k).at("user")))
        elif acc.agency not in c.bad("agencies"):
            yield o("accounts", k).problem(f"unknown agency {acc.agency!r} (not in any 'agencies' section)", "agency")
    for i, a in enumerate(inv.agencies):
        inline = [(acc.user, o("agencies", i).at("accounts", j, "user")) for j, acc in enumerate(a.accounts)]
        kept = section_accounts[a.name] if c.agency_index.get(a.name) == i else []
        yield from _dupes([*inline, *kept], f"account in {a.domain}")


# --- addressing ---------------------------------------------------------------------------
def check_ranges(c: Context) -> Iterator[Problem]:
    """The province's own ranges: no overlap; the management network and controller inside them."""
    ranges = c.inv.province.address_ranges
    for (net_a, _), (net_b, k) in _overlaps([(r.cidr, k) for k, r in enumerate(ranges)]):
        yield c.prov.problem(f"address range {net_b} overlaps {net_a}", "address_ranges", k, "cidr")
    if not c.in_ranges(c.mgmt):
        yield c.prov.problem(f"{c.mgmt} is outside the declared address ranges ({c.range_names})", "management_network")
    if c.inv.province.controller not in c.mgmt:
        yield c.prov.problem(f"{c.inv.province.controller} is outside the management network {c.mgmt}", "controller")


def _on_lan(s: Site) -> list[tuple[IPv4, Sub]]:
    """A site's addresses on its own LAN: gateway, video-conference endpoint, hosts."""
    out: list[tuple[IPv4, Sub]] = []
    if s.gateway is not None:
        out.append((s.gateway, ("gateway",)))
    if s.videoconf is not None:
        out.append((s.videoconf.endpoint, ("videoconf", "endpoint")))
    out += [(h.address, ("hosts", j, "address")) for j, h in enumerate(s.hosts)]
    return out


def _in_mgmt(s: Site) -> list[tuple[IPv4, Sub]]:
    """A site's addresses on the management network: its router's and its hosts'."""
    out: list[tuple[IPv4, Sub]] = []
    if s.management is not None:
        out.append((s.management, ("management",)))
    out += [(h.management, ("hosts", j, "management")) for j, h in enumerate(s.hosts)]
    return out


def check_site_addresses(c: Context) -> Iterator[Problem]:
    """Each site: subnet in the ranges, gateway or router, every address where it belongs."""
    inv = c.inv
    for i, s in enumerate(inv.sites):
        so = c.o("sites", i)
        if not c.in_ranges(s.subnet):
            yield so.problem(f"subnet {s.subnet} is outside the declared address ranges ({c.range_names})", "subnet")
        router = inv.router_of(s)
        if s.hosts and router is None:
            yield so.problem("a site with several hosts needs one with role 'router'", "hosts")
        if s.gateway is None and router is None:
            yield so.problem("a site needs a 'gateway' address or a router host", "gateway")
        if s.gateway is not None and router is not None:
            yield so.problem(f"'gateway' is the router host {router.name!r}'s address; give it once", "gateway")
        if s.management is not None and router is not None:
            yield so.problem(f"'management' is the router host {router.name!r}'s; give it once", "management")
        for addr, sub in _on_lan(s):
            if addr not in s.subnet:
                yield so.problem(f"{addr} is outside the site's subnet {s.subnet}", *sub)
            elif addr in (s.subnet.network_address, s.subnet.broadcast_address) and s.subnet.prefixlen < 31:
                yield so.problem(f"{addr} is the network or broadcast address of {s.subnet}", *sub)
        for addr, sub in _in_mgmt(s):
            if addr not in c.mgmt:
                yield so.problem(f"{addr} is outside the management network {c.mgmt}", *sub)
            elif addr == inv.province.controller:
                yield so.problem(f"{addr} is the controller's address", *sub)
        if s.loopback is not None and not c.in_ranges(s.loopback):
            yield so.problem(f"loopback {s.loopback} is outside the declared address ranges", "loopback")
        if s.datanet and s.tier is not Tier.DATACENTRE and s.loopback is None:
            yield so.problem("a site on the data network needs a 'loopback' (its router ID)", "loopback")


# --- the hierarchy ------------------------------------------------------------------------
def check_hierarchy(c: Context) -> Iterator[Problem]:
    """One data centre; the administrative structure the province declares: districts only in a
    three-level province, each site's district and area exist, each site's parent exists and has
    an allowed tier."""
    dcs = c.datacentres
    prov = c.inv.province
    levels = tuple(prov.levels)
    if len(dcs) != 1 and not c.bad("sites"):
        yield c.prov.problem(f"a province has exactly one site of tier 'datacentre'; found {len(dcs)}")
    if not prov.has_districts:
        for i, _d in enumerate(c.inv.districts):
            yield c.o("districts", i).problem(
                f"a district in a province without a district level (levels: {list(levels)})", "name"
            )
    tiers = PARENT_TIERS[levels] if levels in PARENT_TIERS else PARENT_TIERS[THREE_LEVEL]
    for i, s in enumerate(c.inv.sites):
        so = c.o("sites", i)
        if s.tier not in tiers:
            yield so.problem(
                f"a {s.tier.value} site in a province without a district level (levels: {list(levels)});"
                " a former district office that still aggregates circuits is a site with hub: true"
                " (tier hub if it is no administrative unit any more)",
                "tier",
            )
            continue
        allowed = tiers[s.tier]
        if s.district is not None:
            if not prov.has_districts:
                yield so.problem(
                    f"district {s.district!r} in a province without a district level (levels: {list(levels)});"
                    " group communes with 'area' instead",
                    "district",
                )
            elif s.district not in c.districts and s.district not in c.bad("districts"):
                yield so.problem(f"unknown district {s.district!r}", "district")
        if prov.has_districts and s.tier in (Tier.DISTRICT, Tier.COMMUNE) and s.district is None:
            yield so.problem(f"a {s.tier.value} site needs a 'district'", "tier")
        if s.area is not None and s.area not in c.areas and s.area not in c.bad("areas"):
            known = ", ".join(sorted(c.areas)) or "none declared"
            yield so.problem(f"unknown area {s.area!r} (areas: {known})", "area")
        if not allowed:
            if s.parent is not None:
                why = " (its parent is the province itself)" if s.tier is Tier.COMMUNE else ""
                yield so.problem(f"a {s.tier.value} site has no parent{why}", "parent")
            continue
        if s.parent is None:
            yield so.problem(f"a {s.tier.value} site needs a parent of tier {' or '.join(allowed)}", "tier")
            continue
        parent = c.sites.get(s.parent)
        if parent is None:
            if s.parent not in c.bad("sites"):
                yield so.problem(f"parent site {s.parent!r} does not exist", "parent")
            continue
        if parent.tier not in allowed:
            yield so.problem(
                f"a {s.tier.value} site cannot hang from {parent.name!r} of tier {parent.tier.value}"
                f" (allowed: {', '.join(allowed)})",
                "parent",
            )
        elif s.tier is Tier.COMMUNE and parent.district != s.district:
            yield so.problem(
                f"commune in district {s.district!r} hangs from {parent.name!r} of district {parent.district!r}", "parent"
            )


# --- circuits -----------------------------------------------------------------------------
def check_circuits(c: Context) -> Iterator[Problem]:
    """Each circuit joins two data-network sites once, with its addresses in its subnet; every
    site on the data network reaches the data centre over circuits."""
    pairs: dict[frozenset[str], Origin] = {}
    adj: dict[str, set[str]] = defaultdict(set)
    for i, ci in enumerate(c.inv.circuits):
        co = c.o("circuits", i)
        if not c.in_ranges(ci.subnet):
            yield co.problem(f"subnet {ci.subnet} is outside the declared address ranges ({c.range_names})", "subnet")
        for end in ("a", "b"):
            name = getattr(ci, end)
            site = c.sites.get(name)
            if site is None:
                if name not in c.bad("sites"):
                    yield co.problem(f"circuit to unknown site {name!r}", end)
            elif not site.datanet:
                yield co.problem(f"site {name!r} is not on the data network (datanet: false)", end)
            elif site.hosts and c.inv.router_of(site) is None:
                yield co.problem(f"site {name!r} has no router host to terminate the circuit", end)
        if ci.a == ci.b:
            yield co.problem(f"a circuit joins two different sites; both ends are {ci.a!r}", "b")
        key = frozenset((ci.a, ci.b))
        if key in pairs and ci.a != ci.b:
            yield co.problem(f"a second circuit between {ci.a!r} and {ci.b!r} (first at {pairs[key].file}:{pairs[key].line})")
        pairs.setdefault(key, co)
        adj[ci.a].add(ci.b)
        adj[ci.b].add(ci.a)
        for end in ("a_address", "b_address"):
            addr = getattr(ci, end)
            if addr not in ci.subnet:
                yield co.problem(f"{addr} is outside the circuit's subnet {ci.subnet}", end)
            elif ci.subnet.prefixlen < 31 and addr in (ci.subnet.network_address, ci.subnet.broadcast_address):
                yield co.problem(f"{addr} is the network or broadcast address of {ci.subnet}", end)

    reported: set[str] = set()  # hubs with no circuit: not reported again as cut off
    for i, s in enumerate(c.inv.sites):
        if not s.hub:
            continue
        if not s.datanet:
            yield c.o("sites", i).problem(f"hub {s.name!r} is not on the data network (datanet: false)", "hub")
        elif not adj[s.name]:
            reported.add(s.name)
            yield c.o("sites", i).problem(f"hub {s.name!r} has no circuit: a hub aggregates circuits", "hub")
        elif s.tier is Tier.DATACENTRE:
            yield c.o("sites", i).problem("the data centre is the root of the network, not a hub", "hub")

    # (skipped when a site or a circuit failed its own checks: the path may run through it)
    if len(c.datacentres) != 1 or c.bad("sites") or c.bad("circuits"):
        return
    cut_off = set(Topology.of(c.inv).unreachable()) - reported
    for i, s in enumerate(c.inv.sites):
        if s.name in cut_off:
            yield c.o("sites", i).problem(
                f"site {s.name!r} is on the data network but no circuit path reaches the data centre", "name"
            )


# --- duplicates and overlaps --------------------------------------------------------------
def _declared_addresses(c: Context) -> list[tuple[IPv4, Origin]]:
    """Every address the inventory gives, in file order: sites, the controller, circuits."""
    out: list[tuple[IPv4, Origin]] = []
    for i, s in enumerate(c.inv.sites):
        so = c.o("sites", i)
        out += [(addr, so.at(*sub)) for addr, sub in (*_on_lan(s), *_in_mgmt(s))]
        if s.loopback is not None:
            out.append((s.loopback, so.at("loopback")))
    out.append((c.inv.province.controller, c.prov.at("controller")))
    for i, ci in enumerate(c.inv.circuits):
        co = c.o("circuits", i)
        out += [(ci.a_address, co.at("a_address")), (ci.b_address, co.at("b_address"))]
    return out


def _declared_networks(c: Context) -> list[tuple[Net4, Origin]]:
    """Every subnet the inventory gives: sites, circuits, then the management network."""
    out = [(s.subnet, c.o("sites", i).at("subnet")) for i, s in enumerate(c.inv.sites)]
    out += [(ci.subnet, c.o("circuits", i).at("subnet")) for i, ci in enumerate(c.inv.circuits)]
    out.append((c.mgmt, c.prov.at("management_network")))
    return out


def check_overlaps(c: Context) -> Iterator[Problem]:
    """No address given twice, no two subnets overlapping, no address inside another item's subnet."""
    addrs = _declared_addresses(c)
    nets = _declared_networks(c)
    first: dict[IPv4, Origin] = {}
    for addr, origin in addrs:
        if addr in first:
            prev = first[addr]
            yield origin.problem(f"address {addr} is already used at {prev.file}:{prev.line} ({_p(prev)})")
        else:
            first[addr] = origin
    for (_, first_o), (net, second_o) in _overlaps(nets):
        yield second_o.problem(f"subnet {net} overlaps {first_o.file}:{first_o.line} ({_p(first_o)})")
    # An address must not sit inside another item's subnet (a loopback inside a site LAN, say).
    spans = sorted(
        ((int(n.network_address), int(n.broadcast_address), n, no) for n, no in nets if n != c.mgmt),
        key=lambda x: x[0],
    )
    starts = [x[0] for x in spans]
    for addr, origin in addrs:
        at = bisect.bisect_right(starts, int(addr)) - 1
        if at >= 0 and int(addr) <= spans[at][1] and not _owns(origin, spans[at][3]):
            net, norigin = spans[at][2], spans[at][3]
            yield origin.problem(f"address {addr} lies inside {net} of {norigin.file}:{norigin.line} ({_p(norigin)})")


# --- services and flows -------------------------------------------------------------------
def check_services_and_flows(c: Context) -> Iterator[Problem]:
    """Services run on known hosts (or are external with a URL); sites use known services;
    flows go to known services and ports, from sources the selector grammar allows."""
    inv = c.inv
    for i, s in enumerate(inv.sites):
        for k, u in enumerate(s.uses):
            if u not in c.services and u not in c.bad("services"):
                yield c.o("sites", i).problem(f"uses unknown service {u!r}", "uses", k)
    for i, svc in enumerate(inv.services):
        vo = c.o("services", i)
        for j, h in enumerate(svc.hosts):
            if h not in c.hosts and h not in c.bad("hosts"):
                yield vo.problem(f"unknown host {h!r}", "hosts", j)
        if svc.external and svc.hosts:
            yield vo.problem("an external service is run by someone else: give 'url', not 'hosts'", "hosts")
        if svc.external and not svc.url:
            yield vo.problem("an external service needs a 'url' to watch", "external")
        if not svc.external and not svc.hosts and svc.address is None:
            yield vo.problem("an internal service needs 'hosts' (or an 'address')", "hosts")
        yield from _dupes(((p.name, vo.at("ports", j, "name")) for j, p in enumerate(svc.ports)), f"port of {svc.name}")
    for i, f in enumerate(inv.flows):
        fo = c.o("flows", i)
        target = c.services.get(f.to)
        if target is None:
            if f.to not in c.bad("services"):
                yield fo.problem(f"flow to unknown service {f.to!r}", "to")
        else:
            names = {p.name for p in target.ports}
            for j, port in enumerate(f.ports):
                if port not in names:
                    known = ", ".join(sorted(names)) or "none"
                    yield fo.problem(f"service {f.to!r} has no port {port!r} (it has: {known})", "ports", j)
        for j, sel in enumerate(f.from_):
            reason = _check_selector(c, sel)
            if reason:
                yield fo.problem(reason, "from", j)


def _check_selector(c: Context, sel: str) -> str | None:
    """Why ``sel`` is not a valid source, or None: the grammar, then the name it refers to."""
    try:
        kind, arg = parse_selector(sel)
    except SelectorError as e:
        return str(e)
    if arg is None:
        return None
    known: Mapping[str, Callable[[str], bool]] = {
        "tier": lambda a: a in {t.value for t in Tier},
        "district": lambda a: a in c.districts or a in c.bad("districts"),
        "area": lambda a: a in c.areas or a in c.bad("areas") or a in c.districts or a == "province",
        "site": lambda a: a in c.sites or a in c.bad("sites"),
        "host": lambda a: a in c.hosts or a in c.bad("hosts"),
        "service": lambda a: a in c.services or a in c.bad("services"),
    }
    return None if known[kind](arg) else f"source {short(sel)}: unknown {kind} {short(arg)}"


# --- agencies -----------------------------------------------------------------------------
def check_agencies(c: Context) -> Iterator[Problem]:
    """Each agency at a known site, its named accounts within its mailbox and storage budget."""
    inv = c.inv
    section: dict[str, list[MailAccount]] = defaultdict(list)
    for acc in inv.accounts:
        section[acc.agency].append(acc)
    for i, a in enumerate(inv.agencies):
        ao = c.o("agencies", i)
        if a.site is not None and a.site not in c.sites and a.site not in c.bad("sites"):
            yield ao.problem(f"unknown site {a.site!r}", "site")
        kept = section.get(a.name, []) if c.agency_index.get(a.name) == i else []
        total = len(a.accounts) + len(kept)
        if total > a.mailboxes:
            if kept:
                yield ao.problem(
                    f"{total} named accounts ({len(a.accounts)} inline, {len(kept)} in the 'accounts' section)"
                    f" exceed the budget of {a.mailboxes} mailboxes",
                    "mailboxes",
                )
            else:
                yield ao.problem(f"{total} named accounts exceed the budget of {a.mailboxes} mailboxes", "accounts")
        quotas = [q if q is not None else a.quota_mb for q in [*(x.quota_mb for x in a.accounts), *(x.quota_mb for x in kept)]]
        storage = a.mailboxes * a.quota_mb
        if total <= a.mailboxes and sum(quotas) > storage:  # (over the count is reported once, above)
            yield ao.problem(
                f"the named accounts' quotas total {sum(quotas)} MB, over the agency's storage budget of"
                f" {a.mailboxes} mailboxes x {a.quota_mb} MB = {storage} MB",
                "quota_mb",
            )


#: Every check, in the order their problems were first written (they are sorted afterwards).
CHECKS: tuple[Callable[[Context], Iterable[Problem]], ...] = (
    check_names,
    check_ranges,
    check_hierarchy,
    check_site_addresses,
    check_circuits,
    check_overlaps,
    check_services_and_flows,
    check_agencies,
)


def cross_check(loaded: Loaded, prov: Origin, failed: dict[str, set[str]]) -> list[Problem]:
    """Every whole-province problem of ``loaded`` (``prov``: the province section's origin)."""
    from dcops.inventory.validate_platform import check_platform

    c = Context(loaded, prov, failed)
    return [p for check in CHECKS for p in check(c)] + list(check_platform(loaded, failed))


def _first(items: Iterable[tuple[str, _T]]) -> dict[str, _T]:
    """A name table in which the first definition of a name wins."""
    out: dict[str, _T] = {}
    for name, item in items:
        out.setdefault(name, item)
    return out


def _p(o: Origin) -> str:
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
