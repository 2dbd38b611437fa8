"""dcops.converge on ansible-runner, with real ansible-playbook over local hosts (no lab).

Hosts h1-h3 use ``ansible_connection=local``; h4 is an SSH host on a closed loopback port (the
only packets sent go to 127.0.0.1), so it is unreachable. Each test writes its run folders
under its own temporary folder.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from dcops.converge import ConvergeError, ConvergeResult, HostSummary, ansible_env, converge, rotate_runs
from tests.conftest import LAB, ROOT

SECRET = "s3cr3t-Vault-Value-93d1"

SCENARIO = """\
- name: Scenario
  hosts: all
  gather_facts: false
  vars_files:
    - secret.yml
  tasks:
    - name: Say hello
      ansible.builtin.debug:
        msg: hello
    - name: Change something
      ansible.builtin.command: "true"
    - name: Only on h1
      ansible.builtin.debug:
        msg: h1 only
      when: inventory_hostname == 'h1'
    - name: Secret step
      ansible.builtin.shell: "echo {{ scenario_secret }}; exit 3"
      no_log: true
      when: inventory_hostname == 'h2'
    - name: Break h3
      ansible.builtin.fail:
        msg: h3 is broken
      when: inventory_hostname == 'h3'
    - name: Last step
      ansible.builtin.debug:
        msg: done
"""

ONE_TASK = """\
- name: Tiny
  hosts: h1
  gather_facts: false
  tasks:
    - name: Say hello
      ansible.builtin.debug:
        msg: hello
"""

#: A quick task, h2 failing, then a sleep (that touches a file when it ends) on h1 and h3.
SLOW = """\
- name: Slow
  hosts: h1,h2,h3
  gather_facts: false
  tasks:
    - name: Quick
      ansible.builtin.debug:
        msg: quick
    - name: Fail h2
      ansible.builtin.fail:
        msg: h2 fails early
      when: inventory_hostname == 'h2'
    - name: Sleep
      ansible.builtin.shell: "sleep {{ nap }} && touch {{ done_dir }}/{{ inventory_hostname }}.done"
"""

#: A task that never ends by itself (for timeouts and signals).
FOREVER = """\
- name: Forever
  hosts: h1,h2
  gather_facts: false
  tasks:
    - name: Sleep long
      ansible.builtin.shell: "sleep 3600.5"
"""


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with an ini inventory (h1-h3 local, h4 unreachable on loopback) and the playbooks.

    TMPDIR is in it too: the modules that a test kills leave their payload folders there.
    """
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "hosts.ini").write_text(
        "[local]\nh1\nh2\nh3\n"
        f"[local:vars]\nansible_connection=local\nansible_python_interpreter={sys.executable}\n"
        f"[gone]\nh4 ansible_host=127.0.0.1 ansible_port={_closed_port()} ansible_connection=ssh "
        "ansible_ssh_common_args='-o ConnectTimeout=5 -o BatchMode=yes'\n"
    )
    (tmp_path / "secret.yml").write_text(f"scenario_secret: {SECRET}\n")
    (tmp_path / "broken.yml").write_text(
        "- name: Broken\n  hosts: all\n  tasks:\n    - name: No such module\n      no.such.module: {}\n"
    )
    for name, text in (("scenario.yml", SCENARIO), ("one.yml", ONE_TASK), ("slow.yml", SLOW), ("forever.yml", FOREVER)):
        (tmp_path / name).write_text(text)
    return tmp_path


def _plain_console() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=False, force_interactive=False, width=200), buf


@pytest.fixture
def scenario(site: Path) -> tuple[ConvergeResult, str, Path]:
    con, buf = _plain_console()
    r = converge(site / "hosts.ini", site / "scenario.yml", console=con, runs_dir=site / "runs", timeout=300)
    return r, buf.getvalue(), site


# ---------------------------------------------------------------------------- one full run


def test_per_host_stats_come_from_ansible(scenario: tuple[ConvergeResult, str, Path]) -> None:
    r, _, _ = scenario
    assert r.hosts == {
        "h1": HostSummary(ok=4, changed=1, skipped=2),
        "h2": HostSummary(ok=2, changed=1, failed=1, skipped=1),
        "h3": HostSummary(ok=2, changed=1, failed=1, skipped=2),
        "h4": HostSummary(ok=1, unreachable=1),
    }
    assert not r.ok and r.returncode not in (0, -9) and r.status == "failed"
    assert r.changed == 3
    assert r.pid is not None and r.seconds > 0


def test_failures_name_host_task_and_message_never_no_log_data(scenario: tuple[ConvergeResult, str, Path]) -> None:
    r, out, _ = scenario
    by_host = {f["host"]: f for f in r.failures}
    assert sorted(by_host) == ["h2", "h3", "h4"], r.failures
    assert by_host["h2"]["task"] == "Secret step" and by_host["h2"]["msg"] == "output hidden (no_log)"
    assert by_host["h3"] == {"host": "h3", "task": "Break h3", "msg": "h3 is broken"}
    assert by_host["h4"]["task"] == "Change something" and by_host["h4"]["msg"], by_host["h4"]
    assert SECRET not in json.dumps(r.to_json()) and SECRET not in out


def test_log_is_ansibles_own_output_named_in_the_summary(scenario: tuple[ConvergeResult, str, Path]) -> None:
    r, out, _ = scenario
    assert r.log is not None and r.artifacts is not None and r.log == r.artifacts / "stdout"
    text = r.log.read_text()
    assert "TASK [Break h3]" in text and "PLAY RECAP" in text and "h3 is broken" in text
    assert SECRET not in text
    assert f"ansible log: {r.log}" in out


def test_artifacts_folder_holds_events_status_and_summary(scenario: tuple[ConvergeResult, str, Path]) -> None:
    r, out, site = scenario
    run = r.artifacts
    assert run is not None and run.parent == (site / "runs" / "hosts").resolve()
    assert ROOT not in run.parents
    assert (run / "status").read_text() == "failed"
    assert int((run / "rc").read_text()) == r.returncode
    assert json.loads((run / "summary.json").read_text()) == r.to_json()
    events = [json.loads(p.read_text()) for p in (run / "job_events").glob("*.json")]
    kinds = {e["event"] for e in events}
    assert {"playbook_on_start", "playbook_on_task_start", "runner_on_ok", "runner_on_failed", "playbook_on_stats"} <= kinds
    assert not list((run / "job_events").glob("*partial*"))
    env = json.loads((run / "command").read_text())["env"]
    assert env["ANSIBLE_CONFIG"].endswith("playbooks/ansible.cfg") and env["ANSIBLE_HOST_KEY_CHECKING"] == "True"
    assert all(k.startswith(("ANSIBLE_", "AWX_", "RUNNER_", "DCOPS_")) or k in ("PATH", "HOME", "USER") for k in env)
    for p in run.rglob("*"):  # the no_log task's secret is nowhere in the run's folder
        if p.is_file():
            assert SECRET not in p.read_text(errors="replace"), p
    assert f"run artifacts (events, status, summary.json): {run}" in out


def test_plain_progress_one_line_per_play_and_task_failures_at_once(scenario: tuple[ConvergeResult, str, Path]) -> None:
    _, out, _ = scenario
    lines = out.splitlines()
    assert any(re.fullmatch(r"\[\d:\d\d:\d\d\] PLAY Scenario", ln) for ln in lines), out
    for task in ("Say hello", "Change something", "Only on h1", "Secret step", "Break h3", "Last step"):
        assert len([ln for ln in lines if f"] task {task}: " in ln]) == 1, (task, out)
    assert any("] task Change something: ok 0, changed 3, failed 0, unreachable 1 (" in ln for ln in lines), out
    assert any("] task Secret step: ok 0, changed 0, failed 1, skipped 2 (" in ln for ln in lines), out
    assert any("] FAILED h3: Break h3: h3 is broken" in ln for ln in lines), out
    assert any("] UNREACHABLE h4: Change something: " in ln for ln in lines), out
    # a failure is printed when it happens, before the line of its task
    i_fail = next(i for i, ln in enumerate(lines) if "] FAILED h3:" in ln)
    i_task = next(i for i, ln in enumerate(lines) if "] task Break h3:" in ln)
    assert i_fail < i_task
    assert "\x1b[" not in out  # no live display escapes in a log


# ---------------------------------------------------------------------------- display modes


def test_terminal_gets_the_live_table_and_quiet_prints_nothing(site: Path) -> None:
    buf = io.StringIO()
    con = Console(file=buf, force_terminal=True, width=120)
    r = converge(site / "hosts.ini", site / "one.yml", console=con, runs_dir=site / "runs")
    assert r.ok and r.hosts == {"h1": HostSummary(ok=1)}
    out = buf.getvalue()
    assert "one.yml over hosts: ok in" in out and "\x1b[" in out and "] task Say hello" not in out

    quiet_con, quiet_buf = _plain_console()
    r = converge(site / "hosts.ini", site / "one.yml", console=quiet_con, quiet=True, runs_dir=site / "runs")
    assert r.ok and quiet_buf.getvalue() == ""
    assert r.log is not None and "PLAY RECAP" in r.log.read_text()


def test_log_path_gets_a_copy_of_the_output(site: Path) -> None:
    log = site / "copy.log"
    r = converge(site / "hosts.ini", site / "one.yml", quiet=True, runs_dir=site / "runs", log_path=log)
    assert r.log == log and "PLAY RECAP" in log.read_text() and "\r" not in log.read_text()


def test_a_playbook_error_shows_the_end_of_ansibles_output(site: Path) -> None:
    con, buf = _plain_console()
    r = converge(site / "hosts.ini", site / "broken.yml", console=con, runs_dir=site / "runs")
    assert not r.ok and r.status == "failed" and r.hosts == {}
    out = buf.getvalue()
    assert "ansible-playbook ended before its statistics; the end of its output:" in out
    assert "no.such.module" in out and f"ansible log: {r.log}" in out


# ---------------------------------------------------------------------------- processes


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _converge_process(site: Path, playbook: str, extra: str = "", **kw: object) -> subprocess.Popen[str]:
    """``converge()`` in a process of its own, its stderr (progress) a pipe."""
    args = ", ".join(f"{k}={v!r}" for k, v in kw.items())
    # Ctrl-C reaches it as at a terminal, even when the suite itself was started in the
    # background (a non-interactive shell's & leaves SIGINT ignored, and children inherit that).
    code = (
        "import signal\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "from pathlib import Path\nfrom dcops.converge import converge\n"
        f"converge({str(site / 'hosts.ini')!r}, {str(site / playbook)!r}, runs_dir=Path({str(site / 'runs')!r}), "
        f"progress_every=1, extra_args={extra.split()!r}, {args})\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(ppid, state, start time) from /proc."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    f = raw[raw.rindex(")") + 2 :].split()
    return int(f[1]), f[0], int(f[19])


def _descendants(root: int) -> dict[int, tuple[int, str]]:
    """Every process below ``root``: pid -> (start time, command line)."""
    table = {int(d): st for d in os.listdir("/proc") if d.isdigit() and (st := _stat(int(d)))}
    out: dict[int, tuple[int, str]] = {}
    todo = [p for p, st in table.items() if st[0] == root]
    while todo:
        pid = todo.pop()
        if pid not in out:
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            out[pid] = (table[pid][2], cmd)
            todo += [p for p, st in table.items() if st[0] == pid]
    return out


def _still_alive(seen: dict[int, tuple[int, str]]) -> list[str]:
    alive = []
    for pid, (start, cmd) in seen.items():
        st = _stat(pid)
        if st is not None and st[2] == start and st[1] != "Z":
            alive.append(f"{pid} {cmd}")
    return alive


def _wait_gone(seen: dict[int, tuple[int, str]], within: float = 10) -> list[str]:
    deadline = time.monotonic() + within
    while (left := _still_alive(seen)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@pytest.fixture
def watcher() -> Iterator[dict[int, tuple[int, str]]]:
    """Every process this test process starts below itself, sampled every 0.1 s."""
    seen: dict[int, tuple[int, str]] = {}
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.update(_descendants(os.getpid()))
            time.sleep(0.1)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    yield seen
    done.set()
    t.join()


def test_plain_progress_arrives_while_a_task_is_running(site: Path) -> None:
    done_dir = site / "done"
    done_dir.mkdir()
    p = _converge_process(site, "slow.yml", extra=f"-e nap=6 -e done_dir={done_dir}")
    assert p.stderr is not None
    before_end: list[str] = []  # lines read while the sleeping task had not finished anywhere
    after: list[str] = []
    for line in p.stderr:
        (after if any(done_dir.iterdir()) else before_end).append(line.rstrip("\n"))
    assert p.wait(timeout=120) == 0
    early = "\n".join(before_end)
    assert re.search(r"^\[\d:\d\d:\d\d\] PLAY Slow$", early, re.M), early
    assert "] task Quick: ok 3, changed 0, failed 0 (" in early, early
    assert "] FAILED h2: Fail h2: h2 fails early" in early, early
    assert re.search(r"\] still on Sleep: 0/2 hosts done", early), early
    assert "Slow" in early and sorted(x.name for x in done_dir.iterdir()) == ["h1.done", "h3.done"]
    assert any("] task Sleep: ok 0, changed 2, failed 0 (" in ln for ln in after), after


def test_timeout_stops_ansible_playbook_and_everything_it_started(site: Path, watcher: dict[int, tuple[int, str]]) -> None:
    t0 = time.monotonic()
    r = converge(site / "hosts.ini", site / "forever.yml", quiet=True, runs_dir=site / "runs", timeout=30)
    assert 30 <= time.monotonic() - t0 < 90  # stopped at the timeout (SIGTERM, then SIGKILL after 5 s)
    assert r.status == "timeout" and r.timed_out and r.returncode == -9 and not r.ok
    assert r.artifacts is not None and (r.artifacts / "status").read_text() == "timeout"
    seen = dict(watcher)
    assert any("ansible-playbook" in cmd for _, cmd in seen.values()), seen
    # the task had started (30 s: slow or busy machines)
    assert any(cmd.startswith("sleep 3600.5") for _, cmd in seen.values()), seen
    assert r.pid in seen
    assert _wait_gone(seen) == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stopping_dcops_stops_ansible_playbook(site: Path, signum: signal.Signals) -> None:
    p = _converge_process(site, "forever.yml")
    assert p.stderr is not None
    lines = []
    for line in p.stderr:  # until the sleeping task is reported running on both hosts
        lines.append(line)
        if "still on Sleep long: 0/2 hosts done" in line:
            break
    else:
        pytest.fail(f"no progress: {''.join(lines)}")
    deadline = time.monotonic() + 30
    tree = _descendants(p.pid)
    while not any(cmd.startswith("sleep 3600.5") for _, cmd in tree.values()):
        assert time.monotonic() < deadline, tree
        time.sleep(0.2)
        tree = _descendants(p.pid)
    assert any("ansible-playbook" in cmd for _, cmd in tree.values()), tree
    p.send_signal(signum)
    rest = p.stderr.read()
    assert p.wait(timeout=60) == -signum, rest
    assert "converge interrupted: ansible-playbook stopped" in rest, rest
    assert _wait_gone(tree) == []


# ---------------------------------------------------------------------------- folders and inventories


def test_rotation_keeps_the_newest_finished_runs(tmp_path: Path) -> None:
    names = [f"20260101-0000{i:02d}-site-abcde{i}" for i in range(6)]
    for n in names:
        (tmp_path / n).mkdir()
        (tmp_path / n / "status").write_text("successful")
    running = tmp_path / "20260101-000099-site-ffffff"  # no status yet: a run in progress
    running.mkdir()
    other = tmp_path / "notes"
    other.mkdir()
    gone = rotate_runs(tmp_path, 2)
    assert sorted(p.name for p in gone) == names[:4]
    assert sorted(p.name for p in tmp_path.iterdir()) == [*names[4:], running.name, "notes"]


def test_runs_never_go_inside_the_checkout(site: Path) -> None:
    with pytest.raises(ConvergeError, match="inside the dcops checkout"):
        converge(site / "hosts.ini", site / "one.yml", quiet=True, runs_dir=ROOT / "out" / "runs")
    assert not (ROOT / "out" / "runs").exists()


def test_missing_playbook_or_inventory_is_a_converge_error(site: Path) -> None:
    with pytest.raises(ConvergeError, match="no playbook"):
        converge(site / "hosts.ini", "no-such-playbook.yml", quiet=True, runs_dir=site / "runs")
    with pytest.raises(ConvergeError, match="no inventory"):
        converge(site / "nothing.ini", site / "one.yml", quiet=True, runs_dir=site / "runs")


def test_environment_of_a_lab_province_and_of_a_plain_inventory(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DCOPS_LAB_DIR", str(site / "labs"))
    monkeypatch.delenv("ANSIBLE_VAULT_PASSWORD_FILE", raising=False)
    env = ansible_env(LAB)
    vault = Path(env["ANSIBLE_VAULT_PASSWORD_FILE"])
    assert vault == site / "labs" / "lab" / "vault-password" and vault.stat().st_mode & 0o777 == 0o600
    assert env["ANSIBLE_CONFIG"].endswith("playbooks/ansible.cfg")
    plain = ansible_env(site / "hosts.ini")
    assert "ANSIBLE_VAULT_PASSWORD_FILE" not in plain and plain["ANSIBLE_CONFIG"] == env["ANSIBLE_CONFIG"]
