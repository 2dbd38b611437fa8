"""A small asyncio HTTP/1.1 server for the exporters: GET only, keep-alive, bounded headers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger("dcops.exporters.http")

CONTENT_TYPE_METRICS = "text/plain; version=0.0.4; charset=utf-8"
MAX_HEADERS = 100
REQUEST_READ_TIMEOUT = 30.0


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names

    def param(self, name: str) -> str | None:
        v = self.query.get(name)
        return v[0] if v else None


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


REASON = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error"}
Handler = Callable[[Request], Awaitable[Response]]


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    line = await reader.readline()
    if not line:
        return None
    parts = line.decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise ValueError("bad request line")
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS):
        h = await reader.readline()
        if h in (b"\r\n", b"\n"):
            break
        if not h:
            return None
        name, _, value = h.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    else:
        raise ValueError("too many headers")
    if parts[2] == "HTTP/1.0" and headers.get("connection", "").lower() != "keep-alive":
        headers.setdefault("connection", "close")
    u = urlsplit(parts[1])
    return Request(parts[0].upper(), u.path, parse_qs(u.query), headers)


async def serve_connection(handler: Handler, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            try:
                async with asyncio.timeout(REQUEST_READ_TIMEOUT):
                    req = await _read_request(reader)
            except (ValueError, TimeoutError):
                writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            if req is None:
                return
            if req.method not in ("GET", "HEAD"):
                resp = Response(405, b"only GET\n")
            else:
                try:
                    resp = await handler(req)
                except Exception:
                    log.exception("handler failed for %s", req.path)
                    resp = Response(500, b"internal error (see the exporter's log)\n")
            close = req.headers.get("connection", "").lower() == "close"
            head = (
                f"HTTP/1.1 {resp.status} {REASON.get(resp.status, 'Error')}\r\n"
                f"Content-Type: {resp.content_type}\r\nContent-Length: {len(resp.body)}\r\n"
                f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n"
            )
            writer.write(head.encode() + (b"" if req.method == "HEAD" else resp.body))
            await writer.drain()
            if close:
                return
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT``) → (host, port); ValueError with the reason."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--listen {listen!r}: expected HOST:PORT, e.g. 127.0.0.1:9115")
    return host.strip("[]") or "0.0.0.0", int(port)


async def start(handler: Handler, host: str, port: int) -> asyncio.Server:
    async def _conn(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await serve_connection(handler, r, w)

    return await asyncio.start_server(_conn, host, port, backlog=1024, reuse_address=True)
