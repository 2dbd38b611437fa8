"""The Ansible content stays clean: ansible-lint (production profile), yamllint, syntax checks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, VENV_BIN

PLAYBOOKS = ROOT / "playbooks"
PLAYS = sorted(p.name for p in PLAYBOOKS.glob("*.yml"))


def _tool(name: str) -> str:
    exe = VENV_BIN / name
    return str(exe if exe.exists() else Path(sys.executable).parent / name)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["ANSIBLE_CONFIG"] = str(PLAYBOOKS / "ansible.cfg")
    env.setdefault("ANSIBLE_NOCOLOR", "1")
    return env


def test_playbooks_exist() -> None:
    assert {"site.yml", "baseline.yml", "firewall.yml", "datanet.yml"} <= set(PLAYS)
    for role in ("baseline", "firewall", "datanet"):
        for part in ("defaults/main.yml", "meta/main.yml", "meta/argument_specs.yml", "tasks/main.yml", "handlers/main.yml"):
            assert (PLAYBOOKS / "roles" / role / part).is_file(), f"{role}/{part} missing"


def test_ansible_lint_production_profile() -> None:
    r = subprocess.run(
        [_tool("ansible-lint"), "--profile", "production", "--nocolor"],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, f"ansible-lint found problems:\n{r.stdout}\n{r.stderr}"


def test_yamllint_strict() -> None:
    r = subprocess.run(
        [_tool("yamllint"), "-s", "playbooks", ".ansible-lint", ".yamllint"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, f"yamllint found problems:\n{r.stdout}\n{r.stderr}"


@pytest.mark.parametrize("playbook", PLAYS)
def test_syntax_check(playbook: str) -> None:
    r = subprocess.run(
        [_tool("ansible-playbook"), "-i", str(ROOT / "inventory" / "lab"), "--syntax-check", playbook],
        cwd=PLAYBOOKS,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, f"syntax check of {playbook} failed:\n{r.stdout}\n{r.stderr}"


def test_every_role_variable_is_documented_in_its_argument_spec() -> None:
    import yaml

    for role in ("baseline", "firewall", "datanet"):
        defaults = yaml.safe_load((PLAYBOOKS / "roles" / role / "defaults" / "main.yml").read_text())
        spec = yaml.safe_load((PLAYBOOKS / "roles" / role / "meta" / "argument_specs.yml").read_text())
        options = spec["argument_specs"]["main"]["options"]
        for name in defaults:
            assert name.startswith(f"{role}_"), f"{role}: variable {name} is not prefixed with the role name"
            assert name in options, f"{role}: {name} missing from meta/argument_specs.yml"
            assert options[name].get("description"), f"{role}: {name} has no description"


def _plan() -> tuple[object, dict[str, dict[str, object]], dict[str, list[str]]]:
    """The filter plugin and the lab's rendered hostvars/groups (as the roles see them)."""
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("dcops_net", PLAYBOOKS / "filter_plugins" / "dcops_net.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    inv = json.loads((ROOT / "tests" / "golden" / "lab" / "ansible" / "inventory.json").read_text())
    allvars = inv["all"]["vars"]
    hostvars = {h: {**allvars, **v} for h, v in inv["_meta"]["hostvars"].items()}
    return mod, hostvars, {"all": sorted(hostvars)}


def test_wireguard_legs_pair_up() -> None:
    mod, hv, groups = _plan()
    dc = mod.wg_legs("dc-core", hv, groups, "169.254.252.0/24", 51820)  # type: ignore[attr-defined]
    assert [leg["peer"] for leg in dc] == ["luc-yen", "van-yen"]
    for leg in dc:
        (far,) = mod.wg_legs(leg["peer"], hv, groups, "169.254.252.0/24", 51820)  # type: ignore[attr-defined]
        assert far["port"] == leg["port"] and far["peer"] == "dc-core"
        assert far["peer_address"] == leg["address"].split("/")[0] and leg["peer_address"] == far["address"].split("/")[0]
        assert far["peer_underlay"] == leg["underlay"]
    assert mod.wg_legs("an-phu", hv, groups, "169.254.252.0/24", 51820) == []  # type: ignore[attr-defined]


def test_firewall_rules_follow_the_flows() -> None:
    mod, hv, groups = _plan()
    a = hv["dc-mail"]
    rules = mod.firewall_rules("dc-mail", hv, groups, a["dcops_flows"], a["dcops_services"], "10.250.0.0/24")  # type: ignore[attr-defined]
    ports = {(r["proto"], r["dport"]) for r in rules["input"]}
    assert ports == {("tcp", "25"), ("tcp", "465"), ("tcp", "587"), ("tcp", "993")}
    assert rules["forward"] == []  # dc-mail does not route
    smtp = next(r for r in rules["input"] if r["dport"] == "25")
    assert smtp["saddr"] == []  # from: internet = any source
    core = mod.firewall_rules("dc-core", hv, groups, a["dcops_flows"], a["dcops_services"], "10.250.0.0/24")  # type: ignore[attr-defined]
    imaps = next(r for r in core["forward"] if r["dport"] == "993")
    # imaps: from every site and the data centre's own LAN (flow: all-sites, datacentre), never the management network
    assert imaps["daddr"] == ["10.251.0.2/32"] and {"10.251.11.0/24", "10.251.0.0/24"} <= set(imaps["saddr"])
    assert not any(s.startswith("10.250.") for s in imaps["saddr"])
