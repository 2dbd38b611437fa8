"""Renderers: golden files, determinism, and the Ansible plugin read by real ansible-inventory."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dcops.cli.inventory import rendered_files
from dcops.inventory import load_inventory
from tests.conftest import GOLDEN, LAB, ROOT, TWOLEVEL, VENV_BIN, YENBAI

UPDATE = os.environ.get("DCOPS_UPDATE_GOLDEN") == "1"


@pytest.mark.parametrize("name,path", [("lab", LAB), ("yenbai", YENBAI), ("twolevel", TWOLEVEL)])
def test_golden(name: str, path: Path) -> None:
    files = rendered_files(load_inventory(path))
    gold = GOLDEN / name
    if UPDATE:
        for rel, text in files.items():
            (gold / rel).parent.mkdir(parents=True, exist_ok=True)
            (gold / rel).write_text(text, encoding="utf-8")
    on_disk = sorted(str(p.relative_to(gold)) for p in gold.rglob("*.json"))
    assert on_disk == sorted(files), "rendered file set differs from the golden set"
    for rel, text in files.items():
        assert text == (gold / rel).read_text(encoding="utf-8"), f"{rel} differs from tests/golden/{name}/{rel}"


#: sha256 (first 16 hex digits) of every golden file as it was before issue 12 (administrative
#: levels as data, hubs apart from administration). The lab's ansible/inventory.json and
#: file_sd/services.json were re-pinned when issue 13 declared the video conference's further ports
#: and flows (wss, turn-tcp, turn-relay, sip-metrics, media-metrics) in inventory/lab/services.yml:
#: the pre-issue-12 render of that services.yml.
BEFORE_LEVELS = {
    "lab": {
        "ansible/inventory.json": "3630b460234efcbc",
        "prometheus/file_sd/external.json": "37517e5f3dc66819",
        "prometheus/file_sd/nodes.json": "d38f57e14d5bbcf9",
        "prometheus/file_sd/services.json": "2ea82e2cae78e51f",
        "prometheus/file_sd/sites.json": "f4fdb7b6a527c9f6",
        "prometheus/file_sd/videoconf.json": "a2e3ba97dcd71d8d",
    },
    "yenbai": {
        "ansible/inventory.json": "924d5fee19dafd1f",
        "prometheus/file_sd/external.json": "5ccde813cf098c18",
        "prometheus/file_sd/nodes.json": "f8cd6a69537e1bcd",
        "prometheus/file_sd/services.json": "b6836ebc8362f941",
        "prometheus/file_sd/sites.json": "d758ed7139d93587",
        "prometheus/file_sd/videoconf.json": "74a65b86dde5abb7",
    },
}
#: What issue 12 added to the three-level renders: the ``area`` target label and ``dcops_area``
#: host variable (= the district there, so a two-level province can group by the same label), and
#: ``dcops_hub`` on routers (the WireGuard legs follow the declared hubs, not the district tier);
#: and the new tier ``hub`` (a network-only site) has its ``tier_hub`` group, empty in both.
ADDED_BY_LEVELS = ("area", "dcops_area", "dcops_hub")
EMPTY_NEW_GROUP = "tier_hub"
#: Keys added after issue 12 (not restating anything): the rooms' endpoints for the firewall.
ADDED_AFTER_LEVELS = ("dcops_vc_probe",)


def _strip(node: object, seen: dict[str, list[object]]) -> object:
    if isinstance(node, dict):
        for k in ADDED_BY_LEVELS:
            if k in node:
                seen[k].append((node.get("district", node.get("dcops_district")), node.get("dcops_tier"), node[k]))
        if EMPTY_NEW_GROUP in node:
            assert node[EMPTY_NEW_GROUP] == {}, "tier_hub is empty in a province without hub-tier sites"
        return {k: _strip(v, seen) for k, v in node.items() if k not in (*ADDED_BY_LEVELS, *ADDED_AFTER_LEVELS, EMPTY_NEW_GROUP)}
    if isinstance(node, list):
        return [_strip(v, seen) for v in node if v != EMPTY_NEW_GROUP]
    return node


@pytest.mark.parametrize("name,path", [("lab", LAB), ("yenbai", YENBAI)])
def test_three_level_render_is_unchanged_but_for_the_added_labels(name: str, path: Path) -> None:
    """The lab and Yên Bái render byte for byte as before issue 12 once the three added keys are
    taken out, and each added value only restates what was there: area = district, hub = the
    district tier (both provinces declare their district offices as hubs)."""
    import hashlib

    from dcops.render import dump_json

    seen: dict[str, list[object]] = {k: [] for k in ADDED_BY_LEVELS}
    for rel, text in rendered_files(load_inventory(path)).items():
        before = dump_json(_strip(json.loads(text), seen))
        assert hashlib.sha256(before.encode()).hexdigest()[:16] == BEFORE_LEVELS[name][rel], rel
    assert seen["area"] and all(area == district for district, _, area in seen["area"])  # type: ignore[misc]
    assert seen["dcops_area"] and all(area == district for district, _, area in seen["dcops_area"])  # type: ignore[misc]
    assert seen["dcops_hub"] and all(hub == (tier == "district") for _, tier, hub in seen["dcops_hub"])  # type: ignore[misc]


def test_two_level_labels_have_no_district_and_group_by_area() -> None:
    """A province without a district level: no ``district`` label or host variable anywhere, the
    ``area`` label from the sites' areas (``province`` for a site without one), Ansible groups
    area_* under the province, a commune without an area directly under it, the hubs' routers
    marked for the WireGuard legs."""
    files = rendered_files(load_inventory(TWOLEVEL))
    for rel in ("sites.json", "nodes.json", "services.json", "videoconf.json"):
        for g in json.loads(files[f"prometheus/file_sd/{rel}"]):
            assert "district" not in g["labels"], (rel, g)
            assert g["labels"]["area"] in {"luc-yen", "van-yen", "province"}
    sites = {g["labels"]["site"]: g["labels"] for g in json.loads(files["prometheus/file_sd/sites.json"])}
    assert sites["pop-van-yen"] == {"site": "pop-van-yen", "area": "van-yen", "tier": "hub", "datanet": "true"}
    assert sites["mau-a"]["area"] == "province"
    inv = json.loads(files["ansible/inventory.json"])
    assert not [h for h, hv in inv["_meta"]["hostvars"].items() if "dcops_district" in hv]
    assert sorted(inv["province_twolevel"]["children"]) == ["area_luc_yen", "area_van_yen", "provincial", "site_mau_a"]
    assert not [g for g in inv if g.startswith("district_")]
    hubs = sorted(h for h, hv in inv["_meta"]["hostvars"].items() if hv.get("dcops_hub"))
    assert hubs == ["luc-yen", "pop-van-yen"]


@pytest.mark.parametrize("path", [LAB, YENBAI, TWOLEVEL])
def test_render_is_deterministic_across_loads(path: Path) -> None:
    first = rendered_files(load_inventory(path))
    second = rendered_files(load_inventory(path))
    assert first == second


def test_file_sd_labels_every_target() -> None:
    files = rendered_files(load_inventory(LAB))
    sites = json.loads(files["prometheus/file_sd/sites.json"])
    inv = load_inventory(LAB)
    assert len(sites) == len(inv.sites)
    by_site = {g["labels"]["site"]: g for g in sites}
    assert by_site["dai-son"]["labels"] == {
        "site": "dai-son", "district": "van-yen", "area": "van-yen", "tier": "commune", "datanet": "true"
    }
    assert by_site["dai-son"]["targets"] == ["10.251.21.1"]
    assert by_site["dc"]["labels"]["district"] == "province"
    nodes = json.loads(files["prometheus/file_sd/nodes.json"])
    assert sorted(g["labels"]["host"] for g in nodes) == sorted(h.name for _, h in inv.hosts())
    assert all(g["targets"][0].endswith(":9100") and g["targets"][0].startswith("10.250.0.") for g in nodes)


def _ansible(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "playbooks" / "ansible.cfg"), "ANSIBLE_LOCAL_TEMP": "/tmp"}
    exe = VENV_BIN / "ansible-inventory"
    if not exe.exists():
        exe = Path(sys.executable).parent / "ansible-inventory"
    return subprocess.run([str(exe), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_ansible_inventory_graph_shows_hierarchy_and_roles() -> None:
    r = _ansible("-i", "inventory/lab", "--graph")
    assert r.returncode == 0, r.stderr
    assert "WARNING" not in r.stderr, r.stderr
    lines = r.stdout.splitlines()
    # province -> district -> site -> host, by indentation
    i = lines.index("  |--@province_lab:")
    j = lines.index("  |  |--@district_van_yen:", i)
    k = lines.index("  |  |  |--@site_dai_son:", j)
    assert lines[k + 1] == "  |  |  |  |--dai-son"
    assert "  |  |--@provincial:" in lines[i:]
    for group in ("@role_mail:", "@role_router:", "@service_mail:", "@tier_commune:"):
        assert f"  |--{group}" in lines


def _plain(data: object) -> object:
    """Drop Ansible's untrusted-string wrapping ({"__ansible_unsafe": s}) from --list output."""
    if isinstance(data, dict):
        if set(data) == {"__ansible_unsafe"}:
            return data["__ansible_unsafe"]
        return {k: _plain(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_plain(v) for v in data]
    return data


def test_ansible_plugin_matches_renderer() -> None:
    r = _ansible("-i", "inventory/lab", "--list")
    assert r.returncode == 0, r.stderr
    got = _plain(json.loads(r.stdout))
    assert isinstance(got, dict)
    from dcops.render.ansible import ansible_inventory

    want = ansible_inventory(load_inventory(LAB))
    for host, hv in want["_meta"]["hostvars"].items():
        assert {k: got["_meta"]["hostvars"][host][k] for k in hv} == hv, host
    assert got["_meta"]["hostvars"]["dc-mail"]["ansible_host"] == "10.250.0.11"
    for g in ("site_dc", "role_router", "service_mail"):
        assert sorted(got[g]["hosts"]) == want[g]["hosts"]


def test_ansible_plugin_reports_invalid_inventory(tmp_path: Path) -> None:
    bad = tmp_path / "inv"
    bad.mkdir()
    for f in LAB.glob("*.yml"):
        (bad / f.name).write_text(f.read_text(encoding="utf-8").replace("parent: van-yen", "parent: nowhere"))
    r = _ansible("-i", str(bad), "--list")
    assert r.returncode != 0
    assert "parent site 'nowhere' does not exist" in r.stderr
    assert "sites.yml:" in r.stderr


@pytest.mark.parametrize("path", [LAB, TWOLEVEL])
def test_inventory_dir_is_the_province_folder_whatever_its_subfolders(path: Path) -> None:
    """A province's non-inventory folders (the audit's waivers in inventory/lab/audit/, secrets)
    are no inventory source: Ansible took ``inventory_dir`` (the mail role's inventory) from the
    first source that added a host, and ``audit/`` sorts first. The debug action runs on the
    controller only: no host is contacted."""
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "playbooks" / "ansible.cfg"), "ANSIBLE_LOCAL_TEMP": "/tmp"}
    exe = VENV_BIN / "ansible"
    if not exe.exists():
        exe = Path(sys.executable).parent / "ansible"
    r = subprocess.run([str(exe), "-i", str(path), "all", "-m", "ansible.builtin.debug", "-a", "var=inventory_dir",
                        "-o"], cwd=ROOT / "playbooks", env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    dirs = set(re.findall(r'"inventory_dir": "([^"]+)"', r.stdout))
    assert dirs == {str(path)}, r.stdout
