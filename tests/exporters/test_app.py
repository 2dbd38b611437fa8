"""The connectivity exporter as a process: /probe, /sweep, /metrics, start-up errors, promtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.exporters.conftest import parse
from tests.exporters.fleet import BLACKHOLE, GOOD, Fleet
from tests.exporters.helpers import S, make_config
from tests.exporters.procs import dcops, exporter, get, promtool_check_metrics, write

PROMTOOL = shutil.which("promtool")


@pytest.fixture(scope="module")
def config_file(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("app")
    make_config(fleet, d, smokeping={"interval": 0.2, "packets": 2, "packet_interval": 0.01, "timeout": 0.5})
    return d / "exporter.yml"


@pytest.fixture(scope="module")
def targets_file(fleet: Fleet, config_file: Path) -> Path:
    lines = [
        f"{fleet.addr['tcp_open']} tcp",
        f"{fleet.addr['refused']} tcp",
        f"{fleet.addr['blackhole_tcp']} tcp",
        f"{BLACKHOLE} icmp",
        f"{GOOD} icmp",
        f"http://{fleet.addr['http_ok']}/ http",
        f"{fleet.addr['slow']} tls",
        f"{fleet.addr['https_wrongname']} tls",
        f"{fleet.addr['sip_udp']} sip_udp",
        f"{fleet.addr['dns']} dns",
    ]
    return write(config_file.parent / "targets.txt", "\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def app(config_file: Path, targets_file: Path, blackhole: str) -> str:
    with exporter("--config", str(config_file), "--targets", str(targets_file)) as url:
        yield url  # type: ignore[misc]


def test_sweep_with_blackholed_targets_within_scrape_timeout(app: str, fleet: Fleet) -> None:
    status, body, took = get(f"{app}/sweep", headers={"X-Prometheus-Scrape-Timeout-Seconds": "1.5"})
    assert status == 200
    assert took < 1.5
    s = parse(body)
    succ = {dict(lab)["target"] + " " + dict(lab)["module"]: v for (n, lab), v in s.items() if n == "probe_success"}
    assert succ == {
        f"{fleet.addr['tcp_open']} tcp": 1,
        f"{fleet.addr['refused']} tcp": 0,
        f"{fleet.addr['blackhole_tcp']} tcp": 0,
        f"{BLACKHOLE} icmp": 0,
        f"{GOOD} icmp": 1,
        f"http://{fleet.addr['http_ok']}/ http": 1,
        f"{fleet.addr['slow']} tls": 0,
        f"{fleet.addr['https_wrongname']} tls": 0,
        f"{fleet.addr['sip_udp']} sip_udp": 1,
        f"{fleet.addr['dns']} dns": 1,
    }
    reasons = {(dict(lab)["target"], dict(lab)["reason"]) for (n, lab), _ in s.items() if n == "dcops_probe_failed"}
    assert reasons == {
        (fleet.addr["refused"], "refused"),
        (fleet.addr["blackhole_tcp"], "timeout"),
        (BLACKHOLE, "timeout"),
        (fleet.addr["slow"], "timeout"),
        (fleet.addr["https_wrongname"], "cert_hostname"),
    }
    # identity labels are target and module only
    for (n, lab), _ in s.items():
        keys = {k for k, _ in lab} - {"phase", "reason", "version"}
        assert keys in ({"target", "module"}, set()), (n, lab)
    assert s[("dcops_sweep_targets", frozenset())] == 10
    assert s[("dcops_sweep_failed_targets", frozenset())] == 5
    # the offset (0.5 s) is kept back: blackholed probes stop at 1.0 s
    assert s[("probe_duration_seconds", frozenset({("target", fleet.addr["blackhole_tcp"]), ("module", "tcp")}))] < 1.05


def test_probe_endpoint(app: str, fleet: Fleet) -> None:
    status, body, _ = get(f"{app}/probe?target={fleet.addr['tcp_open']}&module=tcp")
    assert status == 200
    s = parse(body)
    assert {k: v for k, v in s.items() if k[0] != "probe_duration_seconds"} == dict([S("probe_success", 1)])


@pytest.mark.parametrize(
    ("query", "message"),
    [("module=tcp", b"target parameter is missing"), ("target=127.0.0.2:1&module=nope", b"known modules: dns")],
)
def test_probe_bad_request(app: str, query: str, message: bytes) -> None:
    status, body, _ = get(f"{app}/probe?{query}")
    assert status == 400
    assert message in body


def test_self_metrics_count_probes_and_reasons(app: str, fleet: Fleet) -> None:
    get(f"{app}/probe?target={fleet.addr['refused']}&module=tcp")
    _, body, _ = get(f"{app}/metrics")
    s = parse(body)
    assert s[("dcops_exporter_probe_errors_total", frozenset({("module", "tcp"), ("reason", "refused")}))] >= 1
    assert s[("dcops_exporter_target_probes_total", frozenset({("module", "tcp"), ("target", fleet.addr["refused"])}))] >= 1
    assert s[("dcops_exporter_scrape_duration_seconds_count", frozenset({("endpoint", "probe")}))] >= 1


def test_smokeping_counts_sent_and_lost(app: str) -> None:
    import time

    time.sleep(0.8)
    _, body, _ = get(f"{app}/metrics")
    s = parse(body)
    good_sent = s[("dcops_icmp_sent_total", frozenset({("target", GOOD)}))]
    assert good_sent >= 2
    assert s[("dcops_icmp_lost_total", frozenset({("target", GOOD)}))] == 0
    assert s[("dcops_icmp_rtt_seconds_count", frozenset({("target", GOOD)}))] == good_sent
    bh_sent = s[("dcops_icmp_sent_total", frozenset({("target", BLACKHOLE)}))]
    assert bh_sent >= 2
    assert s[("dcops_icmp_lost_total", frozenset({("target", BLACKHOLE)}))] == bh_sent


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed")
@pytest.mark.parametrize("path", ["/sweep", "/metrics", "/probe?target=127.0.0.2&module=icmp"])
def test_promtool_check_metrics(app: str, path: str) -> None:
    _, body, _ = get(app + path, headers={"X-Prometheus-Scrape-Timeout-Seconds": "1.5"})
    assert promtool_check_metrics(body) == ""


def test_bad_config_stops_at_start_with_a_clear_message(tmp_path: Path) -> None:
    cfg = write(tmp_path / "bad.yml", "modules:\n  web: {prober: http, timeout: 0, tls: {ca_file: /nonexistent.pem}}\n")
    r = subprocess.run([dcops(), "exporter", "connectivity", "--config", str(cfg), "--check"], capture_output=True, text=True)
    assert r.returncode == 2
    assert "modules.web.timeout: Input should be greater than 0" in r.stderr
    assert "Traceback" not in r.stderr


def test_bad_target_stops_at_start(tmp_path: Path) -> None:
    t = write(tmp_path / "t.txt", "127.0.0.2 tcp\n127.0.0.2:80 nosuch\n")
    r = subprocess.run([dcops(), "exporter", "connectivity", "--targets", str(t), "--check"], capture_output=True, text=True)
    assert r.returncode == 2
    assert "target 127.0.0.2 (module tcp): '127.0.0.2': a tcp target needs a port (host:port)" in r.stderr
    assert "target 127.0.0.2:80: unknown module 'nosuch'" in r.stderr
    assert "Traceback" not in r.stderr


def test_inventory_targets_check() -> None:
    r = subprocess.run([dcops(), "exporter", "connectivity", "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    # 33 with the backup service's sftp port (issue 11), 38 with the video conference's wss,
    # turn-tcp, turn-relay, sip-metrics and media-metrics ports (issue 13)
    assert "38 sweep targets, 6 continuous ICMP targets" in r.stdout
