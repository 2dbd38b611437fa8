"""Start the exporter (and Prometheus) as processes on loopback; stop them by PID."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import VENV_BIN
from tests.exporters.fleet import free_port


def dcops() -> str:
    return str(VENV_BIN / "dcops")


@contextlib.contextmanager
def exporter(*args: str, kind: str = "connectivity") -> Iterator[str]:
    """Run ``dcops exporter KIND --listen 127.0.0.1:0 ARGS``; yields its base URL."""
    p = subprocess.Popen(
        [dcops(), "exporter", kind, "--listen", "127.0.0.1:0", *args],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )
    try:
        assert p.stderr is not None
        line = p.stderr.readline()
        m = re.search(r"listening on (http://[\d.]+:\d+)/", line)
        assert m, f"exporter did not start: {line}{p.stderr.read() if p.poll() is not None else ''}"
        yield m.group(1)
    finally:
        kill_pid(p)
        if p.stderr:
            p.stderr.close()


@contextlib.contextmanager
def prometheus(binary: str, config: Path, data: Path) -> Iterator[str]:
    """Run Prometheus with ``config`` on a free loopback port until it is ready; yields its base URL."""
    port = free_port("127.0.0.1")
    with open(data.parent / "prometheus.log", "w") as log:
        p = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={data}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=log,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if get(f"{base}/-/ready", timeout=1)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        yield base
    finally:
        kill_pid(p)


def get(url: str, timeout: float = 15, headers: dict[str, str] | None = None) -> tuple[int, bytes, float]:
    req = urllib.request.Request(url, headers=headers or {})
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(), time.monotonic() - t0
    except urllib.error.HTTPError as e:
        return e.code, e.read(), time.monotonic() - t0


def promtool_check_metrics(text: bytes) -> str:
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, timeout=30)
    return (r.stdout + r.stderr).decode()


def kill_pid(p: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    if p.poll() is None:
        os.kill(p.pid, signal.SIGTERM)
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
