"""The lab's progress: plain lines when stderr is not a terminal, rich on one; the boot wait (no root)."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import pytest
from rich.console import Console

import dcops.lab.boot as boot
from dcops.lab.errors import LabError
from dcops.lab.progress import Reporter
from dcops.lab.state import HostState, State

STAMP = re.compile(r"^\[ +\d+ s\] ")


def plain(heartbeat: float = 0.05) -> tuple[Reporter, io.StringIO]:
    out = io.StringIO()
    return Reporter(Console(file=out, width=40), heartbeat=heartbeat), out


def test_a_long_step_off_a_terminal_says_it_started_is_running_and_is_done() -> None:
    rep, out = plain()
    assert not rep.live
    with rep.step("image: apt-get install 42 role packages"):
        time.sleep(0.2)
    lines = out.getvalue().splitlines()
    assert all(STAMP.match(line) for line in lines), lines
    assert lines[0].endswith("] image: apt-get install 42 role packages")  # no wrapping at 40 columns
    assert any("still running after" in line for line in lines[1:-1])
    assert "done in" in lines[-1]
    assert "\x1b" not in out.getvalue()


def test_a_failed_step_stops_its_heartbeat_and_says_no_done() -> None:
    rep, out = plain()
    with pytest.raises(LabError), rep.step("image: apt-get update"):
        raise LabError("boom")
    time.sleep(0.15)
    assert "done" not in out.getvalue() and "still running" not in out.getvalue()


def test_the_host_board_off_a_terminal_prints_each_change_once_and_who_is_still_waiting() -> None:
    rep, out = plain()
    with rep.hosts(["a", "b"], 3) as board:
        board.update("a", 1, "started")
        board.update("b", 1, "started")
        board.update("a", 1, "started")
        board.update("a", 3, "ready")
        time.sleep(0.06)
        board.tick()
    lines = [STAMP.sub("", line) for line in out.getvalue().splitlines()]
    assert lines == ["host a: started", "host b: started", "host a: ready", "waiting for 1 of 2 host(s): b (started)"]


def test_on_a_terminal_progress_is_rich_not_lines() -> None:
    out = io.StringIO()
    rep = Reporter(Console(file=out, force_terminal=True, width=100))
    assert rep.live
    with rep.step("image: apt-get update"):
        pass
    with rep.hosts(["a"], 3) as board:
        board.update("a", 3, "ready")
    text = out.getvalue()
    assert "image: apt-get update" in text and "ready" in text and "\x1b" in text
    assert not any(STAMP.match(line) for line in text.splitlines())


class FakeHosts:
    """Host ``a`` boots at once; ``b`` is ready on its third look; ``c`` never gets past systemd."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.looks = {"a": 0, "b": 0, "c": 0}
        monkeypatch.setattr(boot.hosts, "alive", lambda pid: pid is not None)
        monkeypatch.setattr(boot.hosts, "leader", lambda pid: pid + 1000)
        monkeypatch.setattr(boot.hosts, "system_state", self.system_state)
        monkeypatch.setattr(boot.hosts, "journal_tail", lambda labdir, name, leader: f"journal of {name}")
        monkeypatch.setattr(boot.ssh, "answers", lambda labdir, name: name != "c")
        monkeypatch.setattr(boot.state, "save", lambda st: None)
        monkeypatch.setattr(boot.time, "sleep", lambda s: None)

    def system_state(self, leader: int) -> str:
        name = "abc"[leader - 1001]
        self.looks[name] += 1
        return "running" if name == "a" or (name == "b" and self.looks[name] >= 3) else "starting"


def lab(*names: str) -> State:
    st = State(code="t", inventory="inv", mode="full")
    for i, n in enumerate(names, 1):
        st.hosts[n] = HostState(netns=f"dcl-t-{n}", machine=f"dcl-t-{n}", management=f"10.0.0.{i}", pid=i)
    return st


def test_wait_ready_reports_each_host_until_all_are_ready(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    FakeHosts(monkeypatch)
    rep, out = plain()
    st = lab("a", "b")
    boot.wait_ready(st, ["a", "b"], tmp_path, rep, timeout=5)
    lines = [STAMP.sub("", line) for line in out.getvalue().splitlines()]
    assert lines[:2] == ["host a: started", "host b: started"]
    assert "host a: ready (systemd running, ssh)" in lines and "host b: systemd starting" in lines
    assert lines[-1] == "host b: ready (systemd running, ssh)"
    assert (st.hosts["a"].leader, st.hosts["b"].leader) == (1001, 1002)


def test_wait_ready_names_the_late_host_with_its_journal(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    FakeHosts(monkeypatch)
    rep, _ = plain()
    with pytest.raises(LabError, match=r"(?s)host\(s\) c not ready after 0 s.*DCOPS_LAB_BOOT_TIMEOUT.*journal of c"):
        boot.wait_ready(lab("a", "b", "c"), ["a", "c"], tmp_path, rep, timeout=0.05)


def test_wait_ready_stops_at_a_host_that_died(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    FakeHosts(monkeypatch)
    st = lab("a")
    st.hosts["a"].pid = None
    with pytest.raises(LabError, match=r"host a stopped while booting"):
        boot.wait_ready(st, ["a"], tmp_path, plain()[0], timeout=5)
