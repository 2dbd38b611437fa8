"""`dcops inventory merge`: every clash reported with file and line in both inventories, nothing
written while there is one; two clash-free provinces merge into one that validates."""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from dcops.cli import app
from dcops.inventory import load
from dcops.inventory.merge import ClashError, clashes, write
from dcops.inventory.model import Tier
from dcops.inventory.topology import Topology
from tests.conftest import LAB

ADDR = re.compile(r"(?<![\d.])(\d{1,3}(?:\.\d{1,3}){3})(?![\d./])")
CIDR = re.compile(r"(?<![\d.])(\d{1,3}(?:\.\d{1,3}){3}/\d{1,2})")


def _renamed_copy(tmp: Path) -> Path:
    """The lab under another province code and name: everything else is the same."""
    d = tmp / "lab-renamed"
    shutil.copytree(LAB, d)
    f = d / "province.yml"
    f.write_text(f.read_text().replace("  code: lab\n", "  code: lab-copy\n"))
    return d


def test_renamed_copy_reports_every_clash(tmp_path: Path) -> None:
    b = _renamed_copy(tmp_path)
    a_loaded, b_loaded = load(LAB), load(b)
    found = clashes(a_loaded, b_loaded)
    inv = a_loaded.inventory
    by_kind: dict[str, set[str]] = {}
    for c in found:
        by_kind.setdefault(c.kind, set()).add(c.what)
        assert c.a.file.parent == LAB and c.b.file.parent == b and c.a.line and c.b.line, c
        assert (c.a.file.name, c.a.line) == (c.b.file.name, c.b.line), f"a copy clashes with itself line for line: {c}"
    names = {f"site {s.name!r}" for s in inv.sites} | {f"host {h.name!r}" for _, h in inv.hosts()}
    names |= {f"service {s.name!r}" for s in inv.services} | {f"agency {x.name!r}" for x in inv.agencies}
    names |= {f"district {x.name!r}" for x in inv.districts}
    assert by_kind["name"] == names
    # every address and every network typed in the files, found by reading the text itself
    text = "\n".join(p.read_text() for p in sorted(LAB.glob("*.yml")))
    typed = {m for m in ADDR.findall(text)} - {str(inv.province.controller)}
    assert {w.split()[-1] for w in by_kind["address"]} == typed
    nets = set(CIDR.findall(text)) - {str(r.cidr) for r in inv.province.address_ranges}
    nets -= {str(inv.province.management_network)}
    assert {w.split()[0] for w in by_kind["subnet"]} == nets
    domains = {inv.province.domain} | {x.domain for x in inv.agencies}
    assert {w.split("'")[1] for w in by_kind["domain"]} == domains
    assert set(by_kind) == {"name", "address", "subnet", "domain"}


def test_cli_lists_every_clash_and_writes_nothing(tmp_path: Path) -> None:
    b = _renamed_copy(tmp_path)
    out = tmp_path / "merged"
    r = CliRunner().invoke(app, ["inventory", "merge", str(LAB), str(b), "-o", str(out)])
    assert r.exit_code == 2
    n = len(clashes(load(LAB), load(b)))
    assert f"{n} clashes between" in r.output and "nothing was written" in r.output
    assert f"{LAB}/sites.yml:4 and {b}/sites.yml:4: name clash: site 'dc'" in r.output.replace("\n  ", " ")
    assert not out.exists() and not list(tmp_path.glob(".merged.*"))
    r = CliRunner().invoke(app, ["inventory", "merge", str(LAB), str(b), "-o", str(out), "--json"])
    data = json.loads(r.stdout)
    assert r.exit_code == 2 and data["ok"] is False and len(data["clashes"]) == n
    assert {"kind", "what", "a", "b"} <= set(data["clashes"][0])


# --- a clash-free second province -------------------------------------------------------
def _renumber(s: str) -> str:
    """B's own address plan: 10.251-253 -> 10.246-248, management .N -> .N+100 (in A's network)."""
    s = re.sub(r"\b10\.25([123])\.", lambda m: f"10.24{int(m.group(1)) + 5}.", s)
    n = lambda m: int(m.group(1))  # noqa: E731
    return re.sub(r"\b10\.250\.0\.(\d+)\b", lambda m: f"10.250.0.{n(m) + 100}" if n(m) >= 10 else m.group(0), s)


def _other_province(tmp: Path) -> Path:
    """The lab as a second, clash-free province: every name prefixed, every address renumbered,
    every domain moved, structurally edited (YAML in, YAML out), not by hand."""
    # (not platform.yml: its VMs are keyed by host name, and B needs no platform to be a province)
    data = {p.name: yaml.safe_load(p.read_text()) for p in sorted(LAB.glob("*.yml")) if p.name != "platform.yml"}
    names = {s["name"] for s in data["sites.yml"]["sites"]}
    names |= {h["name"] for s in data["sites.yml"]["sites"] for h in s.get("hosts", [])}
    names |= {x["name"] for x in data["services.yml"]["services"]} | {x["name"] for x in data["mail.yml"]["agencies"]}
    names |= {x["name"] for x in data["province.yml"]["districts"]}

    def walk(node: Any, key: str = "", in_ports: bool = False) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, k, in_ports or key == "ports") for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, key, in_ports) for v in node]
        if not isinstance(node, str):
            return node
        refs = ("name", "a", "b", "to", "site", "parent", "district", "hosts", "uses", "agency")
        if not in_ports and key in refs and node in names:
            return f"b-{node}"
        if key == "from" and ":" in node:
            kind, _, arg = node.partition(":")
            return f"{kind}:b-{arg}" if arg in names else node
        return _renumber(node.replace("lab.test", "labb.test"))

    d = tmp / "labb"
    d.mkdir()
    for name, doc in data.items():
        doc = walk(doc)
        if "province" in doc:
            doc["province"].update(code="labb", name="Tỉnh B (lab)")
            doc["province"]["address_ranges"] = [r for r in doc["province"]["address_ranges"] if r["name"] != "management"]
            doc["province"]["address_ranges"].append({"name": "management", "cidr": "10.250.0.0/24"})
        (d / name).write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))
    load(d)  # B is a valid province on its own
    return d


def test_clash_free_provinces_merge_into_one_that_validates(tmp_path: Path) -> None:
    b = _other_province(tmp_path)
    assert clashes(load(LAB), load(b)) == []
    out = tmp_path / "merged"
    r = CliRunner().invoke(app, ["inventory", "merge", str(LAB), str(b), "-o", str(out), "--link-subnet", "10.247.0.252/30"])
    assert r.exit_code == 0, r.output
    merged = load(out).inventory
    a_inv, b_inv = load(LAB).inventory, load(b).inventory
    assert len(merged.sites) == len(a_inv.sites) + len(b_inv.sites)
    assert len(merged.circuits) == len(a_inv.circuits) + len(b_inv.circuits) + 1
    assert [s.name for s in merged.sites if s.tier is Tier.DATACENTRE] == ["dc"]
    assert merged.site("b-dc").tier is Tier.HUB and merged.site("b-dc").hub
    assert merged.province.code == "lab" and len(merged.mailboxes()) == len(a_inv.mailboxes()) + len(b_inv.mailboxes())
    t = Topology.of(merged)
    assert t.unreachable() == [] and set(t.behind("b-dc")) == {s.name for s in b_inv.sites} - {"b-dc"}
    assert ipaddress.ip_network("10.246.0.0/16") in [x.cidr for x in merged.province.address_ranges]
    assert merged.platform is not None and merged.platform == a_inv.platform  # A's data centre keeps its platform


def test_without_a_link_the_merge_says_what_is_missing_and_writes_nothing(tmp_path: Path) -> None:
    b = _other_province(tmp_path)
    out = tmp_path / "merged"
    r = CliRunner().invoke(app, ["inventory", "merge", str(LAB), str(b), "-o", str(out)])
    assert r.exit_code == 2
    assert "no circuit path reaches the data centre" in r.output and "--link-subnet" in r.output
    assert not out.exists() and not list(tmp_path.glob(".merged.*"))


@pytest.mark.parametrize("bad", ["existing-file", "non-empty", "no-parent"])
def test_bad_output_paths_are_refused(tmp_path: Path, bad: str) -> None:
    b = _other_province(tmp_path)
    out = {"existing-file": tmp_path / "f", "non-empty": tmp_path / "d", "no-parent": tmp_path / "x" / "y"}[bad]
    if bad == "existing-file":
        out.write_text("keep me")
    if bad == "non-empty":
        out.mkdir()
        (out / "keep.yml").write_text("keep: me\n")
    with pytest.raises(Exception) as e:
        write(LAB, b, out, ipaddress.ip_network("10.247.0.252/30"))
    assert str(out) in str(e.value) and not isinstance(e.value, ClashError)
    if bad == "existing-file":
        assert out.read_text() == "keep me"
    if bad == "non-empty":
        assert sorted(p.name for p in out.iterdir()) == ["keep.yml"]


def test_invalid_input_is_reported_with_its_file_and_line(tmp_path: Path) -> None:
    b = _renamed_copy(tmp_path)
    (b / "circuits.yml").write_text((b / "circuits.yml").read_text().replace("a: dc, b: luc-yen", "a: dc, b: nowhere"))
    r = CliRunner().invoke(app, ["inventory", "merge", str(LAB), str(b), "-o", str(tmp_path / "m")])
    assert r.exit_code == 2 and "circuits.yml:" in r.output and "nowhere" in r.output
