"""Light mode's one listener process: the TCP/UDP ports every site namespace declares.

One process for the whole light lab: it enters each site's network namespace in turn
(``setns``), opens that site's sockets there (a socket stays in the namespace it was made
in), returns to its own namespace and then serves all sockets from one ``selectors`` loop.
TCP connections are accepted and closed; UDP datagrams are echoed. ICMP is the kernel's.

Run as ``python -m dcops.lab.responder SPEC.json``; prints ``ready`` once every socket is open.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from dcops.inventory import Inventory
from dcops.lab.errors import LabError
from dcops.lab.plan import Plan

CLONE_NEWNET = 0x40000000
#: At most this many ports of one range (RTP media) are opened, to bound file descriptors.
MAX_RANGE = 64


def spec(inv: Inventory, plan: Plan) -> list[dict[str, Any]]:
    """Per namespace, the (proto, port) pairs of the services whose hosts or address are at its site."""
    out = []
    for node in plan.nodes:
        site = inv.site(node.site)
        site_hosts = {h.name for h in site.hosts}
        ports: set[tuple[str, int]] = set()
        for svc in inv.services:
            addr = inv.service_address(svc)
            if not (set(svc.hosts) & site_hosts or (addr is not None and addr in site.subnet)):
                continue
            for p in svc.ports:
                if p.port is None:
                    continue
                last = min(p.port_end or p.port, p.port + MAX_RANGE - 1)
                ports |= {(p.proto.value, n) for n in range(p.port, last + 1)}
        # UDP answers must come from the address asked: bind UDP on each site address
        addrs = sorted(
            {a.split("/")[0] for i in node.ifaces if i.name != "eth-mgmt" for a in i.addresses}
            | {lo.split("/")[0] for lo in node.loopbacks}
        )
        out.append({"netns": node.netns, "ports": sorted(ports), "udp_addresses": addrs})
    return out


def start(labdir: Path, entries: list[dict[str, Any]], timeout: float = 30) -> int:
    labdir.mkdir(parents=True, exist_ok=True)
    spec_file = labdir / "responder.json"
    spec_file.write_text(json.dumps(entries))
    log = open(labdir / "responder.log", "wb")  # noqa: SIM115 - handed to the child
    p = subprocess.Popen(
        [sys.executable, "-m", "dcops.lab.responder", str(spec_file)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=log,
        start_new_session=True,
    )
    log.close()
    assert p.stdout is not None
    line = p.stdout.readline().decode().strip()
    if line != "ready":
        p.wait(timeout=5)
        err = (labdir / "responder.log").read_text(errors="replace").strip().splitlines()[-5:]
        raise LabError("light-mode listener failed to open the sites' ports: " + " | ".join(err))
    p.stdout.close()
    return p.pid


def is_responder(pid: int) -> bool:
    try:
        return b"dcops.lab.responder" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def stop(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            pass
        time.sleep(0.05)


def _setns(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {path}: {os.strerror(err)}")
    finally:
        os.close(fd)


def serve(entries: list[dict[str, Any]]) -> None:
    need = sum(len(e["ports"]) for e in entries) + 64
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(need, soft), hard), hard))
    sel = selectors.DefaultSelector()
    home = f"/proc/{os.getpid()}/ns/net"
    home_fd = os.open(home, os.O_RDONLY)
    libc = ctypes.CDLL(None, use_errno=True)
    for e in entries:
        _setns(f"/run/netns/{e['netns']}")
        for proto, port in e["ports"]:
            if proto == "tcp":
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("0.0.0.0", port))
                s.listen(64)
                s.setblocking(False)
                sel.register(s, selectors.EVENT_READ, proto)
                continue
            for addr in e.get("udp_addresses") or ["0.0.0.0"]:
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind((addr, port))
                s.setblocking(False)
                sel.register(s, selectors.EVENT_READ, proto)
    if libc.setns(home_fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns back home")
    os.close(home_fd)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        for key, _ in sel.select():
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                if key.data == "tcp":
                    conn, _addr = sock.accept()
                    conn.close()
                else:
                    data, addr = sock.recvfrom(2048)
                    sock.sendto(data, addr)
            except OSError:
                continue


if __name__ == "__main__":
    serve(json.loads(Path(sys.argv[1]).read_text()))
