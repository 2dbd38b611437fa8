"""A small real webhook receiver for Alertmanager (``dcops noc webhook``).

``POST`` any path with Alertmanager's webhook JSON (version 4): the notification is kept in
memory with the time it arrived (and appended to a JSON-lines log if one is given).
``GET /notifications`` returns them all (``?since=UNIX`` for the newer ones), ``GET /healthz``
answers ``ok``. The lab's drills read the arrival times from here to measure alert latency;
``/deadman`` receives the Watchdog (its last arrival is ``GET /deadman``).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

MAX_BODY = 4 * 1024 * 1024


class Store:
    def __init__(self, log: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._items: list[dict[str, Any]] = []
        self._log = log

    def add(self, path: str, payload: Any) -> dict[str, Any]:
        item = {"received_at": time.time(), "path": path, "payload": payload}
        with self._lock:
            self._items.append(item)
            if self._log is not None:
                with self._log.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(item, ensure_ascii=False) + "\n")
        return item

    def since(self, t: float = 0.0, path: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [i for i in self._items if i["received_at"] > t and (path is None or i["path"] == path)]


def _handler(store: Store) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "dcops-noc-webhook"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _send(self, code: int, body: Any) -> None:
            data = (json.dumps(body, ensure_ascii=False) + "\n").encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            if n <= 0 or n > MAX_BODY:
                self._send(400, {"error": f"body of {n} bytes (expected 1..{MAX_BODY})"})
                return
            try:
                payload = json.loads(self.rfile.read(n))
            except ValueError as e:
                self._send(400, {"error": f"not JSON: {e}"})
                return
            if not isinstance(payload, dict) or "alerts" not in payload:
                self._send(400, {"error": "not an Alertmanager webhook payload (no 'alerts')"})
                return
            store.add(urlsplit(self.path).path, payload)
            self._send(200, {"ok": True})

        def do_GET(self) -> None:
            u = urlsplit(self.path)
            q = parse_qs(u.query)
            if u.path == "/healthz":
                self._send(200, "ok")
            elif u.path == "/notifications":
                try:
                    since = float(q.get("since", ["0"])[0])
                except ValueError:
                    self._send(400, {"error": "since: a UNIX time"})
                    return
                self._send(200, store.since(since))
            elif u.path == "/deadman":
                items = store.since(0, "/deadman")
                self._send(200, {"last": items[-1]["received_at"] if items else None, "count": len(items)})
            else:
                self._send(404, {"error": "GET /notifications, /deadman or /healthz; POST any path"})

    return Handler


def serve(host: str, port: int, log: Path | None = None) -> tuple[ThreadingHTTPServer, Store]:
    store = Store(log)
    server = ThreadingHTTPServer((host, port), _handler(store))
    server.daemon_threads = True
    return server, store


def main(listen: str, log: Path | None = None) -> None:
    host, _, port = listen.rpartition(":")
    server, _store = serve(host or "127.0.0.1", int(port), log)
    h, p = server.server_address[0], server.server_address[1]
    print(f"dcops noc webhook: listening on http://{h!s}:{p}/", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
