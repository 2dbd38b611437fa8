"""Light mode's listener: which ports each site namespace answers on, and the process that does.

One process for the whole light lab (:mod:`dcops.lab.responder`, run as ``python -m
dcops.lab.responder SPEC.json``) opens every site's sockets in that site's network namespace.
This module is the lab's side of it: the spec, starting it, recognising it, stopping it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from dcops.inventory.model import Inventory
from dcops.lab.errors import LabError
from dcops.lab.plan import Plan

#: The module the listener process runs (its command line is how ``down`` recognises it).
RESPONDER = "dcops.lab.responder"
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


def start(labdir: Path, entries: list[dict[str, Any]]) -> int:
    """Start the listener on ``entries`` (see :func:`spec`); its pid, once every socket is open."""
    labdir.mkdir(parents=True, exist_ok=True)
    spec_file = labdir / "responder.json"
    spec_file.write_text(json.dumps(entries))
    log = open(labdir / "responder.log", "wb")  # noqa: SIM115 - handed to the child
    p = subprocess.Popen(
        [sys.executable, "-m", RESPONDER, str(spec_file)],
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
        return RESPONDER.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
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
