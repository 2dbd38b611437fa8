"""Callback plugin: one JSON line per play, task and host result, for dcops.converge.

Enabled only by dcops.converge (``ANSIBLE_CALLBACKS_ENABLED=dcops_events``), which reads
the lines from the file named by ``DCOPS_EVENTS_FILE`` to draw its progress display. It
writes names, hosts and states only: never a result's data (no_log or not).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: dcops_events
    type: aggregate
    short_description: JSON lines of plays, tasks and host results for dcops.converge
    description:
      - Writes one JSON object per line to the file named by DCOPS_EVENTS_FILE.
    requirements:
      - enable in configuration
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "dcops_events"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        path = os.environ.get("DCOPS_EVENTS_FILE")
        self._out = open(path, "a", buffering=1, encoding="utf-8") if path else None  # noqa: SIM115

    def _emit(self, event: str, **data: Any) -> None:
        if self._out is not None:
            self._out.write(json.dumps({"event": event, "time": time.time(), **data}) + "\n")

    def v2_playbook_on_play_start(self, play: Any) -> None:
        self._emit("play", name=play.get_name(), hosts=list(play.hosts) if isinstance(play.hosts, list) else [])

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        self._emit("task", name=task.get_name())

    def v2_playbook_on_handler_task_start(self, task: Any) -> None:
        self._emit("task", name=task.get_name(), handler=True)

    def _result(self, state: str, result: Any) -> None:
        msg = ""
        if state in ("failed", "unreachable"):
            res = result._result
            msg = "" if res.get("_ansible_no_log") else str(res.get("msg") or res.get("stderr") or "")[:500]
        self._emit(
            "result",
            host=result._host.get_name(),
            task=result._task.get_name(),
            state=state,
            changed=bool(result._result.get("changed")),
            msg=msg,
        )

    def v2_runner_on_ok(self, result: Any) -> None:
        self._result("ok", result)

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._result("ignored" if ignore_errors else "failed", result)

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._result("skipped", result)

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._result("unreachable", result)

    def v2_playbook_on_stats(self, stats: Any) -> None:
        hosts = {}
        for h in sorted(stats.processed):
            s = stats.summarize(h)
            hosts[h] = {k: s.get(k, 0) for k in ("ok", "changed", "failures", "unreachable", "skipped", "rescued", "ignored")}
        self._emit("stats", hosts=hosts)
        if self._out is not None:
            self._out.close()
            self._out = None
