"""The full lab: real Debian hosts booted from inventory/lab (needs root; ~1-4 min)."""

from __future__ import annotations

from typing import Any

import pytest

from dcops.inventory import load
from dcops.lab.plan import build
from tests.lab.helpers import dcops, ping_in, ssh, status

pytestmark = pytest.mark.lab

INV = load("inventory/lab").inventory
PLAN = build(INV)


def test_every_host_answers_ssh_with_sudo(lab: dict[str, Any]) -> None:
    names = {h["name"] for h in lab["hosts"]}
    assert names == {h.name for _, h in INV.hosts()}
    for name in sorted(names):
        p = ssh(name, "sudo", "-n", "hostname")
        assert p.returncode == 0, f"ssh {name}: {p.stderr}"
        assert p.stdout.strip() == name


def test_ssh_by_management_address_checks_host_keys(lab: dict[str, Any]) -> None:
    _, host = INV.host("dc-core")
    p = ssh(str(host.management), "true")
    assert p.returncode == 0, p.stderr


def test_status_lists_hosts_running_with_addresses(lab: dict[str, Any]) -> None:
    st = status()
    assert st["up"] and st["mode"] == "full"
    for h in st["hosts"]:
        assert h["state"] in ("running", "degraded"), h
        assert any(a.startswith(h["management"] + "/") for a in h["addresses"])


@pytest.mark.parametrize("circuit", PLAN.circuits, ids=lambda c: c.name)
def test_circuit_carries_traffic_both_ways(lab: dict[str, Any], circuit: Any) -> None:
    a, b = PLAN.node(circuit.a), PLAN.node(circuit.b)
    assert ping_in(a.netns, circuit.b_addr), f"{circuit.a} cannot ping {circuit.b} at {circuit.b_addr}"
    assert ping_in(b.netns, circuit.a_addr), f"{circuit.b} cannot ping {circuit.a} at {circuit.a_addr}"


def test_no_routing_beyond_connected_links(lab: dict[str, Any]) -> None:
    # an-phu reaches luc-yen (connected) but not the data centre (two hops away)
    assert not ping_in(PLAN.node("an-phu").netns, "10.252.0.1")


def test_link_down_breaks_the_circuit_and_link_up_restores_it(lab: dict[str, Any]) -> None:
    c = PLAN.circuit_between("dc-core", "luc-yen")
    ns = PLAN.node("dc-core").netns
    assert ping_in(ns, c.b_addr)
    try:
        dcops("lab", "drill", "link-down", "dc", "luc-yen", check=True)
        assert not ping_in(ns, c.b_addr)
        assert {"drill": "link-down", "target": c.name} in status()["drills"]
    finally:
        dcops("lab", "drill", "link-up", "dc", "luc-yen", check=True)
    assert ping_in(ns, c.b_addr, count=3, wait=2)
    assert status()["drills"] == []


def test_host_stop_and_start(lab: dict[str, Any]) -> None:
    try:
        dcops("lab", "drill", "host-stop", "mau-a", check=True)
        st = {h["name"]: h for h in status()["hosts"]}
        assert st["mau-a"]["state"].startswith("stopped")
        assert ssh("mau-a", "true", timeout=20).returncode != 0
    finally:
        dcops("lab", "drill", "host-start", "mau-a", check=True, timeout=300)
    assert ssh("mau-a", "true").returncode == 0
    assert status()["drills"] == []


def test_service_stop_and_start(lab: dict[str, Any]) -> None:
    try:
        dcops("lab", "drill", "service-stop", "dc-mail", "rsyslog.service", check=True)
        assert ssh("dc-mail", "systemctl", "is-active", "rsyslog").stdout.strip() != "active"
        assert {"drill": "service-stop", "target": "dc-mail:rsyslog.service"} in status()["drills"]
    finally:
        dcops("lab", "drill", "service-start", "dc-mail", "rsyslog.service", check=True)
    assert ssh("dc-mail", "systemctl", "is-active", "rsyslog").stdout.strip() == "active"


def test_exec_runs_inside_the_host(lab: dict[str, Any]) -> None:
    p = dcops("lab", "exec", "dc-vc", "--", "hostname")
    assert p.returncode == 0 and p.stdout.strip() == "dc-vc", p.stderr


def test_up_when_up_changes_nothing(lab: dict[str, Any]) -> None:
    before = {h["name"]: h["pid"] for h in status()["hosts"]}
    p = dcops("lab", "up", check=True)
    assert "already up" in p.stderr
    assert {h["name"]: h["pid"] for h in status()["hosts"]} == before


def test_wireguard_go_can_create_its_tun_device(lab: dict[str, Any]) -> None:
    p = dcops("lab", "exec", "dc-core", "--", "sh", "-c", "wireguard-go dcltest0 && ip link show dcltest0")
    dcops("lab", "exec", "dc-core", "--", "ip", "link", "del", "dcltest0")
    assert p.returncode == 0, p.stderr
