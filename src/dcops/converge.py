"""Converge a province: run ``playbooks/site.yml`` with a live progress display and a per-host summary.

:func:`converge` is the entry point (the main job calls it after booting the lab). It runs
``ansible-playbook`` as a child process with dcops' ``playbooks/ansible.cfg`` (or stock
Ansible settings, for the benchmark), follows the run through the ``dcops_events`` callback
plugin (one JSON line per task and host result) and prints a table per host: ok, changed,
failed, unreachable, skipped. Ansible's own output goes to a log file, named in the summary.

For a lab province the WireGuard keys' Ansible Vault password is generated once, for that
lab only, in the lab's folder (``vault-password``, mode 0600); a real province brings its
own through ``ANSIBLE_VAULT_PASSWORD_FILE``.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from dcops import DEFAULT_INVENTORY, ROOT
from dcops.paths import ensure_lab_vault_password, lab_base

PLAYBOOKS = ROOT / "playbooks"
ANSIBLE_CFG = PLAYBOOKS / "ansible.cfg"

#: Stock Ansible settings (the benchmark's baseline): only what reading the inventory needs.
STOCK_CFG = """\
[defaults]
inventory_plugins = {plugins}
forks = 5
gathering = implicit
fact_caching = memory
host_key_checking = true
retry_files_enabled = false
interpreter_python = auto_silent

[inventory]
enable_plugins = dcops_province, ansible.builtin.host_list, ansible.builtin.ini
unparsed_is_failed = true

[ssh_connection]
pipelining = false
"""


class ConvergeError(Exception):
    """A converge that could not run at all (missing tool, unreadable inventory)."""


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
    returncode: int
    seconds: float
    hosts: dict[str, HostSummary] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)
    log: Path | None = None
    command: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not any(h.failed or h.unreachable for h in self.hosts.values())

    @property
    def changed(self) -> int:
        return sum(h.changed for h in self.hosts.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "returncode": self.returncode,
            "seconds": round(self.seconds, 1),
            "ok": self.ok,
            "changed": self.changed,
            "hosts": {k: vars(v) for k, v in self.hosts.items()},
            "failures": self.failures,
            "log": str(self.log) if self.log else None,
        }


def _province(inventory_dir: Path) -> tuple[str, bool]:
    from dcops.inventory import load

    inv = load(inventory_dir).inventory
    return inv.province.code, bool(inv.province.lab)


def stock_config(path: Path | None = None) -> Path:
    """An ansible.cfg with stock settings (pipelining off, 5 forks, no fact cache)."""
    if path is None:
        fd, name = tempfile.mkstemp(prefix="dcops-stock-", suffix=".cfg")
        os.close(fd)
        path = Path(name)
    path.write_text(STOCK_CFG.format(plugins=ROOT / "src" / "dcops" / "ansible_plugins" / "inventory"))
    return path


def ansible_env(
    inventory_dir: Path | str = DEFAULT_INVENTORY, *, stock: bool = False, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Environment for ansible-playbook / ansible over ``inventory_dir`` (config, vault password)."""
    inv = Path(inventory_dir).resolve()
    env = dict(os.environ if base is None else base)
    env["ANSIBLE_CONFIG"] = str(stock_config() if stock else ANSIBLE_CFG)
    env.setdefault("ANSIBLE_FORCE_COLOR", "0")
    env["ANSIBLE_NOCOLOR"] = "1"
    code, is_lab = _province(inv)
    if is_lab:
        env.setdefault("DCOPS_LAB_DIR", str(lab_base()))
        if not env.get("ANSIBLE_VAULT_PASSWORD_FILE"):
            env["ANSIBLE_VAULT_PASSWORD_FILE"] = str(ensure_lab_vault_password(code))
    return env


def _ansible_playbook() -> str:
    import shutil
    import sys

    exe = Path(sys.executable).parent / "ansible-playbook"
    found = str(exe) if exe.exists() else shutil.which("ansible-playbook")
    if not found:
        raise ConvergeError("ansible-playbook not found: install dcops with its dependencies (scripts/setup.sh)")
    return found


class _Progress:
    """Live state of a run, drawn as a table (play, task, per-host counters)."""

    def __init__(self) -> None:
        self.play = ""
        self.task = ""
        self.tasks_done = 0
        self.hosts: dict[str, HostSummary] = {}
        self.failures: list[dict[str, str]] = []
        self.stats: dict[str, dict[str, int]] | None = None
        self.t0 = time.monotonic()

    def feed(self, ev: dict[str, Any]) -> None:
        kind = ev.get("event")
        if kind == "play":
            self.play = str(ev.get("name", ""))
        elif kind == "task":
            self.task = str(ev.get("name", ""))
            self.tasks_done += 1
        elif kind == "result":
            h = self.hosts.setdefault(str(ev["host"]), HostSummary())
            state = ev.get("state")
            if state == "ok":
                h.ok += 1
                h.changed += 1 if ev.get("changed") else 0
            elif state == "failed":
                h.failed += 1
                self.failures.append({"host": str(ev["host"]), "task": str(ev.get("task", "")), "msg": str(ev.get("msg", ""))})
            elif state == "unreachable":
                h.unreachable += 1
                self.failures.append({"host": str(ev["host"]), "task": str(ev.get("task", "")), "msg": str(ev.get("msg", ""))})
            elif state == "skipped":
                h.skipped += 1
            elif state == "ignored":
                h.ignored += 1
        elif kind == "stats":
            self.stats = ev.get("hosts") or {}

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
    t = Table(title=f"{title}: {'ok' if result.ok else 'FAILED'} in {result.seconds:.1f} s, changed={result.changed}")
    return _hosts_table(t, result.hosts, unchanged_style="green")


def converge(
    inventory_dir: Path | str = DEFAULT_INVENTORY,
    playbook: str = "site.yml",
    *,
    check: bool = False,
    diff: bool = False,
    limit: str | None = None,
    extra_args: Sequence[str] = (),
    stock: bool = False,
    console: Console | None = None,
    quiet: bool = False,
    log_path: Path | None = None,
    timeout: float | None = 3600,
) -> ConvergeResult:
    """Run ``playbooks/<playbook>`` over ``inventory_dir``; show progress; print a per-host summary.

    ``check``/``diff`` add ``--check``/``--diff``; ``stock`` uses stock Ansible settings instead
    of ``playbooks/ansible.cfg``. Returns the per-host counts from Ansible's own statistics.
    """
    con = console or Console(stderr=True)
    inv = Path(inventory_dir).resolve()
    if not (PLAYBOOKS / playbook).exists():
        raise ConvergeError(f"no playbook {PLAYBOOKS / playbook}")
    env = ansible_env(inv, stock=stock)
    if _province(inv)[1]:
        # a lab converges with nothing by hand: DKIM keys and mailbox passwords it lacks are made now
        from dcops.mail import labsecrets

        labsecrets.ensure(inv)
    work = Path(tempfile.mkdtemp(prefix="dcops-converge-"))
    events = work / "events.jsonl"
    events.touch()
    log = log_path or work / "ansible.log"
    env["DCOPS_EVENTS_FILE"] = str(events)
    env["ANSIBLE_CALLBACKS_ENABLED"] = "dcops_events"
    env["ANSIBLE_CALLBACK_PLUGINS"] = str(PLAYBOOKS / "callback_plugins")
    cmd = [_ansible_playbook(), "-i", str(inv), playbook]
    cmd += (["--check"] if check else []) + (["--diff"] if diff else []) + (["--limit", limit] if limit else [])
    cmd += list(extra_args)
    prog = _Progress()
    t0 = time.monotonic()
    title = f"{playbook} over {inv.name}" + (" (check)" if check else "") + (" [stock settings]" if stock else "")
    with open(log, "w") as logf:
        proc = subprocess.Popen(cmd, cwd=PLAYBOOKS, env=env, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        live_cm: Live | contextlib.nullcontext[None] = (
            contextlib.nullcontext() if quiet else Live(prog.table(title), console=con, refresh_per_second=4, transient=True)
        )
        pending = ""  # a line the callback has not finished writing yet
        try:
            with open(events, encoding="utf-8") as evf, live_cm as live:
                while True:
                    chunk = evf.readline()
                    if chunk:
                        pending += chunk
                        if pending.endswith("\n"):
                            prog.feed(json.loads(pending))
                            pending = ""
                        continue
                    rc = proc.poll()
                    if rc is not None:
                        for rest in (pending + evf.read()).splitlines():
                            if rest.strip():
                                prog.feed(json.loads(rest))
                        break
                    if timeout is not None and time.monotonic() - t0 > timeout:
                        proc.kill()
                        proc.wait()
                        rc = -9
                        break
                    if live is not None:
                        live.update(prog.table(title))
                    time.sleep(0.2)
        finally:
            if proc.poll() is None:  # interrupted or failed here: ansible-playbook must not run on alone
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    seconds = time.monotonic() - t0
    hosts = prog.hosts
    if prog.stats:
        hosts = {
            h: HostSummary(
                ok=s.get("ok", 0),
                changed=s.get("changed", 0),
                failed=s.get("failures", 0),
                unreachable=s.get("unreachable", 0),
                skipped=s.get("skipped", 0),
                rescued=s.get("rescued", 0),
                ignored=s.get("ignored", 0),
            )
            for h, s in prog.stats.items()
        }
    result = ConvergeResult(
        returncode=proc.returncode if proc.returncode is not None else -1,
        seconds=seconds,
        hosts=hosts,
        failures=prog.failures,
        log=log,
        command=cmd,
    )
    if stock:
        Path(env["ANSIBLE_CONFIG"]).unlink(missing_ok=True)
    if not quiet:
        con.print(summary_table(result, title))
        for f in result.failures[:20]:
            con.print(f"[bold red]failed[/] {f['host']}: {f['task']}: {f['msg']}", highlight=False)
        con.print(f"ansible log: {log}", highlight=False)
    return result
