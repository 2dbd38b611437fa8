"""The security exporter against loopback servers: sshd, SMTP STARTTLS, IMAPS, a port scan, mail DNS."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dcops.exporters.security.exporter import (
    MailDomain,
    PortScan,
    SecurityExporter,
    SecurityTargets,
    TlsEndpoint,
    from_inventory,
)
from dcops.inventory import load_inventory
from tests.conftest import LAB
from tests.exporters.conftest import Samples, parse
from tests.exporters.fleet import BAD, GOOD, Fleet, LoopThread, free_port
from tests.exporters.helpers import S, make_config
from tests.exporters.procs import kill_pid, promtool_check_metrics

SSHD = "/usr/sbin/sshd"
SECURITY = {"timeout": 2, "scan_ports": [22, 25, 80]}


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Two sshd on 127.0.0.1: one offering weak algorithms and passwords, one hardened."""
    if not os.path.exists(SSHD) or os.geteuid() != 0:
        pytest.skip("needs /usr/sbin/sshd (openssh-server) and root")
    d = tmp_path_factory.mktemp("sshd")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "hostkey")], check=True)
    os.makedirs("/run/sshd", exist_ok=True)
    procs, out = [], {}
    common = f"HostKey {d / 'hostkey'}\nListenAddress 127.0.0.1\nUsePAM no\nPidFile none\nStrictModes no\n"
    variants = {
        "weak": "PasswordAuthentication yes\nKexAlgorithms +diffie-hellman-group14-sha1\n"
                "Ciphers +aes128-cbc\nMACs +hmac-sha1\n",
        "hardened": "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                    "KexAlgorithms curve25519-sha256,ecdh-sha2-nistp256\nCiphers chacha20-poly1305@openssh.com\n"
                    "MACs hmac-sha2-256-etm@openssh.com\n",
    }
    for name, extra in variants.items():
        port = free_port("127.0.0.1")
        cfg = d / f"{name}.conf"
        cfg.write_text(common + f"Port {port}\n" + extra)
        subprocess.run([SSHD, "-t", "-f", str(cfg)], check=True)
        procs.append(subprocess.Popen([SSHD, "-D", "-e", "-f", str(cfg)], stderr=subprocess.DEVNULL))
        out[name] = f"127.0.0.1:{port}"
        for _ in range(50):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
    try:
        yield out
    finally:
        for p in procs:
            kill_pid(p)


@pytest.fixture(scope="module")
def servers(fleet: Fleet) -> Iterator[dict[str, str]]:
    lt = LoopThread()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(fleet.certs["valid"].cert, fleet.certs["valid"].key)
    out: dict[str, str] = {}
    holders: list[asyncio.AbstractServer] = []

    async def smtp(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"220 mail ESMTP\r\n")
        await r.readline()
        w.write(b"250-mail\r\n250-PIPELINING\r\n250 STARTTLS\r\n")
        await r.readline()
        w.write(b"220 go ahead\r\n")
        await w.drain()
        await w.start_tls(ctx)
        await asyncio.sleep(1)
        w.close()

    async def start() -> None:
        srv = await asyncio.start_server(smtp, GOOD, 0)
        holders.append(srv)
        out["smtp"] = f"{GOOD}:{srv.sockets[0].getsockname()[1]}"

    async def stop() -> None:
        for h in holders:
            h.close()

    lt.call(start())
    try:
        yield out
    finally:
        lt.call(stop())
        lt.stop()


def scrape(fleet: Fleet, tmp: Path, targets: SecurityTargets) -> tuple[bytes, Samples]:
    cfg = make_config(fleet, tmp, security=SECURITY | {"tls": {"ca_file": str(fleet.ca.ca_file)}})

    async def go() -> bytes:
        ex = SecurityExporter(cfg, targets)
        await ex.startup()
        try:
            return await ex.scrape(time.monotonic() + 5)
        finally:
            await ex.shutdown()

    body = asyncio.run(go())
    return body, parse(body)


def test_ssh_posture(fleet: Fleet, tmp_path: Path, sshd: dict[str, str]) -> None:
    body, s = scrape(fleet, tmp_path, SecurityTargets(ssh=[sshd["weak"], sshd["hardened"]]))
    for name, weak in (("weak", True), ("hardened", False)):
        t = sshd[name]
        assert s[("dcops_security_ssh_up", frozenset({("target", t)}))] == 1
        assert s[("dcops_security_ssh_password_auth_offered", frozenset({("target", t)}))] == int(weak)
        got = {dict(lab)["algorithm"] for (n, lab), _ in s.items()
               if n == "dcops_security_ssh_weak_algorithm_info" and dict(lab)["target"] == t}
        # OpenSSH 9.2's default MACs include umac-64 and hmac-sha1-etm: weak by our list too
        assert got == (
            {"diffie-hellman-group14-sha1", "aes128-cbc", "hmac-sha1", "hmac-sha1-etm@openssh.com",
             "umac-64@openssh.com", "umac-64-etm@openssh.com"} if weak else set()
        )
    assert promtool_check_metrics(body) == ""


def test_tls_starttls_and_direct(fleet: Fleet, tmp_path: Path, servers: dict[str, str]) -> None:
    ts = SecurityTargets(tls=[
        TlsEndpoint(servers["smtp"], "valid.test", "smtp"),
        TlsEndpoint(fleet.addr["https_expired"], GOOD),
        TlsEndpoint(fleet.addr["https_selfsigned"], "selfsigned.test"),
        TlsEndpoint(fleet.addr["refused"], GOOD),
    ])
    body, s = scrape(fleet, tmp_path, ts)
    exp = {
        servers["smtp"]: (1, 1, 1, fleet.certs["valid"].not_after),
        fleet.addr["https_expired"]: (1, 1, 1, fleet.certs["expired"].not_after),
        fleet.addr["https_selfsigned"]: (1, 0, 1, fleet.certs["selfsigned"].not_after),
    }
    for t, (up, chain, name, not_after) in exp.items():
        lab = frozenset({("target", t)})
        assert s[("dcops_security_tls_up", lab)] == up
        assert s[("dcops_security_tls_chain_valid", lab)] == chain
        assert s[("dcops_security_tls_hostname_valid", lab)] == name
        assert s[("dcops_security_tls_cert_expiry_timestamp_seconds", lab)] == int(not_after.timestamp())
    assert s[("dcops_security_tls_up", frozenset({("target", fleet.addr["refused"])}))] == 0
    assert promtool_check_metrics(body) == ""


def test_open_ports_against_flows(fleet: Fleet, tmp_path: Path) -> None:
    # a listener on an unexpected port (80) on 127.0.0.4; 25 is allowed but closed
    srv = socket.socket()
    srv.bind(("127.0.0.4", 80))
    srv.listen()
    try:
        _, s = scrape(fleet, tmp_path, SecurityTargets(scans=[PortScan("h1", "127.0.0.4", frozenset({25}))]))
    finally:
        srv.close()
    assert {k: v for k, v in s.items() if k[0].startswith("dcops_security_")} == dict([
        S("dcops_security_port_scan_success", 1, host="h1"),
        S("dcops_security_port_open", 1, host="h1", port="80", expected="false"),
        S("dcops_security_port_open", 0, host="h1", port="25", expected="true"),
        S("dcops_security_unexpected_open_ports", 1, host="h1"),
    ])


def test_mail_dns_records(fleet: Fleet, tmp_path: Path) -> None:
    ts = SecurityTargets(mail=[MailDomain("good.test", GOOD, "s1"), MailDomain("weak.test", GOOD, "s1")],
                         dns_server=fleet.addr["dns"])
    _, s = scrape(fleet, tmp_path, ts)
    got = {(dict(lab)["domain"], dict(lab)["record"], n.rsplit("_", 1)[1]): v for (n, lab), v in s.items()
           if n.startswith("dcops_security_mail_dns_record")}
    assert got == {
        ("good.test", "spf", "present"): 1, ("good.test", "spf", "valid"): 1,
        ("good.test", "dmarc", "present"): 1, ("good.test", "dmarc", "valid"): 1,
        ("good.test", "dkim", "present"): 1, ("good.test", "dkim", "valid"): 1,
        ("weak.test", "spf", "present"): 1, ("weak.test", "spf", "valid"): 0,
        ("weak.test", "dmarc", "present"): 1, ("weak.test", "dmarc", "valid"): 0,
        ("weak.test", "dkim", "present"): 0, ("weak.test", "dkim", "valid"): 0,
    }


def dkim_samples(s: Samples) -> dict[tuple[str, str], float]:
    """(metric without its prefix, domain[/selector]) → value, for the DKIM series of a scrape."""
    out = {}
    for (n, lab), v in s.items():
        labels = dict(lab)
        if n.startswith("dcops_security_mail_dkim_") or (n.startswith("dcops_security_mail_dns_record_")
                                                         and labels["record"] == "dkim"):
            key = labels["domain"] + (f"/{labels['selector']}" if "selector" in labels else "")
            out[(n.removeprefix("dcops_security_mail_"), key)] = v
    return out


@pytest.mark.parametrize(("selector", "ok"), [("s1", 1), ("s2", 0)])
def test_dkim_checked_under_the_selector_the_key_is_published_under(fleet: Fleet, tmp_path: Path, selector: str,
                                                                     ok: int) -> None:
    """inventory/lab's mail domains, the exporter's config naming stttt.lab.test's selector (the fleet
    publishes its key under s1) and none for the other two (no key published: not queried)."""
    dom = "stttt.lab.test"
    cfg = make_config(fleet, tmp_path, security=SECURITY | {"dkim_selectors": {dom: selector}})
    mail = from_inventory(load_inventory(LAB), cfg).mail
    assert {m.domain: m.dkim_selector for m in mail} == {dom: selector, "lucyen.lab.test": None, "vanyen.lab.test": None}
    _, s = scrape(fleet, tmp_path, SecurityTargets(mail=mail, dns_server=fleet.addr["dns"]))
    assert dkim_samples(s) == {
        ("dkim_key_published", dom): 1, ("dkim_selector_info", f"{dom}/{selector}"): 1,
        ("dns_record_present", dom): ok, ("dns_record_valid", dom): ok,
        ("dkim_key_published", "lucyen.lab.test"): 0, ("dkim_key_published", "vanyen.lab.test"): 0,
    }
    assert s[("dcops_security_mail_dns_record_valid", frozenset({("domain", dom), ("record", "spf")}))] == 1
    for d in ("lucyen.lab.test", "vanyen.lab.test"):  # queried for SPF and DMARC still
        assert s[("dcops_security_mail_dns_success", frozenset({("domain", d)}))] == 1


def test_security_check_on_inventory() -> None:
    from tests.exporters.procs import dcops

    r = subprocess.run([dcops(), "exporter", "security", "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "checks" in r.stdout


_ = (BAD, shutil)
