"""One audit run: scope -> facts (one SSH session per host) -> findings -> results, plan, diff.

A run's folder (``<results>/runs/<id>/``) holds ``results.json`` and each host's facts
(``facts/<host>.json``, the evidence behind every finding: no hash, no key). ``latest`` points
at the newest run; ``plan.yml`` (the remediation plan) sits beside the runs.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dcops.audit.catalogue import Catalogue
from dcops.audit.collect import Collected, Target
from dcops.audit.diff import diff
from dcops.audit.evaluate import Finding, evaluate_host, evaluate_requirements, scores
from dcops.audit.plan import load_plan, update_plan, write_plan
from dcops.audit.report_json import SCHEMA_ID, findings_of, load_results, write_results
from dcops.audit.waivers import Attestation, Placed, Waiver

RESULTS_BASE_DEFAULT = "/var/lib/dcops/audit"


def results_dir(code: str) -> Path:
    """Where a province's audit runs are kept (``$DCOPS_AUDIT_DIR/<code>``, default /var/lib/dcops/audit/<code>)."""
    return Path(os.environ.get("DCOPS_AUDIT_DIR") or RESULTS_BASE_DEFAULT) / code


def latest(base: Path) -> Path | None:
    link = base / "latest"
    if link.exists():
        return link.resolve()
    runs = sorted((base / "runs").glob("*/results.json")) if (base / "runs").exists() else []
    return runs[-1].parent if runs else None


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="seconds")


@dataclass
class RunInput:
    catalogue: Catalogue
    values: dict[str, Any]
    waivers: list[tuple[Waiver, Placed]]
    attestations: list[tuple[Attestation, Placed]]
    province: str
    limit: str | None = None
    waivers_file: str | None = None
    attestations_file: str | None = None


def evaluate_run(
    inp: RunInput, targets: list[Target], got: Collected, base: Path, started: float, now: float | None = None
) -> dict[str, Any]:
    """Findings of ``got`` (facts or errors per target) as a results document, with the diff from the last run."""
    now = time.time() if now is None else now
    today = dt.datetime.fromtimestamp(now, dt.UTC).date()
    prev_dir = latest(base)
    prev = load_results(prev_dir / "results.json") if prev_dir is not None and (prev_dir / "results.json").exists() else None
    first_seen: dict[str, float] = dict(prev.get("pending_first_seen", {})) if prev else {}
    findings: list[Finding] = []
    seen_now: dict[str, float] = {}
    hosts = []
    for t in targets:
        facts = got.facts.get(t.ctx.name)
        for u in (
            ((facts or {}).get("updates") or {}).get("pending", []) if isinstance((facts or {}).get("updates"), dict) else []
        ):
            key = f"{u['package']}={u['version']}"
            seen_now[key] = first_seen.get(key, now)
        ctx = replace(t.ctx, pending_first_seen={**first_seen, **seen_now}, now=now)
        findings += evaluate_host(inp.catalogue, inp.values, ctx, facts, got.errors.get(t.ctx.name), inp.waivers, today)
        hosts.append(
            {
                "name": t.ctx.name,
                "site": t.ctx.site,
                "tier": t.ctx.tier,
                "roles": list(t.ctx.roles),
                "address": t.address,
                "collected": facts is not None,
                "error": got.errors.get(t.ctx.name),
                "seconds": got.seconds.get(t.ctx.name, 0.0),
            }
        )
    findings += evaluate_requirements(inp.catalogue, inp.attestations, today)
    findings.sort(key=lambda f: (f.host, f.check))
    if not seen_now and prev is not None:
        seen_now = {}  # nothing pending any more: forget
    run_id = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}"
    cat = inp.catalogue
    return {
        "schema": SCHEMA_ID,
        "run": {
            "id": run_id,
            "started": _iso(started),
            "finished": _iso(now),
            "province": inp.province,
            "limit": inp.limit,
            "seconds": round(now - started, 3),
            "waivers": inp.waivers_file,
            "attestations": inp.attestations_file,
            "previous": prev["run"]["id"] if prev else None,
        },
        "catalogue": {"id": cat.head.id, "version": cat.head.version, "level": cat.head.level, "checks": len(cat.checks)},
        "thresholds": inp.values,
        "hosts": hosts,
        "findings": [f.as_dict() for f in findings],
        "scores": scores(findings),
        "pending_first_seen": seen_now,
        "diff": diff(findings_of(prev) if prev else None, findings, prev["run"]["id"] if prev else None),
    }


def save_run(doc: dict[str, Any], got: Collected, base: Path, inp: RunInput) -> Path:
    """Write the run's folder, point ``latest`` at it and update the remediation plan."""
    run_dir = base / "runs" / doc["run"]["id"]
    (run_dir / "facts").mkdir(parents=True, exist_ok=True)
    for host, facts in got.facts.items():
        (run_dir / "facts" / f"{host}.json").write_text(json.dumps(facts, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    write_results(doc, run_dir / "results.json")
    link = base / "latest"
    tmp = base / "latest.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(Path("runs") / doc["run"]["id"])
    tmp.replace(link)
    today = dt.date.fromisoformat(doc["run"]["finished"][:10])
    plan = update_plan(load_plan(base / "plan.yml"), findings_of(doc), inp.catalogue, today)
    write_plan(plan, base / "plan.yml")
    return Path(run_dir)
