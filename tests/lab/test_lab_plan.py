"""The lab plan (names, addresses, links), safety checks and image recipe: no root needed."""

from __future__ import annotations

import ipaddress
import subprocess

import pytest

from dcops import ROOT
from dcops.inventory import load
from dcops.lab import image, net, system
from dcops.lab.errors import LabError
from dcops.lab.plan import IFNAMSIZ, build, root_link_name, uses_only_declared_ranges

INV = load(ROOT / "inventory" / "lab").inventory


def test_full_plan_has_a_node_per_host_and_every_circuit() -> None:
    plan = build(INV)
    assert [n.name for n in plan.nodes] == [h.name for _, h in INV.hosts()]
    assert len(plan.circuits) == len(INV.circuits)
    assert plan.controller == "10.250.0.1/24"
    assert uses_only_declared_ranges(plan) == []


def test_names_fit_the_kernel_and_carry_the_prefix() -> None:
    for light in (False, True):
        plan = build(INV, light=light)
        assert len(plan.root_link) <= IFNAMSIZ and plan.root_link.startswith("dcl")
        for n in plan.nodes:
            assert n.netns.startswith("dcl-lab-")
            assert all(len(i.name) <= IFNAMSIZ for i in n.ifaces)
            assert len({i.name for i in n.ifaces}) == len(n.ifaces)
    assert len(root_link_name("a-very-long-province-code")) <= IFNAMSIZ


def test_dc_lan_is_shared_and_routers_hold_loopbacks() -> None:
    plan = build(INV)
    lans = {n.name: next(i for i in n.ifaces if i.name == "eth-lan") for n in plan.nodes}
    assert {lans[h].bridge for h in ("dc-core", "dc-mail", "dc-vc", "dc-web")} == {"br-1"}
    assert plan.node("dc-core").loopbacks == ["10.253.0.1/32"]
    assert plan.node("dc-mail").loopbacks == []


def test_circuit_ends_get_the_inventory_addresses() -> None:
    plan = build(INV)
    c = plan.circuit_between("luc-yen", "dai-son")
    assert (c.a_addr, c.b_addr) == ("10.252.0.25", "10.252.0.26")
    a = next(i for i in plan.node("luc-yen").ifaces if i.name == c.a_if)
    assert ipaddress.ip_interface(a.addresses[0]).network == ipaddress.ip_network("10.252.0.24/30")


def test_light_plan_routes_each_site_via_its_management_address() -> None:
    plan = build(INV, light=True)
    assert len(plan.nodes) == len(INV.sites)
    luc = plan.node("luc-yen")
    assert ("10.251.1.0/24", "10.250.0.21") in luc.routes


def test_refuses_a_range_already_routed_here(monkeypatch: pytest.MonkeyPatch) -> None:
    routes = '[{"dst":"default","gateway":"192.0.2.1","dev":"eth0"},{"dst":"10.250.0.0/16","dev":"eth9"}]'

    def fake_run(args: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(args, 0, routes, "")

    monkeypatch.setattr(net, "run", fake_run)
    with pytest.raises(LabError, match=r"10\.250\.0\.0/24 overlaps the route 10\.250\.0\.0/16 dev eth9"):
        net.check_ranges_free(build(INV))


def test_default_route_alone_is_fine(monkeypatch: pytest.MonkeyPatch) -> None:
    routes = '[{"dst":"default","gateway":"10.250.0.1","dev":"eth0"},{"dst":"192.0.2.0/24","dev":"eth0"}]'
    monkeypatch.setattr(net, "run", lambda args, **_: subprocess.CompletedProcess(args, 0, routes, ""))
    net.check_ranges_free(build(INV))


def test_not_root_and_missing_tools_say_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(system.os, "geteuid", lambda: 1000)
    with pytest.raises(LabError, match="needs root"):
        system.require_root()
    with pytest.raises(LabError, match="apt-get install systemd-container"):
        monkeypatch.setattr(system.shutil, "which", lambda _: None)
        system.require_tools("systemd-nspawn")


def test_package_list_is_one_data_file_and_its_hash_names_the_image() -> None:
    pkgs = image.read_packages()
    assert {"systemd", "openssh-server", "python3"} <= set(pkgs.base)
    assert {"postfix", "kamailio", "frr", "wireguard-go"} <= set(pkgs.roles)
    assert image.digest(pkgs) == image.digest(image.read_packages())
    changed = image.PackageList(pkgs.base, [*pkgs.roles, "bird2"], pkgs.disabled)
    assert image.digest(changed) != image.digest(pkgs)


def test_an_apt_failure_names_the_package() -> None:
    msg = "image step apt-get install failed (exit 100): Reading state information... | E: Unable to locate package kamailo"
    assert image.packages_named(msg, ["kamailio", "kamailo", "postfix"]) == ["kamailo"]
    msg = "E: Package 'janus' has no installation candidate"
    assert image.packages_named(msg, ["janus", "janus-tools"]) == ["janus"]
    assert image.packages_named(" frr : Depends: libc6 but it is not installable", ["frr", "nginx"]) == ["frr"]
