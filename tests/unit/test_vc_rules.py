"""The videoconf alert rules pass promtool's own unit tests (monitors/tests/videoconf.test.yml)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import ROOT

MONITORS = ROOT / "monitors"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="needs promtool (Debian's prometheus)")
def test_videoconf_rules_check_and_their_promtool_tests_pass() -> None:
    check = subprocess.run(["promtool", "check", "rules", str(MONITORS / "rules" / "videoconf.rules.yml")],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    test = subprocess.run(["promtool", "test", "rules", "videoconf.test.yml"], cwd=MONITORS / "tests",
                          capture_output=True, text=True, timeout=60)
    assert test.returncode == 0, test.stdout + test.stderr


def test_scrape_jobs_come_from_the_inventory_and_label_every_room() -> None:
    from dcops.inventory import load
    from dcops.vc import scrape
    from dcops.vc.accounts import accounts
    from tests.conftest import LAB

    inv = load(LAB).inventory
    jobs = {j["job_name"]: j for j in scrape.jobs(inv)}
    assert set(jobs) == {"dcops-vc-kamailio", "dcops-vc-rtpengine"}
    vc = inv.host(inv.service("videoconf").hosts[0])[1]
    ports = {p.name: p.port for p in inv.service("videoconf").ports}
    assert jobs["dcops-vc-kamailio"]["static_configs"][0]["targets"] == [f"{vc.address}:{ports['sip-metrics']}"]
    assert jobs["dcops-vc-rtpengine"]["static_configs"][0]["targets"] == [f"{vc.address}:{ports['media-metrics']}"]
    relabel = jobs["dcops-vc-kamailio"]["metric_relabel_configs"]
    for a in accounts(inv):
        got = {r["target_label"]: r["replacement"] for r in relabel if r["regex"] == a.site}
        assert got["tier"] == a.tier and got.get("district") == a.district
