"""The videoconf role's kamailio.cfg: every variant passes ``kamailio -c``; Kamailio and rtpengine
started with it on loopback (127.13.0.x, stopped by PID) register, refuse and relay as they should."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dcops.vc import kamailio
from dcops.vc.metrics import parse_registered
from tests.unit import vc_loopback as L

pytestmark = pytest.mark.skipif(L.have_tools() is not None, reason=f"needs {L.have_tools()} (Debian packages)")
SECRET = {a.user: a.secret for a in L.ACCOUNTS}


def test_every_variant_of_the_cfg_passes_kamailio_check(tmp_path: Path) -> None:
    seen = 0
    for v in kamailio.variants():
        values = L.BASE | {"videoconf_switches": v, "videoconf_db_dir": str(tmp_path)}
        files = kamailio.render(values, [a.row() for a in L.ACCOUNTS])
        cfg = tmp_path / "k.cfg"
        cfg.write_text(files["kamailio.cfg"])
        for name, on in v.items():
            assert (f"#!define {name}\n" in files["kamailio.cfg"]) == on
        kamailio.check(cfg)
        seen += 1
    assert seen == 2 ** len(kamailio.SWITCHES)


def test_a_broken_cfg_is_refused_with_kamailios_reason(tmp_path: Path) -> None:
    files = kamailio.render(L.BASE | {"videoconf_db_dir": str(tmp_path)}, [])
    cfg = tmp_path / "k.cfg"
    cfg.write_text(files["kamailio.cfg"].replace("route(REQINIT);", "route(REQINIT)", 1))
    with pytest.raises(kamailio.KamailioError, match="parse error"):
        kamailio.check(cfg)


def test_no_secret_in_the_rendered_files() -> None:
    files = kamailio.render(L.BASE, [a.row() for a in L.ACCOUNTS])
    for a in L.ACCOUNTS:
        assert all(a.secret not in c for c in files.values())
        assert a.row()["ha1"] in files["db/vcauth"] and a.row()["ha1"] not in files["kamailio.cfg"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[L.Stack]:
    s = L.Stack(tmp_path_factory.mktemp("vc"))
    s.start()
    try:
        yield s
    finally:
        s.stop()
    assert not s.procs


def registered(stack: L.Stack) -> dict[str, float]:
    return parse_registered(stack.metrics())


def counter(stack: L.Stack, name: str, site: str) -> float:
    for line in stack.metrics().splitlines():
        if line.startswith(f'kamailio_{name}{{site="{site}"'):
            return float(line.split()[1])
    return 0.0


def test_register_with_the_right_password_is_200_and_shows_in_the_metrics(stack: L.Stack) -> None:
    before = registered(stack).get("an-phu", 0)
    r = L.sipp("register", src="127.13.1.5", user="an-phu", password=SECRET["an-phu"])
    assert r.returncode == 0, r.stdout[-800:]
    assert registered(stack)["an-phu"] == before + 1
    assert registered(stack)["mau-a"] == 0


def test_register_with_a_wrong_password_is_challenged_again_and_counted(stack: L.Stack) -> None:
    before = counter(stack, "vc_auth_failures", "dc")
    r = L.sipp("register-badpw", src="127.13.3.5", user="dc", password="not-" + SECRET["dc"])
    assert r.returncode == 0, r.stdout[-800:]
    assert counter(stack, "vc_auth_failures", "dc") == before + 1
    assert registered(stack)["dc"] == 0
    assert "VC-AUTH-FAIL: user=dc realm=vc.lab.test src=127.13.3.5" in stack.log()
    assert SECRET["dc"] not in stack.log()


def test_register_from_another_sites_network_is_refused(stack: L.Stack) -> None:
    r = L.sipp("register-refused", src="127.13.2.9", user="an-phu", password=SECRET["an-phu"])
    assert r.returncode == 0, r.stdout[-800:]
    c = L.Client("127.13.2.9")
    code, _ = c.request("REGISTER", "an-phu", password=SECRET["an-phu"])
    assert code == 403


def test_unknown_account_and_foreign_realm_are_refused(stack: L.Stack) -> None:
    c = L.Client("127.13.1.8")
    assert c.request("REGISTER", "nobody", password="x")[0] == 403
    assert c.request("REGISTER", "an-phu", password=SECRET["an-phu"], realm="evil.example")[0] == 403


def test_internet_room_only_over_tls_from_anywhere(stack: L.Stack) -> None:
    udp = L.Client("127.13.9.9")
    assert udp.request("REGISTER", "mau-a", password=SECRET["mau-a"])[0] == 403
    tcp = L.Client("127.13.9.9", "tcp")
    assert tcp.request("REGISTER", "mau-a", password=SECRET["mau-a"])[0] == 403
    tls = L.Client("127.13.9.9", "tls", port=5061)
    code, reply = tls.request("REGISTER", "mau-a", password=SECRET["mau-a"])
    assert code == 200, reply
    assert registered(stack)["mau-a"] == 1
    code, _ = L.Client("127.13.9.10", "tls", port=5061).request("REGISTER", "mau-a", password="wrong")
    assert code == 401
    tls.close()


def test_unauthenticated_invite_to_a_room_is_refused(stack: L.Stack) -> None:
    c = L.Client("127.13.1.7")
    assert c.request("INVITE", "an-phu", to="luc-yen")[0] == 407  # a room's account: challenged
    assert c.request("INVITE", "outsider", to="luc-yen", realm="elsewhere.example")[0] == 403
    assert c.request("INVITE", "an-phu", to="luc-yen", password="wrong")[0] == 407


def test_garbage_and_oversized_messages_leave_kamailio_serving(stack: L.Stack) -> None:
    L.sipp("register", src="127.13.2.5", port=15501, user="luc-yen", password=SECRET["luc-yen"])
    reg = registered(stack)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.13.5.5", 0))
        for i in range(200):
            s.sendto(os.urandom(1 + (i * 37) % 1400), (L.PROXY, 5060))
        s.sendto(b"INVITE sip:x SIP/2.0\r\nVia: \x00\xff\r\n\r\n", (L.PROXY, 5060))
        s.sendto(b"REGISTER sip:vc.lab.test SIP/2.0\r\n" + b"X-Big: " + b"A" * 60000 + b"\r\n\r\n", (L.PROXY, 5060))
    big = L.Client("127.13.5.6", "tcp")
    pad = "X-Pad: " + "B" * 30000 + "\r\n"
    try:
        code, _ = big.request("OPTIONS", "dcops", from_domain="noc.example", ruri=f"sip:{L.PROXY}:5060", extra=pad)
        assert code == 513
    except (ConnectionError, TimeoutError, OSError):
        pass  # closed on us: refused too
    with socket.create_connection((L.PROXY, 5060), source_address=("127.13.5.7", 0)) as t:
        t.sendall(os.urandom(5000))
    time.sleep(0.3)
    assert stack.alive()
    probe = L.Client("127.13.1.9")
    assert probe.request("OPTIONS", "dcops", from_domain="noc.example", ruri=f"sip:{L.PROXY}:5060")[0] == 200
    assert registered(stack) == reg


def test_repeated_failures_ban_the_source_and_spare_the_others(stack: L.Stack) -> None:
    bad = L.Client("127.13.1.66", timeout=1.0)
    for _ in range(6):  # videoconf_authfail_limit in the harness
        assert bad.request("REGISTER", "an-phu", password="guess")[0] == 401
    with pytest.raises(TimeoutError):
        bad.request("REGISTER", "an-phu", password=SECRET["an-phu"])
    assert "VC-AUTH-BANNED: src=127.13.1.66 after 6 failures" in stack.log()
    good = L.Client("127.13.1.67")
    assert good.request("REGISTER", "an-phu", password=SECRET["an-phu"])[0] == 200


def test_the_fail2ban_filter_matches_kamailios_lines(stack: L.Stack, tmp_path: Path) -> None:
    f2b = "/usr/bin/fail2ban-regex"
    if not os.path.exists(f2b):
        pytest.skip("fail2ban not installed")
    L.Client("127.13.1.70").request("REGISTER", "an-phu", password="guess")
    log = tmp_path / "k.log"
    log.write_text("\n".join(x for x in stack.log().splitlines() if "<script>" in x) + "\n")
    flt = kamailio.ROLE / "files" / "dcops-kamailio.filter.conf"
    out = subprocess.run([f2b, "-v", str(log), str(flt)], capture_output=True, text=True, timeout=60).stdout
    assert "127.13.1.70" in out and "127.13.3.5" in out
    matched = int(out.split("Lines:")[1].split("matched")[0].split(",")[-1].strip())
    fails = sum(1 for x in log.read_text().splitlines() if "VC-AUTH-FAIL" in x or "VC-WRONG-NETWORK" in x)
    assert matched == fails > 0


def test_a_call_through_kamailio_and_rtpengine_carries_rtp_both_ways(stack: L.Stack) -> None:
    assert L.sipp("register", src="127.13.2.5", port=15500, user="luc-yen", password=SECRET["luc-yen"]).returncode == 0
    started = counter(stack, "vc_calls_started", "an-phu")
    answered = counter(stack, "vc_calls_answered", "an-phu")
    uas = subprocess.Popen(["sipp", "-sf", str(L.SIPP_DIR / "uas.xml"), "-i", "127.13.2.5", "-p", "15500", "-mi", "127.13.2.5",
                            "-rtp_echo", "-mp", "16000", "-nostdin", "-m", "1", "-timeout", "20s"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        res: dict[str, subprocess.CompletedProcess[str]] = {}
        caller = threading.Thread(target=lambda: res.update(r=L.sipp(
            "call", src="127.13.1.5", user="an-phu", password=SECRET["an-phu"], hold_ms=3000,
            extra=["-mi", "127.13.1.5", "-mp", "17000", "-cid_str", "dcops-unit-%u-%p@%s"])))
        caller.start()
        time.sleep(2.5)
        calls = [c.decode() for c in L.ng({"command": "list"}).get("calls", []) if c.startswith(b"dcops-unit-")]
        assert len(calls) == 1
        streams = L.streams(calls[0])
        caller.join(30)
        assert res["r"].returncode == 0, res["r"].stdout[-800:]
        assert uas.wait(10) == 0
    finally:
        if uas.poll() is None:
            uas.kill()
            uas.wait()
    rtp = [s for s in streams if s["packets"] > 0]
    assert len(rtp) == 2, streams  # caller -> callee and callee -> caller, both through rtpengine
    assert all(s["errors"] == 0 for s in rtp)
    assert counter(stack, "vc_calls_started", "an-phu") == started + 1
    assert counter(stack, "vc_calls_answered", "an-phu") == answered + 1
    assert 'rtpengine_packets_total{type="userspace"}' in stack.rtp_metrics()


def test_the_vc_endpoint_role_s_baresip_registers_over_tls_answers_and_echoes(stack: L.Stack, tmp_path: Path) -> None:
    """The lab's room stand-in (role vc_endpoint's files): registered over TLS, a call answered by
    itself, RTP both ways through rtpengine (it sends back what it hears), hung up cleanly."""
    if L.shutil.which("baresip") is None:
        pytest.skip("baresip not installed")
    user = next(a for a in L.ACCOUNTS if a.user == "luc-yen")
    files = kamailio.render_endpoint({
        "vc_endpoint__account": {"site": user.user, "user": user.user, "endpoint": "127.13.2.20", "secret": user.secret},
        "vc_endpoint__data": {"realm": L.REALM}, "vc_endpoint_proxy": L.PROXY, "vc_endpoint_proxy_port": 5061,
        "vc_endpoint_cafile": str(stack.root / "tls" / "ca.crt"),
    })
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with open(tmp_path / "baresip.log", "wb") as log:
        ua = subprocess.Popen(["baresip", "-f", str(tmp_path)], stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        for _ in range(50):
            if registered(stack).get("luc-yen", 0) >= 1 and "registered successfully" in (tmp_path / "baresip.log").read_text():
                break
            time.sleep(0.1)
        assert "{0/TLS/v4} 200 OK" in (tmp_path / "baresip.log").read_text()
        res: dict[str, subprocess.CompletedProcess[str]] = {}
        caller = threading.Thread(target=lambda: res.update(r=L.sipp(
            "call", src="127.13.1.5", user="an-phu", password=SECRET["an-phu"], hold_ms=3000,
            extra=["-mi", "127.13.1.5", "-mp", "17100", "-cid_str", "dcops-baresip-%u-%p@%s"])))
        caller.start()
        time.sleep(2.5)
        calls = [c.decode() for c in L.ng({"command": "list"}).get("calls", []) if c.startswith(b"dcops-baresip-")]
        assert len(calls) == 1
        streams = L.streams(calls[0])
        caller.join(30)
        assert res["r"].returncode == 0, res["r"].stdout[-800:]
    finally:
        os.killpg(ua.pid, 15)
        ua.wait(10)
    assert len([s for s in streams if s["packets"] > 20]) == 2, streams
    assert user.secret not in stack.log()
