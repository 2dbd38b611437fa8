"""A fleet of loopback servers, one per behaviour a probe must handle, on a background event loop.

Addresses: 127.0.0.2 for well-behaved servers, 127.0.0.3 for misbehaving ones; the
blackhole address (127.0.0.66) is dropped by an nft table the fixture creates.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import struct
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

from tests.exporters.certs import Pair, TestCA

GOOD, BAD, BLACKHOLE = "127.0.0.2", "127.0.0.3", "127.0.0.66"


def free_port(host: str, kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class LoopThread:
    """An asyncio loop on a daemon thread; ``call`` runs a coroutine there and waits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fleet", daemon=True)
        self.thread.start()

    def call(self, coro: Awaitable[Any]) -> Any:
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]
        return fut.result(30)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def _sip_response(request: bytes, code: int = 200, reason: str = "OK") -> bytes:
    lines = request.decode("latin-1").split("\r\n")
    keep = [ln for ln in lines[1:] if ln.split(":", 1)[0].lower() in ("via", "from", "to", "call-id", "cseq")]
    return (f"SIP/2.0 {code} {reason}\r\n" + "\r\n".join(keep) + "\r\nContent-Length: 0\r\n\r\n").encode()


#: The mail DNS the fleet publishes (TXT): a good domain and a weak one, and inventory/lab's
#: stttt.lab.test shaped as `dcops mail dns` writes it, with its DKIM key under the selector
#: ``s1`` (the first key `dcops mail dkim-keys` makes). Other names are NXDOMAIN.
MAIL_TXT = {
    "good.test.": "v=spf1 ip4:127.0.0.2 -all",
    "_dmarc.good.test.": "v=DMARC1; p=reject; rua=mailto:dmarc@good.test",
    "s1._domainkey.good.test.": "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQ",
    "weak.test.": "v=spf1 ip4:192.0.2.1 ~all",  # does not authorise the mail server
    "_dmarc.weak.test.": "v=DMARC1; p=none",
    "stttt.lab.test.": "v=spf1 ip4:10.251.0.2 mx -all",
    "_dmarc.stttt.lab.test.": "v=DMARC1; p=quarantine; sp=quarantine; adkim=s; aspf=s; rua=mailto:postmaster@stttt.lab.test",
    "s1._domainkey.stttt.lab.test.": "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDivaRwQ05Y0B0bQWb7X6Kc",
}


def dns_answer(wire: bytes) -> bytes:
    q = dns.message.from_wire(wire)
    r = dns.message.make_response(q)
    qn = q.question[0]
    name = qn.name.to_text()
    if name == "ok.test." and qn.rdtype == dns.rdatatype.A:
        r.answer.append(dns.rrset.from_text("ok.test.", 60, "IN", "A", "127.0.0.9"))
    elif name == "fail.test.":
        r.set_rcode(dns.rcode.SERVFAIL)
    elif name in MAIL_TXT:
        if qn.rdtype == dns.rdatatype.TXT:
            r.answer.append(dns.rrset.from_text(name, 60, "IN", "TXT", '"' + MAIL_TXT[name] + '"'))
    else:
        r.set_rcode(dns.rcode.NXDOMAIN)
    return r.to_wire()


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, answer: Callable[[bytes], bytes | None]) -> None:
        self.answer = answer
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        out = self.answer(data)
        if out is not None and self.transport is not None:
            self.transport.sendto(out, addr)


@dataclass
class Fleet:
    """Addresses (``host:port``) of every server, by behaviour."""

    ca: TestCA
    addr: dict[str, str] = field(default_factory=dict)
    certs: dict[str, Pair] = field(default_factory=dict)
    servers: list[asyncio.AbstractServer] = field(default_factory=list)
    transports: list[asyncio.BaseTransport] = field(default_factory=list)
    conns: set[asyncio.StreamWriter] = field(default_factory=set)

    async def tcp(self, name: str, host: str, handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
                  ssl_ctx: ssl.SSLContext | None = None) -> None:
        async def wrapped(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            self.conns.add(w)
            try:
                await handler(r, w)
            except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, OSError):
                pass
            finally:
                self.conns.discard(w)
                w.close()

        srv = await asyncio.start_server(wrapped, host, 0, ssl=ssl_ctx)
        self.servers.append(srv)
        self.addr[name] = f"{host}:{srv.sockets[0].getsockname()[1]}"

    async def udp(self, name: str, host: str, answer: Callable[[bytes], bytes | None]) -> None:
        tr, _ = await asyncio.get_running_loop().create_datagram_endpoint(lambda: _Udp(answer), local_addr=(host, 0))
        self.transports.append(tr)
        self.addr[name] = f"{host}:{tr.get_extra_info('sockname')[1]}"

    def tls_ctx(self, pair: Pair) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pair.cert, pair.key)
        return ctx

    async def start(self) -> None:
        async def accept_close(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            return

        async def http_ok(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            line = await r.readline()
            while (await r.readline()) not in (b"\r\n", b""):
                pass
            code = b"404 Not Found" if b" /missing " in line else b"200 OK"
            w.write(b"HTTP/1.1 " + code + b"\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
            await w.drain()

        async def silent(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await asyncio.sleep(60)

        async def garbage(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            w.write(b"\x16\x03garbage \xff\xfe no protocol here\r\n\r\n" + os.urandom(64))
            await w.drain()
            await asyncio.sleep(0.5)

        async def reset(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await r.read(1)
            sock = w.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            w.transport.abort()

        async def sip_tcp(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            req = await r.readuntil(b"\r\n\r\n")
            w.write(_sip_response(req))
            await w.drain()

        async def sip_tcp_busy(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            req = await r.readuntil(b"\r\n\r\n")
            w.write(_sip_response(req, 100, "Trying") + _sip_response(req, 486, "Busy Here"))
            await w.drain()

        ca = self.ca
        self.certs = {
            "valid": ca.leaf("valid", ["valid.test", GOOD]),
            "expired": ca.leaf("expired", ["expired.test", GOOD], days=(-100, -10)),
            "selfsigned": ca.leaf("selfsigned", ["selfsigned.test", GOOD], self_signed=True),
            "wrongname": ca.leaf("wrongname", ["other.test"]),
        }
        await self.tcp("tcp_open", GOOD, accept_close)
        await self.tcp("http_ok", GOOD, http_ok)
        for k, pair in self.certs.items():
            await self.tcp(f"https_{k}", GOOD, http_ok, self.tls_ctx(pair))
        await self.tcp("slow", BAD, silent)
        await self.tcp("garbage", BAD, garbage)
        await self.tcp("reset", BAD, reset)
        await self.tcp("sip_tcp", GOOD, sip_tcp)
        await self.tcp("sip_tcp_busy", GOOD, sip_tcp_busy)
        await self.udp("dns", GOOD, dns_answer)
        await self.udp("sip_udp", GOOD, lambda d: _sip_response(d))
        await self.udp("udp_silent", BAD, lambda d: None)
        await self.udp("udp_garbage", BAD, lambda d: b"\xff\xfe\x00garbage")
        self.addr["refused"] = f"{BAD}:{free_port(BAD)}"
        self.addr["blackhole_tcp"] = f"{BLACKHOLE}:80"

    async def stop(self) -> None:
        for w in list(self.conns):
            w.transport.abort()
        for s in self.servers:
            s.close()
        for t in self.transports:
            t.close()
        for s in self.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(s.wait_closed(), 2)


def nft(*args: str) -> None:
    import subprocess

    subprocess.run(["nft", *args], check=True, capture_output=True, text=True)


class Blackhole:
    """An nft table (``dcops_test_<pid>``) dropping every packet to the given loopback addresses."""

    def __init__(self, addresses: list[str]) -> None:
        for a in addresses:
            assert a.startswith("127."), a
        self.table = f"dcops_test_{os.getpid()}"
        nft("add", "table", "ip", self.table)
        nft("add", "chain", "ip", self.table, "out", "{ type filter hook output priority 0; policy accept; }")
        nft("add", "rule", "ip", self.table, "out", "ip", "daddr", "{ " + ", ".join(addresses) + " }", "drop")

    def remove(self) -> None:
        with contextlib.suppress(Exception):
            nft("delete", "table", "ip", self.table)


def make_fleet(tmp: Path) -> tuple[LoopThread, Fleet]:
    lt = LoopThread()
    fleet = Fleet(TestCA(tmp))
    lt.call(fleet.start())
    return lt, fleet
