"""The network tree from the circuits: what cuts each site off, its parents, the dual-path sites."""

from __future__ import annotations

from pathlib import Path

import pytest

from dcops.inventory.loader import load_inventory
from dcops.inventory.topology import Topology

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lab() -> Topology:
    return Topology.of(load_inventory(ROOT / "inventory" / "lab"))


def test_lab_upstream_sets_follow_the_circuits(lab: Topology) -> None:
    up = {s: sorted(v) for s, v in lab.upstream().items()}
    # an-phu and khanh-hoa hang only from luc-yen, mau-a only from van-yen; dai-son has a
    # second circuit, and through it luc-yen and van-yen each have a second path (a ring).
    assert up == {"an-phu": ["luc-yen"], "khanh-hoa": ["luc-yen"], "mau-a": ["van-yen"],
                  "dai-son": [], "luc-yen": [], "van-yen": []}
    assert lab.behind("luc-yen") == ["an-phu", "khanh-hoa"]
    assert lab.behind("dai-son") == []
    assert lab.parents()["dai-son"] == ("luc-yen", "van-yen")
    assert lab.parents()["an-phu"] == ("luc-yen",)
    assert lab.dual_path() == ["dai-son", "luc-yen", "van-yen"]
    assert sorted(lab.upstream_circuits()["an-phu"]) == ["luc-yen--an-phu"]


def test_cuts_are_computed_not_assumed(lab: Topology) -> None:
    assert lab.reachable(cut=["van-yen--dai-son"]) >= {"dai-son"}
    assert "dai-son" not in lab.reachable(cut=["van-yen--dai-son", "luc-yen--dai-son"])
    assert "mau-a" not in lab.reachable(without=["van-yen"])
    assert lab.unreachable() == []


def test_yenbai_every_commune_behind_its_hub() -> None:
    t = Topology.of(load_inventory(ROOT / "inventory" / "yenbai"))
    assert t.unreachable() == []
    up = t.upstream()
    assert len(t.sites) == 105  # the 105 points of the dedicated data network (seed 002)
    assert all(len(v) <= 2 for v in up.values())
    assert "luc-yen" in up["an-phu"]


def test_path_neighbours_are_the_first_hops_of_a_sites_paths(lab: Topology) -> None:
    # dai-son reaches the data centre through either district; an-phu only through luc-yen;
    # luc-yen directly and round the ring through dai-son (an-phu and khanh-hoa hang from it)
    assert lab.path_neighbours("dai-son") == ("luc-yen", "van-yen")
    assert lab.path_neighbours("an-phu") == ("luc-yen",)
    assert lab.path_neighbours("luc-yen") == ("dai-son", "dc")
    assert lab.path_neighbours("dc") == ()
