"""Starting full lab hosts and waiting until each is ready, for ``up`` and the host-start drill.

A host is ready when systemd inside says ``running`` or ``degraded`` and SSH lets the lab's
admin in. Every step is recorded in the state file as it happens, so ``down`` finds what was
started even when the wait fails.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import dcops.lab.hosts as hosts
import dcops.lab.ssh as ssh
import dcops.lab.state as state
from dcops.lab.errors import LabError
from dcops.lab.plan import Node
from dcops.lab.progress import Reporter

#: Seconds a host may take from start to ready (``$DCOPS_LAB_BOOT_TIMEOUT`` on a slow machine).
BOOT_TIMEOUT = float(os.environ.get("DCOPS_LAB_BOOT_TIMEOUT", "180"))
#: What ``systemctl is-system-running`` says once boot is over (degraded: a unit failed).
BOOTED = ("running", "degraded")
#: Stages on the progress board: started, systemd up, SSH answering.
STAGES = 3


def start(st: state.State, nodes: list[Node], image: Path, labdir: Path) -> None:
    """Start each node's container on ``image``, recording its process as soon as it exists."""
    for n in nodes:
        hs = st.hosts[n.name]
        hs.pid, hs.leader, hs.stopped = hosts.start(image, n, labdir), None, False
        state.save(st)


def wait_ready(
    st: state.State, names: list[str], labdir: Path, progress: Reporter, timeout: float = BOOT_TIMEOUT
) -> None:
    """Wait until every host of ``names`` is ready; raise :class:`LabError` (with each late
    host's journal) if one stops or ``timeout`` passes first."""
    deadline = time.monotonic() + timeout
    pending = set(names)
    with progress.hosts(sorted(names), STAGES) as board:
        for name in names:
            board.update(name, 1, "started")
        while pending:
            for name in sorted(pending):
                hs = st.hosts[name]
                if not hosts.alive(hs.pid):
                    raise LabError(
                        f"host {name} stopped while booting; console:\n"
                        + hosts.journal_tail(labdir, name, None)
                        + "\nrun `dcops lab down` to clean up"
                    )
                if hs.leader is None and hs.pid is not None:
                    hs.leader = hosts.leader(hs.pid)
                    if hs.leader:
                        state.save(st)
                if hs.leader is None:
                    continue
                sysstate = hosts.system_state(hs.leader)
                if sysstate not in BOOTED:
                    board.update(name, 1, f"systemd {sysstate}")
                    continue
                board.update(name, 2, f"systemd {sysstate}, waiting for ssh")
                if ssh.answers(labdir, name):
                    board.update(name, 3, f"ready (systemd {sysstate}, ssh)")
                    pending.discard(name)
            board.tick()
            if pending and time.monotonic() > deadline:
                raise LabError(_late(st, sorted(pending), labdir, timeout))
            if pending:
                time.sleep(0.3)


def _late(st: state.State, late: list[str], labdir: Path, timeout: float) -> str:
    details = "\n".join(f"--- {h} (last journal lines):\n" + hosts.journal_tail(labdir, h, st.hosts[h].leader) for h in late[:3])
    if len(late) > 3:
        details += f"\n--- and {len(late) - 3} more: `dcops lab exec HOST -- journalctl -b`"
    return (
        f"host(s) {', '.join(late)} not ready after {timeout:.0f} s (systemd running and SSH answering; "
        f"DCOPS_LAB_BOOT_TIMEOUT=SECONDS waits longer)\n{details}\n"
        "the lab is left as is for inspection (`dcops lab exec HOST -- journalctl -b`); `dcops lab down` cleans it up"
    )
