"""SIP OPTIONS over UDP or TCP: any valid final response means a live user agent (configurable)."""

from __future__ import annotations

import asyncio
import re
import secrets

from dcops.exporters.config import Module
from dcops.exporters.errors import ProbeFailure
from dcops.exporters.probes import tcp
from dcops.exporters.probes.context import ProbeContext
from dcops.exporters.probes.result import ProbeResult
from dcops.exporters.targets import Endpoint

STATUS_LINE = re.compile(rb"^SIP/2\.0 ([1-6][0-9][0-9]) [^\r\n]*\r?$")


def options_request(ep: Endpoint, transport: str, local: tuple[str, int]) -> bytes:
    host = f"[{ep.host}]" if ":" in ep.host else ep.host
    lhost = f"[{local[0]}]" if ":" in local[0] else local[0]
    tag, branch, call = secrets.token_hex(6), secrets.token_hex(8), secrets.token_hex(10)
    lines = [
        f"OPTIONS sip:{host}:{ep.port} SIP/2.0",
        f"Via: SIP/2.0/{transport.upper()} {lhost}:{local[1]};branch=z9hG4bK{branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:dcops@{lhost}>;tag={tag}",
        f"To: <sip:{host}:{ep.port}>",
        f"Call-ID: {call}@{lhost}",
        "CSeq: 1 OPTIONS",
        f"Contact: <sip:dcops@{lhost}:{local[1]}>",
        "Accept: application/sdp",
        "User-Agent: dcops-exporter",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def status_of(message: bytes) -> int:
    first = message.split(b"\n", 1)[0]
    m = STATUS_LINE.match(first)
    if m is None:
        raise ProbeFailure("protocol", f"not a SIP status line: {first[:60]!r}")
    return int(m.group(1))


class _Udp(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | Exception] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        self.queue.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        self.queue.put_nowait(exc)


async def _udp(address: str, ep: Endpoint) -> int:
    assert ep.port is not None
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(_Udp, remote_addr=(address, ep.port))
    try:
        transport.sendto(options_request(ep, "udp", transport.get_extra_info("sockname")[:2]))
        while True:
            item = await proto.queue.get()
            if isinstance(item, Exception):
                raise item
            code = status_of(item)
            if code >= 200:
                return code
    finally:
        transport.close()


async def _tcp(address: str, ep: Endpoint) -> int:
    assert ep.port is not None
    sock = await tcp.connect(address, ep.port)
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        writer.write(options_request(ep, "tcp", sock.getsockname()[:2]))
        await writer.drain()
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as e:
                if not e.partial:
                    raise ProbeFailure("reset", "connection closed before a response") from None
                status_of(e.partial)  # garbage → protocol
                raise ProbeFailure("protocol", "incomplete SIP message") from None
            except asyncio.LimitOverrunError:
                raise ProbeFailure("protocol", "SIP header too long") from None
            code = status_of(head)
            m = re.search(rb"(?im)^(?:content-length|l)\s*:\s*(\d+)", head)
            if m and int(m.group(1)):
                await reader.readexactly(int(m.group(1)))
            if code >= 200:
                return code
    finally:
        writer.close()


async def probe(ctx: ProbeContext, address: str, ep: Endpoint, mod: Module, budget: float, res: ProbeResult) -> None:
    code = await (_udp(address, ep) if mod.sip.transport == "udp" else _tcp(address, ep))
    res.add("dcops_sip_status_code", "Status code of the final response to OPTIONS.", code)
    valid = mod.sip.valid_status_codes
    if code not in valid if valid else not 200 <= code < 700:
        raise ProbeFailure("status", f"SIP {code}")
