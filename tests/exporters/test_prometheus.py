"""A real Prometheus (the Debian package) scraping two sharded exporters with the lab's file_sd,
and reading the full rendered config of the lab and of Yên Bái (without scraping anything).

Every site gateway of inventory/lab is mapped (exporter ``address_map``) to its own loopback
address, one of them to the blackholed 127.0.0.66; ``allowed_networks: [127.0.0.0/8]`` makes
sure nothing else is ever probed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import yaml

from dcops.exporters import promconfig
from dcops.exporters.targets import inventory_targets
from dcops.inventory import load_inventory
from dcops.render.filesd import file_sd, site_labels
from tests.conftest import LAB, YENBAI
from tests.exporters.conftest import parse
from tests.exporters.fleet import BLACKHOLE, free_port
from tests.exporters.helpers import rendered_prometheus
from tests.exporters.procs import exporter, get, prometheus

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="prometheus not installed")
BLACKHOLED_SITE = "an-phu"


def query(base: str, q: str) -> list[dict[str, object]]:
    _, body, _ = get(f"{base}/api/v1/query?query={urllib.parse.quote(q)}")
    data = json.loads(body)
    assert data["status"] == "success", data
    return data["data"]["result"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, blackhole: str) -> Iterator[tuple[str, list[str], dict[str, str]]]:
    d = tmp_path_factory.mktemp("prom")
    inv = load_inventory(LAB)
    mapping: dict[str, str] = {}
    for i, s in enumerate(inv.sites, 1):
        mapping[str(inv.gateway_of(s))] = BLACKHOLE if s.name == BLACKHOLED_SITE else f"127.0.1.{i}"
    cfg = {
        "allowed_networks": ["127.0.0.0/8"],
        "address_map": mapping,
        "smokeping": {"enabled": False},
        "modules": {"icmp": {"prober": "icmp", "timeout": 0.8, "icmp": {"packets": 2, "interval": 0.01}}},
    }
    (d / "exporter.yml").write_text(yaml.safe_dump(cfg))
    filesd = d / "filesd"
    filesd.mkdir()
    for name, text in file_sd(inv).items():
        (filesd / name).write_text(text)
    with ExitStack() as stack:
        urls = [stack.enter_context(exporter("--config", str(d / "exporter.yml"))) for _ in range(2)]
        addrs = [u.removeprefix("http://") for u in urls]
        prom_cfg = promconfig.render(filesd, addrs, scrape_interval="1s", scrape_timeout="1s", jobs=(promconfig.PROBE_JOBS[0],))
        (d / "prometheus.yml").write_text(promconfig.dump(prom_cfg))
        chk = subprocess.run(["promtool", "check", "config", str(d / "prometheus.yml")], capture_output=True, text=True)
        assert chk.returncode == 0, chk.stdout + chk.stderr
        base = stack.enter_context(prometheus(str(PROMETHEUS), d / "prometheus.yml", d / "data"))
        # wait for two scrapes of every target
        for _ in range(60):
            if len(query(base, "count_over_time(probe_success[1m]) >= 2")) == len(inv.sites):
                break
            time.sleep(0.25)
        yield base, urls, {s.name: inv.district_of(s) for s in inv.sites}


def test_probe_success_one_series_per_site_with_labels(stack: tuple[str, list[str], dict[str, str]]) -> None:
    base, _, _districts = stack
    inv = load_inventory(LAB)
    got = {}
    for r in query(base, 'probe_success{job="dcops-icmp"}'):
        m = r["metric"]
        assert isinstance(m, dict)
        got[m["site"]] = (m["district"], m["area"], m["tier"], m["instance"], r["value"][1])  # type: ignore[index]
    want = {}
    for s in inv.sites:
        lab = site_labels(inv, s)
        up = "0" if s.name == BLACKHOLED_SITE else "1"
        want[s.name] = (lab["district"], lab["area"], lab["tier"], str(inv.gateway_of(s)), up)
    assert got == want


def test_hashmod_sharding_each_target_probed_by_exactly_one(stack: tuple[str, list[str], dict[str, str]]) -> None:
    _, urls, _districts = stack
    inv = load_inventory(LAB)
    probed_by: dict[str, list[int]] = {}
    for i, u in enumerate(urls):
        s = parse(get(f"{u}/metrics")[1])
        for (name, labels), v in s.items():
            if name == "dcops_exporter_target_probes_total" and v > 0:
                probed_by.setdefault(dict(labels)["target"], []).append(i)
    assert {t: len(v) for t, v in probed_by.items()} == {str(inv.gateway_of(s)): 1 for s in inv.sites}
    assert {tuple(v) for v in probed_by.values()} == {(0,), (1,)}  # both shards have work


@pytest.mark.parametrize("inventory", [LAB, YENBAI], ids=["lab", "yenbai"])
def test_rendered_config_makes_prometheus_probe_what_the_sweep_probes(inventory: Path, tmp_path: Path) -> None:
    """Prometheus' own relabelling of the full rendered config: its active /probe targets are the sweep's
    (target, module) pairs, each on exactly one shard. The exporters' addresses are closed loopback
    ports: Prometheus contacts nothing else, and nothing is probed."""
    inv = load_inventory(inventory)
    exporters = [f"127.0.0.1:{free_port('127.0.0.1')}" for _ in range(2)]
    cfg = rendered_prometheus(inv, tmp_path, exporters)
    (tmp_path / "prometheus.yml").write_text(promconfig.dump(cfg))
    sweep = {(t.target, t.module) for t in inventory_targets(inv)}
    with prometheus(str(PROMETHEUS), tmp_path / "prometheus.yml", tmp_path / "data") as base:
        for _ in range(100):
            _, body, _ = get(f"{base}/api/v1/targets?state=active")
            active = [t for t in json.loads(body)["data"]["activeTargets"] if t["scrapePool"] != "dcops-exporter"]
            if len(active) >= len(sweep):
                break
            time.sleep(0.1)
    got: dict[tuple[str, str], set[str]] = {}
    for t in active:
        url = urllib.parse.urlsplit(t["scrapeUrl"])
        assert f"{url.hostname}:{url.port}" in exporters and url.path == "/probe"
        q = urllib.parse.parse_qs(url.query)
        got.setdefault((q["target"][0], q["module"][0]), set()).add(t["scrapePool"])
        assert t["labels"]["module"] == q["module"][0] and t["labels"]["instance"] == q["target"][0]
    assert set(got) == sweep
    assert {len(pools) for pools in got.values()} == {1}  # one job, one shard (a shared target once per service)


# The lab drill (a real Prometheus on the lab's monitoring host, host-stop of a commune router):
# tests/lab/test_monitoring.py.
