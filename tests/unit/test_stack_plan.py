"""The data-centre stack under the Pulumi SDK's mocks: the real __main__.py for lab and yenbai
against golden plans, apply checks that are counted, resource options recorded by the monitor,
and the plan's stability (one host's memory changes one entry; reordering changes nothing)."""

from __future__ import annotations

import json
import os
import runpy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
import pulumi.runtime
import pytest
from pulumi.runtime import settings as psettings

from dcops.inventory import load
from dcops.stacks.plan import BRIDGE, HA, IMAGE, VLAN, VM, Plan, PlanMocks, RecordingMonitor, own_event_loop, plan_program
from tests.unit.stack_support import PROGRAM, ROOT, copy_inventory, replace_once

GOLDEN = ROOT / "tests" / "golden"
UPDATE = os.environ.get("DCOPS_UPDATE_GOLDEN") == "1"


@pytest.fixture(scope="module")
def lab_plan() -> Plan:
    return plan_program(ROOT / "inventory" / "lab", PROGRAM)


@pytest.fixture(scope="module")
def yenbai_plan() -> Plan:
    return plan_program(ROOT / "inventory" / "yenbai", PROGRAM)


@pytest.mark.parametrize("name", ["lab", "yenbai"])
def test_golden_plan(name: str, lab_plan: Plan, yenbai_plan: Plan) -> None:
    plan = {"lab": lab_plan, "yenbai": yenbai_plan}[name]
    text = json.dumps(plan.as_dict(), indent=2, ensure_ascii=False) + "\n"
    # (.golden, not .json: test_render compares the set of *.json files in tests/golden/<name>)
    gold = GOLDEN / name / "stack" / "plan.golden"
    if UPDATE:
        gold.parent.mkdir(parents=True, exist_ok=True)
        gold.write_text(text, encoding="utf-8")
    assert text == gold.read_text(encoding="utf-8"), f"the plan of inventory/{name} differs from {gold}"


def test_plan_covers_every_datacentre_host(yenbai_plan: Plan) -> None:
    inv = load(ROOT / "inventory" / "yenbai").inventory
    dc_hosts = sorted(h.name for s in inv.sites if s.tier.value == "datacentre" for h in s.hosts)
    assert sorted(r.name for r in yenbai_plan.of_type(VM)) == dc_hosts
    assert sorted(yenbai_plan.outputs["hosts"]) == dc_hosts
    assert inv.platform is not None
    nodes = sorted(n.name for n in inv.platform.cluster.nodes)
    assert sorted(r.inputs["nodeName"] for r in yenbai_plan.of_type(IMAGE)) == nodes
    assert len(yenbai_plan.of_type(BRIDGE)) == len(nodes) * len(inv.platform.bridges)
    assert len(yenbai_plan.of_type(VLAN)) == len(nodes) * len({(n.bridge, n.vlan) for n in inv.platform.networks})
    assert sorted(r.inputs["resourceId"] for r in yenbai_plan.of_type(HA)) == sorted(
        f"vm:{vm.vm_id}" for vm in inv.platform.vms.values() if vm.ha
    )


def test_cloud_init_from_the_inventory(lab_plan: Plan) -> None:
    """Static addresses, DNS and the admins' keys, no password; the addresses are the inventory's."""
    inv = load(ROOT / "inventory" / "lab").inventory
    dns = str(inv.service_address(inv.service("dns")))
    for r in lab_plan.of_type(VM):
        _site, host = inv.host(r.name)
        init = r.inputs["initialization"]
        addrs = [c["ipv4"]["address"] for c in init["ipConfigs"] if c.get("ipv4")]
        assert addrs == [f"{host.management}/24", f"{host.address}/24"]
        assert init["dns"] == {"domain": "lab.test", "servers": [dns]}
        assert init["userAccount"]["username"] == inv.province.admins[0].name
        assert "password" not in init["userAccount"]
        assert r.inputs["memory"]["dedicated"] == host.memory_mb and r.inputs["cpu"]["cores"] == host.vcpus
        out = lab_plan.outputs["hosts"][r.name]
        assert out["addresses"] == {"management": str(host.management), "lan": str(host.address)}
        assert out["macAddresses"] == [n["macAddress"] for n in r.inputs["networkDevices"]]


def test_admin_keys_reach_cloud_init(tmp_path: Path) -> None:
    d = copy_inventory("lab", tmp_path)
    replace_once(d / "province.yml", "      full_name: dcops lab administrator\n",
                 "      full_name: dcops lab administrator\n"
                 "      ssh_keys: [ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAItest dcops@lab]\n")
    plan = plan_program(d, PROGRAM)
    for r in plan.of_type(VM):
        assert r.inputs["initialization"]["userAccount"]["keys"] == ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAItest dcops@lab"]


def test_resource_options_recorded_by_the_monitor(lab_plan: Plan) -> None:
    inv = load(ROOT / "inventory" / "lab").inventory
    assert inv.platform is not None
    vms = lab_plan.of_type(VM)
    assert vms
    for r in vms:
        spec = inv.platform.vms[r.name]
        assert r.protect is spec.stateful, f"{r.name}: protect {r.protect}, stateful {spec.stateful}"
        assert r.ignore_changes == ["initialization"]
        node = r.inputs["nodeName"]
        bridges = {n["bridge"] for n in r.inputs["networkDevices"]}
        vlans = {(n["bridge"], n["vlanId"]) for n in r.inputs["networkDevices"]}
        want = {f"{node}-image"} | {f"{node}-{b}" for b in bridges} | {f"{node}-{b}-vlan{v}" for b, v in vlans}
        assert want <= set(r.depends_on), f"{r.name} depends on {r.depends_on}, not on all of {sorted(want)}"
        assert not any(d.startswith(tuple(n.name for n in inv.platform.cluster.nodes if n.name != node)) for d in r.depends_on)
    assert {r.name for r in vms if r.protect} == {"dc-core", "dc-mail"}
    for r in lab_plan.of_type(HA):
        assert r.depends_on == [r.name.removesuffix("-ha")]
    for r in lab_plan.of_type(VLAN):
        assert r.depends_on == [r.name.rsplit("-vlan", 1)[0]]


def _entries(plan: Plan) -> dict[str, Any]:
    return {r.name: r.as_dict() for r in plan.resources}


def test_one_memory_change_changes_one_vm(tmp_path: Path, lab_plan: Plan) -> None:
    d = copy_inventory("lab", tmp_path)
    replace_once(d / "sites.yml", "        management: 10.250.0.11\n",
                 "        management: 10.250.0.11\n        memory_mb: 4096\n")
    changed = plan_program(d, PROGRAM)
    before, after = _entries(lab_plan), _entries(changed)
    assert before.keys() == after.keys()
    assert [n for n in before if before[n] != after[n]] == ["dc-mail"]
    assert after["dc-mail"]["inputs"]["memory"] == {"dedicated": 4096}
    assert changed.outputs == lab_plan.outputs


def test_reordering_changes_nothing(tmp_path: Path, lab_plan: Plan) -> None:
    d = copy_inventory("lab", tmp_path)
    sites = d / "sites.yml"
    text = sites.read_text(encoding="utf-8")
    mail = "      - name: dc-mail\n        roles: [mail]\n        address: 10.251.0.2\n        management: 10.250.0.11\n"
    web = "      - name: dc-web\n        roles: [web]\n        address: 10.251.0.4\n        management: 10.250.0.13\n"
    assert text.count(mail) == 1 and text.count(web) == 1
    sites.write_text(text.replace(mail, "@@M@@").replace(web, mail).replace("@@M@@", web), encoding="utf-8")
    plat = d / "platform.yml"
    replace_once(plat, "        scsi0: {datastore: local-lvm, size_gb: 20}\n        scsi1: {datastore: local-lvm, size_gb: 50}\n",
                 "        scsi1: {datastore: local-lvm, size_gb: 50}\n        scsi0: {datastore: local-lvm, size_gb: 20}\n")
    replace_once(plat, "      nics: {net0: management, net1: dc-lan, net2: datanet}\n",
                 "      nics: {net2: datanet, net0: management, net1: dc-lan}\n")
    text = plat.read_text(encoding="utf-8")
    head, vms = text.split("  vms:\n")
    blocks = ["    dc-" + b for b in vms.split("    dc-")[1:]]
    assert len(blocks) == 4
    plat.write_text(head + "  vms:\n" + "".join(reversed(blocks)), encoding="utf-8")
    reordered = plan_program(d, PROGRAM)
    assert load(d).inventory.sites[0].hosts[1].name == "dc-web"  # the copy really is reordered
    assert reordered.as_dict()["resources"] == lab_plan.as_dict()["resources"]
    assert reordered.outputs == lab_plan.outputs


# --- apply checks, counted: an unknown output would skip them silently -------------------------


@pytest.fixture
def mocks() -> Iterator[RecordingMonitor]:
    """The SDK's mocks for one test (set in a fixture: the last set_mocks call wins for the whole run)."""
    m = PlanMocks()
    monitor = RecordingMonitor(m)
    with own_event_loop():
        psettings.ROOT.set(None)
        pulumi.runtime.set_mocks(m, project="dcops-datacentre", stack="lab", preview=False, monitor=monitor)
        pulumi.runtime.set_all_config({"dcops:inventory": str(ROOT / "inventory" / "lab")})
        yield monitor
        pulumi.runtime.set_all_config({})


CHECKS: list[str] = []


@pulumi.runtime.test
def _run_main_with_checks() -> pulumi.Output[Any]:
    runpy.run_path(str(PROGRAM), run_name="__main__")
    root = psettings.get_root_resource()
    assert root is not None
    hosts = root.outputs["hosts"]  # type: ignore[attr-defined]
    inv = load(ROOT / "inventory" / "lab").inventory
    assert inv.platform is not None
    checks = []
    for name, spec in sorted(inv.platform.vms.items()):
        def vm_id(value: Any, name: str = name, want: int = spec.vm_id) -> None:
            CHECKS.append(f"{name}.vmId")
            assert value == want

        def macs(value: Any, name: str = name, n: int = len(spec.nics)) -> None:
            CHECKS.append(f"{name}.macAddresses")
            assert isinstance(value, list) and len(value) == n
            assert all(isinstance(m, str) and m.startswith("02:DC:") for m in value)

        def node(value: Any, name: str = name) -> None:
            CHECKS.append(f"{name}.node")
            assert value in {"pve-lab-1", "pve-lab-2"}

        checks.append(hosts[name]["vmId"].apply(vm_id))
        checks.append(hosts[name]["macAddresses"].apply(macs))
        checks.append(hosts[name]["node"].apply(node))
    return pulumi.Output.all(*checks)


def test_apply_checks_all_ran(mocks: RecordingMonitor) -> None:
    CHECKS.clear()
    _run_main_with_checks()
    hosts = ["dc-core", "dc-mail", "dc-vc", "dc-web"]
    assert sorted(CHECKS) == sorted(f"{h}.{k}" for h in hosts for k in ("vmId", "macAddresses", "node"))
    registered = {urn.rsplit("::", 1)[-1] for urn in mocks.options}
    assert set(hosts) <= registered


def test_plans_after_asyncio_run_left_no_event_loop(lab_plan: Plan) -> None:
    """The whole suite runs the exporters and SIP clients through asyncio.run() first, which
    leaves the main thread with no event loop; the plan must still be made, the same each time."""
    import asyncio

    asyncio.run(asyncio.sleep(0))
    again = plan_program(ROOT / "inventory" / "lab", PROGRAM)
    assert again.as_dict() == lab_plan.as_dict()
    asyncio.run(asyncio.sleep(0))  # and the plan left nothing that breaks the next asyncio.run
