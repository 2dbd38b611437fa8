"""Every validation rule, each on a copy of the lab inventory with one targeted mutation.

Each test names the exact problem a sysadmin would see: the file, the YAML path, the line
(computed from the mutated text, never hard-coded) and the gist of the reason.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dcops.cli import app
from dcops.inventory import InventoryError, Problem, load
from dcops.inventory.errors import format_path

LAB = Path(__file__).resolve().parents[2] / "inventory" / "lab"
#: A file added to the lab copy; it sorts after the lab's files, so what it duplicates comes first.
EXTRA = "zz-extra.yml"


# --- helpers ------------------------------------------------------------------------------
@pytest.fixture
def inv(tmp_path: Path) -> Path:
    """A private copy of the lab inventory."""
    d = tmp_path / "inv"
    shutil.copytree(LAB, d)
    return d


def mutate(d: Path, filename: str, old: str, new: str) -> int:
    """Replace the one occurrence of ``old`` by ``new`` in ``d/filename``.

    Returns the line (1-based) of the first character where the new text differs from the
    old one: the line a problem about the mutation should name.
    """
    f = d / filename
    text = f.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {filename}, need exactly once"
    start = text.index(old)
    k = 0
    while k < min(len(old), len(new)) and old[k] == new[k]:
        k += 1
    f.write_text(text.replace(old, new), encoding="utf-8")
    return text[: start + k].count("\n") + 1


def add_file(d: Path, filename: str, text: str) -> None:
    (d / filename).write_text(text, encoding="utf-8")


def line_of(d: Path, filename: str, pattern: str) -> int:
    """The line of the one line of ``d/filename`` that matches the regex ``pattern``."""
    lines = (d / filename).read_text(encoding="utf-8").splitlines()
    hits = [i + 1 for i, line in enumerate(lines) if re.search(pattern, line)]
    assert len(hits) == 1, f"{pattern!r} matches lines {hits} of {filename}, need exactly one"
    return hits[0]


def problems(d: Path) -> list[Problem]:
    with pytest.raises(InventoryError) as e:
        load(d)
    assert e.value.problems, "InventoryError with no problems"
    return e.value.problems


@dataclass(frozen=True)
class Expect:
    file: str
    path: str
    line: int | None
    reason: str

    def matches(self, p: Problem) -> bool:
        return p.file.name == self.file and format_path(p.path) == self.path and p.line == self.line and self.reason in p.reason


def assert_only(d: Path, file: str, path: str, line: int | None, reason: str) -> Problem:
    """Loading ``d`` fails with exactly this one problem (no cascade of follow-ups)."""
    found = problems(d)
    listing = "\n".join(str(p) for p in found)
    assert len(found) == 1, f"expected one problem, got {len(found)}:\n{listing}"
    want = Expect(file, path, line, reason)
    assert want.matches(found[0]), f"expected {want}, got:\n{listing}"
    return found[0]


# --- the good inventory -------------------------------------------------------------------
def test_lab_inventory_is_valid() -> None:
    loaded = load(LAB)
    inv = loaded.inventory
    assert (len(inv.districts), len(inv.sites), len(inv.circuits)) == (2, 7, 7)
    # 11 services, 12 flows: the backup service and its flow from the mail service (issue 11)
    assert (len(inv.services), len(inv.flows), len(inv.agencies)) == (11, 14, 3)  # +2 videoconf flows (issue 13)
    assert sorted(p.name for p in loaded.files) == [
        "circuits.yml",
        "mail.yml",
        "platform.yml",
        "province.yml",
        "services.yml",
        "sites.yml",
    ]
    # origins point at the item's first line
    o = loaded.origin("sites", 6)
    assert (o.file.name, o.line) == ("sites.yml", line_of(LAB, "sites.yml", r"^  - name: mau-a$"))


def test_unchanged_copy_is_valid(inv: Path) -> None:
    load(inv)


# --- YAML and file structure --------------------------------------------------------------
def test_yaml_syntax_error(inv: Path) -> None:
    line = mutate(inv, "sites.yml", "    tier: datacentre\n", "    tier: datacentre: x\n")
    assert_only(inv, "sites.yml", "(top level)", line, "YAML syntax error")


def test_yaml_unclosed_flow_mapping_names_a_line(inv: Path) -> None:
    opened = line_of(inv, "circuits.yml", "b: luc-yen,")
    unclosed = mutate(inv, "circuits.yml", "1000}\n  - {a: dc, b: van-yen", "1000\n  - {a: dc, b: van-yen")
    assert unclosed == opened
    # the parser trips on the next line and names both
    assert_only(
        inv,
        "circuits.yml",
        "(top level)",
        opened + 1,
        f"(while parsing a flow mapping started on line {opened})",  # libyaml and pure-Python agree here
    )


def test_recursive_alias_is_a_problem_not_a_crash(inv: Path) -> None:
    add_file(inv, EXTRA, "# loops\ndistricts: &d\n  - *d\n")
    assert_only(inv, EXTRA, "(top level)", 2, "alias")  # the anchor's line


def test_duplicate_key(inv: Path) -> None:
    line = mutate(
        inv,
        "sites.yml",
        "    display_name: Trung tâm Dữ liệu tỉnh (lab)\n",
        "    display_name: Trung tâm Dữ liệu tỉnh (lab)\n    display_name: DC again\n",
    )
    assert line == line_of(inv, "sites.yml", "DC again")
    assert_only(inv, "sites.yml", "sites[0].display_name", line, "duplicate key 'display_name'")


def test_top_level_not_a_mapping(inv: Path) -> None:
    add_file(inv, "circuits.yml", "# a list, not a mapping of sections\n- {a: dc, b: luc-yen}\n")
    assert_only(inv, "circuits.yml", "(top level)", 2, "expected a mapping of sections")


def test_unknown_section(inv: Path) -> None:
    line = mutate(inv, "mail.yml", "\nagencies:\n", "\nagency:\n")
    assert_only(inv, "mail.yml", "agency", line, "unknown section 'agency'")


def test_section_not_a_list(inv: Path) -> None:
    add_file(inv, EXTRA, "\nflows: {to: dns, ports: [dns-udp], from: [all-sites]}\n")
    assert_only(inv, EXTRA, "flows", 2, "section 'flows' must be a list")


def test_empty_and_non_data_files_are_ignored(inv: Path) -> None:
    add_file(inv, "empty.yml", "# nothing yet\n")
    add_file(inv, "ansible.yml", "plugin: dcops_province\n")
    assert "empty.yml" in [f.name for f in load(inv).files]


def test_not_a_directory(tmp_path: Path) -> None:
    (p,) = problems(tmp_path / "missing")
    assert "not a directory" in p.reason


def test_directory_without_yaml(tmp_path: Path) -> None:
    (p,) = problems(tmp_path)
    assert "no *.yml files" in p.reason


# --- keys -----------------------------------------------------------------------------------
UNKNOWN_KEYS = [
    # (file, anchor text, inserted/changed text, expected path, the bad key)
    ("province.yml", "  lab: true\n", "  lab: true\n  colour: blue\n", "province.colour", "colour"),
    (
        "province.yml",
        "      full_name: dcops lab administrator\n",
        "      full_name: dcops lab administrator\n      ssh_key: x\n",
        "province.admins[0].ssh_key",
        "ssh_key",
    ),
    (
        "province.yml",
        "      purpose: router IDs (/32)\n",
        "      purpose: router IDs (/32)\n      size: 256\n",
        "province.address_ranges[3].size",
        "size",
    ),
    (
        "province.yml",
        "    display_name: Huyện Văn Yên\n    kind: district\n",
        "    display_name: Huyện Văn Yên\n    kind: district\n    knd: x\n",
        "districts[1].knd",
        "knd",
    ),
    ("sites.yml", "    tier: datacentre\n", "    tier: datacentre\n    teir: district\n", "sites[0].teir", "teir"),
    (
        "sites.yml",
        "        roles: [mail]\n",
        "        roles: [mail]\n        adress: 10.251.0.9\n",
        "sites[0].hosts[1].adress",
        "adress",
    ),
    (
        "sites.yml",
        "      room: Phòng họp xã An Phú\n",
        "      room: Phòng họp xã An Phú\n      endpont: 10.251.11.21\n",
        "sites[3].videoconf.endpont",
        "endpont",
    ),
    (
        "circuits.yml",
        "b_address: 10.252.0.2, bandwidth_mbps: 1000}",
        "b_address: 10.252.0.2, bandwith_mbps: 1000}",
        "circuits[0].bandwith_mbps",
        "bandwith_mbps",
    ),
    (
        "services.yml",
        "{name: ntp, proto: udp, port: 123}",
        "{name: ntp, proto: udp, port: 123, protocol: udp}",
        "services[1].ports[0].protocol",
        "protocol",
    ),
    (
        "services.yml",
        "{to: ntp, ports: [ntp], from: [all-sites, datacentre]}",
        "{to: ntp, ports: [ntp], from: [all-sites, datacentre], form: [x]}",
        "flows[1].form",
        "form",
    ),
    (
        "mail.yml",
        "{user: giamdoc, display_name: Giám đốc Sở}",
        "{user: giamdoc, display_name: Giám đốc Sở, quota: 5}",
        "agencies[0].accounts[0].quota",
        "quota",
    ),
]


@pytest.mark.parametrize(("file", "old", "new", "path", "key"), UNKNOWN_KEYS, ids=[u[3] for u in UNKNOWN_KEYS])
def test_unknown_key(inv: Path, file: str, old: str, new: str, path: str, key: str) -> None:
    line = mutate(inv, file, old, new)
    assert_only(inv, file, path, line, f"unknown key {key!r} (a typo?)")


MISSING_KEYS = [
    # (file, removed text, expected path, regex of the line named, offset from that line):
    # a missing key is reported on the line of the mapping that lacks it
    ("province.yml", "  controller: 10.250.0.1\n", "province.controller", r"^province:$", 0),
    ("province.yml", "    display_name: Huyện Lục Yên\n", "districts[0].display_name", r"^  - name: luc-yen$", 0),
    ("sites.yml", "    display_name: UBND xã Khánh Hòa\n", "sites[4].display_name", r"^  - name: khanh-hoa$", 0),
    ("sites.yml", "        management: 10.250.0.32\n", "sites[4].hosts[0].management", r"^      - name: khanh-hoa$", 0),
    # the 'videoconf:' key, just above what is left of the mapping
    ("sites.yml", "      room: Phòng họp xã An Phú\n", "sites[3].videoconf.room", r"endpoint: 10.251.11.20", -1),
    ("circuits.yml", ", subnet: 10.252.0.20/30", "circuits[5].subnet", r"b: mau-a", 0),
    ("services.yml", "    type: ntp\n", "services[1].type", r"^  - name: ntp$", 0),
    ("services.yml", "ports: [ntp], ", "flows[1].ports", r"to: ntp,", 0),
    (
        "mail.yml",
        "    mailboxes: 10\n    quota_mb: 512\n    accounts:\n      - {user: giamdoc",
        "agencies[0].mailboxes",
        r"^  - name: so-tttt$",
        0,
    ),
]


@pytest.mark.parametrize(("file", "removed", "path", "line_re", "offset"), MISSING_KEYS, ids=[m[2] for m in MISSING_KEYS])
def test_missing_required_key(inv: Path, file: str, removed: str, path: str, line_re: str, offset: int) -> None:
    kept = "    quota_mb: 512\n    accounts:\n      - {user: giamdoc" if path == "agencies[0].mailboxes" else ""
    mutate(inv, file, removed, kept)
    key = path.rsplit(".", 1)[-1]
    assert_only(inv, file, path, line_of(inv, file, line_re) + offset, f"missing required key {key!r}")


# --- the province ---------------------------------------------------------------------------
def test_no_province(inv: Path) -> None:
    text = (inv / "province.yml").read_text(encoding="utf-8")
    add_file(inv, "province.yml", text[text.index("\ndistricts:") :])
    found = problems(inv)
    assert len(found) == 1
    assert found[0].file == inv and found[0].line is None
    assert "no file defines the 'province' section" in found[0].reason


def test_two_provinces(inv: Path) -> None:
    text = (inv / "province.yml").read_text(encoding="utf-8")
    add_file(inv, "province2.yml", "# a copy\n" + text[text.index("province:") : text.index("\ndistricts:")])
    # the districts are not copied: only the second 'province' is wrong
    assert_only(inv, "province2.yml", "province", 2, "'province' is already defined in")


def test_controller_outside_management_network(inv: Path) -> None:
    line = mutate(inv, "province.yml", "  controller: 10.250.0.1\n", "  controller: 10.251.9.1\n")
    assert_only(inv, "province.yml", "province.controller", line, "outside the management network")


# --- duplicate names ------------------------------------------------------------------------
EXTRA_SITE = """\
sites:
  - name: {name}
    display_name: Extra site
    tier: department
    parent: dc
    datanet: false
    subnet: 10.251.30.0/24
    gateway: 10.251.30.1
    management: 10.250.0.90
"""

DUPLICATE_NAMES = [
    # (extra file text, expected path, line in extra.yml, reason)
    (
        "districts:\n  - {name: luc-yen, display_name: Again, kind: district}\n",
        "districts[0].name",
        2,
        "duplicate district 'luc-yen' (first defined at ",
    ),
    (EXTRA_SITE.format(name="an-phu"), "sites[0].name", 2, "duplicate site 'an-phu'"),
    (
        EXTRA_SITE.format(name="so-noi-vu").replace("    gateway: 10.251.30.1\n    management: 10.250.0.90\n", "")
        + "    hosts:\n      - {name: dc-mail, address: 10.251.30.1, management: 10.250.0.90}\n",
        "sites[0].hosts[0].name",
        9,
        "duplicate host 'dc-mail'",
    ),
    (
        "services:\n  - {name: ntp, type: ntp, hosts: [dc-core], ports: [{name: ntp, proto: udp, port: 123}]}\n",
        "services[0].name",
        2,
        "duplicate service 'ntp'",
    ),
    (
        "agencies:\n  - {name: so-tttt, display_name: X, domain: other.lab.test, mailboxes: 1}\n",
        "agencies[0].name",
        2,
        "duplicate agency 'so-tttt'",
    ),
    (
        "agencies:\n  - {name: so-noi-vu, display_name: X, domain: lucyen.lab.test, mailboxes: 1}\n",
        "agencies[0].domain",
        2,
        "duplicate mail domain 'lucyen.lab.test'",
    ),
    (
        "services:\n  - name: lgsp\n    type: lgsp\n    hosts: [dc-web]\n    ports:\n"
        "      - {name: api, proto: tcp, port: 8080}\n      - {name: api, proto: tcp, port: 8443}\n",
        "services[0].ports[1].name",
        7,
        "duplicate port of lgsp 'api'",
    ),
]


@pytest.mark.parametrize(("text", "path", "line", "reason"), DUPLICATE_NAMES, ids=[d[3] for d in DUPLICATE_NAMES])
def test_duplicate_name(inv: Path, text: str, path: str, line: int, reason: str) -> None:
    add_file(inv, EXTRA, text)
    p = assert_only(inv, EXTRA, path, line, reason)
    assert "(first defined at " in p.reason  # the message points at the other one


def test_extra_site_fixture_is_valid(inv: Path) -> None:
    """The fixture the tests above and below start from is itself valid."""
    add_file(inv, EXTRA, EXTRA_SITE.format(name="so-noi-vu"))
    assert len(load(inv).inventory.sites) == 8


def test_duplicate_account_in_an_agency(inv: Path) -> None:
    line = mutate(inv, "mail.yml", "{user: giamdoc, display_name: Giám đốc Sở}", "{user: vanthu, display_name: Giám đốc Sở}")
    assert_only(inv, "mail.yml", "agencies[0].accounts[1].user", line + 1, "duplicate account in stttt.lab.test 'vanthu'")


def test_host_named_like_another_site(inv: Path) -> None:
    add_file(inv, EXTRA, EXTRA_SITE.format(name="so-noi-vu"))
    line = mutate(
        inv,
        EXTRA,
        "    gateway: 10.251.30.1\n    management: 10.250.0.90\n",
        "    hosts:\n      - {name: dc, address: 10.251.30.1, management: 10.250.0.90}\n",
    )
    assert_only(inv, EXTRA, "sites[0].hosts[0].name", line + 1, "host name 'dc' is also a site name")


# --- addresses ------------------------------------------------------------------------------
def test_duplicate_management_address(inv: Path) -> None:
    line = mutate(inv, "sites.yml", "management: 10.250.0.12", "management: 10.250.0.11")
    first = line_of(inv, "sites.yml", r"^        roles: \[mail\]$") + 2
    assert_only(
        inv,
        "sites.yml",
        "sites[0].hosts[2].management",
        line,
        f"address 10.250.0.11 is already used at {inv / 'sites.yml'}:{first} (sites[0].hosts[1].management)",
    )


def test_circuit_address_reused(inv: Path) -> None:
    line = mutate(inv, "circuits.yml", "b_address: 10.252.0.6", "b_address: 10.252.0.5")
    assert_only(inv, "circuits.yml", "circuits[1].b_address", line, "address 10.252.0.5 is already used at")


def test_site_address_reused_as_circuit_address(inv: Path) -> None:
    line = mutate(inv, "circuits.yml", "a_address: 10.252.0.25", "a_address: 10.251.1.1")
    found = problems(inv)
    mine = [p for p in found if format_path(p.path) == "circuits[6].a_address"]
    assert mine and all(p.line == line and p.file.name == "circuits.yml" for p in mine)
    assert any("already used at" in p.reason for p in mine)


def test_site_subnets_overlap(inv: Path) -> None:
    mutate(inv, "sites.yml", "subnet: 10.251.22.0/24", "subnet: 10.251.20.0/22")
    assert_only(
        inv,
        "sites.yml",
        "sites[5].subnet",
        line_of(inv, "sites.yml", r"subnet: 10\.251\.21\.0/24"),
        f"subnet 10.251.21.0/24 overlaps {inv / 'sites.yml'}:{line_of(inv, 'sites.yml', '10.251.20.0/22')} (sites[6].subnet)",
    )


def test_circuit_subnet_overlaps_a_site(inv: Path) -> None:
    line = mutate(
        inv,
        "circuits.yml",
        "subnet: 10.252.0.20/30, a_address: 10.252.0.21, b_address: 10.252.0.22",
        "subnet: 10.251.22.32/30, a_address: 10.251.22.33, b_address: 10.251.22.34",
    )
    assert_only(inv, "circuits.yml", "circuits[5].subnet", line, "subnet 10.251.22.32/30 overlaps")


def test_loopback_inside_a_site_lan(inv: Path) -> None:
    line = mutate(inv, "sites.yml", "loopback: 10.253.0.32", "loopback: 10.251.1.99")
    assert_only(inv, "sites.yml", "sites[6].loopback", line, "lies inside 10.251.1.0/24")


ON_LAN = [
    ("address: 10.251.0.4", "address: 10.251.9.4", "sites[0].hosts[3].address", "outside the site's subnet 10.251.0.0/24"),
    ("endpoint: 10.251.11.20", "endpoint: 10.251.111.20", "sites[3].videoconf.endpoint", "outside the site's subnet"),
    ("address: 10.251.0.4", "address: 10.251.0.255", "sites[0].hosts[3].address", "network or broadcast address"),
    ("address: 10.251.0.4", "address: 10.251.0.0", "sites[0].hosts[3].address", "network or broadcast address"),
    ("management: 10.250.0.13", "management: 10.249.0.13", "sites[0].hosts[3].management", "outside the management"),
    ("management: 10.250.0.13", "management: 10.250.0.1", "sites[0].hosts[3].management", "the controller's address"),
]


@pytest.mark.parametrize(("old", "new", "path", "reason"), ON_LAN, ids=[f"{o[2]}={o[1]}" for o in ON_LAN])
def test_site_address(inv: Path, old: str, new: str, path: str, reason: str) -> None:
    line = mutate(inv, "sites.yml", old, new)
    found = problems(inv)
    want = Expect("sites.yml", path, line, reason)
    assert [p for p in found if want.matches(p)], "\n".join(map(str, found))
    if "controller" not in reason:  # reusing the controller's address is also a duplicate
        assert len(found) == 1, "\n".join(map(str, found))


def test_gateway_outside_subnet(inv: Path) -> None:
    add_file(inv, EXTRA, EXTRA_SITE.format(name="so-noi-vu"))
    line = mutate(inv, EXTRA, "gateway: 10.251.30.1", "gateway: 10.251.31.1")
    assert_only(inv, EXTRA, "sites[0].gateway", line, "10.251.31.1 is outside the site's subnet 10.251.30.0/24")


def test_gateway_and_router_host_both_given(inv: Path) -> None:
    line = mutate(inv, "sites.yml", "    loopback: 10.253.0.32\n", "    loopback: 10.253.0.32\n    gateway: 10.251.22.1\n")
    found = problems(inv)
    assert [p for p in found if Expect("sites.yml", "sites[6].gateway", line, "give it once").matches(p)]


def test_site_without_gateway_or_router(inv: Path) -> None:
    add_file(inv, EXTRA, EXTRA_SITE.format(name="so-noi-vu"))
    mutate(inv, EXTRA, "    gateway: 10.251.30.1\n", "")
    line = line_of(inv, EXTRA, r"^  - name: so-noi-vu$")
    assert_only(inv, EXTRA, "sites[0].gateway", line, "needs a 'gateway' address or a router host")


CIRCUIT_ADDRESSES = [
    ("b_address: 10.252.0.26", "b_address: 10.252.0.30", "circuits[6].b_address", "outside the circuit's subnet 10.252.0.24/30"),
    (
        "a_address: 10.252.0.1,",
        "a_address: 10.252.0.0,",
        "circuits[0].a_address",
        "network or broadcast address of 10.252.0.0/30",
    ),
    (
        "b_address: 10.252.0.2,",
        "b_address: 10.252.0.3,",
        "circuits[0].b_address",
        "network or broadcast address of 10.252.0.0/30",
    ),
]


@pytest.mark.parametrize(("old", "new", "path", "reason"), CIRCUIT_ADDRESSES, ids=[c[1] for c in CIRCUIT_ADDRESSES])
def test_circuit_address(inv: Path, old: str, new: str, path: str, reason: str) -> None:
    line = mutate(inv, "circuits.yml", old, new)
    assert_only(inv, "circuits.yml", path, line, reason)


def test_site_subnet_outside_declared_ranges(inv: Path) -> None:
    add_file(inv, EXTRA, EXTRA_SITE.format(name="so-noi-vu").replace("10.251.30.", "10.99.30."))
    assert_only(
        inv,
        EXTRA,
        "sites[0].subnet",
        line_of(inv, EXTRA, "subnet:"),
        "subnet 10.99.30.0/24 is outside the declared address ranges (management 10.250.0.0/24, ",
    )


def test_loopback_outside_declared_ranges(inv: Path) -> None:
    line = mutate(inv, "sites.yml", "loopback: 10.253.0.32", "loopback: 10.254.0.32")
    assert_only(inv, "sites.yml", "sites[6].loopback", line, "outside the declared address ranges")


def test_circuit_subnet_outside_declared_ranges(inv: Path) -> None:
    line = mutate(
        inv,
        "circuits.yml",
        "subnet: 10.252.0.24/30, a_address: 10.252.0.25, b_address: 10.252.0.26",
        "subnet: 10.254.0.24/30, a_address: 10.254.0.25, b_address: 10.254.0.26",
    )
    assert_only(inv, "circuits.yml", "circuits[6].subnet", line, "outside the declared address ranges")


def test_address_ranges_overlap(inv: Path) -> None:
    line = mutate(inv, "province.yml", "cidr: 10.253.0.0/24", "cidr: 10.252.0.128/25")
    found = problems(inv)
    want = Expect("province.yml", "province.address_ranges[3].cidr", line, "overlaps 10.252.0.0/24")
    assert [p for p in found if want.matches(p)], "\n".join(map(str, found))


# --- the hierarchy ----------------------------------------------------------------------------
AN_PHU_PARENT = "    district: luc-yen\n    parent: luc-yen\n    subnet: 10.251.11.0/24\n"

HIERARCHY = [
    ("luc-yem", "sites[3].parent", "parent site 'luc-yem' does not exist"),
    ("dc", "sites[3].parent", "a commune site cannot hang from 'dc' of tier datacentre (allowed: district)"),
    ("van-yen", "sites[3].parent", "commune in district 'luc-yen' hangs from 'van-yen' of district 'van-yen'"),
]


@pytest.mark.parametrize(("parent", "path", "reason"), HIERARCHY, ids=[h[0] for h in HIERARCHY])
def test_commune_parent(inv: Path, parent: str, path: str, reason: str) -> None:
    line = mutate(inv, "sites.yml", AN_PHU_PARENT, AN_PHU_PARENT.replace("parent: luc-yen", f"parent: {parent}"))
    assert_only(inv, "sites.yml", path, line, reason)


def test_department_under_a_district(inv: Path) -> None:
    add_file(inv, EXTRA, EXTRA_SITE.format(name="so-noi-vu"))
    line = mutate(inv, EXTRA, "parent: dc", "parent: luc-yen")
    assert_only(inv, EXTRA, "sites[0].parent", line, "a department site cannot hang from 'luc-yen' of tier district")


def test_unknown_district(inv: Path) -> None:
    line = mutate(
        inv,
        "sites.yml",
        "    district: luc-yen\n    parent: luc-yen\n    subnet: 10.251.12",
        "    district: luc-yem\n    parent: luc-yen\n    subnet: 10.251.12",
    )
    found = problems(inv)
    assert [p for p in found if Expect("sites.yml", "sites[4].district", line, "unknown district 'luc-yem'").matches(p)]


def test_two_datacentres(inv: Path) -> None:
    add_file(inv, EXTRA, EXTRA_SITE.format(name="dc2").replace("tier: department\n    parent: dc\n", "tier: datacentre\n"))
    assert_only(
        inv,
        "province.yml",
        "province",
        line_of(inv, "province.yml", "^province:"),
        "exactly one site of tier 'datacentre'; found 2",
    )


# --- circuits -------------------------------------------------------------------------------
def test_circuit_to_unknown_site(inv: Path) -> None:
    line = mutate(inv, "circuits.yml", "{a: luc-yen, b: dai-son,", "{a: luc-yen, b: dai-som,")
    assert_only(inv, "circuits.yml", "circuits[6].b", line, "circuit to unknown site 'dai-som'")


def test_circuit_to_a_site_off_the_data_network(inv: Path) -> None:
    mutate(inv, "sites.yml", "    display_name: UBND xã Khánh Hòa\n", "    display_name: UBND xã Khánh Hòa\n    datanet: false\n")
    assert_only(
        inv,
        "circuits.yml",
        "circuits[3].b",
        line_of(inv, "circuits.yml", "b: khanh-hoa"),
        "'khanh-hoa' is not on the data network",
    )


def test_datanet_site_without_a_path_to_the_dc(inv: Path) -> None:
    mutate(
        inv,
        "circuits.yml",
        "  - {a: van-yen, b: mau-a, subnet: 10.252.0.20/30, a_address: 10.252.0.21, b_address: 10.252.0.22}\n",
        "",
    )
    assert_only(
        inv,
        "sites.yml",
        "sites[6].name",
        line_of(inv, "sites.yml", r"^  - name: mau-a$"),
        "'mau-a' is on the data network but no circuit path reaches the data centre",
    )


def test_second_circuit_between_the_same_sites(inv: Path) -> None:
    line = mutate(inv, "circuits.yml", "{a: luc-yen, b: dai-son,", "{a: an-phu, b: luc-yen,")
    assert_only(inv, "circuits.yml", "circuits[6]", line, "a second circuit between 'an-phu' and 'luc-yen'")


def test_circuit_from_a_site_to_itself(inv: Path) -> None:
    line = mutate(inv, "circuits.yml", "{a: luc-yen, b: dai-son,", "{a: luc-yen, b: luc-yen,")
    assert_only(inv, "circuits.yml", "circuits[6].b", line, "both ends are 'luc-yen'")


# --- counts ---------------------------------------------------------------------------------
MAILBOX_ANCHOR = "    mailboxes: 10\n    quota_mb: 512\n    accounts:\n      - {user: giamdoc"
BAD_COUNTS = [
    ("-1", "greater than or equal to 0"),
    ("'10'", "valid integer"),
    ("2.5", "valid integer"),
    ("10.0", "valid integer"),
    ("true", "valid integer"),
    ("null", "valid integer"),
]


@pytest.mark.parametrize(("value", "reason"), BAD_COUNTS, ids=[b[0] for b in BAD_COUNTS])
@pytest.mark.parametrize("key", ["mailboxes", "quota_mb"])
def test_agency_count_must_be_a_non_negative_integer(inv: Path, key: str, value: str, reason: str) -> None:
    good = {"mailboxes": "mailboxes: 10", "quota_mb": "quota_mb: 512"}[key]
    mutate(inv, "mail.yml", MAILBOX_ANCHOR, MAILBOX_ANCHOR.replace(good, f"{key}: {value}"))
    line = line_of(inv, "mail.yml", f"^    {key}: {re.escape(value)}$")
    assert_only(inv, "mail.yml", f"agencies[0].{key}", line, reason)


@pytest.mark.parametrize(("value", "reason"), BAD_COUNTS[:5], ids=[b[0] for b in BAD_COUNTS[:5]])
def test_account_quota_must_be_a_non_negative_integer(inv: Path, value: str, reason: str) -> None:
    line = mutate(inv, "mail.yml", "display_name: Văn thư, quota_mb: 1024}", f"display_name: Văn thư, quota_mb: {value}}}")
    assert_only(inv, "mail.yml", "agencies[2].accounts[1].quota_mb", line, reason)


def test_host_memory_must_be_an_integer(inv: Path) -> None:
    line = mutate(inv, "sites.yml", "        roles: [web]\n", "        roles: [web]\n        memory_mb: 2G\n")
    assert_only(inv, "sites.yml", "sites[0].hosts[3].memory_mb", line, "valid integer")


def test_named_accounts_over_budget(inv: Path) -> None:
    mutate(inv, "mail.yml", MAILBOX_ANCHOR, MAILBOX_ANCHOR.replace("mailboxes: 10", "mailboxes: 1"))
    text = (inv / "mail.yml").read_text(encoding="utf-8").splitlines()
    line = text.index("    accounts:") + 1  # the first agency's 'accounts:' key, not its first account
    assert_only(inv, "mail.yml", "agencies[0].accounts", line, "3 named accounts exceed the budget of 1 mailboxes")


def test_agency_at_unknown_site(inv: Path) -> None:
    line = mutate(inv, "mail.yml", "    site: dc\n", "    site: dcc\n")
    assert_only(inv, "mail.yml", "agencies[0].site", line, "unknown site 'dcc'")


# --- services and flows -----------------------------------------------------------------------
def test_unknown_service_type(inv: Path) -> None:
    line = mutate(inv, "services.yml", "    type: ntp\n", "    type: ntpd\n")
    p = assert_only(inv, "services.yml", "services[1].type", line, "(got 'ntpd')")
    assert "'videoconf'" in p.reason  # the message lists the known types


def test_service_on_unknown_host(inv: Path) -> None:
    line = mutate(inv, "services.yml", "    hosts: [dc-mail]\n", "    hosts: [dc-mial]\n")
    assert_only(inv, "services.yml", "services[4].hosts[0]", line, "unknown host 'dc-mial'")


def test_external_service_without_url(inv: Path) -> None:
    add_file(inv, EXTRA, "services:\n  - name: lgsp\n    type: lgsp\n    external: true\n")
    assert_only(inv, EXTRA, "services[0].external", 4, "an external service needs a 'url'")


def test_internal_service_without_hosts(inv: Path) -> None:
    add_file(inv, EXTRA, "services:\n  - name: lgsp\n    type: lgsp\n")
    assert_only(inv, EXTRA, "services[0].hosts", 2, "an internal service needs 'hosts'")


def test_icmp_port_with_a_number(inv: Path) -> None:
    line = mutate(
        inv,
        "services.yml",
        "      - {name: ntp, proto: udp, port: 123}\n",
        "      - {name: ntp, proto: udp, port: 123}\n      - {name: ping, proto: icmp, port: 8}\n",
    )
    assert_only(inv, "services.yml", "services[1].ports[1]", line, "an icmp port takes no port number")


def test_tcp_port_without_a_number(inv: Path) -> None:
    line = mutate(inv, "services.yml", "{name: syslog-tcp, proto: tcp, port: 514}", "{name: syslog-tcp, proto: tcp}")
    assert_only(inv, "services.yml", "services[2].ports[0]", line, "a tcp port needs a port number")


def test_port_out_of_range(inv: Path) -> None:
    line = mutate(inv, "services.yml", "{name: syslog-tcp, proto: tcp, port: 514}", "{name: syslog-tcp, proto: tcp, port: 70000}")
    assert_only(inv, "services.yml", "services[2].ports[0].port", line, "less than or equal to 65535")


def test_flow_to_unknown_service(inv: Path) -> None:
    line = mutate(inv, "services.yml", "{to: ntp, ports: [ntp]", "{to: ntpd, ports: [ntp]")
    assert_only(inv, "services.yml", "flows[1].to", line, "flow to unknown service 'ntpd'")


def test_flow_port_not_declared_by_the_service(inv: Path) -> None:
    line = mutate(inv, "services.yml", "{to: ntp, ports: [ntp]", "{to: ntp, ports: [ntp, chrony]")
    assert_only(inv, "services.yml", "flows[1].ports[1]", line, "service 'ntp' has no port 'chrony' (it has: ntp)")


SELECTORS = [
    ("everyone", "unknown source 'everyone'; use one of all-sites"),
    ("site:", "unknown source 'site:'"),
    ("sites:dc", "unknown source 'sites:dc'"),
    ("site:nowhere", "source 'site:nowhere': unknown site 'nowhere'"),
    ("host:dc-mial", "source 'host:dc-mial': unknown host 'dc-mial'"),
    ("tier:village", "unknown tier 'village'"),
    ("district:tram-tau", "unknown district 'tram-tau'"),
    ("service:qlvb", "unknown service 'qlvb'"),
]


@pytest.mark.parametrize(("selector", "reason"), SELECTORS, ids=[s[0] for s in SELECTORS])
def test_bad_flow_source(inv: Path, selector: str, reason: str) -> None:
    line = mutate(inv, "services.yml", "from: [service:docmgmt]", f"from: ['{selector}']")
    assert_only(inv, "services.yml", "flows[9].from[0]", line, reason)


def test_good_flow_sources(inv: Path) -> None:
    good = "site:dc, host:dc-mail, tier:commune, district:luc-yen, service:dns, management, internet"
    mutate(inv, "services.yml", "from: [service:docmgmt]", f"from: [{good}]")
    load(inv)


def test_site_uses_unknown_service(inv: Path) -> None:
    line = mutate(
        inv, "sites.yml", "    loopback: 10.253.0.11\n    uses: [mail, dns,", "    loopback: 10.253.0.11\n    uses: [mail, dnss,"
    )
    assert_only(inv, "sites.yml", "sites[1].uses[1]", line, "uses unknown service 'dnss'")


def test_datacentre_uses_unknown_service(inv: Path) -> None:
    line = mutate(inv, "sites.yml", "    loopback: 10.253.0.1\n", "    loopback: 10.253.0.1\n    uses: [webmail]\n")
    assert_only(inv, "sites.yml", "sites[0].uses[0]", line, "uses unknown service 'webmail'")


# --- a failed item does not cascade -----------------------------------------------------------
def test_references_to_a_broken_site_are_not_reported_twice(inv: Path) -> None:
    line = mutate(inv, "sites.yml", "    tier: district\n    district: luc-yen\n", "    tier: distrikt\n    district: luc-yen\n")
    # circuits, communes and agencies refer to luc-yen: only the site's own problem is reported
    assert_only(inv, "sites.yml", "sites[1].tier", line, "(got 'distrikt')")


# --- many problems, one run -------------------------------------------------------------------
def test_every_problem_is_reported_in_one_run(inv: Path) -> None:
    want = [
        Expect(
            "circuits.yml",
            "circuits[1].b_address",
            mutate(inv, "circuits.yml", "b_address: 10.252.0.6", "b_address: 10.252.0.5"),
            "already used",
        ),
        Expect(
            "mail.yml",
            "agencies[1].site",
            mutate(inv, "mail.yml", "    site: luc-yen\n", "    site: luc-yem\n"),
            "unknown site 'luc-yem'",
        ),
        Expect(
            "province.yml",
            "province.colour",
            mutate(inv, "province.yml", "  lab: true\n", "  lab: true\n  colour: blue\n"),
            "unknown key 'colour'",
        ),
        Expect(
            "services.yml",
            "flows[1].to",
            mutate(inv, "services.yml", "{to: ntp, ports: [ntp]", "{to: ntpd, ports: [ntp]"),
            "unknown service 'ntpd'",
        ),
        Expect(
            "sites.yml",
            "sites[3].videoconf.endpoint",
            mutate(inv, "sites.yml", "endpoint: 10.251.11.20", "endpoint: 10.251.111.20"),
            "outside the site's subnet",
        ),
    ]
    found = problems(inv)
    assert len(found) == len(want), "\n".join(map(str, found))
    for w in want:
        assert [p for p in found if w.matches(p)], f"{w} not in:\n" + "\n".join(map(str, found))
    # sorted by file, then line
    assert found == sorted(found, key=lambda p: (str(p.file), p.line or 0))


def test_error_message_lists_every_problem(inv: Path) -> None:
    mutate(inv, "circuits.yml", "b_address: 10.252.0.6", "b_address: 10.252.0.5")
    mutate(inv, "mail.yml", "    site: luc-yen\n", "    site: luc-yem\n")
    with pytest.raises(InventoryError) as e:
        load(inv)
    text = str(e.value)
    assert text.startswith(f"inventory {inv}: 2 problems")
    assert f"{inv / 'mail.yml'}:{line_of(inv, 'mail.yml', 'site: luc-yem')}: agencies[1].site: unknown site" in text


# --- the command line -------------------------------------------------------------------------
runner = CliRunner()


def _broken(inv: Path) -> tuple[int, int]:
    a = mutate(inv, "circuits.yml", "b_address: 10.252.0.6", "b_address: 10.252.0.5")
    b = mutate(inv, "services.yml", "{to: ntp, ports: [ntp]", "{to: ntpd, ports: [ntp]")
    return a, b


def test_cli_check_reports_problems_and_exits_2(inv: Path) -> None:
    a, b = _broken(inv)
    r = runner.invoke(app, ["inventory", "check", str(inv)])
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and "Traceback" not in r.stderr
    err = r.stderr
    assert f"{inv / 'circuits.yml'}:{a}: circuits[1].b_address: address 10.252.0.5 is already used" in err
    assert f"{inv / 'services.yml'}:{b}: flows[1].to: flow to unknown service 'ntpd'" in err
    assert "2 problems" in " ".join(err.split())


def test_cli_check_json(inv: Path) -> None:
    a, b = _broken(inv)
    r = runner.invoke(app, ["inventory", "check", str(inv), "--json"])
    assert r.exit_code == 2
    data = json.loads(r.stdout)
    assert data["ok"] is False
    assert {(p["file"], p["line"], p["path"]) for p in data["problems"]} == {
        (str(inv / "circuits.yml"), a, "circuits[1].b_address"),
        (str(inv / "services.yml"), b, "flows[1].to"),
    }
    assert all(set(p) >= {"file", "line", "path", "reason"} for p in data["problems"])


def test_cli_check_yaml_syntax_error_has_no_traceback(inv: Path) -> None:
    opened = mutate(inv, "sites.yml", "    tier: datacentre\n", "    tier: [datacentre\n")
    r = runner.invoke(app, ["inventory", "check", str(inv)])
    assert r.exit_code == 2
    assert "Traceback" not in r.output and "Traceback" not in r.stderr
    assert f"{inv / 'sites.yml'}:" in r.stderr and "YAML syntax error" in r.stderr
    # the parser trips on a later line; the message names the line that opened the sequence
    assert f"started on line {opened})" in " ".join(r.stderr.split())


def test_cli_check_good_inventory(inv: Path) -> None:
    r = runner.invoke(app, ["inventory", "check", str(inv)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["inventory", "check", str(inv), "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["ok"] is True
