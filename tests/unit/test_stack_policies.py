"""Every policy refuses a violating plan (from a deliberately bad inventory copy) with its
message and passes the clean plans; `dcops stack plan` exits 2 on a violation. The validate
functions are called through pulumi_policy's StackValidationPolicy objects; the pack's entry
point (stacks/policy/__main__.py, whose PolicyPack serves forever) is never imported."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dcops.cli import app
from dcops.inventory import load
from dcops.inventory.model import Inventory
from dcops.inventory.platform import Disk, Network
from dcops.stacks.plan import VM, Plan, judge, plan_inventory, policy_resources
from dcops.stacks.policies import POLICIES, Verdict, facts_of, verdicts
from tests.unit.stack_support import ROOT, copy_inventory, replace_once, with_host, with_platform, with_vm


@pytest.fixture(scope="module")
def lab() -> Inventory:
    return load(ROOT / "inventory" / "lab").inventory


def failing(v: list[Verdict]) -> dict[str, list[str]]:
    return {x.policy: [m for m, _ in x.violations] for x in v if not x.ok}


@pytest.mark.parametrize("name", ["lab", "yenbai"])
def test_clean_plans_pass_every_policy(name: str) -> None:
    inv = load(ROOT / "inventory" / name).inventory
    v = judge(plan_inventory(inv), inv)
    assert [x.policy for x in v] == [p.name for p in POLICIES]
    assert failing(v) == {}


def _bad(lab: Inventory, bad: Inventory) -> dict[str, list[str]]:
    """The verdicts on the plan of ``bad``, with the facts of the good inventory."""
    return failing(judge(plan_inventory(bad), lab))


def test_unique_vm_ids(lab: Inventory) -> None:
    assert _bad(lab, with_vm(lab, "dc-web", vm_id=2502)) == {
        "dcops-unique-vm-ids": ["VM dc-web has VM id 2502, already the VM id of dc-mail"]}


def test_every_vm_tagged_with_site_and_role(lab: Inventory) -> None:
    assert _bad(lab, with_host(lab, "dc-web", roles=[])) == {
        "dcops-vm-tags": ["VM dc-web has no role tag (tags: province-lab, site-dc)"]}


def test_stateful_vms_protected(lab: Inventory) -> None:
    assert _bad(lab, with_vm(lab, "dc-mail", stateful=False)) == {
        "dcops-stateful-protected": [
            "VM dc-mail is stateful but not protected (protect=True keeps pulumi from deleting or replacing it)"]}


def test_no_undeclared_bridge_or_vlan(lab: Inventory) -> None:
    assert lab.platform is not None
    rogue = Network(name="rogue", carries="uplink", bridge="vmbr0", vlan=999)
    bad = with_platform(lab, networks=[*lab.platform.networks, rogue])
    bad = with_vm(bad, "dc-web", nics={"net0": "management", "net1": "dc-lan", "net2": "rogue"})
    got = _bad(lab, bad)
    assert list(got) == ["dcops-declared-networks"]
    msgs = got["dcops-declared-networks"]
    assert "VM dc-web NIC net2 is on bridge vmbr0 VLAN 999, which the inventory does not declare" in msgs
    assert "VLAN interface vmbr0.999 on node pve-lab-1 is not a declared network" in got["dcops-declared-networks"]


def test_vms_fit_their_node(lab: Inventory) -> None:
    bad = with_host(with_host(lab, "dc-mail", memory_mb=8192), "dc-web", memory_mb=8192)
    assert _bad(lab, bad) == {"dcops-nodes-fit": [
        "node pve-lab-2 does not fit its VMs (dc-mail, dc-web): they need 2 cores and 16384 MiB,"
        " it has 8 cores and 14336 MiB for VMs"]}
    bad = with_host(lab, "dc-core", vcpus=9)
    assert list(_bad(lab, bad)) == ["dcops-nodes-fit"]


def test_disks_only_on_allowed_datastores(lab: Inventory) -> None:
    bad = with_vm(lab, "dc-web", disks={"scsi0": Disk(datastore="local", size_gb=20)})
    assert _bad(lab, bad) == {"dcops-allowed-datastores": [
        "VM dc-web disk scsi0 is on datastore local, not one that holds VM disks on node pve-lab-2 (local-lvm, shared)",
        "VM dc-web disk cloud-init is on datastore local, not one that holds VM disks on node pve-lab-2 (local-lvm, shared)",
    ]}


def test_no_plaintext_password_in_cloud_init(lab: Inventory) -> None:
    """The program never writes a password and no inventory field carries one, so the violating
    plan is the clean plan with one injected."""
    plan = plan_inventory(lab)
    web = plan.by_name()["dc-web"]
    web.inputs["initialization"]["userAccount"]["password"] = "hunter2"
    assert failing(verdicts(policy_resources(plan), facts_of(lab))) == {"dcops-no-cloud-init-password": [
        "VM dc-web has a plaintext password in its cloud-init data (initialization.userAccount.password):"
        " admins log in with SSH keys"]}


def test_every_ha_host_has_an_ha_resource(lab: Inventory) -> None:
    assert _bad(lab, with_vm(lab, "dc-vc", ha=False)) == {
        "dcops-ha-resources": ["VM dc-vc is HA in the inventory but the stack has no HA resource vm:2503"]}


def test_violations_name_the_resource(lab: Inventory) -> None:
    plan: Plan = plan_inventory(with_vm(lab, "dc-mail", stateful=False))
    v = {x.policy: x for x in judge(plan, lab)}["dcops-stateful-protected"]
    assert [u for _, u in v.violations] == [plan.by_name()["dc-mail"].urn]
    assert plan.by_name()["dc-mail"].type == VM


def _oversubscribed(tmp_path: Path) -> Path:
    """A valid inventory (every VM fits every node) whose VMs on pve-lab-2 do not fit together."""
    d = copy_inventory("lab", tmp_path)
    for mgmt in ("10.250.0.11", "10.250.0.13"):
        replace_once(d / "sites.yml", f"        management: {mgmt}\n", f"        management: {mgmt}\n        memory_mb: 8192\n")
    load(d)  # valid
    return d


def test_cli_plan_exits_2_on_a_violation(tmp_path: Path) -> None:
    d = _oversubscribed(tmp_path)
    r = CliRunner().invoke(app, ["stack", "plan", "-i", str(d)])
    assert r.exit_code == 2, r.output
    assert "FAIL dcops-nodes-fit" in r.output and "node pve-lab-2 does not fit its VMs" in r.output
    r = CliRunner().invoke(app, ["stack", "plan", "-i", str(d), "--json"])
    assert r.exit_code == 2
    data = json.loads(r.stdout)
    assert data["ok"] is False
    assert [p["policy"] for p in data["policies"] if not p["ok"]] == ["dcops-nodes-fit"]


def test_cli_plan_clean(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["stack", "plan", "-i", str(ROOT / "inventory" / "lab")])
    assert r.exit_code == 0, r.output
    assert "policies: 8 passed, 0 failed" in r.output
    assert "pve-lab-1" in r.output and "dc-core" in r.output


def test_the_pack_is_never_imported() -> None:
    """The pack's entry point constructs PolicyPack (which serves forever) from these policies;
    no test module loads it."""
    pack = ROOT / "stacks" / "policy" / "__main__.py"
    text = pack.read_text(encoding="utf-8")
    assert "PolicyPack(" in text and "stack_policies(" in text
    loaded = [m for m in list(sys.modules.values()) if str(getattr(m, "__file__", "") or "").startswith(str(pack.parent))]
    assert loaded == []
