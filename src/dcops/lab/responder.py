"""Light mode's one listener process: the TCP/UDP ports every site namespace declares.

One process for the whole light lab: it enters each site's network namespace in turn
(``setns``), opens that site's sockets there (a socket stays in the namespace it was made
in), returns to its own namespace and then serves all sockets from one ``selectors`` loop.
TCP connections are accepted and closed; UDP datagrams are echoed. ICMP is the kernel's.

Run as ``python -m dcops.lab.responder SPEC.json`` (started by :mod:`dcops.lab.light`, which
writes the spec); prints ``ready`` once every socket is open. Standard library only, and no
lab module imports this one, so running it as ``__main__`` never loads it twice.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import selectors
import signal
import socket
import sys
from pathlib import Path
from typing import Any

CLONE_NEWNET = 0x40000000


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
