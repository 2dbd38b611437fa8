"""``dcops converge``: run a playbook over a province with progress and a per-host summary."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dcops import DEFAULT_INVENTORY
from dcops.cli.common import InventoryOpt, JsonOpt, emit_json, fail, load_or_exit


def converge_cmd(
    inventory: InventoryOpt = None,  # type: ignore[assignment]
    playbook: Annotated[str, typer.Option("--playbook", "-p", help="Playbook under playbooks/.")] = "site.yml",
    check: Annotated[bool, typer.Option("--check", help="Ansible check mode: report, change nothing.")] = False,
    diff: Annotated[bool, typer.Option("--diff", help="Show the differences of changed files.")] = False,
    limit: Annotated[str | None, typer.Option("--limit", "-l", help="Ansible host pattern.")] = None,
    extra_vars: Annotated[
        list[str] | None, typer.Option("--extra-vars", "-e", help="KEY=VALUE for the playbook (repeatable).")
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds before ansible-playbook (and all it started) is stopped.")
    ] = 3600,
    as_json: JsonOpt = False,
) -> None:
    """Converge a province (default: the lab) with playbooks/<playbook>; exit 1 if any host failed.

    On a terminal a live table per host; elsewhere (a log, CI) a line per play and task, failures
    at once, and a line every 12 s while a task runs. Each run's Ansible output and ansible-runner
    events are kept in ~/.cache/dcops/converge/<province>/ (newest 10; $DCOPS_CONVERGE_DIR).
    """
    from dcops.converge import ConvergeError, converge

    inv_dir = inventory or DEFAULT_INVENTORY
    load_or_exit(inv_dir, as_json)  # validate first: a bad inventory is reported, not half-applied
    try:
        extra = [a for v in extra_vars or [] for a in ("-e", v)]
        res = converge(
            Path(inv_dir), playbook, check=check, diff=diff, limit=limit, extra_args=extra, quiet=as_json, timeout=timeout
        )
    except ConvergeError as e:
        fail(str(e))
    if as_json:
        emit_json(res.to_json())
    if not res.ok:
        raise typer.Exit(1)
