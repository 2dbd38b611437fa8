"""Administrative levels as data (issue 12): a two-level province validates, and what does not fit
its declared structure is refused with the file, the line and the reason."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dcops.inventory import load
from dcops.inventory.topology import Topology
from tests.conftest import TWOLEVEL
from tests.unit.test_validation import assert_only, line_of, mutate, problems


@pytest.fixture
def inv(tmp_path: Path) -> Path:
    """A private copy of the two-level lab inventory."""
    d = tmp_path / "inv"
    shutil.copytree(TWOLEVEL, d)
    return d


def test_two_level_province_validates_with_hubs_from_the_circuits() -> None:
    inv = load(TWOLEVEL).inventory
    assert inv.province.levels == ["province", "commune"] and not inv.districts
    assert {s.name for s in inv.sites if s.hub} == {"luc-yen", "pop-van-yen"}
    t = Topology.of(inv)
    # the network tree: data centre → the two hubs → the communes; dai-son has two paths
    assert t.behind("luc-yen") == ["khanh-hoa", "phuc-loi"]
    assert t.behind("pop-van-yen") == ["mau-a"]
    assert "dai-son" in t.dual_path()
    assert set(t.aggregation_points()) == {s.name for s in inv.sites if s.hub}


def test_commune_declaring_a_district_is_refused(inv: Path) -> None:
    line = mutate(inv, "sites.yml", "    area: van-yen\n    placeholder: true\n    subnet: 10.241.21.0/24\n",
                  "    area: van-yen\n    district: van-yen\n    placeholder: true\n    subnet: 10.241.21.0/24\n")
    assert_only(inv, "sites.yml", "sites[5].district", line, "in a province without a district level")


def test_districts_section_in_a_two_level_province_is_refused(inv: Path) -> None:
    (inv / "zz-districts.yml").write_text("districts:\n  - {name: van-yen, display_name: Huyện Văn Yên, kind: district}\n")
    assert_only(inv, "zz-districts.yml", "districts[0].name", 2, "a district in a province without a district level")


def test_district_tier_in_a_two_level_province_is_refused(inv: Path) -> None:
    line = mutate(inv, "sites.yml", "    tier: hub\n", "    tier: district\n")
    assert_only(inv, "sites.yml", "sites[2].tier", line, "a district site in a province without a district level")


def test_commune_with_an_administrative_parent_is_refused(inv: Path) -> None:
    line = mutate(inv, "sites.yml", "    tier: commune\n    placeholder: true\n    subnet: 10.241.22.0/24\n",
                  "    tier: commune\n    parent: luc-yen\n    placeholder: true\n    subnet: 10.241.22.0/24\n")
    assert_only(inv, "sites.yml", "sites[6].parent", line, "its parent is the province itself")


def test_hub_with_no_circuit_is_refused(inv: Path) -> None:
    text = (inv / "circuits.yml").read_text()
    kept = [x for x in text.splitlines(keepends=True) if "pop-van-yen" not in x]
    (inv / "circuits.yml").write_text("".join(kept))
    # without its circuits the hub and mau-a are cut off; dai-son still has its radio circuit
    found = problems(inv)
    lines = (inv / "sites.yml").read_text().splitlines()
    hub_line = [i + 1 for i, x in enumerate(lines) if x == "    hub: true"][1]
    reasons = sorted((p.file.name, p.line, p.reason) for p in found)
    assert ("sites.yml", hub_line, "hub 'pop-van-yen' has no circuit: a hub aggregates circuits") in reasons
    cut = [r for r in reasons if "no circuit path reaches the data centre" in r[2]]
    assert [r[2].split("'")[1] for r in cut] == ["mau-a"], reasons  # the hub itself is reported once, as a hub


def test_unknown_level_is_refused(inv: Path) -> None:
    line = mutate(inv, "province.yml", "  levels: [province, commune]\n", "  levels: [province, ward]\n")
    p = assert_only(inv, "province.yml", "province.levels[1]", line, "")
    assert "'province', 'district' or 'commune'" in p.reason, p.reason


def test_levels_out_of_order_are_refused(inv: Path) -> None:
    line = mutate(inv, "province.yml", "  levels: [province, commune]\n", "  levels: [commune, province]\n")
    p = assert_only(inv, "province.yml", "province", line_of(inv, "province.yml", r"^province:$"), "levels")
    assert "is not an administrative structure dcops knows" in p.reason and line > 0


def test_unknown_area_is_refused(inv: Path) -> None:
    line = mutate(inv, "sites.yml", "    tier: hub\n    area: van-yen\n", "    tier: hub\n    area: van-yem\n")
    assert_only(inv, "sites.yml", "sites[2].area", line, "unknown area 'van-yem' (areas: luc-yen, van-yen)")


def test_area_selector_reaches_the_firewall_grammar(inv: Path) -> None:
    mutate(inv, "services.yml", "from: [service:mail]}", "from: [service:mail, area:luc-yen]}")
    assert [f.from_ for f in load(inv).inventory.flows if f.to == "backup"] == [["service:mail", "area:luc-yen"]]
    mutate(inv, "services.yml", "area:luc-yen]}", "area:nowhere]}")
    assert any("unknown area 'nowhere'" in p.reason for p in problems(inv))
