"""monitoring.yml against the full lab: Prometheus on dc-core scrapes the dcops exporters with
the file_sd rendered from inventory/lab, and a host-stop drill shows within two scrapes.

Needs root (the lab). Uses the session fixtures of tests/lab/conftest.py: the lab booted once
and site.yml (which includes monitoring.yml; its idempotence is tested with the whole site)
converged once. Prometheus is queried from the controller on dc-core's management address;
every packet goes to lab hosts only.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from dcops import DEFAULT_INVENTORY
from dcops.converge import ConvergeResult
from dcops.inventory import load
from dcops.render.filesd import site_labels
from tests.lab.helpers import dcops, fail_text, ssh, wait_for

pytestmark = pytest.mark.lab

INV = load(DEFAULT_INVENTORY).inventory
MONITOR = next(h for _, h in INV.hosts() if "monitoring" in h.roles)
PROM = f"http://{MONITOR.management}:9090"
SITES = {s.name: s for s in INV.sites}
HOSTS = sorted(h.name for _, h in INV.hosts())
DRILL_SITE = "an-phu"
DRILL_HOST = "an-phu"
# no proxy: the lab's addresses are only reachable from this machine
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def api(path: str, **params: str) -> Any:
    url = f"{PROM}{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
    with _OPENER.open(url, timeout=10) as r:
        data = json.loads(r.read())
    assert data["status"] == "success", data
    return data["data"]


def query(q: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = api("/api/v1/query", query=q)["result"]
    return result


def icmp_values() -> dict[str, str]:
    return {r["metric"]["site"]: r["value"][1] for r in query('probe_success{job="dcops-icmp"}')}


@pytest.fixture(scope="module")
def monitored(converged: dict[str, ConvergeResult]) -> dict[str, ConvergeResult]:
    """The province converged (site.yml); Prometheus ready and every site probed up."""
    first = converged.get("first")
    if first is not None:
        assert first.ok, fail_text(first)
    wait_for(lambda: len(icmp_values()) == len(SITES) and set(icmp_values().values()) == {"1"}, 90, 1)
    return converged


@pytest.fixture(scope="module")
def scrape_interval(monitored: dict[str, ConvergeResult]) -> float:
    """The global scrape interval of the running Prometheus (the production value, 10 s, in the lab too)."""
    import yaml

    cfg = yaml.safe_load(api("/api/v1/status/config")["yaml"])
    text = str(cfg["global"]["scrape_interval"])
    assert text.endswith("s") and text[:-1].isdigit(), text
    return float(text[:-1])


# ---------------------------------------------------------------------------- what runs on dc-core


@pytest.mark.parametrize(
    "unit", ["prometheus.service", "prometheus-alertmanager.service", "dcops-connectivity@9115.service", "dcops-security.service"]
)
def test_service_active_on_monitoring_host(monitored: dict[str, ConvergeResult], unit: str) -> None:
    p = ssh(MONITOR.name, "systemctl", "is-active", unit)
    assert p.stdout.strip() == "active", f"{unit}: {p.stdout}{p.stderr}"


@pytest.mark.parametrize("unit", ["dcops-connectivity@9115.service", "dcops-security.service"])
def test_exporter_units_are_sandboxed(monitored: dict[str, ConvergeResult], unit: str) -> None:
    props = "DynamicUser,NoNewPrivileges,ProtectSystem,ProtectHome,PrivateTmp,AmbientCapabilities,MainPID"
    p = ssh(MONITOR.name, "sudo", "systemctl", "show", unit, f"--property={props}")
    got = dict(line.split("=", 1) for line in p.stdout.splitlines() if "=" in line)
    assert got["DynamicUser"] == "yes" and got["NoNewPrivileges"] == "yes", got
    assert got["ProtectSystem"] == "strict" and got["ProtectHome"] == "yes" and got["PrivateTmp"] == "yes", got
    want_caps = "cap_net_raw" if unit.startswith("dcops-connectivity") else ""
    assert got["AmbientCapabilities"].strip() == want_caps, got
    uid = ssh(MONITOR.name, "ps", "-o", "uid=", "-p", got["MainPID"]).stdout.strip()
    assert uid.isdigit() and int(uid) != 0, f"{unit} runs as uid {uid!r}"


def test_every_target_is_up_in_prometheus(monitored: dict[str, ConvergeResult]) -> None:
    targets = api("/api/v1/targets", state="active")["activeTargets"]
    by_job: dict[str, list[str]] = {}
    for t in targets:
        by_job.setdefault(t["labels"]["job"], []).append(t["health"])
    for job in ("prometheus", "alertmanager", "dcops-exporter", "dcops-sweep", "dcops-security", "dcops-icmp", "node"):
        assert by_job.get(job) and set(by_job[job]) == {"up"}, f"{job}: {by_job.get(job)}"
    assert len(by_job["dcops-icmp"]) == len(SITES)


def test_probe_success_one_series_per_site_with_labels(monitored: dict[str, ConvergeResult]) -> None:
    got = {}
    for r in query('probe_success{job="dcops-icmp"}'):
        m = r["metric"]
        got[m["site"]] = (m["district"], m["area"], m["tier"], m["instance"], r["value"][1])
    want = {}
    for s in INV.sites:
        lab = site_labels(INV, s)
        want[s.name] = (lab["district"], lab["area"], lab["tier"], str(INV.gateway_of(s)), "1")
    assert got == want


def test_host_facts_from_every_host(monitored: dict[str, ConvergeResult]) -> None:
    """The textfile collectors run on every host: fresh, fail2ban answering, apt counted."""

    def facts(name: str) -> dict[str, float]:
        return {r["metric"]["host"]: float(r["value"][1]) for r in query(f'{name}{{job="node"}}')}

    # the timer's first run comes within its random spread of the converge
    assert wait_for(lambda: set(facts("dcops_host_textfile_last_run_timestamp_seconds")) == set(HOSTS), 120, 2)
    last = facts("dcops_host_textfile_last_run_timestamp_seconds")
    assert set(last) == set(HOSTS), sorted(last)
    stale = {h: round(time.time() - t) for h, t in last.items() if time.time() - t > 180}
    assert not stale, f"collector older than 3 min (seconds): {stale}"
    assert facts("dcops_host_fail2ban_up") == dict.fromkeys(HOSTS, 1.0)
    pending = facts("dcops_host_apt_security_updates_pending")
    assert set(pending) == set(HOSTS) and all(v >= 0 for v in pending.values()), pending
    # the apt answer is cached beside the output, keyed on dpkg's state (no 2 s simulation a minute)
    cache = "/var/lib/prometheus/node-exporter/.dcops-apt-security"
    assert wait_for(lambda: ssh(DRILL_HOST, "sudo", "test", "-s", cache).returncode == 0, 120, 2), f"no {cache}"
    p = ssh(DRILL_HOST, "sudo", "cat", cache)
    assert p.returncode == 0 and "/var/lib/dpkg/status" in p.stdout, p.stdout + p.stderr


def test_dkim_checked_under_the_selector_each_domain_publishes(monitored: dict[str, ConvergeResult]) -> None:
    """The security exporter looks each domain's DKIM record up where `dcops mail dkim-keys` published it.

    (It used to ask for a fixed `dcops._domainkey` while the keys are published as `s1`, so every
    domain read 'no DKIM record' although DNS served one.)"""
    from dcops.mail import dkim

    keys = dkim.public_keys(INV)
    assert set(keys) == {a.domain for a in INV.agencies}, "the lab's converge makes a DKIM key for every agency"

    def seen() -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for r in query('dcops_security_mail_dns_record_present{record="dkim"}'):
            out.setdefault(r["metric"]["domain"], {})["present"] = r["value"][1]
        for r in query("dcops_security_mail_dkim_selector_info"):
            out.setdefault(r["metric"]["domain"], {})["selector"] = r["metric"]["selector"]
        return out

    assert wait_for(lambda: set(seen()) == set(keys) and all(v.get("present") == "1" for v in seen().values()), 90, 2), seen()
    assert {d: v["selector"] for d, v in seen().items()} == {d: k.selector for d, k in keys.items()}


def test_rules_and_alertmanager_loaded(monitored: dict[str, ConvergeResult]) -> None:
    groups = api("/api/v1/rules")["groups"]
    assert {g["name"] for g in groups} >= {"dcops-connectivity", "dcops-security", "dcops-node", "dcops-topology", "dcops-meta"}
    ams = api("/api/v1/alertmanagers")["activeAlertmanagers"]
    assert [a["url"] for a in ams] == ["http://127.0.0.1:9093/api/v2/alerts"]


# ---------------------------------------------------------------------------- the drill


@pytest.fixture
def stopped_host(monitored: dict[str, ConvergeResult]) -> Iterator[float]:
    """Stop DRILL_HOST; afterwards start it again (its disk persists: no re-converge needed)."""
    assert set(icmp_values().values()) == {"1"}, icmp_values()
    t_start = time.time()
    dcops("lab", "drill", "host-stop", DRILL_HOST, check=True, timeout=120)
    t0 = time.time()  # the host is off (its shutdown took t0 - t_start)
    print(f"host-stop {DRILL_HOST}: {t0 - t_start:.1f} s")
    try:
        yield t0
    finally:
        dcops("lab", "drill", "host-start", DRILL_HOST, check=True, timeout=300)


def test_host_stop_drill_turns_series_to_zero_within_two_scrapes(stopped_host: float, scrape_interval: float) -> None:
    t0 = stopped_host
    sel = f'probe_success{{job="dcops-icmp",site="{DRILL_SITE}"}}'
    assert wait_for(lambda: icmp_values().get(DRILL_SITE) == "0", 4 * scrape_interval + 5, 0.5), icmp_values()
    # the samples Prometheus stored since the stop: the second scrape at the latest reads 0
    window = int(6 * scrape_interval)
    samples = [(float(ts), v) for ts, v in query(f"{sel}[{window}s]")[0]["values"] if float(ts) > t0]
    first_zero = next(i for i, (_, v) in enumerate(samples) if v == "0")
    print(f"samples since the host went off at {t0:.1f}: {samples}")
    assert first_zero <= 1, f"scrapes after the stop at {t0:.1f}: {samples}"
    # every other site is unaffected
    others = {s: v for s, v in icmp_values().items() if s != DRILL_SITE}
    assert set(others.values()) == {"1"}, others


def test_after_restore_every_site_answers_again(monitored: dict[str, ConvergeResult], scrape_interval: float) -> None:
    assert wait_for(lambda: icmp_values().get(DRILL_SITE) == "1", 60 + 4 * scrape_interval, 1), icmp_values()
    assert set(icmp_values().values()) == {"1"}, icmp_values()


def _connect_and_close(host: str, src: str, target: str, port: int, times: int) -> int:
    """What a TCP probe does, ``times`` over: connect from ``src`` and close without a word; the
    number of connections refused (a ban rejects them)."""
    code = (f"import socket,time\nrefused=0\nfor _ in range({times}):\n"
            f"    try: s=socket.create_connection(('{target}',{port}),timeout=3,source_address=('{src}',0))\n"
            "    except ConnectionRefusedError: refused+=1; continue\n"
            "    time.sleep(0.3); s.close(); time.sleep(0.3)\nprint(refused)")
    r = ssh(host, "python3", "-c", f"\"{code}\"")
    assert r.returncode == 0, r.stderr
    return int(r.stdout)


def test_probes_of_the_monitoring_host_never_get_it_banned(monitored: dict[str, ConvergeResult]) -> None:
    """fail2ban's aggressive postfix filter counts a connection closed before a word was said: from
    a commune's host, more than maxretry of them get it banned (so the filter does count them),
    but the monitoring host's SMTP probes, which do exactly that all day, are never banned (the
    baseline role's ignoreip; before it, the lab's monitoring banned itself within the hour)."""
    mail = INV.host(INV.service("mail").hosts[0])[1]
    target, attacker = str(mail.address), "khanh-hoa"
    attacker_src = str(INV.gateway_of(INV.site(attacker)))

    def banned() -> str:
        return ssh(mail.name, "sudo", "fail2ban-client", "get", "postfix", "banned").stdout

    assert _connect_and_close(MONITOR.name, str(MONITOR.address), target, 25, 8) == 0
    try:
        _connect_and_close(attacker, attacker_src, target, 25, 8)
        assert wait_for(lambda: attacker_src in banned(), 30, 1), banned()
        assert str(MONITOR.address) not in banned(), banned()
        assert _connect_and_close(MONITOR.name, str(MONITOR.address), target, 25, 1) == 0  # still answered
    finally:
        ssh(mail.name, "sudo", "fail2ban-client", "set", "postfix", "unbanip", attacker_src)


def test_the_dns_probe_gets_the_province_zone_from_every_dns_host(monitored: dict[str, ConvergeResult]) -> None:
    """The DNS probe asks each DNS host for the SOA of the province's own zone and gets it (the
    root's, asked before, cannot be had offline: the lab's DNS showed as bad answers for good)."""
    got = {r["metric"]["instance"]: r["value"][1] for r in query('probe_success{job="dcops-dns"}')}
    assert got and set(got.values()) == {"1"}, got
