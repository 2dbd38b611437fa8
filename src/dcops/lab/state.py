"""The lab's state file: everything a lab made, written before and after each step.

``down`` reads it to undo exactly what was made, even after a failed or interrupted ``up``.
Writes are atomic (:func:`dcops.fsio.atomic_write`), so the file is never half written.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dcops.fsio import atomic_write
from dcops.lab.errors import LabError
from dcops.paths import lab_base, lab_dir

STATE_FILE = "state.json"


@dataclass
class HostState:
    netns: str
    machine: str
    management: str
    pid: int | None = None  # the systemd-nspawn process (full mode)
    leader: int | None = None  # the container's init
    stopped: bool = False  # stopped by a drill


@dataclass
class State:
    code: str
    inventory: str
    mode: str  # "full" | "light"
    phase: str = "starting"  # starting | up | failed
    started_at: float = field(default_factory=time.time)
    image: str | None = None
    root_link: str | None = None
    netns: list[str] = field(default_factory=list)
    hosts: dict[str, HostState] = field(default_factory=dict)
    responder_pid: int | None = None
    drills: list[dict[str, str]] = field(default_factory=list)
    addresses: dict[str, list[str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> State:
        hosts = {k: HostState(**v) for k, v in data.pop("hosts", {}).items()}
        return cls(hosts=hosts, **data)


def path(code: str) -> Path:
    return lab_dir(code) / STATE_FILE


def load(code: str) -> State | None:
    p = path(code)
    if not p.exists():
        return None
    return State.from_json(json.loads(p.read_text()))


def save(st: State) -> None:
    atomic_write(path(st.code), json.dumps(st.to_json(), indent=2))


def remove(code: str) -> None:
    path(code).unlink(missing_ok=True)


def recorded() -> list[str]:
    """Codes of the labs that have a state file on this machine."""
    return sorted(f.parent.name for f in lab_base().glob(f"*/{STATE_FILE}"))


def images_in_use() -> set[str]:
    """Root file systems that a lab runs on, by its state file (an unreadable one is skipped)."""
    used = set()
    for code in recorded():
        try:
            used.add(str(json.loads(path(code).read_text()).get("image") or ""))
        except (OSError, ValueError, AttributeError):
            continue
    return used - {""}


@contextmanager
def locked(code: str) -> Iterator[None]:
    """One ``up``/``down``/drill at a time per lab; a second one fails at once, naming the first."""
    d = lab_dir(code)
    d.mkdir(parents=True, exist_ok=True)
    with open(d / ".lock", "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            raise LabError(
                f"another dcops lab command is working on lab {code!r} (pid {f.read().strip() or '?'}); "
                "wait for it to finish"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        yield
