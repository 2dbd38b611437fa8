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

import dns.message
import dns.rrset
import pytest

from dcops.exporters.security.exporter import MailDomain, PortScan, SecurityExporter, SecurityTargets, TlsEndpoint
from tests.exporters.conftest import Samples, parse
from tests.exporters.fleet import BAD, GOOD, Fleet, LoopThread, free_port
from tests.exporters.helpers import S, make_config
from tests.exporters.procs import kill_pid, promtool_check_metrics

SSHD = "/usr/sbin/sshd"


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


def _txt(name: str, text: str) -> dns.rrset.RRset:
    return dns.rrset.from_text(name, 60, "IN", "TXT", '"' + text + '"')


def mail_dns(wire: bytes) -> bytes:
    q = dns.message.from_wire(wire)
    r = dns.message.make_response(q)
    n = q.question[0].name.to_text()
    records = {
        "good.test.": "v=spf1 ip4:127.0.0.2 -all",
        "_dmarc.good.test.": "v=DMARC1; p=reject; rua=mailto:dmarc@good.test",
        "dcops._domainkey.good.test.": "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQ",
        "weak.test.": "v=spf1 ip4:192.0.2.1 ~all",  # does not authorise the mail server
        "_dmarc.weak.test.": "v=DMARC1; p=none",
    }
    if n in records:
        r.answer.append(_txt(n, records[n]))
    return r.to_wire()


@pytest.fixture(scope="module")
def servers(fleet: Fleet) -> Iterator[dict[str, str]]:
    lt = LoopThread()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(fleet.certs["valid"].cert, fleet.certs["valid"].key)
    out: dict[str, str] = {}
    holders: list[asyncio.AbstractServer | asyncio.BaseTransport] = []

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
        from tests.exporters.fleet import _Udp

        tr, _ = await asyncio.get_running_loop().create_datagram_endpoint(lambda: _Udp(mail_dns), local_addr=(GOOD, 0))
        holders.append(tr)
        out["dns"] = f"{GOOD}:{tr.get_extra_info('sockname')[1]}"

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
    cfg = make_config(fleet, tmp, security={"timeout": 2, "scan_ports": [22, 25, 80], "tls": {"ca_file": str(fleet.ca.ca_file)}})

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


def test_mail_dns_records(fleet: Fleet, tmp_path: Path, servers: dict[str, str]) -> None:
    ts = SecurityTargets(mail=[MailDomain("good.test", GOOD), MailDomain("weak.test", GOOD)], dns_server=servers["dns"])
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


def test_security_check_on_inventory() -> None:
    from tests.exporters.procs import dcops

    r = subprocess.run([dcops(), "exporter", "security", "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "checks" in r.stdout


_ = (BAD, shutil)
