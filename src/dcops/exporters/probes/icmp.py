"""ICMP echo: one socket per exporter, replies matched to requests by (address, sequence).

The socket is an unprivileged ICMP datagram socket when ``net.ipv4.ping_group_range``
admits our group, else a raw socket (needs root or CAP_NET_RAW). IPv4 only.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import os
import socket
import struct
import time
from typing import TYPE_CHECKING

from dcops.exporters.config import Module
from dcops.exporters.errors import ProbeFailure
from dcops.exporters.probes.result import ProbeResult
from dcops.exporters.targets import Endpoint

if TYPE_CHECKING:  # the context holds the exporter's Pinger (this module's)
    from dcops.exporters.probes.context import ProbeContext

ECHO_REQUEST, ECHO_REPLY = 8, 0


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def echo_request(ident: int, seq: int, payload: bytes) -> bytes:
    header = struct.pack("!BBHHH", ECHO_REQUEST, 0, 0, ident, seq)
    csum = checksum(header + payload)
    return struct.pack("!BBHHH", ECHO_REQUEST, 0, csum, ident, seq) + payload


class Pinger:
    """Sends echo requests and resolves one future per (address, sequence) on reply."""

    def __init__(self) -> None:
        self.raw = False
        try:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
        except PermissionError:
            try:
                self.sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
            except PermissionError:
                raise ProbeFailure(
                    "error",
                    "ICMP needs net.ipv4.ping_group_range to include the exporter's group, or CAP_NET_RAW",
                ) from None
            self.raw = True
        self.sock.setblocking(False)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.ident = os.getpid() & 0xFFFF
        self._seq = itertools.count(1)
        self._waiting: dict[tuple[str, int], asyncio.Future[float]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def _attach(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self.sock)
            loop.add_reader(self.sock, self._on_readable)
            self._loop = loop

    def _on_readable(self) -> None:
        now = time.monotonic()
        while True:
            try:
                data, (src, _) = self.sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if self.raw:
                data = data[(data[0] & 0x0F) * 4 :]
            if len(data) < 8:
                continue
            typ, _code, _csum, ident, seq = struct.unpack("!BBHHH", data[:8])
            if typ != ECHO_REPLY or (self.raw and ident != self.ident):
                continue
            fut = self._waiting.pop((src, seq), None)
            if fut is not None and not fut.done():
                fut.set_result(now)

    async def ping(
        self, address: str, count: int, interval: float, timeout: float, payload_bytes: int = 56
    ) -> list[float | None]:
        """RTTs in seconds of ``count`` echoes (None for a lost one); waits at most ``timeout`` after the last send."""
        self._attach()
        loop = asyncio.get_running_loop()
        sent: list[tuple[float, asyncio.Future[float]]] = []
        keys = []
        try:
            for i in range(count):
                if i and interval:
                    await asyncio.sleep(interval)
                seq = next(self._seq) & 0xFFFF
                fut: asyncio.Future[float] = loop.create_future()
                key = (address, seq)
                self._waiting[key] = fut
                keys.append(key)
                payload = struct.pack("!d", time.time()).ljust(payload_bytes, b"\x5a")
                t0 = time.monotonic()
                try:
                    self.sock.sendto(echo_request(self.ident, seq, payload), (address, 0))
                except BlockingIOError:
                    fut.cancel()
                except OSError as e:
                    if e.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
                        raise ProbeFailure("unreachable", e.strerror or "") from None
                    if e.errno == errno.EPERM:  # a firewall rule rejected the packet locally
                        fut.cancel()
                    else:
                        raise
                sent.append((t0, fut))
            if sent:
                await asyncio.wait([f for _, f in sent], timeout=timeout)
            return [f.result() - t0 if f.done() and not f.cancelled() else None for t0, f in sent]
        finally:
            for key in keys:
                f = self._waiting.pop(key, None)
                if f is not None and not f.done():
                    f.cancel()

    def close(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self.sock)
        self.sock.close()
        for f in self._waiting.values():
            f.cancel()
        self._waiting.clear()


async def probe(ctx: ProbeContext, address: str, ep: Endpoint, mod: Module, budget: float, res: ProbeResult) -> None:
    o = mod.icmp
    # Leave time for the replies to the last packet within the probe's own budget.
    wait = max(0.0, budget - o.interval * (o.packets - 1)) * 0.95
    rtts = await ctx.get_pinger().ping(address, o.packets, o.interval, wait, o.payload_bytes)
    got = [r for r in rtts if r is not None]
    res.add("dcops_icmp_packets_sent", "Echo requests sent by this probe.", len(rtts))
    res.add("dcops_icmp_packets_received", "Echo replies received by this probe.", len(got))
    if got:
        res.add(
            "probe_icmp_duration_seconds",
            "Duration of the ICMP phase (rtt: mean round trip of the replies received).",
            sum(got) / len(got),
            phase="rtt",
        )
    if len(got) < o.min_replies:
        raise ProbeFailure("timeout", f"{len(got)} of {len(rtts)} echoes answered")
