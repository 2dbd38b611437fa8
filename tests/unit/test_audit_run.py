"""dcops audit end to end on this machine: the collector is read-only (checksum of /etc and the
package list before and after, locally and over SSH), the transport (paramiko to a throwaway
sshd on 127.0.0.1), an unreachable host, waivers, diff, plan, and the reports (HTML parsed
strictly with html5lib, PDF through weasyprint + pdftoppm, JUnit, JSON against its schema,
a Chromium DOM test with a screenshot)."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from dcops.audit import collector_script
from dcops.audit.catalogue import load_catalogue
from dcops.audit.checks import HostContext
from dcops.audit.collect import SCRIPT, Collected, Target, collect_all
from dcops.audit.junit import junit_xml
from dcops.audit.plan import load_plan, write_plan
from dcops.audit.report_html import render_html
from dcops.audit.report_json import validate_results
from dcops.audit.report_pdf import render_pdf
from dcops.audit.run import RunInput, evaluate_run, save_run
from dcops.audit.waivers import load_waivers
from tests.unit.audit_sshd import free_port, loopback_sshd

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not Path("/usr/sbin/sshd").exists(), reason="needs root and openssh-server")


def etc_checksum() -> str:
    """A digest of every file under /etc (path, mode, content) and of the installed package list."""
    h = hashlib.sha256()
    for top, dirs, files in os.walk("/etc"):
        dirs.sort()
        for name in sorted(files):
            p = os.path.join(top, name)
            try:
                st = os.lstat(p)
                h.update(f"{p}\0{st.st_mode}\0".encode())
                if os.path.isfile(p) and not os.path.islink(p):
                    with open(p, "rb") as f:
                        h.update(f.read())
            except OSError:
                h.update(f"{p}\0unreadable".encode())
    h.update(subprocess.run(["dpkg-query", "-W"], capture_output=True, check=True).stdout)
    return h.hexdigest()


def ctx(name: str, roles: tuple[str, ...] = ("app",), admins: tuple[str, ...] = ("root",)) -> HostContext:
    return HostContext(
        name=name,
        site="dc",
        tier="datacentre",
        roles=roles,
        router=False,
        management="127.0.0.1",
        management_network="127.0.0.0/8",
        admins=admins,
        ports=frozenset({("tcp", 22)}),
    )


@pytest.fixture(scope="module")
def cat():  # type: ignore[no-untyped-def]
    return load_catalogue()


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory, cat) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """One audit over the loopback sshd (host-a) plus one unreachable host, while the collector also
    runs locally; /etc and the package list checksummed around both. host-b is host-a's facts again
    (the drill weakens it alone)."""
    tmp = tmp_path_factory.mktemp("audit")
    before = etc_checksum()
    local = subprocess.Popen([sys.executable, str(SCRIPT)], stdout=subprocess.PIPE, text=True)
    with loopback_sshd(tmp / "sshd") as sshd:
        target = Target(ctx("host-a"), "127.0.0.1", sshd.port, "root", str(sshd.key), str(sshd.known_hosts))
        dead = Target(ctx("host-down"), "127.0.0.1", free_port(), "root", str(sshd.key), str(sshd.known_hosts))
        t0 = time.time()
        got = collect_all([target, dead], workers=4, timeout=5, progress=False)
    out, _ = local.communicate(timeout=120)
    assert local.returncode == 0
    after = etc_checksum()
    twin = replace(target, ctx=ctx("host-b"))
    got.facts["host-b"] = copy.deepcopy(got.facts["host-a"])
    got.seconds["host-b"] = got.seconds["host-a"]
    targets = [target, twin, dead]
    inp = RunInput(cat, cat.defaults(), [], [], "test")
    doc = evaluate_run(inp, targets, got, tmp / "results", t0)
    return {
        "tmp": tmp,
        "before": before,
        "after": after,
        "local": json.loads(out),
        "got": got,
        "doc": doc,
        "targets": targets,
        "inp": inp,
    }


def test_collector_changes_nothing(audited: dict[str, Any]) -> None:
    assert audited["before"] == audited["after"]


def test_facts_over_ssh_match_local_collection(audited: dict[str, Any]) -> None:
    got: Collected = audited["got"]
    assert set(got.facts) == {"host-a", "host-b"} and set(got.errors) == {"host-down"}
    local, remote = audited["local"], got.facts["host-a"]
    for section in ("sshd", "login_defs", "accounts", "sysctl", "files", "packages"):
        assert remote[section] == local[section], section
    assert remote["_host"]["euid"] == 0
    assert "error" not in json.dumps(remote["sshd"])[:20] and "passwordauthentication" in remote["sshd"]


def test_unreachable_host_is_error_for_every_check_and_others_audited(audited: dict[str, Any], cat) -> None:  # type: ignore[no-untyped-def]
    got: Collected = audited["got"]
    assert "host-down" in got.errors and "cannot reach" in got.errors["host-down"]
    fs = [f for f in audited["doc"]["findings"] if f["host"] == "host-down"]
    assert len(fs) == len(cat.checks) and {f["status"] for f in fs} == {"error"}
    ok = [f for f in audited["doc"]["findings"] if f["host"] == "host-a"]
    assert len(ok) == len(cat.checks) and {"pass", "fail"} <= {f["status"] for f in ok}
    validate_results(audited["doc"])


def test_no_secret_leaves_the_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "$6$saltsalt$Zq0hHashThatMustNeverLeaveTheHostXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
    shadow = f"root:{secret}:19000:0:99999:7:::\nempty::19000::::::\nlocked:!:19000::::::\n"
    monkeypatch.setattr(collector_script, "read", lambda p: shadow if p == "/etc/shadow" else Path(p).read_text())
    out = json.dumps(collector_script.accounts())
    assert "Zq0hHash" not in out and "saltsalt" not in out
    users = {u["name"]: u for u in collector_script.accounts()["users"]}
    assert users["root"]["password"] == "hash" and users["root"]["scheme"] == "6"


def test_no_real_hash_in_results_or_facts(audited: dict[str, Any]) -> None:
    hashes = [
        ln.split(":")[1]
        for ln in Path("/etc/shadow").read_text().splitlines()
        if ln.count(":") > 1 and ln.split(":")[1].startswith("$")
    ]
    keys = [p.read_text().strip() for p in Path("/etc/ssh").glob("ssh_host_*_key")]
    text = json.dumps(audited["doc"]) + json.dumps(audited["got"].facts)
    for secret in hashes + keys:
        assert secret not in text
    assert "PRIVATE KEY" not in text


def test_drift_waiver_diff_and_plan(audited: dict[str, Any], cat, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base = tmp_path / "results"
    targets = audited["targets"][:2]
    facts = audited["got"].facts
    inp: RunInput = audited["inp"]

    def run(fs: dict[str, Any], now: float, waivers: Any = ()) -> dict[str, Any]:
        got = Collected(facts=fs, seconds={k: 1.0 for k in fs})
        doc = evaluate_run(RunInput(cat, inp.values, list(waivers), [], "test"), targets, got, base, now - 5, now=now)
        save_run(doc, got, base, inp)
        return doc

    # the hardened state of what the drill weakens (this machine's own sshd accepts passwords)
    facts = copy.deepcopy(facts)
    for fs in facts.values():
        fs["sshd"]["passwordauthentication"] = "no"
        fs["accounts"]["users"] = [u for u in fs["accounts"]["users"] if u["uid"] < 1000 or u["name"] == "nobody"]
    t = time.time()
    first = run(facts, t)
    assert first["diff"] is None
    drift = copy.deepcopy(facts)
    drift["host-b"]["sshd"]["passwordauthentication"] = "yes"
    drift["host-b"]["sshd"]["ciphers"] += ",aes128-cbc"
    drift["host-b"]["accounts"]["users"].append(
        {"name": "intruder", "uid": 1500, "shell": "/bin/bash", "password": "empty", "scheme": None, "keys": False}
    )
    second = run(drift, t + 60)
    new = {(c["host"], c["check"]) for c in second["diff"]["new_failures"]}
    expected_new = {
        ("host-b", c) for c in ("auth.ssh-no-password", "access.ssh-ciphers", "auth.no-empty-passwords", "ips.accounts-declared")
    }
    assert expected_new <= new and not {h for h, _ in new} - {"host-b"}
    weak = next(f for f in second["findings"] if f["host"] == "host-b" and f["check"] == "access.ssh-ciphers")
    assert "aes128-cbc" in weak["message"] and "aes128-cbc" in weak["evidence"][0]["value"]
    plan = load_plan(base / "plan.yml")
    item = next(i for i in plan.items if i.host == "host-b" and i.check == "auth.ssh-no-password")
    assert item.status == "open" and item.deadline > item.first_seen
    plan.items[plan.items.index(item)] = item.model_copy(update={"owner": "Phòng CNTT"})
    write_plan(plan, base / "plan.yml")
    # a waiver for one of them (valid), and one already expired
    wf = tmp_path / "waivers.yml"
    wf.write_text(
        "waivers:\n"
        "  - {id: ok, check: ips.accounts-declared, scope: {hosts: [host-b]}, justification: {vi: v, en: e}, approver: A,\n"
        "     expires: '2999-01-01'}\n"
        "  - {id: old, check: auth.no-empty-passwords, scope: {hosts: [host-b]}, justification: {vi: v, en: e}, approver: A,\n"
        "     expires: '2000-01-01'}\n",
        encoding="utf-8",
    )
    ws = load_waivers(wf, cat, dt.date.today())
    third = run(drift, t + 120, ws)
    st = {f["check"]: f for f in third["findings"] if f["host"] == "host-b"}
    assert st["ips.accounts-declared"]["status"] == "waived" and st["ips.accounts-declared"]["original"] == "fail"
    assert st["auth.no-empty-passwords"]["status"] == "fail" and "expired" in st["auth.no-empty-passwords"]["message"]
    assert third["scores"]["host"]["host-b"]["waived"] >= 1
    scored = third["scores"]["host"]["host-b"]
    assert scored["score"] == pytest.approx(scored["pass"] / (scored["pass"] + scored["fail"] + scored["error"]), abs=1e-4)
    fourth = run(facts, t + 180)
    fixed = {(c["host"], c["check"]) for c in fourth["diff"]["fixed"]}
    assert {("host-b", "auth.ssh-no-password"), ("host-b", "access.ssh-ciphers")} <= fixed
    item = next(i for i in load_plan(base / "plan.yml").items if i.host == "host-b" and i.check == "auth.ssh-no-password")
    assert item.status == "fixed" and item.owner == "Phòng CNTT" and item.fixed_on
    validate_results(fourth)


def _reports(audited: dict[str, Any], cat, lang: str) -> Path:  # type: ignore[no-untyped-def]
    out = audited["tmp"] / f"report.{lang}.html"
    out.write_text(render_html(audited["doc"], cat, None, lang), encoding="utf-8")
    return out


def test_html_report_parses_strictly_and_says_so(audited: dict[str, Any], cat) -> None:  # type: ignore[no-untyped-def]
    import html5lib

    for lang, words in (("vi", ("Đạt", "Chưa đạt", "Không áp dụng", "Lỗi kiểm tra")), ("en", ("Pass", "Fail", "Not applicable"))):
        text = _reports(audited, cat, lang).read_text(encoding="utf-8")
        html5lib.HTMLParser(strict=True, namespaceHTMLElements=False).parse(text)  # raises on any parse error
        assert f'<html lang="{lang}">' in text
        for w in words:
            assert f">{w}<" in text, w
        assert "cannot reach" in text  # the unreachable host, named
        assert text.count('class="finding"') == len(audited["doc"]["findings"])


@pytest.mark.parametrize("engine", ["chromium", "weasyprint"])
def test_pdf_renders_non_blank_pages(audited: dict[str, Any], cat, engine: str) -> None:  # type: ignore[no-untyped-def]
    if not shutil.which(engine) or not shutil.which("pdftoppm"):
        pytest.skip(f"{engine} / poppler-utils not installed (scripts/debian-packages.txt)")
    doc = audited["doc"]
    if engine == "weasyprint":  # the slower renderer on one host's report (a third of the time)
        doc = {**doc, "findings": [f for f in doc["findings"] if f["host"] in ("host-a", "(organisation)")]}
    html = audited["tmp"] / f"report-{engine}.html"
    html.write_text(render_html(doc, cat, None, "vi"), encoding="utf-8")
    pdf = html.with_suffix(".pdf")
    assert render_pdf(html, pdf, engine) == engine
    prefix = audited["tmp"] / f"page-{engine}"
    subprocess.run(["pdftoppm", "-r", "20", "-gray", str(pdf), str(prefix)], check=True, timeout=120)
    pages = sorted(audited["tmp"].glob(f"page-{engine}*.pgm"))
    assert len(pages) >= 3
    for p in pages:
        data = p.read_bytes()
        header, pixels = data.split(b"\n", 3)[:3], data.split(b"\n", 3)[3]
        assert header[0] == b"P5"
        dark = sum(1 for b in pixels if b < 128)
        assert dark > len(pixels) * 0.002, f"{p.name} is blank"


def test_junit_one_case_per_host_and_check(audited: dict[str, Any], cat) -> None:  # type: ignore[no-untyped-def]
    root = ET.fromstring(junit_xml(audited["doc"]))
    cases = root.findall(".//testcase")
    assert len(cases) == len(audited["doc"]["findings"])
    overall = audited["doc"]["scores"]["overall"]["all"]
    assert int(root.get("failures", -1)) == overall["fail"] and int(root.get("errors", -1)) == overall["error"]
    assert len(root.findall(".//testcase/failure")) == overall["fail"]


SELENIUM = r"""
import json, sys
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.common.by import By
o = Options()
for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
    o.add_argument(a)
d = webdriver.Chrome(options=o)
try:
    d.get(sys.argv[1])
    rows = d.find_elements(By.CSS_SELECTOR, "tr.finding")
    fail = d.find_element(By.CSS_SELECTOR, "tr.finding[data-status=fail]")
    ev = fail.find_element(By.CSS_SELECTOR, "ul.evidence li")
    out = {"rows": len(rows), "title": d.title, "score": d.find_element(By.ID, "overall-score").text,
           "evidence_visible": ev.is_displayed(), "evidence": ev.text,
           "status": fail.find_element(By.CSS_SELECTOR, ".st").text}
    d.save_screenshot(sys.argv[2])
    print(json.dumps(out))
finally:
    d.quit()
"""


def test_html_report_in_chromium(audited: dict[str, Any], cat) -> None:  # type: ignore[no-untyped-def]
    if not (
        shutil.which("chromium") and shutil.which("chromedriver") and Path("/usr/lib/python3/dist-packages/selenium").exists()
    ):
        pytest.skip("chromium, chromium-driver and python3-selenium needed")
    html = _reports(audited, cat, "vi")
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "audit-report.png"
    p = subprocess.run(
        ["/usr/bin/python3", "-c", SELENIUM, html.as_uri(), str(shot)], capture_output=True, text=True, timeout=120
    )
    assert p.returncode == 0, p.stderr[-2000:]
    dom = json.loads(p.stdout)
    assert dom["rows"] == len(audited["doc"]["findings"])
    assert dom["evidence_visible"] and dom["evidence"]
    assert dom["status"] == "Chưa đạt"
    assert dom["score"].endswith("%")
    assert shot.stat().st_size > 10_000


def test_scope_and_limit_from_the_inventory() -> None:
    from dcops.audit.collect import scope
    from dcops.inventory import load
    from dcops.render.ansible import site_hosts

    inv = load(Path(__file__).resolve().parents[2] / "inventory" / "lab").inventory
    every = scope(inv)
    managed = {h.name: str(h.management) for s in inv.sites for h in site_hosts(inv, s)}
    assert {t.ctx.name for t in every} == set(managed)
    for t in every:
        assert ("tcp", 22) in t.ctx.ports and ("tcp", 9100) in t.ctx.ports
        assert t.address == managed[t.ctx.name] or not Path(t.known_hosts or "/nonexistent").exists()
    dc = {t.ctx.name for t in scope(inv, "dc")}
    assert dc and all(inv.host(n)[0].name == "dc" for n in dc)
    assert {t.ctx.name for t in scope(inv, "dc,!router")} == {
        t.ctx.name for t in every if t.ctx.site == "dc" and "router" not in t.ctx.roles
    }
    mail = scope(inv, "mail")
    assert mail and all("mail" in t.ctx.roles for t in mail)
    assert scope(inv, "no-such-host") == []


def test_cli_run_and_report_over_loopback(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from dcops.cli import app

    with loopback_sshd(tmp_path / "sshd") as sshd:
        cfg = tmp_path / "ssh_config"
        cfg.write_text(
            f"Host dc-mail\n  HostName 127.0.0.1\n  Port {sshd.port}\n  User root\n  IdentityFile {sshd.key}\n"
            f"  UserKnownHostsFile {sshd.known_hosts}\n"
        )
        res = CliRunner().invoke(
            app, ["audit", "run", "-l", "dc-mail", "--ssh-config", str(cfg), "--results", str(tmp_path / "r"), "--json"]
        )
    assert res.exit_code == 1, res.output  # this machine is not hardened: failures, exit 1
    out = json.loads(res.stdout)
    assert [h["name"] for h in out["hosts"]] == ["dc-mail"] and out["hosts"][0]["collected"]
    doc = json.loads(Path(out["results"]).read_text())
    validate_results(doc)
    waived = {f["check"] for f in doc["findings"] if f["status"] == "waived"}
    assert waived <= {"mal.signatures-fresh", "ips.package-lists-fresh"}  # the lab's waivers, by role/host scope
    sig = next(f for f in doc["findings"] if f["check"] == "mal.signatures-fresh")
    assert sig["waiver"] and sig["waiver"]["id"] == "lab-no-signature-updates"
    rep = CliRunner().invoke(
        app, ["audit", "report", "--results", str(tmp_path / "r"), "-f", "html,json,junit", "--lang", "en", "--json"]
    )
    assert rep.exit_code == 0, rep.output
    files = json.loads(rep.stdout)
    assert Path(files["html"]).read_text().count('class="finding"') == len(doc["findings"])
    assert (tmp_path / "r" / "plan.yml").exists()


def test_collector_version_order_is_dpkgs() -> None:
    vs = [
        "1.0",
        "1.0-1",
        "1:0.9",
        "1.0~rc1",
        "1.0+b1",
        "2.4-2+deb12u3",
        "2.4-2+deb12u11",
        "1.0a",
        "1.0.1",
        "10",
        "9",
        "1.0~~",
        "1.0~",
    ]
    for a in vs:
        for b in vs:
            lt = subprocess.run(["dpkg", "--compare-versions", a, "lt", b]).returncode == 0
            assert (collector_script.version_cmp(a, b) < 0) == lt, (a, b)
