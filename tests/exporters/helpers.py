"""Run one probe as the exporter would, and parse what it exposes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import yaml

from dcops.exporters import exposition, promconfig
from dcops.exporters.config import ExporterConfig, load_config
from dcops.exporters.probes.result import ProbeResult
from dcops.exporters.runner import Runner
from dcops.exporters.targets import Target
from dcops.inventory.model import Inventory
from dcops.render.filesd import file_sd
from tests.exporters.conftest import Samples, parse
from tests.exporters.fleet import Fleet


def make_config(fleet: Fleet, tmp: Path, **extra: Any) -> ExporterConfig:
    """Loopback only, short timeouts, TLS modules trusting the test CA."""
    ca = str(fleet.ca.ca_file)
    raw: dict[str, Any] = {
        "allowed_networks": ["127.0.0.0/8"],
        "modules": {
            "icmp": {"prober": "icmp", "timeout": 1, "icmp": {"packets": 3, "interval": 0.01}},
            "tcp": {"prober": "tcp", "timeout": 1},
            "http": {"prober": "http", "timeout": 1},
            "https": {"prober": "http", "timeout": 1, "http": {"tls": True}, "tls": {"ca_file": ca}},
            "tls": {"prober": "tls", "timeout": 1, "tls": {"ca_file": ca}},
            "tls_noverify": {"prober": "tls", "timeout": 1, "tls": {"ca_file": ca, "verify": False}},
            "dns": {"prober": "dns", "timeout": 1, "dns": {"query_name": "ok.test", "query_type": "A", "min_answers": 1}},
            "dns_any": {"prober": "dns", "timeout": 1, "dns": {"query_name": "fail.test", "query_type": "A"}},
            "sip_udp": {"prober": "sip", "timeout": 1},
            "sip_tcp": {"prober": "sip", "timeout": 1, "sip": {"transport": "tcp"}},
            "sip_tcp_200": {"prober": "sip", "timeout": 1, "sip": {"transport": "tcp", "valid_status_codes": [200]}},
        },
    }
    raw.update(extra)
    p = tmp / "exporter.yml"
    p.write_text(yaml.safe_dump(raw))
    return load_config(p)


def run_probe(cfg: ExporterConfig, target: str, module: str, budget: float = 5.0) -> tuple[ProbeResult, Samples]:
    async def go() -> ProbeResult:
        runner = Runner(cfg)
        try:
            return await runner.run(Target(target, module), time.monotonic() + budget)
        finally:
            runner.close()

    res = asyncio.run(go())
    return res, parse(exposition.probe_text(res))


def without_duration(s: Samples) -> Samples:
    return {k: v for k, v in s.items() if k[0] not in ("probe_duration_seconds", "probe_icmp_duration_seconds")}


def S(name: str, value: float, **labels: str) -> tuple[tuple[str, frozenset[tuple[str, str]]], float]:
    return (name, frozenset(labels.items())), value


def rendered_prometheus(inv: Inventory, d: Path, exporters: list[str]) -> dict[str, Any]:
    """The file_sd files of ``inv`` written to ``d/file_sd`` and the Prometheus config over them."""
    filesd = d / "file_sd"
    filesd.mkdir(parents=True, exist_ok=True)
    for name, text in file_sd(inv).items():
        (filesd / name).write_text(text)
    return promconfig.render(filesd, exporters)
