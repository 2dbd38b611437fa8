"""Helpers of the lab tests: run dcops, SSH, ping inside namespaces, find leftovers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dcops import lab_dir
from dcops.converge import ConvergeResult

DCOPS = [sys.executable, "-c", "from dcops.cli import main; main()"]
CODE = "lab"


def dcops(
    *args: str, timeout: float = 600, check: bool = False, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **env} if env else None
    p = subprocess.run([*DCOPS, *args], capture_output=True, text=True, timeout=timeout, check=False, env=full_env)
    if check and p.returncode != 0:
        raise AssertionError(f"dcops {' '.join(args)} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p


def status(*extra: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(dcops("lab", "status", "--json", *extra, check=True).stdout)
    return data


def ssh(host: str, *cmd: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    cfg = lab_dir(CODE) / "ssh_config"
    return subprocess.run(["ssh", "-F", str(cfg), host, *cmd], capture_output=True, text=True, timeout=timeout, check=False)


def ping_in(netns: str, addr: str, count: int = 1, wait: int = 1) -> bool:
    p = subprocess.run(
        ["ip", "netns", "exec", netns, "ping", "-n", "-q", "-c", str(count), "-W", str(wait), addr],
        capture_output=True,
        timeout=30,
        check=False,
    )
    return p.returncode == 0


def ping(addr: str, wait: int = 2) -> bool:
    p = subprocess.run(["ping", "-n", "-q", "-c", "1", "-W", str(wait), addr], capture_output=True, timeout=30, check=False)
    return p.returncode == 0


def leftovers(code: str = CODE) -> dict[str, list[str]]:
    """What lab ``code`` may leave behind: nspawn processes, links, namespaces, mounts (must be
    empty). Another lab up beside it (inventory/twolevel, say) is not this lab's leftover; an
    image mounted outside every lab's host disks is anyone's."""
    from dcops.lab.plan import root_link_name

    procs = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                args = (d / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if args and args[0].endswith(b"systemd-nspawn") and any(a.startswith(f"dcl-{code}-".encode()) for a in args):
                procs.append(d.name)
    links = [
        ln.split(":")[1].strip().split("@")[0]
        for ln in subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout.splitlines()
    ]
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout.split()
    mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    return {
        "nspawn": procs,
        "links": [n for n in links if n == root_link_name(code) or n.startswith(f"dcl-{code}-")],
        "netns": [n for n in netns if n.startswith(f"dcl-{code}-")],
        "mounts": [
            m for m in mounts
            if f"dcl-{code}-" in m or f"/lab/{code}/" in m or ("/dcops/images/" in m and "/dcops/lab/" not in m)
        ],
        "cgroups": [str(p) for p in Path("/sys/fs/cgroup").glob(f"*/dcops-lab/dcl-{code}-*")],
    }


def nothing_left(code: str = CODE) -> bool:
    return not any(leftovers(code).values())


def wait_for(pred: Callable[[], bool], timeout: float, step: float = 1.0) -> bool:
    """Poll ``pred`` until it holds (True) or ``timeout`` seconds pass (False); an OSError counts as not yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if pred():
                return True
        except OSError:
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(step)


def fail_text(r: ConvergeResult, tail_chars: int = 5000) -> str:
    """A failed converge for an assertion message: the failures and the end of Ansible's log."""
    tail = r.log.read_text(errors="replace")[-tail_chars:] if r.log and r.log.exists() else ""
    return f"failures: {r.failures}\n--- log tail ---\n{tail}"
