"""The lab: boot an inventory as real Debian hosts (or, in light mode, namespaces) on one machine.

Entry points: :func:`up`, :func:`down`, :func:`status` and :func:`main_job`; the command
line is ``dcops lab`` (:mod:`dcops.cli.lab`).

This namespace is the top of the lab: it imports lifecycle, and no lab module imports it (they
import each other by full path, ``import dcops.lab.state as state``), so the graph is a DAG.
From the bottom: errors, cgroups, progress, plan; system, state, light; ssh, net; hosts;
image, boot; lifecycle, drills; this package; then :mod:`dcops.cli.lab`. :mod:`dcops.lab.responder`
is light mode's listener process and imports no lab module.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from dcops.inventory.model import Inventory
from dcops.lab.errors import LabError
from dcops.lab.lifecycle import UpResult, down, status, up
from dcops.paths import lab_dir

__all__ = ["LabError", "UpResult", "down", "main_job", "reach_table", "status", "up"]


def reach_table(code: str) -> Table:
    st = status(code)
    full = st["mode"] == "full"
    t = Table(title=f"lab {code} ({st['mode']}): how to reach each {'host' if full else 'site'}")
    for col in ("host" if full else "site", "state", "management", "other addresses", *(["ssh"] if full else [])):
        t.add_column(col)
    for h in st["hosts"]:
        others = [a for a in h["addresses"] if not a.startswith(h["management"] + "/")]
        t.add_row(h["name"], h["state"], h["management"], " ".join(others), *([f"dcops lab ssh {h['name']}"] if full else []))
    if full:
        t.caption = f"or: ssh -F {lab_dir(code) / 'ssh_config'} HOST (also for ansible and testinfra)"
    return t


def main_job(inventory: Inventory, console: Console | None = None, progress: Console | None = None) -> UpResult:
    """Bring up the lab of ``inventory`` and print how to reach each host on ``console`` (stdout
    by default). The boot's progress goes to ``progress`` (stderr by default): rich on a
    terminal, plain lines otherwise (a log, a pipe), so a long image build is never silent."""
    con = console or Console()
    res = up(inventory, console=progress or Console(stderr=True, emoji=False))
    con.print(reach_table(res.code))
    con.print("also: dcops lab ssh HOST | dcops lab exec HOST -- CMD | dcops lab status | dcops lab down")
    return res
