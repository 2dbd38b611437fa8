"""Facts the exporters keep in one table each: the probers by name, the probe jobs (and their docs).

The sweep's targets and the Prometheus probe jobs both come from
:data:`dcops.exporters.probejobs.PROBE_JOBS`; here the rendered Prometheus config is read
back with Prometheus' relabelling rules (keep, replace, hashmod; checked against a real
Prometheus in test_prometheus.py) and must make Prometheus probe exactly what a sweep probes.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, get_args

import pytest

from dcops.exporters.config import ProberName, default_modules
from dcops.exporters.probejobs import PROBE_JOBS, TLS_PORTS
from dcops.exporters.probes.dispatch import PROBERS
from dcops.exporters.targets import DEFAULT_PORTS, inventory_targets
from dcops.inventory import load_inventory
from dcops.render.filesd import targets as filesd_targets
from tests.conftest import LAB, ROOT, YENBAI
from tests.exporters.helpers import rendered_prometheus


def test_prober_names_are_the_dispatch_table() -> None:
    assert sorted(get_args(ProberName)) == sorted(PROBERS)
    # every prober that takes a port has a default one; every built-in module names a prober
    assert set(DEFAULT_PORTS) == set(PROBERS) - {"icmp", "tcp"}
    assert {m.prober for m in default_modules().values()} == set(PROBERS)


def test_probe_jobs_name_known_files_and_modules() -> None:
    files = set(filesd_targets(load_inventory(LAB)))
    assert {j.file for j in PROBE_JOBS} <= files
    assert {j.module for j in PROBE_JOBS} <= set(default_modules())
    assert len({j.name for j in PROBE_JOBS}) == len(PROBE_JOBS)


def _hashmod(value: str, modulus: int) -> int:
    """Prometheus' hashmod: the last 8 bytes of the MD5 of the value, big-endian, modulo."""
    return int.from_bytes(hashlib.md5(value.encode()).digest()[8:], "big") % modulus


def relabel(labels: dict[str, str], rules: list[dict[str, Any]]) -> dict[str, str] | None:
    """Prometheus' target relabelling for the actions the rendered config uses; None if dropped."""
    out = dict(labels)
    for r in rules:
        value = ";".join(out.get(name, "") for name in r.get("source_labels", []))
        action = r.get("action", "replace")
        regex = r.get("regex", "(.*)")
        if action == "keep":
            if re.fullmatch(regex, value) is None:
                return None
        elif action == "hashmod":
            out[r["target_label"]] = str(_hashmod(value, r["modulus"]))
        elif action == "replace":
            m = re.fullmatch(regex, value)
            if m is not None:
                out[r["target_label"]] = m.expand(re.sub(r"\$(\d+)", r"\\g<\1>", r.get("replacement", "$1")))
        else:
            raise AssertionError(f"relabel action {action!r} not simulated")
    return out


def prometheus_probes(config: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    """(target, module) of every /probe scrape the config makes Prometheus run → the jobs (shards) running it."""
    got: dict[tuple[str, str], set[str]] = {}
    for job in config["scrape_configs"]:
        for sd in job.get("file_sd_configs", []):
            for path in sd["files"]:
                for group in json.loads(Path(path).read_text()):
                    for t in group["targets"]:
                        start = {**group.get("labels", {}), "__address__": t, "__metrics_path__": job["metrics_path"],
                                 **{f"__param_{k}": v[0] for k, v in job.get("params", {}).items()}}
                        final = relabel(start, job["relabel_configs"])
                        if final is not None:
                            assert final["__metrics_path__"] == "/probe"
                            got.setdefault((final["__param_target"], final["__param_module"]), set()).add(job["job_name"])
    return got


@pytest.mark.parametrize("inventory", [LAB, YENBAI], ids=["lab", "yenbai"])
@pytest.mark.parametrize("exporters", [1, 3])
def test_prometheus_probes_what_the_sweep_probes(inventory: Path, exporters: int, tmp_path: Path) -> None:
    inv = load_inventory(inventory)
    cfg = rendered_prometheus(inv, tmp_path, [f"127.0.0.1:{9115 + i}" for i in range(exporters)])
    probes = prometheus_probes(cfg)
    sweep = {(t.target, t.module) for t in inventory_targets(inv)}
    assert set(probes) == sweep
    # one job and one shard per pair (a target that several services share is one per service)
    assert {len(jobs) for jobs in probes.values()} == {1}
    # the union of what the file_sd tables ask for: tls beside tcp on TLS ports, sip on the service's port
    assert {m for _, m in sweep} == {"icmp", "tcp", "tls", "dns", "sip_udp"} | ({"http"} if inventory == YENBAI else set())


def test_metrics_doc_lists_the_probe_jobs() -> None:
    doc = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+\.json)` \| (.+?) \| `(\w+)` \| `([\w-]+)` \|$", doc, re.M)
    assert {(f, m, j) for f, _, m, j in rows} == {(j.file, j.module, j.name) for j in PROBE_JOBS}
    tls_row = next(keep for _, keep, m, _ in rows if m == "tls")
    assert sorted(int(p) for p in re.findall(r"\b\d{3,4}\b", tls_row)) == sorted(TLS_PORTS)
