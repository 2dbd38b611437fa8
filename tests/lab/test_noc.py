"""NOC drills (issue 14) against the converged lab: the monitoring role's real Prometheus and
Alertmanager on dc-core, the NOC mailbox on dc-mail (IMAP), the webhook receiver on dc-core.

- stop the luc-yen router: exactly one critical root-cause notification at the webhook and the
  mailbox; the sites behind it active and inhibited in Alertmanager's API; no data-centre
  service reported down; dai-son (two paths) only redundancy-lost; restart → resolved.
- cut a single-path commune's circuit: cut-to-webhook ≤ 60 s with the production intervals.
- silence luc-yen for 10 min before the same stop: no notification for it or the sites behind.

Needs root (the lab); first run on a lab in session 6 (all passed). Every packet goes to lab hosts only.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dcops import DEFAULT_INVENTORY, lab_dir
from dcops.converge import ConvergeResult
from dcops.inventory import load
from dcops.mail import labsecrets
from dcops.noc import PRODUCTION, rules
from tests.lab.helpers import dcops, ssh, wait_for

pytestmark = pytest.mark.lab

INV = load(DEFAULT_INVENTORY).inventory
CODE = INV.province.code
MONITOR = next(h for _, h in INV.hosts() if "monitoring" in h.roles)
AM = f"http://{MONITOR.management}:9093"
PROM = f"http://{MONITOR.management}:9090"
ROOT_SITE = "luc-yen"
SINGLE = "mau-a"  # a single-path commune (one circuit, to van-yen)
NOC_BOX = "noc@stttt.lab.test"
MAIL_NAME = f"mail.{INV.province.domain}"
CLIENT_CODE = (Path(__file__).parent / "mailclient.py").read_text()
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get(url: str) -> Any:
    with _OPENER.open(url, timeout=10) as r:
        return json.loads(r.read())


def notifications(since: float) -> list[dict[str, Any]]:
    """What the webhook receiver on the monitoring host got since ``since`` (UNIX time)."""
    code = ("import urllib.request,sys;"
            f"sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:9099/notifications?since={since}').read().decode())")
    p = ssh(MONITOR.name, f'python3 -c "{code}"')
    assert p.returncode == 0, p.stderr
    out: list[dict[str, Any]] = json.loads(p.stdout)
    return [n for n in out if n["path"] == "/alerts"]


def alerts() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = _get(f"{AM}/api/v2/alerts")
    return out


def icmp_up() -> dict[str, str]:
    q = urllib.parse.quote('probe_success{job="dcops-icmp"}')
    return {r["metric"]["site"]: r["value"][1] for r in _get(f"{PROM}/api/v1/query?query={q}")["data"]["result"]}


def imap_count(subject: str) -> int:
    pw = labsecrets.passwords(CODE)[NOC_BOX]
    args = ["python3", "-", "imap-count", MAIL_NAME, NOC_BOX, pw, subject]  # the remote shell splits words: quoted
    p = subprocess.run(["ssh", "-F", str(lab_dir(CODE) / "ssh_config"), MONITOR.name, *map(shlex.quote, args)],
                       input=CLIENT_CODE, capture_output=True, text=True, timeout=60, check=False)
    assert p.returncode == 0, p.stderr
    return int(json.loads(p.stdout.strip().splitlines()[-1])["count"])


@pytest.fixture(scope="module")
def noc(converged: dict[str, ConvergeResult]) -> None:
    first = converged.get("first")
    if first is not None:
        assert first.ok
    assert wait_for(lambda: set(icmp_up().values()) == {"1"} and len(icmp_up()) == len(INV.sites), 120, 2), icmp_up()
    # no site down before a drill (standing critical alerts of the lab, if any, are printed: the
    # drills count only notifications that name the drill's sites)
    assert wait_for(lambda: not [a for a in alerts() if a["labels"]["alertname"] == "DcopsSiteUnreachable"], 120, 5), alerts()
    standing = sorted({(a["labels"]["alertname"], a["labels"].get("site", "")) for a in alerts()
                       if a["labels"].get("severity") == "critical"})
    print(f"critical alerts standing before the drills: {standing}")


def _critical(notes: list[dict[str, Any]], status: str = "firing") -> list[dict[str, Any]]:
    """Critical notifications about a site (the lab's standing alerts, if any, have none of the drills' sites)."""
    sites = {s.name for s in INV.sites} - {"dc"}
    return [n for n in notes if n["payload"]["commonLabels"].get("severity") == "critical" and n["payload"]["status"] == status
            and any(a["labels"].get("site") in sites for a in n["payload"]["alerts"])]


@pytest.fixture
def luc_yen_stopped(noc: None) -> Iterator[dict[str, Any]]:
    """luc-yen's router stopped; started again by the test (``restart``) or, failing that, here."""
    # the lab's own standing alerts before the stop (a drill is judged on what it adds)
    drill: dict[str, Any] = {"t0": time.time(), "running": False, "standing": {a["fingerprint"] for a in alerts()}}

    def restart() -> None:
        dcops("lab", "drill", "host-start", ROOT_SITE, check=True, timeout=300)
        drill["running"] = True

    drill["restart"] = restart
    dcops("lab", "drill", "host-stop", ROOT_SITE, check=True, timeout=120)
    try:
        yield drill
    finally:
        if not drill["running"]:
            restart()


def test_stop_luc_yen_one_root_cause_behind_sites_inhibited(luc_yen_stopped: dict[str, Any]) -> None:
    t0 = luc_yen_stopped["t0"]
    budget = PRODUCTION.budget() + 15  # + the host's shutdown
    assert wait_for(lambda: bool(_critical(notifications(t0))), budget + 30, 1), notifications(t0)
    time.sleep(PRODUCTION.group_interval + 5)  # a late second notification would show now
    notes = notifications(t0)
    crit = _critical(notes)
    assert len(crit) == 1, [n["payload"]["groupLabels"] for n in crit]
    [alert] = crit[0]["payload"]["alerts"]
    assert alert["labels"]["alertname"] == "DcopsSiteUnreachable" and alert["labels"]["site"] == ROOT_SITE
    assert alert["annotations"]["summary"] == f"{ROOT_SITE} down — 2 sites unreachable behind it"
    print(f"root cause notified {crit[0]['received_at'] - t0:.1f} s after the stop")
    # Alertmanager: behind sites active and inhibited, no data-centre service down
    exp = rules.expect(INV, down=[ROOT_SITE])
    by = {(a["labels"]["alertname"], a["labels"].get("site")): a for a in alerts()}
    for s in exp.inhibited:
        a = by[("DcopsSiteUnreachable", s)]
        assert a["status"]["inhibitedBy"] and a["status"]["state"] == "suppressed", a
    new_down = [a["labels"] for a in alerts() if a["labels"]["alertname"] in ("DcopsServiceDown", "DcopsExternalServiceDown")
                and not a["status"]["inhibitedBy"] and a["fingerprint"] not in luc_yen_stopped["standing"]]
    assert not new_down, new_down
    # dai-son: only the redundancy-lost warning
    dai_son = [a for a in alerts() if a["labels"].get("site") == "dai-son" and not a["status"]["inhibitedBy"]
               and a["fingerprint"] not in luc_yen_stopped["standing"]]
    assert [a["labels"]["alertname"] for a in dai_son] == ["DcopsRedundancyLost"], dai_son
    # the same single critical notification in the NOC mailbox
    assert wait_for(lambda: imap_count(f"[CRITICAL] {ROOT_SITE}: DcopsSiteUnreachable") == 1, 60, 5)
    # back up: resolved notifications arrive
    luc_yen_stopped["restart"]()
    t1 = time.time()
    assert wait_for(lambda: bool(_critical(notifications(t1), "resolved")), 180, 2), notifications(t1)
    assert wait_for(lambda: imap_count("RESOLVED") >= 1, 120, 5)


def test_single_path_circuit_cut_notified_within_60_s(noc: None) -> None:
    a, b = "van-yen", SINGLE
    t0 = time.time()
    dcops("lab", "drill", "link-down", a, b, check=True, timeout=60)
    try:
        assert wait_for(lambda: bool(_critical(notifications(t0))), 120, 0.5), notifications(t0)
        first = _critical(notifications(t0))[0]
        latency = first["received_at"] - t0
        print(f"circuit {a}--{b} cut -> webhook: {latency:.1f} s (budget {PRODUCTION.budget()} s, floor {PRODUCTION.floor()} s)")
        assert [x["labels"]["site"] for x in first["payload"]["alerts"]] == [SINGLE]
        assert latency <= 60
    finally:
        dcops("lab", "drill", "link-up", a, b, check=True, timeout=60)


def test_silenced_luc_yen_notifies_nothing_for_it_or_behind(noc: None) -> None:
    r = dcops("noc", "silence", ROOT_SITE, "--for", "10m", "--comment", "drill", "--alertmanager", AM, "--json",
              check=True, timeout=30)
    sid = json.loads(r.stdout)["id"]
    t0 = time.time()
    dcops("lab", "drill", "host-stop", ROOT_SITE, check=True, timeout=120)
    try:
        covered = {ROOT_SITE, *rules.expect(INV, down=[ROOT_SITE]).inhibited}
        assert wait_for(lambda: any(a["labels"].get("site") == ROOT_SITE for a in alerts()), 120, 2)
        time.sleep(PRODUCTION.budget() + PRODUCTION.group_interval)
        sent = {x["labels"].get("site") for n in notifications(t0) for x in n["payload"]["alerts"]}
        assert not sent & covered, sent
        a = next(a for a in alerts() if a["labels"]["alertname"] == "DcopsSiteUnreachable" and a["labels"]["site"] == ROOT_SITE)
        assert a["status"]["silencedBy"] == [sid] and a["status"]["state"] == "suppressed"
    finally:
        dcops("lab", "drill", "host-start", ROOT_SITE, check=True, timeout=300)
        dcops("noc", "silences", "--alertmanager", AM, "--expire", sid, check=True, timeout=30)


def test_a_second_prometheus_federates_the_labs_site_state(noc: None, tmp_path: Path) -> None:
    """A national Prometheus on the controller's loopback federating dc-core's Prometheus."""
    import shutil

    from dcops.noc import federation
    from tests.exporters.procs import prometheus

    cfg = federation.render({CODE: f"{MONITOR.management}:9090"}, scrape_interval="2s", scrape_timeout="2s")
    (tmp_path / "prometheus.yml").write_text(federation.dump(cfg))
    with prometheus(str(shutil.which("prometheus")), tmp_path / "prometheus.yml", tmp_path / "data") as base:
        def got() -> list[dict[str, Any]]:
            q = urllib.parse.quote("dcops:site_up")
            res: list[dict[str, Any]] = _get(f"{base}/api/v1/query?query={q}")["data"]["result"]
            return res
        assert wait_for(lambda: len(got()) == len(INV.sites), 60, 1), got()
        assert {s["metric"]["province"] for s in got()} == {CODE}
        assert {s["metric"]["site"] for s in got()} == {s.name for s in INV.sites}
