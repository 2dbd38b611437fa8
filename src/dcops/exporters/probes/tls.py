"""TLS handshake: version, certificate expiry, chain and name (see :mod:`.tlsinfo`)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl

from dcops.exporters.config import Module
from dcops.exporters.errors import ProbeFailure
from dcops.exporters.probes import tlsinfo
from dcops.exporters.probes.context import ProbeContext
from dcops.exporters.probes.result import ProbeResult
from dcops.exporters.targets import Endpoint


def sni(ep: Endpoint, module: Module) -> str:
    """The name sent in SNI ('' for an address: SNI carries names only)."""
    name = module.tls.server_name or ep.host
    return "" if Endpoint(name, None).is_ip else name


async def open_tls(
    ctx: ProbeContext, address: str, ep: Endpoint, module: Module
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    assert ep.port is not None
    try:
        return await asyncio.open_connection(address, ep.port, ssl=ctx.ssl_context(), server_hostname=sni(ep, module))
    except ssl.SSLError as e:
        raise ProbeFailure("tls", e.reason or str(e)) from None


def inspect(ctx: ProbeContext, writer: asyncio.StreamWriter, ep: Endpoint, module: Module, result: ProbeResult) -> None:
    sslobj = writer.get_extra_info("ssl_object")
    if sslobj is None:
        raise ProbeFailure("tls", "no TLS session")
    try:
        ca = ctx.ca_certs(module.tls.ca_file)
    except (OSError, ValueError) as e:
        raise ProbeFailure("error", f"CA file {module.tls.ca_file}: {e}") from None
    tlsinfo.inspect(sslobj, module.tls.server_name or ep.host, module.tls, ca, result)


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
        await asyncio.wait_for(writer.wait_closed(), 0.2)


async def probe(ctx: ProbeContext, address: str, ep: Endpoint, mod: Module, budget: float, res: ProbeResult) -> None:
    _, writer = await open_tls(ctx, address, ep, mod)
    try:
        inspect(ctx, writer, ep, mod, res)
    finally:
        await close(writer)
