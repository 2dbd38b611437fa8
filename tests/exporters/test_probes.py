"""Each probe against a loopback server for each behaviour: the exact metrics it exposes."""

from __future__ import annotations

from pathlib import Path

import pytest

from dcops.exporters.config import ExporterConfig
from tests.exporters.conftest import needs_root
from tests.exporters.fleet import GOOD, Fleet
from tests.exporters.helpers import S, make_config, run_probe, without_duration


@pytest.fixture(scope="module")
def cfg(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> ExporterConfig:
    return make_config(fleet, tmp_path_factory.mktemp("cfg"))


def failed(reason: str, **more: float) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    d = dict([S("probe_success", 0), S("dcops_probe_failed", 1, reason=reason)])
    for k, v in more.items():
        d.update([S(k, v)])
    return d


# --- TCP ---------------------------------------------------------------------------------

def test_tcp_open(fleet: Fleet, cfg: ExporterConfig) -> None:
    _res, s = run_probe(cfg, fleet.addr["tcp_open"], "tcp")
    assert without_duration(s) == dict([S("probe_success", 1)])
    assert 0 < s[("probe_duration_seconds", frozenset())] < 0.5


def test_tcp_refused(fleet: Fleet, cfg: ExporterConfig) -> None:
    _res, s = run_probe(cfg, fleet.addr["refused"], "tcp")
    assert without_duration(s) == failed("refused")


@needs_root
def test_tcp_blackhole_times_out_at_module_timeout(fleet: Fleet, cfg: ExporterConfig, blackhole: str) -> None:
    res, s = run_probe(cfg, fleet.addr["blackhole_tcp"], "tcp")
    assert without_duration(s) == failed("timeout")
    assert 0.95 <= res.duration < 1.3


def test_tcp_scrape_deadline_shorter_than_module_timeout(fleet: Fleet, cfg: ExporterConfig) -> None:
    res, s = run_probe(cfg, fleet.addr["slow"], "http", budget=0.3)
    assert without_duration(s) == failed("timeout")
    assert 0.25 <= res.duration < 0.5


def test_outside_allowed_networks_is_not_probed(cfg: ExporterConfig) -> None:
    res, s = run_probe(cfg, "192.0.2.1:80", "tcp")
    assert without_duration(s) == failed("forbidden")
    assert res.duration < 0.05


def test_address_map_redirects(fleet: Fleet, tmp: Path) -> None:
    host, port = fleet.addr["tcp_open"].split(":")
    cfg = make_config(fleet, tmp, address_map={"10.251.0.1": host})
    _, s = run_probe(cfg, f"10.251.0.1:{port}", "tcp")
    assert without_duration(s) == dict([S("probe_success", 1)])


# --- HTTP --------------------------------------------------------------------------------

def test_http_ok(fleet: Fleet, cfg: ExporterConfig) -> None:
    _, s = run_probe(cfg, f"http://{fleet.addr['http_ok']}/", "http")
    assert without_duration(s) == dict(
        [S("probe_success", 1), S("probe_http_status_code", 200), S("probe_http_version", 1.1), S("probe_http_ssl", 0)]
    )


def test_http_404_is_a_failure_with_the_code(fleet: Fleet, cfg: ExporterConfig) -> None:
    _, s = run_probe(cfg, f"http://{fleet.addr['http_ok']}/missing", "http")
    assert without_duration(s) == {
        **failed("status"), **dict([S("probe_http_status_code", 404), S("probe_http_version", 1.1), S("probe_http_ssl", 0)])
    }


@pytest.mark.parametrize(("server", "reason"), [("slow", "timeout"), ("garbage", "protocol"), ("reset", "reset")])
def test_http_misbehaving(fleet: Fleet, cfg: ExporterConfig, server: str, reason: str) -> None:
    res, s = run_probe(cfg, f"http://{fleet.addr[server]}/", "http")
    assert without_duration(s) == failed(reason)
    assert res.duration < 1.3


Expect = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _tls_expect(fleet: Fleet, cert: str, chain: int, name: int, version: str = "TLS 1.3") -> Expect:
    return dict(
        [
            S("probe_tls_version_info", 1, version=version),
            S("probe_ssl_earliest_cert_expiry", float(int(fleet.certs[cert].not_after.timestamp()))),
            S("dcops_tls_chain_valid", chain),
            S("dcops_tls_hostname_valid", name),
        ]
    )


def test_https_valid(fleet: Fleet, cfg: ExporterConfig) -> None:
    _, s = run_probe(cfg, f"https://{fleet.addr['https_valid']}/", "https")
    assert without_duration(s) == {
        **dict([S("probe_success", 1), S("probe_http_status_code", 200), S("probe_http_version", 1.1), S("probe_http_ssl", 1)]),
        **_tls_expect(fleet, "valid", 1, 1),
    }


# --- TLS ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("server", "reason", "chain", "name"),
    [
        ("valid", None, 1, 1),
        ("expired", "cert_expired", 1, 1),
        ("selfsigned", "cert_untrusted", 0, 1),
        ("wrongname", "cert_hostname", 1, 0),
    ],
)
def test_tls_certificates(fleet: Fleet, cfg: ExporterConfig, server: str, reason: str | None, chain: int, name: int) -> None:
    _, s = run_probe(cfg, fleet.addr[f"https_{server}"], "tls")
    head = dict([S("probe_success", 1)]) if reason is None else failed(reason)
    assert without_duration(s) == {**head, **_tls_expect(fleet, server, chain, name)}


def test_tls_noverify_reports_but_succeeds(fleet: Fleet, cfg: ExporterConfig) -> None:
    _, s = run_probe(cfg, fleet.addr["https_selfsigned"], "tls_noverify")
    assert without_duration(s) == {**dict([S("probe_success", 1)]), **_tls_expect(fleet, "selfsigned", 0, 1)}


@pytest.mark.parametrize(
    ("server", "reason"), [("garbage", "tls"), ("slow", "timeout"), ("reset", "reset"), ("refused", "refused")]
)
def test_tls_misbehaving(fleet: Fleet, cfg: ExporterConfig, server: str, reason: str) -> None:
    _, s = run_probe(cfg, fleet.addr[server], "tls")
    assert without_duration(s) == failed(reason)


# --- DNS ---------------------------------------------------------------------------------

def test_dns_answer(fleet: Fleet, cfg: ExporterConfig) -> None:
    _, s = run_probe(cfg, fleet.addr["dns"], "dns")
    assert without_duration(s) == dict(
        [S("probe_success", 1), S("dcops_dns_rcode", 0), S("probe_dns_answer_rrs", 1),
         S("probe_dns_authority_rrs", 0), S("probe_dns_additional_rrs", 0)]
    )


def test_dns_servfail(fleet: Fleet, cfg: ExporterConfig) -> None:
    _, s = run_probe(cfg, fleet.addr["dns"], "dns_any")
    assert without_duration(s) == {
        **failed("status"),
        **dict([S("dcops_dns_rcode", 2), S("probe_dns_answer_rrs", 0), S("probe_dns_authority_rrs", 0),
                S("probe_dns_additional_rrs", 0)]),
    }


@pytest.mark.parametrize(("server", "reason"), [("udp_silent", "timeout"), ("udp_garbage", "protocol")])
def test_dns_misbehaving(fleet: Fleet, cfg: ExporterConfig, server: str, reason: str) -> None:
    res, s = run_probe(cfg, fleet.addr[server], "dns")
    assert without_duration(s) == failed(reason)
    assert res.duration < 1.3


# --- SIP ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("server", "module"), [("sip_udp", "sip_udp"), ("sip_tcp", "sip_tcp")])
def test_sip_options_200(fleet: Fleet, cfg: ExporterConfig, server: str, module: str) -> None:
    _, s = run_probe(cfg, fleet.addr[server], module)
    assert without_duration(s) == dict([S("probe_success", 1), S("dcops_sip_status_code", 200)])


def test_sip_any_final_response_is_up_unless_configured(fleet: Fleet, cfg: ExporterConfig) -> None:
    _, s = run_probe(cfg, fleet.addr["sip_tcp_busy"], "sip_tcp")
    assert without_duration(s) == dict([S("probe_success", 1), S("dcops_sip_status_code", 486)])
    _, s = run_probe(cfg, fleet.addr["sip_tcp_busy"], "sip_tcp_200")
    assert without_duration(s) == {**failed("status"), **dict([S("dcops_sip_status_code", 486)])}


@pytest.mark.parametrize(
    ("server", "module", "reason"),
    [
        ("udp_silent", "sip_udp", "timeout"),
        ("udp_garbage", "sip_udp", "protocol"),
        ("garbage", "sip_tcp", "protocol"),
        ("slow", "sip_tcp", "timeout"),
        ("reset", "sip_tcp", "reset"),
        ("refused", "sip_tcp", "refused"),
    ],
)
def test_sip_misbehaving(fleet: Fleet, cfg: ExporterConfig, server: str, module: str, reason: str) -> None:
    _, s = run_probe(cfg, fleet.addr[server], module)
    assert without_duration(s) == failed(reason)


def test_sip_udp_port_unreachable_is_refused(fleet: Fleet, cfg: ExporterConfig) -> None:
    import socket

    from tests.exporters.fleet import BAD, free_port

    _, s = run_probe(cfg, f"{BAD}:{free_port(BAD, socket.SOCK_DGRAM)}", "sip_udp")
    assert without_duration(s) == failed("refused")


# --- ICMP --------------------------------------------------------------------------------

@needs_root
def test_icmp_up(cfg: ExporterConfig) -> None:
    _, s = run_probe(cfg, GOOD, "icmp")
    assert without_duration(s) == dict(
        [S("probe_success", 1), S("dcops_icmp_packets_sent", 3), S("dcops_icmp_packets_received", 3)]
    )
    assert 0 < s[("probe_icmp_duration_seconds", frozenset({("phase", "rtt")}))] < 0.1


@needs_root
def test_icmp_blackhole(cfg: ExporterConfig, blackhole: str) -> None:
    res, s = run_probe(cfg, blackhole, "icmp")
    assert without_duration(s) == {
        **failed("timeout"), **dict([S("dcops_icmp_packets_sent", 3), S("dcops_icmp_packets_received", 0)])
    }
    assert res.duration < 1.3
