"""Converge a province: run a playbook under ansible-runner with live progress and a per-host summary.

:func:`converge` is the entry point (the main job calls it after booting the lab). It runs
``ansible-playbook`` through ansible-runner (the interface AWX and other execution engines use)
with dcops' ``playbooks/ansible.cfg`` (or another ansible.cfg, such as the benchmark's stock settings), follows
the run through the runner's events and prints:

- on a terminal, a live table per host (ok, changed, failed, unreachable, skipped);
- elsewhere (a log file, CI, ``| tee``), plain lines: one per play, one per finished task with
  how many hosts were ok/changed/failed on it, a line every ``progress_every`` seconds while
  nothing else was printed, and each failure at once;
- at the end, a table per host from Ansible's own final statistics, the failures (host, task,
  message; never the data of a ``no_log`` result) and where Ansible's full output is.

Every run has its own folder (the runner's private data dir and artifacts):
``$DCOPS_CONVERGE_DIR/<province>/<run>/``, default ``~/.cache/dcops/converge/<province>/<run>/``
(``$XDG_CACHE_HOME`` honoured), never inside the git checkout. It holds ``stdout`` (Ansible's
output: the log named in the summary), ``job_events/`` (one JSON file per event), ``status``,
``rc``, ``command`` and ``summary.json`` (:meth:`ConvergeResult.to_json`). The newest
``keep_runs`` (10) runs of each province are kept.

For a lab province the Ansible Vault password is generated once, for that lab only, in the
lab's folder (``vault-password``, mode 0600) and missing lab mail secrets are made
(``dcops.mail.labsecrets``); a real province brings its own vault password through
``ANSIBLE_VAULT_PASSWORD_FILE``. Any other Ansible inventory (an ini file, a folder without
``province.yml``) is passed to Ansible as it is.

A timeout, Ctrl-C, SIGTERM or SIGHUP stops ``ansible-playbook`` and every process it started
(its workers each have a session of their own): SIGTERM first, SIGKILL after a grace period.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import secrets
import shlex
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any, NamedTuple

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from dcops import DEFAULT_INVENTORY, ROOT
from dcops.paths import ensure_lab_vault_password, lab_base

PLAYBOOKS = ROOT / "playbooks"
ANSIBLE_CFG = PLAYBOOKS / "ansible.cfg"
PROVINCE_MARKER = "province.yml"

#: Where run folders go (default: ``$XDG_CACHE_HOME/dcops/converge``, i.e. ``~/.cache/dcops/converge``).
RUNS_DIR_ENV = "DCOPS_CONVERGE_DIR"
KEEP_RUNS = 10
#: A plain progress line at least this often (seconds) while nothing else is printed.
PROGRESS_EVERY = 12.0
#: Seconds between SIGTERM and SIGKILL when a run is stopped.
STOP_GRACE = 5.0
#: How often (seconds) the runner thread checks whether the run must stop.
_POLL = 0.5
#: Any fact cache type but ``jsonfile``: the runner then leaves Ansible's fact cache settings
#: (ansible.cfg: jsonfile in ~/.cache/dcops/ansible-facts, kept across runs) alone.
_FACT_CACHE_FROM_CFG = "ansible.cfg"
_RUN_NAME = re.compile(r"^\d{8}-\d{6}-[A-Za-z0-9_.-]+-[0-9a-f]{6}$")

class ConvergeError(Exception):
    """A converge that could not run at all (missing tool, unreadable inventory, bad folder)."""


@dataclass
class HostSummary:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0


@dataclass
class ConvergeResult:
    """What a converge did. ``hosts`` come from Ansible's final statistics when the run got there.

    ``status`` is ansible-runner's word: ``successful``, ``failed``, ``timeout`` or ``canceled``;
    ``returncode`` is ansible-playbook's exit code (-9 when dcops stopped it). ``log`` is
    Ansible's full output, ``artifacts`` the run's folder (events, status, summary.json), ``pid``
    the ansible-playbook process.
    """

    returncode: int
    seconds: float
    hosts: dict[str, HostSummary] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)
    log: Path | None = None
    command: list[str] = field(default_factory=list)
    status: str = ""
    artifacts: Path | None = None
    pid: int | None = None

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not any(h.failed or h.unreachable for h in self.hosts.values())

    @property
    def changed(self) -> int:
        return sum(h.changed for h in self.hosts.values())

    @property
    def timed_out(self) -> bool:
        return self.status == "timeout"

    def to_json(self) -> dict[str, Any]:
        return {
            "returncode": self.returncode,
            "status": self.status,
            "seconds": round(self.seconds, 1),
            "ok": self.ok,
            "changed": self.changed,
            "hosts": {k: vars(v) for k, v in self.hosts.items()},
            "failures": self.failures,
            "log": str(self.log) if self.log else None,
            "artifacts": str(self.artifacts) if self.artifacts else None,
        }


# ---------------------------------------------------------------------------- inventory, settings


def is_province(inventory: Path | str) -> bool:
    """A dcops province folder (holds ``province.yml``), as opposed to any other Ansible inventory."""
    p = Path(inventory)
    return p.is_dir() and (p / PROVINCE_MARKER).is_file()


def _province(inventory: Path) -> tuple[str, bool] | None:
    """(code, is a lab) of a dcops province; None for another kind of Ansible inventory."""
    if not is_province(inventory):
        return None
    from dcops.inventory import InventoryError, load

    try:
        inv = load(inventory).inventory
    except InventoryError as e:
        raise ConvergeError(f"inventory {inventory}: {len(e.problems)} problems (dcops inventory check {inventory})") from e
    return inv.province.code, bool(inv.province.lab)


def ansible_env(inventory_dir: Path | str = DEFAULT_INVENTORY, *, config: Path | None = None) -> dict[str, str]:
    """Environment for ansible-playbook / ansible over ``inventory_dir`` (config, vault password);
    ``config``: another ansible.cfg than dcops' ``playbooks/ansible.cfg``."""
    inv = Path(inventory_dir).resolve()
    env = dict(os.environ)
    env["ANSIBLE_CONFIG"] = str(config or ANSIBLE_CFG)
    env.setdefault("ANSIBLE_FORCE_COLOR", "0")
    env["ANSIBLE_NOCOLOR"] = "1"
    prov = _province(inv)
    if prov is not None and prov[1]:
        env.setdefault("DCOPS_LAB_DIR", str(lab_base()))
        if not env.get("ANSIBLE_VAULT_PASSWORD_FILE"):
            env["ANSIBLE_VAULT_PASSWORD_FILE"] = str(ensure_lab_vault_password(prov[0]))
    return env


def _ansible_playbook() -> str:
    exe = Path(sys.executable).parent / "ansible-playbook"
    found = str(exe) if exe.exists() else shutil.which("ansible-playbook")
    if not found:
        raise ConvergeError("ansible-playbook not found: install dcops with its dependencies (scripts/setup.sh)")
    return found


def _playbook_path(playbook: str | Path) -> Path:
    p = Path(playbook)
    path = p if p.is_absolute() else PLAYBOOKS / p
    if not path.is_file():
        raise ConvergeError(f"no playbook {path}")
    return path


# ---------------------------------------------------------------------------- run folders


def default_runs_dir() -> Path:
    """Where run folders go: ``$DCOPS_CONVERGE_DIR``, else ``$XDG_CACHE_HOME/dcops/converge``."""
    env = os.environ.get(RUNS_DIR_ENV)
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "dcops" / "converge"


def _new_run(base: Path, playbook: Path, check: bool) -> tuple[Path, str]:
    """(the province's runs folder, the new run's name): ``YYYYmmdd-HHMMSS-<playbook>-<random>``."""
    base = base.expanduser().resolve()
    if base == ROOT or ROOT in base.parents:
        raise ConvergeError(f"converge runs folder {base} is inside the dcops checkout: set {RUNS_DIR_ENV} elsewhere")
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", playbook.stem) + ("-check" if check else "")
    return base, f"{datetime.now():%Y%m%d-%H%M%S}-{stem}-{secrets.token_hex(3)}"


def rotate_runs(base: Path, keep: int, *, stale_after: float = 86400.0) -> list[Path]:
    """Delete all but the newest ``keep`` finished run folders in ``base``; return what was deleted.

    Only folders named like a run are touched. One without a ``status`` file is still running
    (or was killed outright) and is deleted only once it is a day old.
    """
    if keep < 1 or not base.is_dir():
        return []
    runs = sorted((p for p in base.iterdir() if p.is_dir() and _RUN_NAME.match(p.name)), key=lambda p: p.name)
    now = time.time()
    finished = [p for p in runs if (p / "status").exists() or now - p.stat().st_mtime > stale_after]
    doomed = finished[: max(0, len(finished) - keep)]
    for p in doomed:
        shutil.rmtree(p, ignore_errors=True)
    return doomed


def _scrub_command_artifact(run: Path, ours: Mapping[str, str]) -> None:
    """The runner records its whole environment in ``command``: keep only what dcops and it set."""
    path = run / "command"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    keep = ("ANSIBLE_", "AWX_", "RUNNER_", "DCOPS_")
    env = data.get("env") or {}
    data["env"] = {k: v for k, v in env.items() if k in ours or k.startswith(keep) or k in ("PATH", "HOME", "USER")}
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


# ---------------------------------------------------------------------------- processes


def _stat(pid: int) -> tuple[int, int, str, int] | None:
    """(ppid, process group, state, start time) of a process, from /proc; None when gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    f = raw[raw.rindex(")") + 2 :].split()
    return int(f[1]), int(f[2]), f[0], int(f[19])


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def _pids() -> list[int]:
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def _child_running(cmd: Sequence[str]) -> int | None:
    """The pid of our child process running ``cmd`` (ansible-playbook is a script: argv[0] is Python)."""
    me, n = os.getpid(), len(cmd)
    for pid in _pids():
        st = _stat(pid)
        if st and st[0] == me and _cmdline(pid)[-n:] == list(cmd):
            return pid
    return None


def _tree(root: int) -> dict[int, tuple[int, int]]:
    """``root`` and its descendants: pid -> (process group, start time)."""
    table = {pid: st for pid in _pids() if (st := _stat(pid))}
    children: dict[int, list[int]] = {}
    for pid, st in table.items():
        children.setdefault(st[0], []).append(pid)
    out: dict[int, tuple[int, int]] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in table and pid not in out:
            out[pid] = (table[pid][1], table[pid][3])
            todo.extend(children.get(pid, []))
    return out


def _alive(pid: int, start: int) -> bool:
    st = _stat(pid)
    return st is not None and st[3] == start and st[2] != "Z"


def stop_process_tree(root: int, grace: float = STOP_GRACE) -> None:
    """Stop ``root`` and everything it started: SIGTERM to ``root`` (Ansible passes it on to its
    workers, which kill their own process groups), then SIGKILL to whatever of the tree, and of
    the process groups led by it, is left after ``grace`` seconds."""
    tree = _tree(root)
    if not tree:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(root, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(p, s) for p, (_, s) in tree.items()):
        time.sleep(0.1)
    mine = os.getpgrp()
    for pid, (pgrp, start) in tree.items():
        if _alive(pid, start):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if pgrp == pid and pgrp != mine:  # a worker's (or the run's) own group: late children too
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgrp, signal.SIGKILL)


class _Signalled(BaseException):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _stop_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP raise :class:`_Signalled` in the main thread while a run is on (where
    they are not ignored), so that the run is stopped before dcops goes; SIGINT already raises
    KeyboardInterrupt."""
    old: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():

        def raise_(signum: int, frame: FrameType | None) -> None:
            raise _Signalled(signum)

        for s in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(s) not in (signal.SIG_IGN, None):
                old[s] = signal.signal(s, raise_)
    try:
        yield
    finally:
        for signum, handler in old.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def _deferred_signals() -> Iterator[list[int]]:
    """While a run is being stopped: Ctrl-C, SIGTERM and SIGHUP are only noted, so that a second
    one does not cut the cleanup short (the caller acts on the first)."""
    seen: list[int] = []
    saved: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(s) not in (signal.SIG_IGN, None):
                saved[s] = signal.signal(s, lambda signum, frame: seen.append(signum))
    try:
        yield seen
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


# ---------------------------------------------------------------------------- events, progress

_RESULT_EVENTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_skipped": "skipped",
    "runner_on_unreachable": "unreachable",
}
_KEPT_EVENTS = {
    "playbook_on_play_start",
    "playbook_on_task_start",
    "playbook_on_handler_task_start",
    "playbook_on_no_hosts_matched",
    "playbook_on_no_hosts_remaining",
    "playbook_on_stats",
    "runner_on_start",
    *_RESULT_EVENTS,
}
NO_LOG_MSG = "output hidden (no_log)"
#: HostSummary field -> the key of Ansible's statistics in the runner's playbook_on_stats event.
_STATS_KEYS = {
    "ok": "ok",
    "changed": "changed",
    "failed": "failures",
    "unreachable": "dark",
    "skipped": "skipped",
    "rescued": "rescued",
    "ignored": "ignored",
}


def _message(res: Mapping[str, Any]) -> str:
    """A failure's message for the summary: never data of a no_log result (the runner censors those)."""
    if "censored" in res or res.get("_ansible_no_log"):
        return NO_LOG_MSG
    msg = res.get("msg") or res.get("stderr") or res.get("reason") or ""
    return str(msg).strip()[:500]


def _digest(ev: Mapping[str, Any]) -> dict[str, Any] | None:
    """The part of a runner event the progress display needs (made in the runner's thread)."""
    kind = ev.get("event")
    if kind not in _KEPT_EVENTS:
        return None
    data = ev.get("event_data") or {}
    task = str(data.get("task") or "")
    if data.get("role") and task:
        task = f"{data['role']} : {task}"
    d: dict[str, Any] = {"event": kind, "pid": ev.get("pid"), "play": data.get("play"), "task": task}
    if "host" in data:
        d["host"] = str(data["host"])
    if kind in _RESULT_EVENTS:
        res = data.get("res") or {}
        state = _RESULT_EVENTS[kind]
        if state == "failed" and data.get("ignore_errors"):
            state = "ignored"
        d["state"] = state
        d["changed"] = bool(res.get("changed")) if isinstance(res, Mapping) else False
        if state in ("failed", "unreachable") and isinstance(res, Mapping):
            d["msg"] = _message(res)
    elif kind == "playbook_on_stats":
        d["stats"] = {k: dict(data.get(k) or {}) for k in (*_STATS_KEYS.values(), "processed")}
    return d


class _Note(NamedTuple):
    """A plain progress line."""

    text: str
    failure: bool = False


@dataclass
class _TaskTally:
    name: str
    started: float
    handler: bool = False
    hosts: set[str] = field(default_factory=set)  # hosts that started it
    states: dict[str, str] = field(default_factory=dict)  # host -> ok/changed/failed/...

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(("ok", "changed", "failed", "unreachable", "skipped", "ignored"), 0)
        for s in self.states.values():
            out[s] += 1
        return out

    def line(self) -> str:
        c = self.counts()
        parts = [f"ok {c['ok']}", f"changed {c['changed']}", f"failed {c['failed']}"]
        parts += [f"{k} {c[k]}" for k in ("unreachable", "skipped", "ignored") if c[k]]
        return ", ".join(parts)


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class _Progress:
    """The run as the events tell it: play, task, per-host counters, failures; plain lines on request."""

    def __init__(self) -> None:
        self.play = ""
        self.task = ""
        self.tasks_done = 0
        self.hosts: dict[str, HostSummary] = {}
        self.failures: list[dict[str, str]] = []
        self.stats: dict[str, HostSummary] | None = None  # Ansible's final statistics
        self.pid: int | None = None
        self.t0 = time.monotonic()
        self.current: _TaskTally | None = None

    def elapsed(self) -> str:
        return _clock(time.monotonic() - self.t0)

    def _close_task(self) -> list[_Note]:
        t, self.current = self.current, None
        if t is None:
            return []
        kind = "handler" if t.handler else "task"
        return [_Note(f"[{self.elapsed()}] {kind} {t.name}: {t.line()} ({time.monotonic() - t.started:.1f} s)")]

    def feed(self, ev: Mapping[str, Any]) -> list[_Note]:
        """Take one digested event; return the plain progress lines it completes (plays, tasks, failures)."""
        kind = ev["event"]
        if self.pid is None and ev.get("pid"):
            self.pid = int(ev["pid"])
        lines: list[_Note] = []
        if kind == "playbook_on_play_start":
            lines += self._close_task()
            self.play = str(ev.get("play") or "")
            lines.append(_Note(f"[{self.elapsed()}] PLAY {self.play}"))
        elif kind in ("playbook_on_task_start", "playbook_on_handler_task_start"):
            lines += self._close_task()
            self.task = str(ev.get("task") or "")
            self.tasks_done += 1
            self.current = _TaskTally(self.task, time.monotonic(), handler=kind == "playbook_on_handler_task_start")
        elif kind == "runner_on_start":
            if self.current is not None:
                self.current.hosts.add(ev["host"])
        elif kind in _RESULT_EVENTS:
            host, state = ev["host"], ev["state"]
            h = self.hosts.setdefault(host, HostSummary())
            if state == "ok":
                h.ok += 1
                h.changed += 1 if ev.get("changed") else 0
            else:  # failed, unreachable, skipped, ignored: HostSummary's field of the same name
                setattr(h, state, getattr(h, state) + 1)
            if self.current is not None:
                self.current.states[host] = "changed" if state == "ok" and ev.get("changed") else state
            if state in ("failed", "unreachable"):
                f = {"host": host, "task": str(ev.get("task") or self.task), "msg": str(ev.get("msg", ""))}
                self.failures.append(f)
                word = "FAILED" if state == "failed" else "UNREACHABLE"
                lines.append(_Note(f"[{self.elapsed()}] {word} {f['host']}: {f['task']}: {f['msg']}", failure=True))
        elif kind in ("playbook_on_no_hosts_matched", "playbook_on_no_hosts_remaining"):
            lines += self._close_task()
            what = "no hosts matched" if kind.endswith("matched") else "no hosts left"
            lines.append(_Note(f"[{self.elapsed()}] {what}: {self.play}"))
        elif kind == "playbook_on_stats":
            lines += self._close_task()
            st = ev["stats"]
            names = set(st["processed"]) | {h for k in st.values() for h in k}
            self.stats = {h: HostSummary(**{f: st[key].get(h, 0) for f, key in _STATS_KEYS.items()}) for h in sorted(names)}
        return lines

    def still_running(self) -> str:
        """The heartbeat line: what is running now and how far it got."""
        t = self.current
        if t is None:
            return f"[{self.elapsed()}] running: {self.play or 'starting'}"
        done = len(t.states)
        return f"[{self.elapsed()}] still on {t.name}: {done}/{len(t.hosts) or '?'} hosts done ({t.line()})"

    def final_hosts(self) -> dict[str, HostSummary]:
        """Ansible's final statistics; what the events counted when the run did not get there."""
        return self.hosts if self.stats is None else self.stats

    def final_failures(self) -> list[dict[str, str]]:
        """The failures; those of a host Ansible's statistics call not failed (rescued) are left out."""
        if self.stats is None:
            return self.failures
        bad = {h for h, s in self.stats.items() if s.failed or s.unreachable}
        return [f for f in self.failures if f["host"] in bad]

    def table(self, title: str) -> Table:
        caption = f"{self.play} · task {self.tasks_done}: {self.task} · {time.monotonic() - self.t0:.0f} s"
        return _hosts_table(Table(title=title, caption=caption), self.hosts, unchanged_style="")


def _hosts_table(t: Table, hosts: dict[str, HostSummary], unchanged_style: str) -> Table:
    """One row per host with Ansible's counters; changes in yellow, failures in red."""
    for col in ("host", "ok", "changed", "failed", "unreachable", "skipped"):
        t.add_column(col, justify="left" if col == "host" else "right")
    for name, h in sorted(hosts.items()):
        t.add_row(
            name,
            str(h.ok),
            Text(str(h.changed), style="yellow" if h.changed else unchanged_style),
            Text(str(h.failed), style="bold red" if h.failed else ""),
            Text(str(h.unreachable), style="bold red" if h.unreachable else ""),
            str(h.skipped),
        )
    return t


def summary_table(result: ConvergeResult, title: str = "converge") -> Table:
    state = "ok" if result.ok else ("TIMED OUT" if result.timed_out else "FAILED")
    t = Table(title=f"{title}: {state} in {result.seconds:.1f} s, changed={result.changed}")
    return _hosts_table(t, result.hosts, unchanged_style="green")


class _Display:
    """Where progress goes: nowhere (quiet), a live table (a terminal) or plain lines (anything else)."""

    def __init__(self, con: Console, quiet: bool, title: str, prog: _Progress, every: float) -> None:
        self.con, self.quiet, self.title, self.prog, self.every = con, quiet, title, prog, every
        self.live: Live | None = None
        self.plain = not quiet and not con.is_interactive
        self.last_print = time.monotonic()
        self.last_draw = 0.0
        self.broken = False

    def say(self, line: str, style: str | None = None) -> None:
        if self.quiet or self.broken:
            return
        try:
            self.con.print(line, style=style, markup=False, highlight=False, soft_wrap=True)
        except OSError:  # the reader went away (| head): the converge goes on without progress
            self.broken = True
        self.last_print = time.monotonic()

    def __enter__(self) -> _Display:
        if not self.quiet and not self.plain:
            self.live = Live(self.prog.table(self.title), console=self.con, refresh_per_second=4, transient=True)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            with contextlib.suppress(OSError):
                self.live.__exit__(None, None, None)
            self.live = None

    def lines(self, notes: list[_Note]) -> None:
        for note in notes:
            if self.plain:
                self.say(note.text)
            elif note.failure:  # on a terminal: failures above the live table, at once
                self.say(note.text, style="bold red")

    def tick(self) -> None:
        now = time.monotonic()
        if self.plain and now - self.last_print >= self.every:
            self.say(self.prog.still_running())
        elif self.live is not None and now - self.last_draw >= 0.25:
            self.last_draw = now
            with contextlib.suppress(OSError):
                self.live.update(self.prog.table(self.title))


# ---------------------------------------------------------------------------- the converge


def converge(
    inventory_dir: Path | str = DEFAULT_INVENTORY,
    playbook: str | Path = "site.yml",
    *,
    check: bool = False,
    diff: bool = False,
    limit: str | None = None,
    extra_args: Sequence[str] = (),
    config: Path | None = None,
    console: Console | None = None,
    quiet: bool = False,
    log_path: Path | None = None,
    timeout: float | None = 3600,
    runs_dir: Path | None = None,
    keep_runs: int = KEEP_RUNS,
    progress_every: float = PROGRESS_EVERY,
    write_events: bool = True,
) -> ConvergeResult:
    """Run ``playbook`` over ``inventory_dir`` under ansible-runner; show progress; print a per-host summary.

    ``inventory_dir`` is a dcops province folder (validated, lab secrets made for a lab) or any
    other Ansible inventory (an ini file, a folder without ``province.yml``); ``playbook`` is a
    name under ``playbooks/`` or a path. ``check``/``diff``/``limit`` add ``--check``/``--diff``/
    ``--limit``; ``extra_args`` go to ansible-playbook as they are (``["-e", "k=v"]``); ``config``
    is an ansible.cfg to use instead of ``playbooks/ansible.cfg`` (the benchmark's stock settings). ``timeout`` (seconds) stops
    the run, which then has status ``timeout``. ``quiet`` prints nothing. The run's folder goes
    under ``runs_dir`` (default :func:`default_runs_dir`) ``/<province or inventory name>/``, of which the
    newest ``keep_runs`` are kept; ``write_events=False`` keeps no ``job_events/`` files.
    ``log_path`` gets a copy of Ansible's output (the log is ``<run>/stdout`` either way).
    """
    from ansible_runner.exceptions import AnsibleRunnerException, ConfigurationError  # type: ignore[import-untyped]
    from ansible_runner.interface import run_async  # type: ignore[import-untyped]

    con = console or Console(stderr=True)
    inv = Path(inventory_dir).resolve()
    if not inv.exists():
        raise ConvergeError(f"no inventory {inv}")
    book = _playbook_path(playbook)
    binary = _ansible_playbook()
    prov = _province(inv)
    label = prov[0] if prov else inv.stem
    env = ansible_env(inv, config=config)
    env.setdefault("ANSIBLE_HOST_KEY_CHECKING", "True")  # the runner would turn it off; both our configs keep it on
    if prov is not None and prov[1]:
        # a lab converges with nothing by hand: DKIM keys and mailbox passwords it lacks are made now
        from dcops.mail import labsecrets

        labsecrets.ensure(inv)
        from dcops.vc import accounts as vc_accounts  # and the rooms' SIP secrets

        vc_accounts.ensure_lab(inv)
    base, ident = _new_run((runs_dir or default_runs_dir()) / label, book, check)
    run = base / ident
    run.mkdir(mode=0o700)
    args = ["-i", str(inv), str(book)]
    args += (["--check"] if check else []) + (["--diff"] if diff else []) + (["--limit", limit] if limit else [])
    args += list(extra_args)
    cmd = [binary, *args]
    ours = {k: v for k, v in env.items() if os.environ.get(k) != v}
    title = f"{book.name} over {label}" + (" (check)" if check else "") + (f" [{config.name}]" if config else "")

    prog = _Progress()
    events: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
    stop = threading.Event()

    def on_event(ev: dict[str, Any]) -> bool:
        try:  # an exception here would end the runner's loop and leave ansible-playbook running
            d = _digest(ev)
            if d is not None:
                events.put(d)
        except Exception:  # a malformed event must not stop the run
            pass
        return write_events

    t0 = time.monotonic()
    timed_out = False
    try:
        thread, runner = run_async(
            private_data_dir=str(run),
            artifact_dir=str(base),
            ident=ident,
            project_dir=str(PLAYBOOKS),
            binary=binary,
            cmdline=shlex.join(args),
            envvars=ours,
            settings={"pexpect_timeout": _POLL},
            quiet=True,  # Ansible's output goes to <run>/stdout only
            suppress_env_files=True,
            fact_cache_type=_FACT_CACHE_FROM_CFG,
            event_handler=on_event,
            cancel_callback=stop.is_set,
        )
    except (ConfigurationError, AnsibleRunnerException, OSError, ValueError) as e:
        raise ConvergeError(f"ansible-runner could not start {book.name}: {e}") from e

    def halt() -> None:
        pid = _child_running(cmd)  # our own child (never a pid from an event: it may be reused by now)
        if pid is not None:
            stop_process_tree(pid)
        stop.set()  # the runner's own termination of what is left, then it returns
        thread.join(timeout=60)

    display = _Display(con, quiet, title, prog, progress_every)
    if display.plain:
        display.say(f"converge {title}: Ansible's output in {run / 'stdout'}")
    signalled: int | None = None
    with _stop_signals():
        try:
            with display:
                while True:
                    try:
                        ev: dict[str, Any] | None = events.get(timeout=0.2)
                    except queue.Empty:
                        ev = None
                    while ev is not None:
                        display.lines(prog.feed(ev))
                        try:
                            ev = events.get_nowait()
                        except queue.Empty:
                            ev = None
                    if not thread.is_alive():
                        break
                    if timeout is not None and time.monotonic() - t0 > timeout:
                        timed_out = True
                        display.say(f"[{prog.elapsed()}] timeout after {timeout:g} s: stopping ansible-playbook")
                        halt()
                        break
                    display.tick()
            thread.join()
        except (KeyboardInterrupt, _Signalled) as e:
            signalled = e.signum if isinstance(e, _Signalled) else None
            with _deferred_signals():
                halt()
            with contextlib.suppress(OSError):
                (run / "status").write_text("canceled")
            display.say(f"converge interrupted: ansible-playbook stopped; its output and events are in {run}")
            if signalled is None:
                raise
        finally:
            if thread.is_alive():  # any other way out of here: ansible-playbook must not run on alone
                with _deferred_signals():
                    halt()
    if signalled is not None:  # the handlers are dcops' caller's again: let theirs act (by default, dcops ends here)
        signal.raise_signal(signalled)
        raise ConvergeError(f"converge stopped by signal {signalled}")
    while True:  # what the runner handed over after the last look
        try:
            display.lines(prog.feed(events.get_nowait()))
        except queue.Empty:
            break
    seconds = time.monotonic() - t0

    status = "timeout" if timed_out else str(runner.status)
    if status not in ("successful", "failed", "timeout", "canceled"):  # the runner's thread ended on an error
        status = "failed"
    if timed_out:
        (run / "status").write_text(status)
    rc = -9 if timed_out else (runner.rc if isinstance(runner.rc, int) else -1)
    _scrub_command_artifact(run, ours)
    log = run / "stdout"
    if log_path is not None and log.exists():
        log_path.write_text(log.read_text(encoding="utf-8", errors="replace").replace("\r\n", "\n"), encoding="utf-8")
        log = log_path
    result = ConvergeResult(
        returncode=rc,
        seconds=seconds,
        hosts=prog.final_hosts(),
        failures=prog.final_failures(),
        log=log,
        command=cmd,
        status=status,
        artifacts=run,
        pid=prog.pid,
    )
    with contextlib.suppress(OSError):
        (run / "summary.json").write_text(json.dumps(result.to_json(), indent=2, ensure_ascii=False) + "\n")
    rotate_runs(base, keep_runs)
    if not quiet:
        _print_summary(con, result, title, log_tail=prog.stats is None and status == "failed")
    return result


def _print_summary(con: Console, result: ConvergeResult, title: str, log_tail: bool = False) -> None:
    """The table per host, the failures, where the log and the run folder are; when Ansible ended
    before its statistics (a playbook or inventory error), the end of its output."""
    try:
        con.print(summary_table(result, title))
        if log_tail and result.log is not None and result.log.exists():
            lines = [ln for ln in result.log.read_text(errors="replace").replace("\r", "").splitlines() if ln.strip()]
            con.print("ansible-playbook ended before its statistics; the end of its output:", style="bold red")
            for ln in lines[-12:]:
                con.print(f"  {ln}", markup=False, highlight=False, soft_wrap=True)
        for f in result.failures[:20]:
            con.print(Text.assemble(("failed ", "bold red"), f"{f['host']}: {f['task']}: {f['msg']}"), soft_wrap=True)
        if len(result.failures) > 20:
            con.print(f"... and {len(result.failures) - 20} more failures (see the log)", highlight=False)
        con.print(f"ansible log: {result.log}", highlight=False, soft_wrap=True)
        con.print(f"run artifacts (events, status, summary.json): {result.artifacts}", highlight=False, soft_wrap=True)
    except OSError:
        pass
