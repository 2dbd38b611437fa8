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


#: What the inventory gives a converge (the videoconf service's ports, the host's address, the realm).
BASE: dict[str, Any] = {
    "videoconf_realm": REALM, "videoconf_listen": PROXY, "videoconf_metrics_listen": PROXY,
    "videoconf_sip_port": 5060, "videoconf_tls_port": 5061, "videoconf_wss_port": 8443, "videoconf_metrics_port": 9180,
    "videoconf_rtpengine_port_min": 30000, "videoconf_rtpengine_port_max": 39999, "videoconf_rtpengine_http_port": 9181,
    "videoconf_turn_port": 3478, "videoconf_turn_relay_min": 40000, "videoconf_turn_relay_max": 40499,
}


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
                "subnet": self.subnet.split(",")[0], "networks": self.subnet.split(",")}


ACCOUNTS = [
    Account("an-phu", "anphu-secret-1", "datanet", "127.13.1.0/24"),
    Account("luc-yen", "lucyen-secret-2", "datanet", "127.13.2.0/24,127.0.0.1/32"),  # LAN, router
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
    _fds: list[int] = field(default_factory=list)

    sip_port: int = 5060
    metrics_port: int = 9180
    ng_port: int = 2223
    rtp_http_port: int = 9181

    def values(self) -> dict[str, Any]:
        v: dict[str, Any] = BASE | dict(
            videoconf_sip_port=self.sip_port, videoconf_metrics_port=self.metrics_port,
            videoconf_db_dir=str(self.root / "db"), videoconf_tls_config=str(self.root / "dcops-tls.cfg"),
            videoconf_tls_dir=str(self.root / "tls"), videoconf_ctl_socket=str(self.root / "ctl"),
            videoconf_rtpengine_ng=f"udp:{PROXY}:{self.ng_port}", videoconf_children=2,
            videoconf_authfail_limit=6, videoconf_pike_density=400, videoconf_max_contacts=10,
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
                 "--port-min=30000", "--port-max=39999", "--delete-delay=0",
                 f"--listen-http={PROXY}:{self.rtp_http_port}", "-L", "4",
                 f"--pidfile={self.root / 'rtpengine.pid'}"],
                stdout=self._logfile("rtpengine"), stderr=subprocess.STDOUT, start_new_session=True)
            wait_port(PROXY, self.rtp_http_port)
        self.procs["kamailio"] = subprocess.Popen(
            ["kamailio", "-DD", "-E", "-f", str(cfg), "-P", str(self.root / "kamailio.pid"), "-Y", str(self.root)],
            stdout=self._logfile("kamailio"), stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_port(PROXY, self.sip_port, "udp")
            wait_port(PROXY, self.sip_port, "tcp")
        except TimeoutError as e:
            tail = "\n".join(self.log().splitlines()[-8:])
            raise TimeoutError(f"{e}; kamailio's log ends:\n{tail}") from e

    def _logfile(self, name: str) -> int:
        """A log file descriptor for a daemon (closed in this process once the daemon has it)."""
        fd = os.open(self.root / f"{name}.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self._fds.append(fd)
        return fd

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs.values())

    def stop(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()
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
         rate: float | None = None, hold_ms: int = 1000, limit: int | None = None, keys: dict[str, str] | None = None,
         target: str = PROXY,
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


# --- a minimal SIP client (UDP, TCP, TLS) with digest, for what sipp cannot send -------------------
def _digest(method: str, uri: str, user: str, password: str, challenge: str) -> str:
    import hashlib
    import re

    f = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge.split(" ", 1)[1]))
    h1 = hashlib.md5(f"{user}:{f['realm']}:{password}".encode()).hexdigest()
    h2 = hashlib.md5(f"{method}:{uri}".encode()).hexdigest()
    resp = hashlib.md5(f"{h1}:{f['nonce']}:{h2}".encode()).hexdigest()
    return (f'Digest username="{user}", realm="{f["realm"]}", nonce="{f["nonce"]}", uri="{uri}",'
            f' response="{resp}", algorithm=MD5')


class Client:
    """One SIP user agent socket bound to ``src`` (udp, tcp or tls) talking to the proxy."""

    def __init__(self, src: str, proto: str = "udp", port: int = 5060, timeout: float = 3.0) -> None:
        import ssl

        self.src, self.proto = src, proto
        if proto == "udp":
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind((src, 0))
            self.sock.connect((PROXY, port))
        else:
            raw = socket.create_connection((PROXY, port), timeout=timeout, source_address=(src, 0))
            if proto == "tls":
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                raw = ctx.wrap_socket(raw)
            self.sock = raw
        self.sock.settimeout(timeout)
        self.lport = self.sock.getsockname()[1]
        self.seq = 0
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def send_raw(self, data: bytes) -> None:
        self.sock.send(data)

    def _read(self) -> str:
        if self.proto == "udp":
            return str(self.sock.recv(65535).decode(errors="replace"))
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65535)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        head, rest = self.buf.split(b"\r\n\r\n", 1)
        import re

        m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        n = int(m.group(1)) if m else 0
        while len(rest) < n:
            rest += self.sock.recv(65535)
        self.buf = rest[n:]
        return (head + b"\r\n\r\n" + rest[:n]).decode(errors="replace")

    def request(self, method: str, user: str, *, to: str | None = None, password: str | None = None,
                extra: str = "", body: str = "", realm: str = REALM, call_id: str | None = None,
                from_domain: str | None = None, ruri: str | None = None) -> tuple[int, str]:
        """Send ``method`` (answering one digest challenge when ``password`` is given); (final status, reply)."""
        call_id = call_id or os.urandom(8).hex()
        uri = ruri or (f"sip:{to}@{realm}" if to else f"sip:{realm}")
        auth = ""
        tag = os.urandom(4).hex()
        to_uri = uri if to else f"sip:{user}@{realm}"  # a REGISTER's To is the account
        for _ in range(2):
            self.seq += 1
            t = {"udp": "UDP", "tcp": "TCP", "tls": "TLS"}[self.proto]
            branch = f"z9hG4bK{os.urandom(6).hex()}"
            msg = (f"{method} {uri} SIP/2.0\r\nVia: SIP/2.0/{t} {self.src}:{self.lport};branch={branch};rport\r\n"
                   f"From: <sip:{user}@{from_domain or realm}>;tag={tag}\r\nTo: <{to_uri}>\r\nCall-ID: {call_id}\r\n"
                   f"CSeq: {self.seq} {method}\r\nContact: <sip:{user}@{self.src}:{self.lport};transport={self.proto}>\r\n"
                   f"Max-Forwards: 70\r\nExpires: 300\r\n{auth}{extra}"
                   + ("Content-Type: application/sdp\r\n" if body else "") + f"Content-Length: {len(body)}\r\n\r\n{body}")
            self.sock.send(msg.encode())
            while True:
                reply = self._read()
                code = int(reply.split(" ", 2)[1])
                if code >= 200:
                    break
            if code in (401, 407) and password and not auth:
                hdr = "WWW-Authenticate" if code == 401 else "Proxy-Authenticate"
                ch = next(x.split(":", 1)[1].strip() for x in reply.split("\r\n") if x.lower().startswith(hdr.lower() + ":"))
                name = "Authorization" if code == 401 else "Proxy-Authorization"
                auth = f"{name}: {_digest(method, uri, user, password, ch)}\r\n"
                continue
            return code, reply
        return code, reply
