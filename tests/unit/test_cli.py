"""The CLI: counts of the real province, JSON output, rendering writes nothing on bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from dcops.cli import app
from tests.conftest import LAB, YENBAI

runner = CliRunner()


def test_check_yenbai_prints_published_figures() -> None:
    r = runner.invoke(app, ["inventory", "check", str(YENBAI), "--json"])
    assert r.exit_code == 0, r.output
    c = json.loads(r.stdout)["counts"]
    assert c["districts"] == 9
    assert c["datanet_sites"] == 105
    by_tier = c["datanet_sites_by_tier"]
    assert by_tier["department"] + by_tier["district"] == 31
    assert by_tier["district"] == 9
    assert by_tier["commune"] == 71
    assert by_tier["centre"] == 3
    assert c["videoconf_endpoints_by_tier"]["commune"] == 108
    assert c["videoconf_endpoints_by_tier"]["district"] == 9
    assert c["mail_agencies"] == 42
    assert c["mail_accounts"] == 3319


def test_check_human_output_names_the_figures() -> None:
    r = runner.invoke(app, ["inventory", "check", str(YENBAI)])
    assert r.exit_code == 0, r.output
    for needle in ("data-network sites", "105", "3,319", "42"):
        assert needle in r.output


def test_show_json_lists_every_site() -> None:
    r = runner.invoke(app, ["inventory", "show", "-i", str(LAB), "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert [s["name"] for s in data["sites"]] == ["dc", "luc-yen", "van-yen", "an-phu", "khanh-hoa", "dai-son", "mau-a"]
    assert data["per_district"]["van-yen"] == {"district": 1, "commune": 2}


def test_show_human_has_tables() -> None:
    r = runner.invoke(app, ["inventory", "show", "-i", str(YENBAI)])
    assert r.exit_code == 0, r.output
    for needle in ("Sites per district and tier", "Services", "Addresses", "Mù Cang Chải"):
        assert needle in r.output


def test_ansible_host_and_unknown_host() -> None:
    r = runner.invoke(app, ["inventory", "ansible", "-i", str(LAB), "--host", "mau-a"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["dcops_loopback"] == "10.253.0.32"
    r = runner.invoke(app, ["inventory", "ansible", "-i", str(LAB), "--host", "nope"])
    assert r.exit_code == 1
    assert "no host 'nope'" in r.output


def test_render_writes_files_and_nothing_when_invalid(tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = runner.invoke(app, ["inventory", "render", "-i", str(LAB), "-o", str(out), "--json"])
    assert r.exit_code == 0, r.output
    written = json.loads(r.stdout)["files"]
    assert "prometheus/file_sd/sites.json" in written
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    bad = tmp_path / "bad"
    shutil.copytree(LAB, bad)
    text = (bad / "circuits.yml").read_text(encoding="utf-8")
    (bad / "circuits.yml").write_text(text.replace("b: mau-a", "b: mau-b"), encoding="utf-8")
    r = runner.invoke(app, ["inventory", "render", "-i", str(bad), "-o", str(out)])
    assert r.exit_code == 2
    assert "circuit to unknown site 'mau-b'" in r.output
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before, "an invalid inventory changed rendered files"


def test_every_command_has_help() -> None:
    for cmd in ([], ["inventory"], ["inventory", "check"], ["inventory", "show"], ["inventory", "render"],
                ["inventory", "ansible"], ["lab"], ["main"]):
        r = runner.invoke(app, [*cmd, "--help"])
        assert r.exit_code == 0, (cmd, r.output)
        assert "Usage" in r.output
