"""The remediation plan (fields as in OSCAL POA&M: owner, deadline, status), kept across runs.

``plan.yml`` beside the runs: people edit ``owner``, ``deadline``, ``status`` and ``note``;
each run adds the new open findings (deadline from the severity), updates ``last_seen``, and
marks items whose finding now passes as ``fixed`` (with the date), never deleting a line.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field

from dcops.audit.catalogue import Catalogue, Strict
from dcops.audit.errors import AuditInputError
from dcops.audit.evaluate import Finding
from dcops.audit.waivers import parse_date
from dcops.audit.yamlfile import read_yaml, validate

#: Days to fix an open finding, by severity (the default deadline of a new plan item).
DEADLINE_DAYS = {"critical": 7, "high": 30, "medium": 60, "low": 90}
PlanStatus = Literal["open", "in-progress", "fixed", "risk-accepted"]


class PlanItem(Strict):
    host: str
    check: str
    severity: str
    title: str
    first_seen: str
    last_seen: str
    owner: str = "unassigned"
    deadline: str
    status: PlanStatus = "open"
    fixed_on: str | None = None
    note: str = ""


class Plan(Strict):
    items: list[PlanItem] = Field(default_factory=list)


HEADER = (
    "# dcops audit remediation plan: one item per open finding (host x check).\n"
    "# Edit owner, deadline (YYYY-MM-DD), status (open, in-progress, fixed, risk-accepted) and note;\n"
    "# `dcops audit run` adds new findings and marks fixed ones, keeping what people wrote.\n"
)


def load_plan(path: Path) -> Plan:
    if not path.exists():
        return Plan()
    data, origin, problems = read_yaml(path)
    plan = validate(Plan, data if data is not None else {}, origin, problems) if not problems else None
    if plan is not None:
        for i, it in enumerate(plan.items):
            for key in ("first_seen", "last_seen", "deadline"):
                try:
                    parse_date(getattr(it, key))
                except ValueError as e:
                    problems.append(origin.problem(str(e), "items", i, key))
    if problems or plan is None:
        raise AuditInputError(path, problems)
    return plan


def update_plan(plan: Plan, findings: list[Finding], cat: Catalogue, today: dt.date, lang: str = "vi") -> Plan:
    items = {f"{it.host}|{it.check}": it for it in plan.items}
    now = {f.key(): f for f in findings}
    out: dict[str, PlanItem] = {}
    for k, it in items.items():
        f = now.get(k)
        if f is not None and f.status in ("fail", "error"):
            status = "open" if it.status == "fixed" else it.status
            out[k] = it.model_copy(update={"last_seen": today.isoformat(), "status": status, "fixed_on": None})
        elif f is not None and it.status != "fixed" and f.status in ("pass", "notapplicable"):
            out[k] = it.model_copy(update={"status": "fixed", "fixed_on": today.isoformat()})
        else:
            out[k] = it
    for k, f in now.items():
        if k in out or f.status not in ("fail", "error"):
            continue
        title = (
            cat.check(f.check).title.get(lang)
            if not f.check.startswith("req:")
            else cat.requirement(f.requirement).title.get(lang)
        )
        out[k] = PlanItem(
            host=f.host,
            check=f.check,
            severity=f.severity,
            title=title,
            first_seen=today.isoformat(),
            last_seen=today.isoformat(),
            deadline=(today + dt.timedelta(days=DEADLINE_DAYS.get(f.severity, 60))).isoformat(),
        )
    return Plan(items=sorted(out.values(), key=lambda i: (i.status == "fixed", i.host, i.check)))


def write_plan(plan: Plan, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = yaml.safe_dump({"items": [i.model_dump() for i in plan.items]}, allow_unicode=True, sort_keys=False, width=120)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(HEADER + body, encoding="utf-8")
    tmp.replace(path)
