"""Running an exporter: listen, serve until SIGINT/SIGTERM, then close everything it opened."""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Protocol

from dcops.exporters import httpserver


class Exporter(Protocol):
    name: str

    async def handle(self, req: httpserver.Request) -> httpserver.Response: ...
    async def startup(self) -> None: ...
    async def shutdown(self) -> None: ...
    def describe(self) -> str: ...


async def serve(exporter: Exporter, listen: str) -> None:
    host, port = httpserver.parse_listen(listen)
    await exporter.startup()
    try:
        try:
            server = await httpserver.start(exporter.handle, host, port)
        except OSError as e:
            raise SystemExit(f"error: cannot listen on {listen}: {e.strerror}") from None
        actual = server.sockets[0].getsockname()
        print(f"dcops {exporter.name} exporter listening on http://{actual[0]}:{actual[1]}/ ({exporter.describe()})",
              file=sys.stderr, flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with server:
            await stop.wait()
    finally:
        await exporter.shutdown()


def run(exporter: Exporter, listen: str) -> None:
    asyncio.run(serve(exporter, listen))
