"""STARTTLS for SMTP (25/587): EHLO, STARTTLS, then the TLS handshake on the same connection."""

from __future__ import annotations

import asyncio
import ssl

from dcops.exporters.errors import ProbeFailure


async def _reply(reader: asyncio.StreamReader) -> int:
    """Read one (possibly multi-line) SMTP reply; its code."""
    for _ in range(100):
        line = await reader.readline()
        if len(line) < 4 or not line[:3].isdigit():
            raise ProbeFailure("protocol", f"not an SMTP reply: {line[:60]!r}")
        if line[3:4] != b"-":
            return int(line[:3])
    raise ProbeFailure("protocol", "SMTP reply too long")


async def smtp(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ctx: ssl.SSLContext, server_hostname: str
) -> None:
    """Upgrade an SMTP connection to TLS (the writer then carries the TLS session)."""
    if await _reply(reader) != 220:
        raise ProbeFailure("status", "SMTP greeting is not 220")
    writer.write(b"EHLO dcops-exporter\r\n")
    if await _reply(reader) != 250:
        raise ProbeFailure("status", "EHLO refused")
    writer.write(b"STARTTLS\r\n")
    if await _reply(reader) != 220:
        raise ProbeFailure("status", "STARTTLS refused")
    try:
        await writer.start_tls(ctx, server_hostname=server_hostname or None)
    except ssl.SSLError as e:
        raise ProbeFailure("tls", e.reason or str(e)) from None
