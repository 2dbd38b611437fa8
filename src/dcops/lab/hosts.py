"""Full lab hosts: systemd-nspawn containers booting systemd on the shared image.

The controller runs no systemd, so containers are started with ``--register=no
--keep-unit``; each joins the network namespace the lab prepared for it. The container's
init is a descendant of the nspawn process; commands run inside with ``nsenter``.

Each host has its own disk: an overlay of the shared image (read-only lower layer) and a
folder of the lab (``hosts/<name>/upper``), mounted at ``hosts/<name>/root``. What a host
writes survives a host-stop/host-start drill, as a real server's disk survives a reboot
(mail queues, mailboxes, configuration); ``dcops lab down`` unmounts and deletes it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import dcops.lab.cgroups as cgroups
from dcops.lab.errors import LabError
from dcops.lab.plan import PREFIX, Node
from dcops.lab.ssh import host_dir
from dcops.lab.system import run

CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def root_dir(labdir: Path, name: str) -> Path:
    return labdir / "hosts" / name / "root"


def mount_root(image: Path, node: Node, labdir: Path) -> Path:
    """The host's disk (overlay of the image and its own upper folder), mounted once."""
    base = labdir / "hosts" / node.name
    upper, work, root = base / "upper", base / "work", root_dir(labdir, node.name)
    for d in (upper, work, root):
        d.mkdir(parents=True, exist_ok=True)
    if not os.path.ismount(root):
        opts = f"lowerdir={image},upperdir={upper},workdir={work}"
        run(["mount", "-t", "overlay", "overlay", "-o", opts, str(root)], what=f"mount the disk of host {node.name}")
    return root


def unmount_roots(labdir: Path) -> list[str]:
    """Unmount every host disk of the lab; returns the ones that stayed mounted (busy)."""
    left = []
    for root in sorted((labdir / "hosts").glob("*/root")):
        if os.path.ismount(root):
            p = run(["umount", str(root)], what=f"unmount {root}", check=False)
            if p.returncode != 0 and os.path.ismount(root):
                left.append(str(root))
    return left


def nspawn_args(root: Path, node: Node, labdir: Path) -> list[str]:
    return [
        "systemd-nspawn",
        "--quiet",
        "--directory",
        str(root),
        "--boot",
        "--register=no",
        "--keep-unit",
        "--machine",
        node.machine,
        "--hostname",
        node.name,
        "--console=read-only",  # passive leaves the console undrained: init blocks on it
        "--link-journal=no",
        "--resolv-conf=off",
        "--timezone=off",
        f"--network-namespace-path=/run/netns/{node.netns}",
        # With a namespace of ours (not --private-network), nspawn withholds CAP_NET_ADMIN; the
        # roles need it inside the host's own namespace: routes (FRR), nftables, WireGuard, sysctls.
        "--capability=CAP_NET_ADMIN",
        "--bind=/dev/net/tun",
        f"--bind-ro={host_dir(labdir, node.name)}:/etc/dcops",
    ]


def start(image: Path, node: Node, labdir: Path) -> int:
    log = labdir / "hosts" / node.name / "console.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    groups = cgroups.prepare(node.machine)
    root = mount_root(image, node, labdir)
    with open(log, "ab") as out:
        p = subprocess.Popen(
            nspawn_args(root, node, labdir),
            preexec_fn=lambda: cgroups.join(groups),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives `dcops lab up`; stopped by `dcops lab down`
        )
    return p.pid


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def machine_of(pid: int) -> str | None:
    """The ``--machine`` of a systemd-nspawn process, or None if ``pid`` is not one."""
    args = _cmdline(pid)
    if not args or not args[0].endswith("systemd-nspawn"):
        return None
    for i, a in enumerate(args):
        if a in ("--machine", "-M") and i + 1 < len(args):
            return args[i + 1]
        if a.startswith("--machine="):
            return a.split("=", 1)[1]
    return None


def nspawn_processes(code: str) -> dict[int, str]:
    """Every systemd-nspawn process on the machine whose machine name is this lab's."""
    found = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            m = machine_of(int(d.name))
            if m is not None and m.startswith(f"{PREFIX}-{code}-"):
                found[int(d.name)] = m
    return found


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for t in Path(f"/proc/{pid}/task").iterdir():
            kids += [int(x) for x in (t / "children").read_text().split()]
    except OSError:
        pass
    return kids


def leader(nspawn_pid: int) -> int | None:
    """The container's init (PID 1 inside): the first descendant in another PID namespace."""
    try:
        mine = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    todo = _children(nspawn_pid)
    while todo:
        pid = todo.pop(0)
        try:
            if os.readlink(f"/proc/{pid}/ns/pid") != mine:
                return pid
        except OSError:
            continue
        todo += _children(pid)
    return None


def alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return Path(f"/proc/{pid}").exists() and "Z" not in _stat_state(pid)


def _stat_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"


def nsenter(leader_pid: int, *command: str) -> list[str]:
    """Run ``command`` as root inside the container, with the container's own clean environment."""
    return [
        "nsenter", "-t", str(leader_pid), "-m", "-u", "-i", "-n", "-p", "--",
        "/usr/bin/env", "-i", f"PATH={CONTAINER_PATH}", "LANG=C.UTF-8", f"TERM={os.environ.get('TERM', 'dumb')}",
        *command,
    ]  # fmt: skip


def system_state(leader_pid: int) -> str:
    """``systemctl is-system-running`` inside (``unresponsive`` when systemd does not answer)."""
    try:
        p = run(nsenter(leader_pid, "systemctl", "is-system-running"), check=False, timeout=10)
    except LabError:
        return "unresponsive"
    return p.stdout.strip() or "unknown"


def journal_tail(labdir: Path, name: str, leader_pid: int | None, lines: int = 15) -> str:
    if leader_pid is not None and alive(leader_pid):
        for cmd in (("journalctl", "-b", "--no-pager", "-n", str(lines)), ("systemctl", "--failed", "--no-pager")):
            try:
                p = run(nsenter(leader_pid, *cmd), check=False, timeout=10)
            except LabError:
                continue
            if p.stdout.strip():
                return p.stdout.rstrip()
    log = labdir / "hosts" / name / "console.log"
    if log.exists():
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    return "(no journal and no console output)"


def stop(pids: list[int], leaders: list[int], grace: float = 10.0) -> None:
    """Shut containers down cleanly (SIGTERM to nspawn powers the container off), then kill."""
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(alive(p) for p in pids + leaders):
        time.sleep(0.1)
    for pid in leaders + pids:  # killing the init kills its whole PID namespace
        if alive(pid):
            _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(alive(p) for p in pids + leaders):
        time.sleep(0.05)
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap, when we are the parent


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
