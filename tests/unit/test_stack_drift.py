"""`dcops stack drift`: a real stack's outputs against the inventory."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from dcops.cli import app
from dcops.inventory import load
from dcops.stacks.drift import DriftInputError, drift, read_outputs
from dcops.stacks.plan import plan_program
from tests.unit.stack_support import PROGRAM, ROOT

LAB = ROOT / "inventory" / "lab"


@pytest.fixture(scope="module")
def outputs() -> dict[str, Any]:
    """What `pulumi stack output --json` prints for the lab stack (the plan's exports)."""
    return plan_program(LAB, PROGRAM).outputs


def test_outputs_of_the_plan_have_no_drift(outputs: dict[str, Any], tmp_path: Path) -> None:
    f = tmp_path / "outputs.json"
    f.write_text(json.dumps(outputs), encoding="utf-8")
    assert drift(load(LAB).inventory, read_outputs(f)) == []
    r = CliRunner().invoke(app, ["stack", "drift", str(f), "-i", str(LAB)])
    assert r.exit_code == 0, r.output
    assert "no difference" in r.output


def test_one_moved_and_one_unknown_vm(outputs: dict[str, Any], tmp_path: Path) -> None:
    real = copy.deepcopy(outputs)
    assert real["hosts"]["dc-vc"]["node"] == "pve-lab-1"
    real["hosts"]["dc-vc"]["node"] = "pve-lab-2"  # HA or an operator moved it
    real["hosts"]["dc-old"] = {"vmId": 2599, "node": "pve-lab-1", "site": "dc", "macAddresses": ["02:DC:00:0A:27:00"],
                               "addresses": {"management": "10.250.0.99", "lan": "10.251.0.99"}}
    f = tmp_path / "outputs.json"
    f.write_text(json.dumps(real, indent=2), encoding="utf-8")
    diffs = drift(load(LAB).inventory, read_outputs(f))
    assert [(d.host, d.kind) for d in diffs] == [("dc-old", "unknown-vm"), ("dc-vc", "moved")]
    assert diffs[1].message == "dc-vc: on node pve-lab-2, the inventory places it on pve-lab-1"
    r = CliRunner().invoke(app, ["stack", "drift", str(f), "-i", str(LAB), "--json"])
    assert r.exit_code == 1
    data = json.loads(r.stdout)
    assert [(d["host"], d["kind"]) for d in data["differences"]] == [("dc-old", "unknown-vm"), ("dc-vc", "moved")]


def test_every_other_kind_of_difference(outputs: dict[str, Any]) -> None:
    real = copy.deepcopy(outputs["hosts"])
    del real["dc-web"]
    real["dc-mail"]["vmId"] = 9999
    real["dc-core"]["macAddresses"] = real["dc-core"]["macAddresses"][:1]
    real["dc-vc"]["addresses"]["lan"] = "10.251.0.33"
    kinds = [(d.host, d.kind) for d in drift(load(LAB).inventory, real)]
    assert kinds == [("dc-web", "missing-vm"), ("dc-core", "mac-addresses"), ("dc-mail", "vm-id"), ("dc-vc", "addresses")]


@pytest.mark.parametrize("text, reason", [
    ("{not json", "not JSON"),
    ('{"province": "lab"}', "no 'hosts' mapping"),
    ('{"hosts": {"dc-core": 3}}', "hosts.dc-core: expected a mapping"),
])
def test_bad_outputs_file(tmp_path: Path, text: str, reason: str) -> None:
    f = tmp_path / "out.json"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(DriftInputError, match=reason):
        read_outputs(f)
    r = CliRunner().invoke(app, ["stack", "drift", str(f), "-i", str(LAB)])
    assert r.exit_code == 2
