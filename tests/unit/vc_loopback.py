"""Kamailio (the videoconf role's cfg) and rtpengine on loopback, for the unit tests and the benchmark.

Everything listens on 127.13.0.x (addresses no other test here uses); the user agents bind to
other 127.13.x.y addresses to stand for the rooms' networks. Daemons are stopped by their PID.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dcops.vc import accounts as acc
from dcops.vc import kamailio

SIPP_DIR = Path(kamailio.__file__).parent / "sipp"
REALM = "vc.lab.test"
PROXY = "127.13.0.1"
PORTS = itertools.count(15100)


def have_tools() -> str | None:
    """What is missing to run these tests (None: all there)."""
    for tool in ("kamailio", "rtpengine", "sipp", "openssl"):
        if shutil.which(tool) is None:
            return tool
    return None


@dataclass
class Account:
    user: str
    secret: str
    transport: str  # datanet | internet
    subnet: str

    def row(self) -> dict[str, str]:
        return {"user": self.user, "ha1": acc.ha1(self.user, REALM, self.secret), "transport": self.transport,
                "subnet": self.subnet}


ACCOUNTS = [
    Account("an-phu", "anphu-secret-1", "datanet", "127.13.1.0/24"),
    Account("luc-yen", "lucyen-secret-2", "datanet", "127.13.2.0/24"),
    Account("dc", "dc-secret-3", "datanet", "127.13.3.0/24"),
    Account("mau-a", "maua-secret-4", "internet", "10.99.0.0/24"),
]


def wait_port(host: str, port: int, proto: str = "tcp", timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proto == "tcp":
            try:
                with socket.create_connection((host, port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        else:
            out = subprocess.run(["ss", "-Hlun", f"src {host}:{port}"], capture_output=True, text=True).stdout
            if out.strip():
                return
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {proto} {host}:{port}")


@dataclass
class Stack:
    """Kamailio + rtpengine on loopback, from the role's templates."""

    root: Path
    switches: dict[str, bool] | None = None
    cfg_path: Path | None = None  # another cfg (the stock one, for the benchmark)
    rtpengine: bool = True
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    sip_port: int = 5060
    metrics_port: int = 9180
    ng_port: int = 2223
    rtp_http_port: int = 9181

    def values(self) -> dict[str, Any]:
        v: dict[str, Any] = dict(
            videoconf_realm=REALM, videoconf_listen=PROXY, videoconf_metrics_listen=PROXY,
            videoconf_sip_port=self.sip_port, videoconf_metrics_port=self.metrics_port,
            videoconf_db_dir=str(self.root / "db"), videoconf_tls_config=str(self.root / "dcops-tls.cfg"),
            videoconf_tls_dir=str(self.root / "tls"), videoconf_ctl_socket=str(self.root / "ctl"),
            videoconf_rtpengine_ng=f"udp:{PROXY}:{self.ng_port}", videoconf_children=2,
            videoconf_authfail_limit=6, videoconf_pike_density=400,
        )
        if self.switches is not None:
            v["videoconf_switches"] = self.switches
        return v | self.extra

    def write(self) -> Path:
        (self.root / "db").mkdir(parents=True, exist_ok=True)
        tls = self.root / "tls"
        tls.mkdir(exist_ok=True)
        if not (tls / "vc.crt").exists():
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                            "-keyout", str(tls / "vc.key"), "-out", str(tls / "vc.crt"), "-subj", f"/CN={REALM}", "-days", "2"],
                           check=True, capture_output=True)
            shutil.copy(tls / "vc.crt", tls / "ca.crt")
        for name, content in kamailio.render(self.values(), [a.row() for a in ACCOUNTS]).items():
            p = self.root / name
            p.write_text(content)
            if name.startswith("db/vcauth"):
                p.chmod(0o600)
        return self.root / "kamailio.cfg"

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        cfg = self.cfg_path or self.write()
        kamailio.check(cfg)
        if self.rtpengine:
            self.procs["rtpengine"] = subprocess.Popen(
                ["rtpengine", "-f", "-E", "--table=-1", f"--interface={PROXY}", f"--listen-ng={PROXY}:{self.ng_port}",
                 "--port-min=30000", "--port-max=30999", f"--listen-http={PROXY}:{self.rtp_http_port}", "-L", "4",
                 f"--pidfile={self.root / 'rtpengine.pid'}"],
                stdout=open(self.root / "rtpengine.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True)
            wait_port(PROXY, self.rtp_http_port)
        self.procs["kamailio"] = subprocess.Popen(
            ["kamailio", "-DD", "-E", "-f", str(cfg), "-P", str(self.root / "kamailio.pid"), "-Y", str(self.root)],
            stdout=open(self.root / "kamailio.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_port(PROXY, self.sip_port, "udp")
            wait_port(PROXY, self.sip_port, "tcp")
        except TimeoutError as e:
            tail = "\n".join(self.log().splitlines()[-8:])
            raise TimeoutError(f"{e}; kamailio's log ends:\n{tail}") from e

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs.values())

    def stop(self) -> None:
        for name in ("kamailio", "rtpengine"):
            p = self.procs.pop(name, None)
            if p is None:
                continue
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)  # its own session: the daemon and its children, by PID
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait(5)

    def log(self, name: str = "kamailio") -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://{PROXY}:{self.metrics_port}/metrics", timeout=5) as r:
            return str(r.read().decode())

    def rtp_metrics(self) -> str:
        with urllib.request.urlopen(f"http://{PROXY}:{self.rtp_http_port}/metrics", timeout=5) as r:
            return str(r.read().decode())


def sipp(scenario: str, *, src: str, user: str, password: str, port: int | None = None, calls: int = 1,
         rate: float | None = None, hold_ms: int = 1000, limit: int | None = None, keys: dict[str, str] | None = None, target: str = PROXY,
         target_port: int = 5060, timeout: int = 20, extra: list[str] | None = None,
         cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run one sipp scenario of dcops/vc/sipp to completion; returncode 0: every call as the scenario expects."""
    args = ["sipp", f"{target}:{target_port}", "-sf", str(SIPP_DIR / f"{scenario}.xml"), "-i", src, "-p",
            str(port or next(PORTS)), "-m", str(calls), "-au", user, "-ap", password, "-key", "user", user,
            "-key", "realm", REALM, "-nostdin", "-timeout", f"{timeout}s", "-timeout_error", "-recv_timeout", "8000"]
    args += ["-d", str(hold_ms)]
    keys = {"expires": "300", "callee": "luc-yen"} | (keys or {})
    for k, v in keys.items():
        args += ["-key", k, v]
    if rate is not None:
        args += ["-r", str(rate)]
    if limit is not None:
        args += ["-l", str(limit)]
    args += extra or []
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout + 15, cwd=cwd, check=False)


# --- rtpengine's ng control protocol (bencode over UDP), to read one call's per-stream counters ----
def _benc(v: Any) -> bytes:
    if isinstance(v, bytes):
        return str(len(v)).encode() + b":" + v
    if isinstance(v, str):
        return _benc(v.encode())
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, list):
        return b"l" + b"".join(_benc(x) for x in v) + b"e"
    if isinstance(v, dict):
        return b"d" + b"".join(_benc(k) + _benc(v[k]) for k in sorted(v)) + b"e"
    raise TypeError(type(v))


def _bdec(b: bytes, i: int = 0) -> tuple[Any, int]:
    c = b[i:i + 1]
    if c == b"i":
        j = b.index(b"e", i)
        return int(b[i + 1:j]), j + 1
    if c in (b"l", b"d"):
        i += 1
        items = []
        while b[i:i + 1] != b"e":
            x, i = _bdec(b, i)
            items.append(x)
        if c == b"l":
            return items, i + 1
        return {items[k].decode(): items[k + 1] for k in range(0, len(items), 2)}, i + 1
    j = b.index(b":", i)
    n = int(b[i:j])
    return b[j + 1:j + 1 + n], j + 1 + n


def ng(command: dict[str, Any], host: str = PROXY, port: int = 2223) -> dict[str, Any]:
    cookie = os.urandom(4).hex().encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.sendto(cookie + b" " + _benc(command), (host, port))
        data = s.recv(65535)
    out, _ = _bdec(data.split(b" ", 1)[1])
    assert isinstance(out, dict)
    return out


def streams(call_id: str, port: int = 2223) -> list[dict[str, int]]:
    """Per endpoint of one call: RTP packets it received from its peer (rtpengine's ``query``)."""
    q = ng({"command": "query", "call-id": call_id}, port=port)
    out = []
    for tag in q.get("tags", {}).values():
        for media in tag.get("medias", []):
            for stream in media.get("streams", []):
                st = stream.get("stats", {})
                out.append({"packets": int(st.get("packets", 0)), "bytes": int(st.get("bytes", 0)),
                            "errors": int(st.get("errors", 0))})
    return out
