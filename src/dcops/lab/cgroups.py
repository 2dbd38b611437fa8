"""One cgroup per lab host, so containers never share a cgroup subtree.

The controller runs no systemd, so every process sits in the root cgroup; systemd-nspawn
(``--keep-unit``) then puts each container's "payload" and "supervisor" directly under
it, and all containers' systemd instances fight over the same ``/payload/system.slice/...``
(units failing with status 219/CGROUP, or ``/run/nologin`` left in place). Starting each
nspawn in its own ``dcops-lab/<machine>`` cgroup (systemd-named v1 and the v2 hierarchy)
keeps them apart; ``down`` removes those cgroups.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

BASE = "dcops-lab"


def hierarchies() -> list[Path]:
    """Mount points of the cgroup hierarchies systemd uses (name=systemd v1 and/or v2)."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if not rfields:
            continue
        fstype, opts = rfields[0], rfields[-1]
        if fstype == "cgroup2" or (fstype == "cgroup" and "name=systemd" in opts.split(",")):
            found.append(Path(fields[4]))
    return found


def prepare(machine: str) -> list[Path]:
    dirs = []
    for h in hierarchies():
        d = h / BASE / machine
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        dirs.append(d)
    return dirs


def join(dirs: list[Path]) -> None:
    """Move the calling process into ``dirs`` (used between fork and exec)."""
    pid = str(os.getpid())
    for d in dirs:
        with contextlib.suppress(OSError):
            (d / "cgroup.procs").write_text(pid)


def remove(machine: str | None = None) -> list[str]:
    """Remove the lab's (empty) cgroups, deepest first; return those still in use."""
    busy = []
    for h in hierarchies():
        top = h / BASE / machine if machine else h / BASE
        if not top.is_dir():
            continue
        for root, _dirs, _files in os.walk(top, topdown=False):
            try:
                os.rmdir(root)
            except OSError:
                busy.append(root)
    return busy


def leftovers(prefix: str) -> list[str]:
    return [str(d) for h in hierarchies() for d in (h / BASE).glob(f"{prefix}*") if d.is_dir()]


def remove_base() -> None:
    """Remove the ``dcops-lab`` parent cgroups when no lab uses them any more."""
    for h in hierarchies():
        with contextlib.suppress(OSError):
            os.rmdir(h / BASE)
