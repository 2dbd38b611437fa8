"""The data network, the same tests on both lab provinces: inventory/lab (three-level, as the 2020
source documents describe Yên Bái) and inventory/twolevel (since 2025: no district level, a
commune hub and a network-only hub). Which host is a hub, which commune has two paths and which
circuit is its primary all come from the circuits (dcops.inventory.topology), never from names
or from the administrative structure.

inventory/lab is the session's lab (tests/lab/conftest.py); inventory/twolevel is booted beside
it by this module (its own address ranges), converged twice (the second run must change
nothing) and torn down when the module ends. Packets go only to hosts of these two labs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import testinfra

from dcops import DEFAULT_INVENTORY, ROOT, lab_dir
from dcops.converge import ConvergeResult, converge
from dcops.inventory import load
from dcops.inventory.model import Inventory, Service, Site, Tier
from dcops.inventory.topology import Topology
from dcops.lab import plan as lab_plan
from tests.lab.conftest import REUSE
from tests.lab.helpers import dcops, fail_text, wait_for

pytestmark = pytest.mark.lab

PROVINCES: dict[str, Path] = {"lab": DEFAULT_INVENTORY, "twolevel": ROOT / "inventory" / "twolevel"}


@dataclass
class Net:
    """One lab province as the tests see it: every name derived from its inventory."""

    key: str
    inv: Inventory
    topo: Topology = field(init=False)
    site_of: dict[str, Site] = field(init=False)

    def __post_init__(self) -> None:
        self.topo = Topology.of(self.inv)
        self.site_of = {h.name: s for s, h in self.inv.hosts()}

    @property
    def path(self) -> Path:
        return PROVINCES[self.key]

    @property
    def code(self) -> str:
        return self.inv.province.code

    def host(self, name: str) -> Any:
        return testinfra.get_host(f"ssh://{name}", ssh_config=str(lab_dir(self.code) / "ssh_config"), sudo=True)

    def addr(self, name: str) -> str:
        return str(self.inv.host(name)[1].address)

    def router(self, site: str) -> str:
        r = self.inv.router_of(self.inv.site(site))
        assert r is not None
        return r.name

    @property
    def routers(self) -> list[str]:
        return sorted(r.name for r in (self.inv.router_of(s) for s in self.inv.sites) if r is not None)

    @property
    def communes(self) -> list[str]:
        return sorted(h for h, s in self.site_of.items() if s.tier is Tier.COMMUNE)

    @property
    def hub_routers(self) -> list[str]:
        return sorted(self.router(s.name) for s in self.inv.sites if s.hub)

    @property
    def dc_services(self) -> dict[str, Service]:
        return {
            s.name: s for s in self.inv.services
            if s.hosts and all(self.site_of[h].tier is Tier.DATACENTRE for h in s.hosts)
        }

    def circuits_of(self, site: str) -> list[Any]:
        return sorted((c for c in self.inv.circuits if site in (c.a, c.b)), key=lambda c: (c.cost, c.name))

    def iface_to(self, site: str, peer: str) -> str:
        """The interface of ``site``'s router that faces ``peer`` (from the lab's plan)."""
        for c in lab_plan.build(self.inv).circuits:
            ends = {c.a: c.a_if, c.b: c.b_if}
            if set(ends) == {self.router(site), self.router(peer)}:
                return ends[self.router(site)]
        raise KeyError((site, peer))

    def dual_path_commune(self) -> str:
        return next(s for s in self.topo.dual_path() if self.inv.site(s).tier is Tier.COMMUNE and len(self.circuits_of(s)) > 1)

    def single_path_commune(self) -> str:
        return next(
            s for s in self.topo.sites
            if self.inv.site(s).tier is Tier.COMMUNE and len(self.circuits_of(s)) == 1 and self.topo.upstream()[s]
        )


@cache
def net(key: str) -> Net:
    return Net(key, load(PROVINCES[key]).inventory)


def cases(what: str) -> list[Any]:
    """(province, host) parameters for every province, ids like ``twolevel-pop-van-yen``."""
    out = []
    for key in PROVINCES:
        for name in getattr(net(key), what):
            out.append(pytest.param(key, name, id=f"{key}-{name}"))
    return out


TWOLEVEL_RESULTS: dict[str, ConvergeResult] = {}


@pytest.fixture(scope="module")
def twolevel(root: None) -> Iterator[dict[str, ConvergeResult]]:
    """inventory/twolevel booted beside the session lab and converged: first, again, check mode."""
    path = str(PROVINCES["twolevel"])
    if REUSE:
        yield TWOLEVEL_RESULTS
        return
    dcops("lab", "down", "-i", path, timeout=180)
    try:
        up = dcops("lab", "up", "-i", path, timeout=600)
        assert up.returncode == 0, f"dcops lab up -i {path} failed:\n{up.stdout}\n{up.stderr}"
        TWOLEVEL_RESULTS["first"] = converge(PROVINCES["twolevel"], quiet=True)
        TWOLEVEL_RESULTS["second"] = converge(PROVINCES["twolevel"], quiet=True)
        TWOLEVEL_RESULTS["check"] = converge(PROVINCES["twolevel"], check=True, diff=True, quiet=True)
        for k, r in TWOLEVEL_RESULTS.items():
            print(f"twolevel converge {k}: rc={r.returncode} {r.seconds:.1f} s changed={r.changed} log={r.log}")
        yield TWOLEVEL_RESULTS
    finally:
        dcops("lab", "down", "-i", path, timeout=180)


@pytest.fixture
def up(request: pytest.FixtureRequest) -> Any:
    """``up(key)``: the province's lab, booted and converged; returns its :class:`Net`."""

    def get(key: str) -> Net:
        request.getfixturevalue("converged" if key == "lab" else "twolevel")
        return net(key)

    return get


def _drill(n: Net, *args: str) -> None:
    dcops("lab", "drill", *args, "-i", str(n.path), check=True)


# ------------------------------------------------------------------- the two-level province converges


def test_two_level_province_converges_and_second_run_changes_nothing(twolevel: dict[str, ConvergeResult]) -> None:
    if not twolevel:
        pytest.skip("DCOPS_TEST_REUSE_LAB=1: inventory/twolevel was converged outside this session")
    first, second, check = twolevel["first"], twolevel["second"], twolevel["check"]
    hosts = {h.name for _, h in net("twolevel").inv.hosts()}
    assert first.ok, fail_text(first)
    assert set(first.hosts) == hosts
    changed = {h: s.changed for h, s in second.hosts.items() if s.changed}
    assert second.ok and not changed, f"not idempotent: {changed}\n{fail_text(second)}"
    changed = {h: s.changed for h, s in check.hosts.items() if s.changed}
    assert check.ok and not changed, f"--check --diff reports changes: {changed}\n{fail_text(check)}"


# ------------------------------------------------------------------- routing


@pytest.mark.parametrize("key,name", cases("routers"))
def test_ospf_adjacencies_full(up: Any, key: str, name: str) -> None:
    n = up(key)
    h = n.host(name)
    want = len(n.circuits_of(n.site_of[name].name))

    def full() -> int:
        data = json.loads(h.check_output("vtysh -c 'show ip ospf neighbor json'") or "{}")
        nbrs = [x for lst in data.get("neighbors", {}).values() for x in lst]
        return sum(1 for x in nbrs if str(x.get("nbrState", x.get("state", ""))).startswith("Full"))

    assert wait_for(lambda: full() >= want, 60, 2), (
        f"{key} {name}: {full()} full adjacencies, want {want}:\n" + h.run("vtysh -c 'show ip ospf neighbor'").stdout
    )


def _tcp(h: Any, addr: str, port: int, wait: int = 3) -> int:
    """0 connected, 1 refused (reached, nothing listening), 124 timed out (dropped)."""
    return int(h.run(f"timeout {wait} bash -c '</dev/tcp/{addr}/{port}' 2>/dev/null").rc)


def _flow_admits(n: Net, selectors: list[str], name: str) -> bool:
    site = n.site_of[name]
    for sel in selectors:
        kind, _, arg = sel.partition(":")
        if (
            kind in ("all-sites", "internet")
            or (kind == "tier" and arg == site.tier.value)
            or (kind == "district" and arg == site.district)
            or (kind == "area" and arg == n.inv.area_of(site))
            or (kind == "site" and arg == site.name)
            or (kind == "host" and arg == name)
        ):
            return True
    return False


@pytest.mark.parametrize("key,name", cases("communes"))
def test_commune_reaches_every_dc_service(up: Any, key: str, name: str) -> None:
    n = up(key)
    h = n.host(name)
    bad, tested = [], 0
    for f in n.inv.flows:
        svc = n.dc_services.get(f.to)
        if svc is None or not _flow_admits(n, [str(x) for x in f.from_], name):
            continue
        ports = {p.name: p for p in svc.ports}
        for target in svc.hosts:
            a = n.addr(target)
            if not wait_for(lambda a=a: _reaches(h, a), 30, 1):  # type: ignore[misc]
                bad.append(f"ping {svc.name} {a}")
            for pname in f.ports:
                p = ports[pname]
                if p.proto.value != "tcp" or p.port is None:
                    continue
                tested += 1
                rc = _tcp(h, a, p.port)
                if rc not in (0, 1):  # connected, or refused by the host itself: reached either way
                    bad.append(f"tcp {svc.name} {a}:{p.port} rc={rc}")
    assert tested > 0
    assert not bad, f"{key} {name} cannot reach: {bad}"


@pytest.mark.parametrize("key,name", cases("hub_routers"))
def test_wireguard_leg_of_every_hub(up: Any, key: str, name: str) -> None:
    """The data centre <-> hub circuits carry WireGuard (the hubs are declared, whatever their tier:
    a district office in inventory/lab, a commune and a network-only site in inventory/twolevel)."""
    n = up(key)
    h = n.host(name)
    out = h.check_output("wg show all latest-handshakes")
    assert out.strip(), f"{key} {name}: no WireGuard interface"
    now = int(h.check_output("date +%s"))
    for line in out.splitlines():
        ifname, _peer, ts = line.split()
        assert int(ts) > 0 and now - int(ts) < 300, f"{key} {name} {ifname}: last handshake {now - int(ts)} s ago"
    mail = n.addr(n.inv.service("mail").hosts[0])
    route = h.check_output(f"ip route get {mail}")
    assert " dev wg-" in route, f"{key} {name}: {mail} not routed through the tunnel: {route}"

    def rx(ifn: str) -> int:
        return sum(int(x.split()[1]) for x in h.check_output(f"wg show {ifn} transfer").splitlines())

    ifname = route.split(" dev ")[1].split()[0]
    before = rx(ifname)
    h.run(f"ping -n -q -c 5 -i 0.2 -s 1000 {mail}")
    assert rx(ifname) > before + 4000, f"{key} {name}: {ifname} counters did not grow with the pings"


@pytest.mark.parametrize("key", list(PROVINCES))
def test_non_hub_routers_have_no_wireguard_leg(up: Any, key: str) -> None:
    n = up(key)
    others = [r for r in n.routers if r not in n.hub_routers and n.site_of[r].tier is not Tier.DATACENTRE]
    assert others
    for name in others:
        assert not n.host(name).run("wg show interfaces").stdout.strip(), f"{key} {name} has a WireGuard leg"


# ------------------------------------------------------------------- drills


def _reaches(h: Any, addr: str) -> bool:
    return bool(h.run(f"ping -n -q -c 1 -W 1 {addr}").rc == 0)


@pytest.mark.parametrize("key", list(PROVINCES))
def test_two_path_commune_reroutes_within_60s(up: Any, key: str) -> None:
    n = up(key)
    site = n.dual_path_commune()
    primary, backup = n.circuits_of(site)[:2]
    peer = primary.b if primary.a == site else primary.a
    other = backup.b if backup.a == site else backup.a
    h = n.host(n.router(site))
    target = n.addr(n.inv.service("mail").hosts[0])
    assert _reaches(h, target)
    assert n.iface_to(site, peer) in h.check_output(f"ip route get {target}"), "not on its primary path before the drill"
    try:
        t0 = time.monotonic()
        _drill(n, "link-down", peer, site)
        back = wait_for(lambda: _reaches(h, target), 60, 0.2)
        took = time.monotonic() - t0
        print(f"\n{key}: re-route {site} -> data centre after cutting {primary.name}: {took:.1f} s (target <= 60 s)")
        assert back, f"{site} did not re-route within 60 s"
        assert n.iface_to(site, other) in h.check_output(f"ip route get {target}")
    finally:
        _drill(n, "link-up", peer, site)
    assert wait_for(lambda: n.iface_to(site, peer) in h.check_output(f"ip route get {target}"), 60, 1), (
        "primary path not restored"
    )


@pytest.mark.parametrize("key", list(PROVINCES))
def test_single_path_cut_isolates_only_that_commune(up: Any, key: str) -> None:
    n = up(key)
    site = n.single_path_commune()
    (circuit,) = n.circuits_of(site)
    hub = circuit.b if circuit.a == site else circuit.a
    target = n.addr(n.inv.service("mail").hosts[0])
    # what the topology says the cut does: only this commune loses the data centre
    assert n.topo.reachable(cut=[circuit.name]) == n.topo.reachable() - {site}
    others = [c for c in n.communes if n.site_of[c].name != site]
    try:
        _drill(n, "link-down", hub, site)
        assert wait_for(lambda: not _reaches(n.host(n.router(site)), target), 10, 0.5), f"{site} still reaches the data centre"
        for c in others:
            # OSPF may still be settling from the previous drill: a site counts as cut off only if
            # it stays unreachable for 10 s, far longer than a re-computation here.
            assert wait_for(lambda c=c: _reaches(n.host(c), target), 10, 0.5), (  # type: ignore[misc]
                f"{key}: {c} lost the data centre when only {site}'s circuit was cut"
            )
    finally:
        _drill(n, "link-up", hub, site)
    assert wait_for(lambda: _reaches(n.host(n.router(site)), target), 60, 0.5), f"restoring the circuit did not restore {site}"
