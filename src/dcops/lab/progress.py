"""Progress of the lab's long steps (image build, host boot, waiting for hosts).

On a terminal: rich progress (a spinner with the time elapsed per step, a row per booting host).
Anywhere else (a log file, a pipe, CI, ``dcops main`` under a scheduler): plain lines, each
stamped with the seconds since the command started, when a step starts, when a host's state
changes, and every :data:`HEARTBEAT` seconds while a step or a wait goes on, so a long build
or boot is never silent. rich draws nothing but the final frame when it cannot redraw.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

#: Seconds between "still running" lines when stderr is not a terminal.
HEARTBEAT = 15.0


class Reporter:
    """Where the lab says what it is doing: ``console`` (stderr by default), rich or plain."""

    def __init__(self, console: Console | None = None, heartbeat: float = HEARTBEAT) -> None:
        self.console = console or Console(stderr=True, emoji=False)
        self.live = self.console.is_terminal and not self.console.is_dumb_terminal
        self.heartbeat = heartbeat
        self.t0 = time.monotonic()

    def say(self, message: str) -> None:
        """One line as it is (no markup, no wrapping), in both modes."""
        self.console.print(message, markup=False, highlight=False, emoji=False, soft_wrap=True)

    def note(self, message: str) -> None:
        """A progress line: stamped with the seconds since the start when not on a terminal."""
        self.say(message if self.live else f"[{time.monotonic() - self.t0:4.0f} s] {message}")

    @contextmanager
    def step(self, what: str) -> Iterator[None]:
        """A long step that reports nothing itself (a debootstrap, an apt-get install)."""
        started = time.monotonic()
        if self.live:
            with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=self.console) as p:
                task = p.add_task(what, total=1)
                yield
                p.update(task, completed=1)
            return
        self.note(what)
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.heartbeat):
                self.note(f"{what}: still running after {time.monotonic() - started:.0f} s")

        ticker = threading.Thread(target=beat, name="dcops-lab-heartbeat", daemon=True)
        ticker.start()
        try:
            yield
        finally:
            stop.set()
            ticker.join()
        self.note(f"{what}: done in {time.monotonic() - started:.0f} s")

    @contextmanager
    def hosts(self, names: list[str], stages: int) -> Iterator[HostBoard]:
        """A board of hosts moving through ``stages`` stages (see :class:`HostBoard`)."""
        board = HostBoard(self, names, stages)
        if board.progress is None:
            yield board
            return
        with board.progress:
            yield board


class HostBoard:
    """Each host's stage and state: rich rows on a terminal, else a line per change and a
    summary of the hosts still waiting every heartbeat."""

    def __init__(self, reporter: Reporter, names: list[str], stages: int) -> None:
        self.reporter = reporter
        self.stages = stages
        self.state: dict[str, tuple[int, str]] = {}
        self.last_summary = time.monotonic()
        self.progress: Progress | None = None
        self.tasks: dict[str, TaskID] = {}
        if reporter.live:
            self.progress = Progress(
                TextColumn("{task.fields[host]:<12}"),
                BarColumn(bar_width=20),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=reporter.console,
            )
            self.tasks = {n: self.progress.add_task("waiting", total=stages, host=n, start=False) for n in names}

    def update(self, name: str, stage: int, description: str) -> None:
        """Host ``name`` is at ``stage`` (``stages`` = ready), described as ``description``."""
        if self.state.get(name) == (stage, description):
            return
        self.state[name] = (stage, description)
        if self.progress is not None:
            self.progress.start_task(self.tasks[name])
            self.progress.update(self.tasks[name], completed=stage, description=description)
        else:
            self.reporter.note(f"host {name}: {description}")

    def tick(self) -> None:
        """Called while waiting: in plain mode, every heartbeat, which hosts are not ready yet."""
        now = time.monotonic()
        if self.progress is not None or now - self.last_summary < self.reporter.heartbeat:
            return
        self.last_summary = now
        waiting = [f"{n} ({d})" for n, (s, d) in sorted(self.state.items()) if s < self.stages]
        if waiting:
            self.reporter.note(f"waiting for {len(waiting)} of {len(self.state)} host(s): {', '.join(waiting)}")
