"""Findings: every host × check evaluated on the collected facts, waivers and attestations
applied, scores per host, site and requirement group.

Status words: pass, fail, error, notapplicable, manual (not yet attested), waived. A waived
finding is listed with its waiver but left out of the score; an expired waiver counts as a
fail. A host whose facts could not be collected gets ``error`` for every check.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from dcops.audit.catalogue import Catalogue, Check
from dcops.audit.checks import Evidence, HostContext, Outcome, Status, _Missing, compare, lookup, run_type
from dcops.audit.waivers import Attestation, Placed, Waiver

#: The organisation-level "host" of management and attestation findings.
ORGANISATION = "(organisation)"


@dataclass
class Finding:
    host: str
    site: str
    check: str
    requirement: str
    group: str
    severity: str
    status: Status
    message: str
    evidence: list[Evidence] = field(default_factory=list)
    #: The result before a waiver turned it into ``waived`` (or the expired waiver into ``fail``).
    original: Status | None = None
    waiver: dict[str, Any] | None = None
    attestation: dict[str, Any] | None = None

    def key(self) -> str:
        return f"{self.host}|{self.check}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "site": self.site,
            "check": self.check,
            "requirement": self.requirement,
            "group": self.group,
            "severity": self.severity,
            "status": self.status,
            "message": self.message,
            "evidence": [e.as_dict() for e in self.evidence],
            "original": self.original,
            "waiver": self.waiver,
            "attestation": self.attestation,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Finding:
        return cls(
            host=d["host"],
            site=d["site"],
            check=d["check"],
            requirement=d["requirement"],
            group=d["group"],
            severity=d["severity"],
            status=d["status"],
            message=d["message"],
            evidence=[Evidence(e["source"], e["value"]) for e in d.get("evidence", [])],
            original=d.get("original"),
            waiver=d.get("waiver"),
            attestation=d.get("attestation"),
        )


def applies(check: Check, facts: dict[str, Any], ctx: HostContext, values: dict[str, Any]) -> bool:
    a = check.applies
    if a is None:
        return True
    if a.roles_any is not None and not set(a.roles_any) & set(ctx.roles):
        return False
    if a.not_router and ctx.router:
        return False
    if a.virt_not is not None and str(facts.get("virt")) in {str(v) for v in values[a.virt_not]}:
        return False
    for cond in a.facts:
        try:
            actual = lookup(facts, cond.path)
        except _Missing:
            return False
        if not compare(cond.op, actual, cond.value)[0]:
            return False
    return True


def _waiver_for(check: str, ctx: HostContext, waivers: list[tuple[Waiver, Placed]]) -> tuple[Waiver, Placed] | None:
    for w, where in waivers:
        if w.check == check and w.scope.matches(ctx):
            return w, where
    return None


def _waiver_dict(w: Waiver, where: Placed, expired: bool) -> dict[str, Any]:
    return {
        "id": w.id,
        "file": where.where(),
        "scope": w.scope.text(),
        "justification": w.justification.model_dump(),
        "compensating_control": w.compensating_control.model_dump() if w.compensating_control else None,
        "approver": w.approver,
        "expires": w.expires,
        "expired": expired,
    }


def evaluate_host(
    cat: Catalogue,
    values: dict[str, Any],
    ctx: HostContext,
    facts: dict[str, Any] | None,
    error: str | None,
    waivers: list[tuple[Waiver, Placed]],
    today: dt.date,
) -> list[Finding]:
    out = []
    for c in cat.checks:
        req = cat.requirement(c.requirement)
        if facts is None:
            o = Outcome("error", f"facts not collected: {error}")
        elif not applies(c, facts, ctx, values):
            reason = c.not_applicable
            o = Outcome("notapplicable", reason.en if reason else "does not apply to this host")
        else:
            o = run_type(c.type, cat.params[c.id], facts, ctx, values)
        f = Finding(ctx.name, ctx.site, c.id, c.requirement, req.group, c.severity, o.status, o.message, list(o.evidence))
        hit = _waiver_for(c.id, ctx, waivers)
        # a waiver covers a check that fails; an error (facts not collected) stays an error
        if hit is not None and f.status == "fail":
            w, where = hit
            expired = w.expiry < today
            f.waiver = _waiver_dict(w, where, expired)
            f.original = f.status
            if expired:
                f.status = "fail"
                f.message = f"waiver {w.id} expired on {w.expires} ({where.where()}): {f.message}"
            else:
                f.status = "waived"
        out.append(f)
    return out


def evaluate_requirements(cat: Catalogue, attestations: list[tuple[Attestation, Placed]], today: dt.date) -> list[Finding]:
    """One organisation-level finding per requirement assessed (wholly or partly) by attestation."""
    out = []
    for r in cat.requirements:
        if r.assessment == "automated":
            continue
        hits = [(a, p) for a, p in attestations if a.requirement == r.clause]
        f = Finding(
            ORGANISATION,
            ORGANISATION,
            f"req:{r.clause}",
            r.clause,
            r.group,
            "medium",
            "manual",
            "not yet attested" if not hits else "",
        )
        if hits:
            a, where = max(hits, key=lambda x: x[0].date)
            expired = a.expiry < today
            f.attestation = {
                "id": a.id,
                "file": where.where(),
                "by": a.by,
                "date": a.date,
                "evidence": a.evidence,
                "statement": a.statement.model_dump(),
                "expires": a.expires,
                "expired": expired,
            }
            f.evidence = [Evidence(f"attestation {a.id} ({where.where()})", f"{a.by}, {a.date}: {a.statement.en} [{a.evidence}]")]
            if expired:
                f.status, f.message = "fail", f"attestation {a.id} expired on {a.expires}"
            else:
                f.status, f.message = "pass", f"attested by {a.by} on {a.date} (valid until {a.expires})"
        out.append(f)
    return out


SCORED = ("pass", "fail", "error")


def tally(findings: list[Finding]) -> dict[str, Any]:
    counts = {s: 0 for s in ("pass", "fail", "error", "notapplicable", "manual", "waived")}
    for f in findings:
        counts[f.status] += 1
    scored = counts["pass"] + counts["fail"] + counts["error"]
    counts_any: dict[str, Any] = dict(counts)
    counts_any["score"] = round(counts["pass"] / scored, 4) if scored else None
    return counts_any


def scores(findings: list[Finding]) -> dict[str, dict[str, Any]]:
    """Scores (pass / (pass + fail + error)) overall and per host, site and requirement group."""
    by: dict[str, dict[str, list[Finding]]] = {"host": {}, "site": {}, "group": {}}
    for f in findings:
        by["host"].setdefault(f.host, []).append(f)
        by["site"].setdefault(f.site, []).append(f)
        by["group"].setdefault(f.group, []).append(f)
    out: dict[str, dict[str, Any]] = {"overall": {"all": tally(findings)}}
    for k, groups in by.items():
        out[k] = {name: tally(fs) for name, fs in sorted(groups.items())}
    return out
