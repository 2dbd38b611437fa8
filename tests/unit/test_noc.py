"""NOC alerting (issue 14): the rule set under promtool, the generated topology rules and their
generated tests, Alertmanager's rendered routing under amtool, inhibition and silences on a real
Alertmanager, the webhook receiver, and federation between two real Prometheus servers — all on
127.0.0.1, started and stopped by PID here."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from dcops.cli import app
from dcops.inventory.loader import load_inventory
from dcops.noc import Intervals, alertmanager, federation, rules, ruletests, silences, webhook
from tests.conftest import LAB, ROOT, YENBAI
from tests.exporters.fleet import free_port
from tests.exporters.procs import kill_pid

MONITORS = ROOT / "monitors"
PROMTOOL, AMTOOL = shutil.which("promtool"), shutil.which("amtool")
AM_BIN = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
PROM_BIN = shutil.which("prometheus")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="needs promtool (Debian package prometheus)")
needs_am = pytest.mark.skipif(AM_BIN is None or AMTOOL is None, reason="needs prometheus-alertmanager and amtool")


def _run(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=300, cwd=cwd)


@pytest.fixture(scope="module")
def lab_inv() -> Any:
    return load_inventory(LAB)


# --- the static rule set -----------------------------------------------------------------
def _alerts_of(path: Path) -> list[str]:
    return [r["alert"] for g in yaml.safe_load(path.read_text())["groups"] for r in g["rules"] if "alert" in r]


@needs_promtool
def test_static_rules_check_and_pass_their_tests() -> None:
    files = sorted((MONITORS / "rules").glob("*.rules.yml"))
    assert len(files) >= 7
    r = _run(str(PROMTOOL), "check", "rules", *map(str, files))
    assert r.returncode == 0, r.stdout + r.stderr
    tests = sorted((MONITORS / "tests").glob("*.test.yml"))
    r = _run(str(PROMTOOL), "test", "rules", *map(str, tests))
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_alert_has_a_runbook_both_summaries_and_tests_that_fire_and_do_not() -> None:
    fired: set[str] = set()
    quiet: set[str] = set()
    for t in (MONITORS / "tests").glob("*.test.yml"):
        for case in yaml.safe_load(t.read_text())["tests"]:
            for c in case.get("alert_rule_test", []):
                (fired if c.get("exp_alerts") else quiet).add(c["alertname"])
    for f in (MONITORS / "rules").glob("*.rules.yml"):
        for g in yaml.safe_load(f.read_text())["groups"]:
            for r in g["rules"]:
                if "alert" not in r:
                    continue
                ann = r.get("annotations", {})
                assert {"summary", "summary_vi", "runbook"} <= set(ann), (f.name, r["alert"])
                assert r["labels"]["severity"] in {"critical", "warning", "info", "none"}
                assert r["alert"] in fired, f"{f.name}: {r['alert']} never fires in monitors/tests"
                if r["alert"] != "Watchdog":
                    assert r["alert"] in quiet, f"{f.name}: {r['alert']} has no test where it does not fire"


@needs_promtool
def test_a_broken_rule_fails_its_promtool_test(tmp_path: Path) -> None:
    """The tests can fail: the clock-offset threshold moved from 0.5 s to 1 s is caught."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "tests").mkdir()
    text = (MONITORS / "rules" / "node.rules.yml").read_text().replace("> 0.5", "> 1")
    (tmp_path / "rules" / "node.rules.yml").write_text(text)
    shutil.copy(MONITORS / "tests" / "node.test.yml", tmp_path / "tests")
    r = _run(str(PROMTOOL), "test", "rules", str(tmp_path / "tests" / "node.test.yml"))
    assert r.returncode != 0 and "DcopsClockOffset" in r.stdout + r.stderr


# --- the generated topology rules -----------------------------------------------------------
def test_lab_facts_from_the_circuits(lab_inv: Any) -> None:
    fs = {f.name: f for f in rules.facts(lab_inv)}
    assert fs["luc-yen"].behind == ("an-phu", "khanh-hoa")
    assert fs["dai-son"].dual and fs["dai-son"].parents == ("luc-yen", "van-yen")
    assert fs["dai-son"].path_neighbours == ("luc-yen", "van-yen")
    assert fs["an-phu"].parents == ("luc-yen",) and not fs["an-phu"].dual
    assert fs["luc-yen"].circuits == 4  # dc, an-phu, khanh-hoa, dai-son
    exp = rules.expect(lab_inv, down=["luc-yen"])
    assert exp.unreachable == {"an-phu": 0, "khanh-hoa": 0, "luc-yen": 2}
    assert exp.root_causes == ["luc-yen"] and exp.inhibited == ["an-phu", "khanh-hoa"]
    assert exp.redundancy_lost == ["dai-son"]
    # a single-path commune's circuit cut: only that commune, a root cause of its own
    cut = rules.expect(lab_inv, cut=["van-yen--mau-a"])
    assert cut.root_causes == ["mau-a"] and cut.inhibited == [] and cut.redundancy_lost == []


def test_generated_rules_name_the_root_cause(lab_inv: Any) -> None:
    text = rules.dump(rules.render(lab_inv))
    assert "sites unreachable behind it" in text and "điểm phía sau không liên lạc được" in text
    doc = yaml.safe_load(text)
    inhibitors = [r for r in doc["groups"][0]["rules"] if r.get("alert") == "DcopsUpstreamDown"]
    assert sorted(r["labels"]["parents"] for r in inhibitors) == ["dc", "luc-yen", "luc-yen,van-yen", "van-yen"]
    names = [r.get("alert") or r.get("record") for r in doc["groups"][0]["rules"]]
    # inhibitors come before the alerts they mute, with a for: no longer than theirs
    assert names.index("DcopsUpstreamDown") < names.index("DcopsSiteUnreachable")
    site_rule = next(r for r in doc["groups"][0]["rules"] if r.get("alert") == "DcopsSiteUnreachable")
    assert all(int(r["for"][:-1]) <= int(site_rule["for"][:-1]) for r in inhibitors)


@needs_promtool
@pytest.mark.parametrize("inv_dir,circuits", [(LAB, True), (YENBAI, False)], ids=["lab", "yenbai"])
def test_generated_rules_pass_their_generated_tests(tmp_path: Path, inv_dir: Path, circuits: bool) -> None:
    r = CliRunner().invoke(app, ["noc", "rules", "-i", str(inv_dir), "-o", str(tmp_path)] + (["--circuits"] if circuits else []))
    assert r.exit_code == 0, r.output
    r2 = _run(str(PROMTOOL), "check", "rules", str(tmp_path / "topology.rules.yml"))
    assert r2.returncode == 0, r2.stdout + r2.stderr
    tests = yaml.safe_load((tmp_path / "topology.test.yml").read_text())["tests"]
    topo_sites = {f.name for f in rules.facts(load_inventory(inv_dir))} - {"dc", "yenbai-dc"}
    downed = {s for t in tests for s in t["name"].removesuffix(" down").split(" + ") if t["name"].endswith(" down")}
    assert topo_sites <= downed | {f.name for f in rules.facts(load_inventory(inv_dir)) if f.tier == "datacentre"}
    r3 = _run(str(PROMTOOL), "test", "rules", "topology.test.yml", cwd=tmp_path)
    assert r3.returncode == 0, r3.stdout[-3000:] + r3.stderr[-3000:]


@needs_promtool
def test_generated_tests_catch_a_wrong_inhibitor(tmp_path: Path, lab_inv: Any) -> None:
    """An inhibitor that fires when *any* parent is down (not all) fails the dai-son cases."""
    doc = rules.render(lab_inv)
    for r in doc["groups"][0]["rules"]:
        if r.get("alert") == "DcopsUpstreamDown":
            r["expr"] = r["expr"].rsplit("==", 1)[0] + ">= 1"
    (tmp_path / "topology.rules.yml").write_text(rules.dump(doc))
    (tmp_path / "topology.test.yml").write_text(ruletests.dump_tests(ruletests.render_tests(lab_inv)))
    r = _run(str(PROMTOOL), "test", "rules", "topology.test.yml", cwd=tmp_path)
    assert r.returncode != 0 and 'parents="luc-yen,van-yen"' in r.stdout + r.stderr


def test_a_site_without_a_path_is_refused(tmp_path: Path) -> None:
    inv = tmp_path / "inv"
    shutil.copytree(LAB, inv)
    circuits = inv / "circuits.yml"
    circuits.write_text("\n".join(line for line in circuits.read_text().splitlines() if "b: mau-a" not in line) + "\n")
    r = CliRunner().invoke(app, ["noc", "rules", "-i", str(inv), "-o", str(tmp_path / "out")])
    assert r.exit_code == 2
    assert "mau-a" in r.output and ("path" in r.output or "circuit" in r.output), r.output


# --- Alertmanager: routing, inhibition, silences, the webhook -----------------------------
def _am_config(tmp: Path, inv: Any, webhook_url: str, iv: Intervals | None = None) -> Path:
    cfg = alertmanager.render(inv, alertmanager.Receivers(webhook_url=webhook_url, deadman_url=webhook_url + "deadman",
                                                          templates_dir=str(MONITORS / "alertmanager")), iv or Intervals())
    path = tmp / "alertmanager.yml"
    path.write_text(alertmanager.dump(cfg))
    return path


@needs_am
def test_rendered_alertmanager_config_checks_and_routes(tmp_path: Path, lab_inv: Any) -> None:
    path = _am_config(tmp_path, lab_inv, "http://127.0.0.1:9/")
    r = _run(str(AMTOOL), "check-config", str(path))
    assert r.returncode == 0 and "1 templates" in r.stdout, r.stdout + r.stderr
    cfg = yaml.safe_load(path.read_text())
    assert cfg["receivers"][0]["email_configs"][0]["to"] == "noc@stttt.lab.test"
    assert cfg["receivers"][0]["email_configs"][0]["smarthost"] == "10.251.0.2:25"
    cases = [
        ("noc", ["alertname=DcopsSiteUnreachable", "severity=critical", "site=luc-yen", "tier=district"]),
        ("noc", ["alertname=DcopsServiceDown", "severity=critical", "site=dc", "tier=datacentre"]),
        ("noc-mail", ["alertname=DcopsRedundancyLost", "severity=warning", "site=dai-son", "tier=commune"]),
        ("noc", ["alertname=DcopsOspfNeighbourLost", "severity=warning", "site=luc-yen", "tier=district"]),
        ("noc-mail", ["alertname=DcopsRebootRequired", "severity=info"]),
        ("blackhole", ["alertname=DcopsUpstreamDown", "severity=none", "parents=luc-yen"]),
        ("deadman", ["alertname=Watchdog", "severity=none"]),
    ]
    for receiver, labels in cases:
        r = _run(str(AMTOOL), "config", "routes", "test", f"--config.file={path}", f"--verify.receivers={receiver}", *labels)
        assert r.returncode == 0, (receiver, labels, r.stdout, r.stderr)
    r = _run(str(AMTOOL), "config", "routes", "test", f"--config.file={path}", "--verify.receivers=noc",
             "alertname=DcopsUpstreamDown", "severity=none")
    assert r.returncode != 0  # the inhibitors page nobody
    # with the NOC mailbox's password: login on the submission port, STARTTLS, the mail host's name
    (tmp_path / "pw").write_text("secret\n")
    cfg2 = alertmanager.render(lab_inv, alertmanager.Receivers(auth_password_file=str(tmp_path / "pw"),
                                                               templates_dir=str(MONITORS / "alertmanager")))
    mail = cfg2["receivers"][0]["email_configs"][0]
    assert (mail["smarthost"], mail["auth_username"], mail["require_tls"]) == ("10.251.0.2:587", "noc@stttt.lab.test", True)
    assert mail["tls_config"] == {"server_name": "mail.lab.test"} and "noc@stttt.lab.test" in mail["from"]
    (tmp_path / "am-auth.yml").write_text(alertmanager.dump(cfg2))
    r = _run(str(AMTOOL), "check-config", str(tmp_path / "am-auth.yml"))
    assert r.returncode == 0, r.stdout + r.stderr


@contextlib.contextmanager
def _alertmanager_proc(tmp: Path, config: Path) -> Iterator[str]:
    port = free_port("127.0.0.1")
    log = (tmp / "am.log").open("w")
    p = subprocess.Popen([str(AM_BIN), f"--config.file={config}", f"--storage.path={tmp / 'am-data'}",
                          f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=warn"],
                         stdout=subprocess.DEVNULL, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"{base}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
        yield base
    finally:
        kill_pid(p)
        log.close()


@contextlib.contextmanager
def _webhook() -> Iterator[tuple[str, webhook.Store]]:
    server, store = webhook.serve("127.0.0.1", 0)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", store
    finally:
        server.shutdown()
        server.server_close()


def _post_alerts(base: str, alerts: list[dict[str, Any]]) -> None:
    req = urllib.request.Request(f"{base}/api/v2/alerts", data=json.dumps(alerts).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def _luc_yen_down_alerts(inv: Any) -> list[dict[str, Any]]:
    """What Prometheus sends with luc-yen's router stopped (per rules.expect and the rule labels)."""
    fs = {f.name: f for f in rules.facts(inv)}
    exp = rules.expect(inv, down=["luc-yen"])
    now = datetime.now(UTC)
    end = (now + timedelta(minutes=10)).isoformat()
    out: list[dict[str, Any]] = []
    for s, n in exp.unreachable.items():
        f = fs[s]
        out.append({"labels": {"alertname": "DcopsSiteUnreachable", "severity": "critical", "site": s, "area": f.area,
                               "tier": f.tier, "parents": rules.parents_label(f.parents), "province": "lab"},
                    "annotations": {"summary": f"{s} down — {n} sites unreachable behind it"}, "endsAt": end})
    for p in exp.inhibitors:
        out.append({"labels": {"alertname": "DcopsUpstreamDown", "severity": "none", "parents": p, "province": "lab"},
                    "endsAt": end})
    for s in exp.redundancy_lost:
        out.append({"labels": {"alertname": "DcopsRedundancyLost", "severity": "warning", "site": s, "tier": fs[s].tier,
                               "area": fs[s].area, "parents": rules.parents_label(fs[s].parents), "province": "lab"},
                    "endsAt": end})
    # what else the dead sites raise: their node_exporter and video-conference endpoint
    for s in exp.unreachable:
        out.append({"labels": {"alertname": "DcopsNodeDown", "severity": "warning", "site": s, "host": s,
                               "tier": fs[s].tier, "province": "lab"}, "endsAt": end})
        out.append({"labels": {"alertname": "DcopsVideoconfEndpointDown", "severity": "warning", "site": s,
                               "tier": fs[s].tier, "province": "lab"}, "endsAt": end})
    return out


@needs_am
def test_alertmanager_inhibits_the_sites_behind_luc_yen_and_notifies_one_root_cause(tmp_path: Path, lab_inv: Any) -> None:
    with _webhook() as (hook, store):
        cfg = _am_config(tmp_path, lab_inv, hook, Intervals(group_wait=1, group_interval=2))
        # no mail server here: the receiver's e-mail would fail; the webhook is what is checked
        doc = yaml.safe_load(cfg.read_text())
        for rcv in doc["receivers"]:
            rcv.pop("email_configs", None)
        cfg.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
        with _alertmanager_proc(tmp_path, cfg) as base:
            _post_alerts(base, _luc_yen_down_alerts(lab_inv))
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not store.since(0, "/"):
                time.sleep(0.2)
            time.sleep(3)  # one more group_interval: nothing else may arrive
            got = {(a["labels"]["alertname"], a["labels"].get("site", a["labels"].get("parents"))): a["status"]
                   for a in _get(f"{base}/api/v2/alerts")}
            inhibited = {k for k, st in got.items() if st["inhibitedBy"]}
            assert inhibited == {
                ("DcopsSiteUnreachable", "an-phu"), ("DcopsSiteUnreachable", "khanh-hoa"),
                ("DcopsNodeDown", "an-phu"), ("DcopsNodeDown", "khanh-hoa"), ("DcopsNodeDown", "luc-yen"),
                ("DcopsVideoconfEndpointDown", "an-phu"), ("DcopsVideoconfEndpointDown", "khanh-hoa"),
                ("DcopsVideoconfEndpointDown", "luc-yen"),
            }, inhibited
            assert got[("DcopsSiteUnreachable", "luc-yen")]["state"] == "active"
            assert not got[("DcopsRedundancyLost", "dai-son")]["inhibitedBy"]
            notes = store.since(0, "/")
            critical = [n for n in notes if n["payload"]["commonLabels"].get("severity") == "critical"]
            assert len(critical) == 1, [n["payload"]["groupLabels"] for n in notes]
            assert [a["labels"]["site"] for a in critical[0]["payload"]["alerts"]] == ["luc-yen"]
            assert critical[0]["payload"]["alerts"][0]["annotations"]["summary"] == "luc-yen down — 2 sites unreachable behind it"
            others = {n["payload"]["groupLabels"].get("alertname") for n in notes} - {"DcopsSiteUnreachable"}
            assert others <= {"DcopsRedundancyLost"}, others
            # the webhook's own API lists the same
            assert len(_get(hook + "notifications")) == len(store.since(0))


@needs_am
def test_silence_covers_the_sites_behind_and_is_listed_and_expired(tmp_path: Path, lab_inv: Any) -> None:
    with _webhook() as (hook, store):
        cfg = _am_config(tmp_path, lab_inv, hook, Intervals(group_wait=1, group_interval=2))
        doc = yaml.safe_load(cfg.read_text())
        for rcv in doc["receivers"]:
            rcv.pop("email_configs", None)
        cfg.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
        with _alertmanager_proc(tmp_path, cfg) as base:
            runner = CliRunner()
            r = runner.invoke(app, ["noc", "silence", "luc-yen", "--for", "10m", "--comment", "drill",
                                    "-i", str(LAB), "--alertmanager", base, "--json"])
            assert r.exit_code == 0, r.output
            made = json.loads(r.output)
            assert made["sites"] == ["luc-yen", "an-phu", "khanh-hoa"]
            _post_alerts(base, _luc_yen_down_alerts(lab_inv))
            time.sleep(3)
            status = {(a["labels"]["alertname"], a["labels"].get("site")): a["status"] for a in _get(f"{base}/api/v2/alerts")}
            assert status[("DcopsSiteUnreachable", "luc-yen")]["silencedBy"] == [made["id"]]
            assert status[("DcopsSiteUnreachable", "luc-yen")]["state"] == "suppressed"
            assert not status[("DcopsRedundancyLost", "dai-son")]["silencedBy"]
            sites_notified = {a["labels"].get("site") for n in store.since(0, "/") for a in n["payload"]["alerts"]}
            assert sites_notified <= {"dai-son"}, sites_notified
            r = runner.invoke(app, ["noc", "silences", "--alertmanager", base, "--json"])
            listed = json.loads(r.output)
            assert [s["id"] for s in listed] == [made["id"]] and listed[0]["state"] == "active"
            assert listed[0]["sites"] == ["luc-yen", "an-phu", "khanh-hoa"]
            r = runner.invoke(app, ["noc", "silences", "--alertmanager", base, "--expire", made["id"], "--json"])
            assert r.exit_code == 0 and json.loads(r.output) == []
            assert silences.list_silences(url=base, include_expired=True)[0].state == "expired"
            # unknown sites and bad durations are refused with the reason
            r = runner.invoke(app, ["noc", "silence", "luc-yem", "-i", str(LAB), "--alertmanager", base])
            assert r.exit_code == 2 and "unknown site 'luc-yem'" in r.output and "luc-yen" in r.output
            r = runner.invoke(app, ["noc", "silence", "luc-yen", "--for", "2x", "-i", str(LAB), "--alertmanager", base])
            assert r.exit_code == 2 and "not a duration" in r.output


def test_webhook_refuses_what_is_not_an_alertmanager_payload() -> None:
    with _webhook() as (hook, store):
        for body in (b"{", b"[]", b'{"x": 1}'):
            req = urllib.request.Request(hook, data=body, method="POST", headers={"Content-Type": "application/json"})
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(req, timeout=5)
            assert e.value.code == 400
        assert store.since(0) == []


# --- federation ----------------------------------------------------------------------------
class _Series(BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.mark.skipif(PROM_BIN is None, reason="needs prometheus")
def test_a_second_prometheus_federates_the_site_state(tmp_path: Path, lab_inv: Any) -> None:
    from tests.exporters.procs import prometheus

    fs = rules.facts(lab_inv)
    _Series.body = "".join(
        f'probe_success{{site="{f.name}",instance="{f.target}"}} {0 if f.name in ("luc-yen", "an-phu", "khanh-hoa") else 1}\n'
        for f in fs
    ).encode()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Series)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        a = tmp_path / "a"
        a.mkdir()
        (a / "topology.rules.yml").write_text(rules.dump(rules.render(lab_inv)))
        (a / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "external_labels": {"province": "lab"}},
            "rule_files": [str(a / "topology.rules.yml")],
            "scrape_configs": [{"job_name": "dcops-icmp", "honor_labels": True,
                                "static_configs": [{"targets": [f"127.0.0.1:{srv.server_address[1]}"]}]}],
        }))
        with prometheus(str(PROM_BIN), a / "prometheus.yml", a / "data") as base_a:
            b = tmp_path / "b"
            b.mkdir()
            cfg = federation.render(federation.parse_provinces([f"lab={base_a.removeprefix('http://')}"]), scrape_interval="1s",
                                    scrape_timeout="1s")
            (b / "prometheus.yml").write_text(federation.dump(cfg))
            r = _run(str(PROMTOOL or "promtool"), "check", "config", str(b / "prometheus.yml"))
            assert r.returncode == 0, r.stdout + r.stderr
            with prometheus(str(PROM_BIN), b / "prometheus.yml", b / "data") as base_b:
                got: list[dict[str, Any]] = []
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    q = urllib.parse.quote('dcops:site_up{province="lab"}')
                    got = _get(f"{base_b}/api/v1/query?query={q}")["data"]["result"]
                    if len(got) == len(fs):
                        break
                    time.sleep(0.5)
                state = {s["metric"]["site"]: s["value"][1] for s in got}
                assert state == {f.name: ("0" if f.name in ("luc-yen", "an-phu", "khanh-hoa") else "1") for f in fs}
                assert all(s["metric"]["federated_from"] == "lab" for s in got)
                q = urllib.parse.quote('dcops:site_info{site="dai-son"}')
                info = _get(f"{base_b}/api/v1/query?query={q}")["data"]["result"]
                assert info and info[0]["metric"]["parents"] == "luc-yen,van-yen" and info[0]["metric"]["province"] == "lab"
                q = urllib.parse.quote('dcops:site_behind_unreachable{site="luc-yen"}')
                behind = _get(f"{base_b}/api/v1/query?query={q}")["data"]["result"]
                assert behind and behind[0]["value"][1] == "2"
    finally:
        srv.shutdown()
        srv.server_close()


def test_federation_refuses_bad_targets() -> None:
    with pytest.raises(federation.FederationError, match="CODE=HOST:PORT"):
        federation.parse_provinces(["lab"])
    with pytest.raises(federation.FederationError, match="twice"):
        federation.parse_provinces(["a=h:1", "a=h:2"])
