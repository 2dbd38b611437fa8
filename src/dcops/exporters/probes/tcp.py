"""TCP connect: success when the three-way handshake completes."""

from __future__ import annotations

import asyncio
import socket

from dcops.exporters.config import Module
from dcops.exporters.probes.context import ProbeContext
from dcops.exporters.probes.result import ProbeResult
from dcops.exporters.targets import Endpoint


async def connect(address: str, port: int) -> socket.socket:
    """A connected non-blocking socket (the caller closes it)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (address, port))
    except BaseException:
        sock.close()
        raise
    return sock


async def probe(ctx: ProbeContext, address: str, ep: Endpoint, mod: Module, budget: float, res: ProbeResult) -> None:
    assert ep.port is not None
    sock = await connect(address, ep.port)
    # RST instead of FIN/TIME_WAIT: thousands of probes a minute must not fill the port table.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()
