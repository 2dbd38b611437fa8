"""Property tests of the inventory loader.

(a) Random valid provinces (districts, sites of every tier, circuits, services, flows and
    agencies, with addresses allocated consistently, split over files in various ways) load,
    with the counts that were generated, and render the same way every time.
(b) Random corruptions of a valid province (keys deleted, values retyped, unknown keys,
    dangling references, duplicated items, garbled YAML text) either load or raise
    :class:`InventoryError` naming at least one problem, never any other exception.
"""

from __future__ import annotations

import copy
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dcops.inventory import InventoryError, Loaded, load
from dcops.inventory.model import Proto, ServiceType, Tier

#: Bounded so that the file runs in well under a minute; DCOPS_HYPOTHESIS_EXAMPLES=2000 digs deeper.
SETTINGS = settings(
    max_examples=int(os.environ.get("DCOPS_HYPOTHESIS_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

SECTIONS = ("districts", "areas", "sites", "circuits", "services", "flows", "agencies")


@dataclass
class Generated:
    """A province as YAML data per file, and what it should load as."""

    files: dict[str, Any]
    counts: dict[str, int]
    hosts: list[str]

    def write(self, d: Path, flow_style: bool | None = False) -> None:
        for name, data in self.files.items():
            text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False, default_flow_style=flow_style)
            (d / name).write_text(text, encoding="utf-8")


@contextmanager
def tmpdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="dcops-prop-") as d:
        yield Path(d)


def province(two_level: bool = False) -> dict[str, Any]:
    return {
        **({"levels": ["province", "commune"]} if two_level else {}),
        "name": "Tỉnh thử (generated)",
        "code": "gen",
        "domain": "gen.test",
        "address_ranges": [
            {"name": "management", "cidr": "10.250.0.0/24"},
            {"name": "site-lans", "cidr": "10.251.0.0/16"},
            {"name": "circuits", "cidr": "10.252.0.0/22"},
            {"name": "loopbacks", "cidr": "10.253.0.0/24"},
        ],
        "management_network": "10.250.0.0/24",
        "controller": "10.250.0.1",
        "admins": [{"name": "dcops"}],
    }


@st.composite
def provinces(draw: st.DrawFn) -> Generated:
    """A random valid province, three-level or two-level (then with hubs and areas instead of
    districts); every address comes from a counter, so none collide."""
    two_level = draw(st.booleans())
    groups = [
        {"name": f"d{k}", "display_name": f"Huyện {k}", "kind": draw(st.sampled_from(["city", "town", "district"]))}
        for k in range(draw(st.integers(1, 3)))
    ]
    districts = [] if two_level else groups
    areas = [{"name": f"a{g['name']}", "display_name": f"Khu vực {g['name']}"} for g in groups] if two_level else []
    uplink: dict[str, str] = {}  # site -> the site its first circuit goes to
    sites: list[dict[str, Any]] = []
    mgmt = iter(range(10, 250))

    def site(name: str, tier: Tier, parent: str | None, district: str | None, datanet: bool) -> dict[str, Any]:
        i = len(sites)
        s: dict[str, Any] = {"name": name, "display_name": f"Site {name}", "tier": tier.value}
        if district:
            s["district"] = district
        if parent:
            s["parent"] = parent
        if not datanet:
            s["datanet"] = False
        s["subnet"] = f"10.251.{i}.0/24"
        if tier is Tier.DATACENTRE:
            s["hosts"] = [
                {
                    "name": f"dc-h{k}",
                    "roles": ["router"] if k == 0 else ["web"],
                    "address": f"10.251.{i}.{k + 1}",
                    "management": f"10.250.0.{next(mgmt)}",
                }
                for k in range(draw(st.integers(1, 3)))
            ]
        elif draw(st.booleans()):
            s["gateway"] = f"10.251.{i}.1"
            s["management"] = f"10.250.0.{next(mgmt)}"
        else:
            host = {"name": f"{name}-r", "address": f"10.251.{i}.1", "management": f"10.250.0.{next(mgmt)}"}
            if draw(st.booleans()):
                host["roles"] = ["router"]
            s["hosts"] = [host]
        if datanet and (tier is not Tier.DATACENTRE or draw(st.booleans())):
            s["loopback"] = f"10.253.0.{i + 1}"
        if draw(st.booleans()):
            s["videoconf"] = {"room": f"Phòng họp {name}", "endpoint": f"10.251.{i}.20"}
        sites.append(s)
        return s

    site("dc", Tier.DATACENTRE, None, None, True)
    for k in range(draw(st.integers(0, 2))):
        site(f"dep{k}", Tier.DEPARTMENT, "dc", None, draw(st.booleans()))
    deps = [s["name"] for s in sites if s["tier"] == "department"]
    for k in range(draw(st.integers(0, 2))):
        site(f"cen{k}", Tier.CENTRE, draw(st.sampled_from(["dc", *deps])), None, draw(st.booleans()))
    for d in groups:
        if not draw(st.integers(0, 5)):
            continue  # a district (or area) without a site of its own yet
        if two_level:  # a hub: a network-only site or a commune that aggregates circuits
            hub = site(d["name"], draw(st.sampled_from([Tier.HUB, Tier.COMMUNE])), None, None, True)
            hub["hub"] = True
            uplink[hub["name"]] = "dc"
            for k in range(draw(st.integers(0, 3))):
                c = site(f"{d['name']}-c{k}", Tier.COMMUNE, None, None, draw(st.booleans()))
                uplink[c["name"]] = hub["name"]
                if draw(st.booleans()):
                    c["area"] = f"a{d['name']}"
            continue
        ds = site(d["name"], Tier.DISTRICT, "dc", d["name"], draw(st.integers(0, 4)) > 0)
        if ds.get("datanet", True) and draw(st.booleans()):
            ds["hub"] = True
        for k in range(draw(st.integers(0, 3))):
            site(f"{d['name']}-c{k}", Tier.COMMUNE, ds["name"], d["name"], draw(st.booleans()))

    by_name = {s["name"]: s for s in sites}
    on_net = [s["name"] for s in sites if s.get("datanet", True)]
    links: list[tuple[str, str]] = []
    for s in sites[1:]:
        if s.get("datanet", True):
            parent = by_name[uplink.get(s["name"]) or s["parent"]]
            links.append((parent["name"] if parent.get("datanet", True) else "dc", s["name"]))
    for _ in range(draw(st.integers(0, 3))):  # backup circuits
        a, b = draw(st.sampled_from(on_net)), draw(st.sampled_from(on_net))
        if a != b and (a, b) not in links and (b, a) not in links:
            links.append((a, b))
    circuits = []
    for j, (a, b) in enumerate(links):
        base = 4 * j
        c: dict[str, Any] = {
            "a": a,
            "b": b,
            "subnet": f"10.252.{base // 256}.{base % 256}/30",
            "a_address": f"10.252.{base // 256}.{base % 256 + 1}",
            "b_address": f"10.252.{base // 256}.{base % 256 + 2}",
        }
        if draw(st.booleans()):
            c["cost"] = draw(st.integers(1, 65535))
            c["kind"] = draw(st.sampled_from(["fibre", "metro-ethernet", "mpls", "radio"]))
        circuits.append(c)

    hosts = [h["name"] for s in sites for h in s.get("hosts", [])]
    services = []
    for k in range(draw(st.integers(1, 5))):
        svc: dict[str, Any] = {"name": f"svc{k}", "type": draw(st.sampled_from([t.value for t in ServiceType]))}
        if draw(st.integers(0, 3)) == 0:
            svc["external"] = True
            svc["url"] = f"https://svc{k}.gen.test/"
        else:
            svc["hosts"] = draw(st.lists(st.sampled_from(hosts), min_size=1, max_size=3, unique=True))
        ports = []
        for p in range(draw(st.integers(0, 3))):
            proto = draw(st.sampled_from(list(Proto)))
            port: dict[str, Any] = {"name": f"p{p}", "proto": proto.value}
            if proto is not Proto.ICMP:
                port["port"] = draw(st.integers(1, 60000))
                if draw(st.booleans()):
                    port["port_end"] = port["port"] + draw(st.integers(0, 5000))
            ports.append(port)
        if ports:
            svc["ports"] = ports
        services.append(svc)

    selectors = [
        "all-sites",
        "management",
        "internet",
        "datacentre",
        *(f"tier:{t.value}" for t in Tier),
        *(f"district:{d['name']}" for d in districts),
        *(f"area:{a['name']}" for a in areas),
        *(f"site:{s['name']}" for s in sites),
        *(f"host:{h}" for h in hosts),
        *(f"service:{s['name']}" for s in services),
    ]
    with_ports = [s for s in services if s.get("ports")]
    flows = []
    for _ in range(draw(st.integers(0, 4)) if with_ports else 0):
        svc = draw(st.sampled_from(with_ports))
        names = [p["name"] for p in svc["ports"]]
        flows.append(
            {
                "to": svc["name"],
                "ports": draw(st.lists(st.sampled_from(names), min_size=1, unique=True)),
                "from": draw(st.lists(st.sampled_from(selectors), min_size=1, max_size=3, unique=True)),
            }
        )
    for s in sites:
        uses = draw(st.lists(st.sampled_from([v["name"] for v in services]), max_size=3, unique=True))
        if uses:
            s["uses"] = uses

    agencies = []
    for k in range(draw(st.integers(0, 3))):
        accounts = [{"user": f"user{n}"} for n in range(draw(st.integers(0, 3)))]
        ag: dict[str, Any] = {
            "name": f"ag{k}",
            "display_name": f"Cơ quan {k}",
            "domain": f"ag{k}.gen.test",
            "mailboxes": len(accounts) + draw(st.integers(0, 3000)),
        }
        if draw(st.booleans()):
            ag["site"] = draw(st.sampled_from(list(by_name)))
        if accounts:
            ag["accounts"] = accounts
        agencies.append(ag)

    data = {
        "districts": districts,
        "areas": areas,
        "sites": sites,
        "circuits": circuits,
        "services": services,
        "flows": flows,
        "agencies": agencies,
    }
    files: dict[str, dict[str, Any]] = {"province.yml": {"province": province(two_level)}}
    for section in SECTIONS:
        items = data[section]
        target = draw(st.sampled_from(["province.yml", "main.yml", f"{section}.yml"]))
        if len(items) > 1 and draw(st.booleans()):  # split a section over two files
            cut = draw(st.integers(1, len(items) - 1))
            files.setdefault(target, {})[section] = items[:cut]
            files.setdefault(f"zz-{section}-more.yml", {})[section] = items[cut:]
        else:
            files.setdefault(target, {})[section] = items
    counts = {s: len(items) for s, items in data.items()}
    counts["hosts"] = len(hosts)
    counts["mailboxes"] = sum(a["mailboxes"] for a in agencies)
    return Generated(files, counts, hosts)


def _renderers() -> list[Callable[[Any], Any]]:
    """The renderers that exist so far (the render package is being written alongside)."""
    out: list[Callable[[Any], Any]] = []
    try:
        from dcops.render.ansible import ansible_inventory

        out.append(ansible_inventory)
    except ImportError:
        pass
    try:
        from dcops.render.filesd import file_sd

        out.append(file_sd)
    except ImportError:
        pass
    return out


def _json(x: Any) -> str:
    return json.dumps(x, sort_keys=True, default=str)


# --- (a) valid provinces --------------------------------------------------------------------
@SETTINGS
@given(gen=provinces(), flow_style=st.sampled_from([False, None, True]))
def test_generated_province_loads_with_the_generated_counts(gen: Generated, flow_style: bool | None) -> None:
    with tmpdir() as d:
        gen.write(d, flow_style)
        loaded = load(d)
        again = load(d)
    inv = loaded.inventory
    got = {s: len(getattr(inv, s)) for s in SECTIONS}
    got["hosts"] = len(inv.hosts())
    got["mailboxes"] = inv.mail_accounts()
    assert got == gen.counts
    assert sorted(h.name for _, h in inv.hosts()) == sorted(gen.hosts)
    assert len(loaded.files) == len(gen.files)
    assert inv == again.inventory

    for render in _renderers():
        first = render(inv)
        assert _json(first) == _json(render(inv)), f"{render.__name__} is not deterministic"
        assert _json(first) == _json(render(again.inventory)), f"{render.__name__} differs between loads"
    renderers = {r.__name__: r for r in _renderers()}
    if "ansible_inventory" in renderers:
        hostvars = renderers["ansible_inventory"](inv)["_meta"]["hostvars"]
        assert set(gen.hosts) <= set(hostvars)
    if "file_sd" in renderers:
        files = renderers["file_sd"](inv)
        assert files and all(isinstance(t, str) for t in files.values())
        for text in files.values():
            json.loads(text)  # file_sd files are JSON


def test_the_generator_makes_every_tier() -> None:
    """The strategy reaches every corner it claims to (so (a) tests more than the data centre)."""
    seen: set[str] = set()

    @settings(max_examples=40, deadline=None, database=None)
    @given(gen=provinces())
    def collect(gen: Generated) -> None:
        for f in gen.files.values():
            for s in f.get("sites", []):
                seen.add(s["tier"])
                if s.get("hub"):
                    seen.add(f"hub:{s['tier']}")
            if f.get("province", {}).get("levels") == ["province", "commune"]:
                seen.add("two-level")
            if f.get("flows"):
                seen.add("flows")
            if any(a.get("accounts") for a in f.get("agencies", [])):
                seen.add("accounts")
        if len(gen.files) > 3:
            seen.add("many-files")

    collect()
    assert seen >= {t.value for t in Tier} | {"flows", "accounts", "many-files", "two-level", "hub:hub", "hub:commune"}


# --- (b) corruptions ------------------------------------------------------------------------
JUNK = [None, 0, -1, 2.5, True, "", "x", "nowhere", "10.0.0.1", "10.0.0.0/8", [], {}, [1, "a"], {"k": "v"}]


def _paths(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*path, i))


def _get(node: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        node = node[p]
    return node


@st.composite
def corrupted(draw: st.DrawFn) -> tuple[dict[str, str], str]:
    """A generated province with 1-3 random corruptions, as file name -> YAML text."""
    gen = draw(provinces())
    files = copy.deepcopy(gen.files)
    ops = draw(
        st.lists(st.sampled_from(["delete", "retype", "unknown", "dangle", "duplicate", "garble"]), min_size=1, max_size=3)
    )
    for op in ops:
        if op == "garble":
            continue  # applied to the text below
        name = draw(st.sampled_from(sorted(files)))
        paths = list(_paths(files[name]))
        if op == "delete":
            keyed = [p for p in paths if p and isinstance(_get(files[name], p[:-1]), dict)]
            if keyed:
                p = draw(st.sampled_from(keyed))
                del _get(files[name], p[:-1])[p[-1]]
        elif op == "retype":
            p = draw(st.sampled_from(paths))
            value = copy.deepcopy(draw(st.sampled_from(JUNK)))
            if p:
                _get(files[name], p[:-1])[p[-1]] = value
            else:
                files[name] = value
        elif op == "unknown":
            maps = [p for p in paths if isinstance(_get(files[name], p), dict)]
            if maps:
                p = draw(st.sampled_from(maps))
                key = draw(st.sampled_from(["bogus", "Name", "nmae", "sites", "1", "null", "<<"]))
                _get(files[name], p)[key] = copy.deepcopy(draw(st.sampled_from(JUNK)))
        elif op == "dangle":
            strings = [p for p in paths if p and isinstance(_get(files[name], p), str)]
            if strings:
                p = draw(st.sampled_from(strings))
                _get(files[name], p[:-1])[p[-1]] = draw(st.sampled_from(["nowhere", "dc", "d0", "svc0", "site:nowhere"]))
        elif op == "duplicate":
            lists = [p for p in paths if isinstance(_get(files[name], p), list) and _get(files[name], p)]
            if lists:
                seq = _get(files[name], draw(st.sampled_from(lists)))
                seq.insert(draw(st.integers(0, len(seq))), copy.deepcopy(draw(st.sampled_from(seq))))
    texts = {
        n: yaml.safe_dump(data, allow_unicode=True, sort_keys=False, default_flow_style=draw(st.sampled_from([False, None])))
        for n, data in files.items()
    }
    for _ in range(ops.count("garble")):
        name = draw(st.sampled_from(sorted(texts)))
        text = texts[name]
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 8))
        ins = draw(st.text(alphabet=":-[]{}#&*!|>'\"%@`,? \t\nax1\x00\ufeffé", max_size=6))
        texts[name] = text[:at] + ins + text[at + cut :]
    return texts, ",".join(ops)


def _lines(text: str) -> int:
    """How many lines YAML sees in ``text`` (its line breaks: CR, LF, CRLF, NEL, LS, PS)."""
    parts = re.split("\r\n|[\r\n\x85\u2028\u2029]", text)
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    return len(parts)


def _check_outcome(d: Path, texts: dict[str, str]) -> Loaded | InventoryError:
    try:
        return load(d)
    except InventoryError as e:
        assert e.problems, "InventoryError without problems"
        for p in e.problems:
            assert p.reason.strip(), f"empty reason: {p!r}"
            assert "\n" not in p.reason, f"a reason on several lines: {p!r}"
            assert p.file == d or p.file.parent == d, p
            if p.line is not None:
                assert p.file.name in texts, p
                assert 1 <= p.line <= _lines(texts[p.file.name]), f"line out of the file: {p}"
        str(e)  # the message renders
        json.dumps([p.as_dict() for p in e.problems], ensure_ascii=False)
        return e


@SETTINGS
@given(case=corrupted())
def test_corruption_is_a_problem_never_a_crash(case: tuple[dict[str, str], str]) -> None:
    texts, _ops = case
    with tmpdir() as d:
        for name, text in texts.items():
            (d / name).write_text(text, encoding="utf-8")
        first = _check_outcome(d, texts)
        second = _check_outcome(d, texts)
    if isinstance(first, InventoryError):
        assert isinstance(second, InventoryError) and first.problems == second.problems, "not deterministic"
    else:
        assert isinstance(second, Loaded) and first.inventory == second.inventory


@SETTINGS
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes_are_a_problem_never_a_crash(data: bytes) -> None:
    with tmpdir() as d:
        (d / "province.yml").write_bytes(data)
        _check_outcome(d, {"province.yml": data.decode("utf-8", "replace")})
