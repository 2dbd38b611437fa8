"""HTTP(S): one request, the status line and headers read; TLS inspected for https."""

from __future__ import annotations

import asyncio
import re

from dcops.exporters.config import Module
from dcops.exporters.errors import ProbeFailure
from dcops.exporters.probes import tcp, tls
from dcops.exporters.probes.context import ProbeContext
from dcops.exporters.probes.result import ProbeResult
from dcops.exporters.targets import Endpoint

STATUS_LINE = re.compile(rb"^HTTP/(1\.[01]) ([1-5][0-9][0-9])(?: [^\r\n]*)?\r?\n$")
MAX_HEADER_LINES = 200


async def probe(ctx: ProbeContext, address: str, ep: Endpoint, mod: Module, budget: float, res: ProbeResult) -> None:
    assert ep.port is not None
    https = ep.scheme == "https" if ep.scheme else mod.http.tls
    path = "/"
    if ep.url:
        rest = ep.url.split("://", 1)[1]
        path = "/" + rest.split("/", 1)[1] if "/" in rest else "/"
        path = path.split("#", 1)[0]
    else:
        path = mod.http.path
    if https:
        reader, writer = await tls.open_tls(ctx, address, ep, mod)
    else:
        sock = await tcp.connect(address, ep.port)
        reader, writer = await asyncio.open_connection(sock=sock)
    try:
        host = ep.host if ep.port in (80, 443) else f"{ep.host}:{ep.port}"
        if ":" in ep.host:
            host = f"[{ep.host}]" if ep.port in (80, 443) else f"[{ep.host}]:{ep.port}"
        headers = {"Host": host, "User-Agent": "dcops-exporter", "Accept": "*/*", "Connection": "close"}
        headers.update(mod.http.headers)
        req = f"{mod.http.method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        writer.write(req.encode("latin-1"))
        await writer.drain()
        try:
            line = await reader.readline()
        except ValueError:  # line longer than the stream limit
            raise ProbeFailure("protocol", "status line too long") from None
        if not line:
            raise ProbeFailure("reset", "connection closed before a response")
        m = STATUS_LINE.match(line)
        if m is None:
            raise ProbeFailure("protocol", f"not an HTTP status line: {line[:60]!r}")
        code = int(m.group(2))
        res.add("probe_http_status_code", "Response HTTP status code.", code)
        res.add("probe_http_version", "Returned HTTP version.", float(m.group(1)))
        res.add("probe_http_ssl", "1 if TLS was used for the final request.", int(https))
        for _ in range(MAX_HEADER_LINES):
            h = await reader.readline()
            if h in (b"\r\n", b"\n", b""):
                break
        if https:
            tls.inspect(ctx, writer, ep, mod, res)
        valid = mod.http.valid_status_codes
        if (code not in valid) if valid else not 200 <= code < 300:
            raise ProbeFailure("status", f"HTTP {code}")
    finally:
        if https:
            await tls.close(writer)
        else:
            writer.close()
