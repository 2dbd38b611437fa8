"""Waivers (a check not met on purpose, with a justification and an expiry) and attestations
(a person's statement for a management or manual requirement), each a YAML file validated
like the inventory: an unknown check or requirement, a malformed date, duplicate ids, an
unknown key are refused with file, line and reason.

An expiry in the past is refused by ``dcops audit validate`` (``strict_expiry``); during a run
the waiver is kept and the finding it covered counts as a **fail** ("waiver W expired on D").
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from dcops.audit.catalogue import Catalogue, Strict, Text
from dcops.audit.checks import HostContext
from dcops.audit.errors import AuditInputError
from dcops.audit.yamlfile import read_yaml, validate
from dcops.inventory.errors import Problem, short
from dcops.inventory.origin import Origin

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_date(value: Any) -> dt.date:
    """``YYYY-MM-DD`` (text: the YAML 1.2 loader builds no dates) as a date; ValueError otherwise."""
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise ValueError(f"{short(value)} is not a date; write YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{short(value)} is not a calendar date") from None


class Scope(Strict):
    """Where a waiver applies: host, site and role name patterns (shell-style); all given must match."""

    hosts: list[str] = Field(default_factory=list)
    sites: list[str] = Field(default_factory=list)
    roles: list[str] = Field(default_factory=list)

    def matches(self, ctx: HostContext) -> bool:
        if self.hosts and not any(fnmatch.fnmatchcase(ctx.name, p) for p in self.hosts):
            return False
        if self.sites and not any(fnmatch.fnmatchcase(ctx.site, p) for p in self.sites):
            return False
        return not (self.roles and not any(fnmatch.fnmatchcase(r, p) for p in self.roles for r in ctx.roles))

    def text(self) -> str:
        parts = [f"{k}: {', '.join(v)}" for k, v in (("hosts", self.hosts), ("sites", self.sites), ("roles", self.roles)) if v]
        return "; ".join(parts) or "every host"


class _Expiring(Strict):
    """An entry with an ``expires`` date (checked by each subclass's date validator)."""

    expires: str

    @property
    def expiry(self) -> dt.date:
        return parse_date(self.expires)


class Waiver(_Expiring):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    check: str
    scope: Scope = Field(default_factory=Scope)
    justification: Text
    compensating_control: Text | None = None
    approver: str = Field(min_length=1)
    expires: str

    @field_validator("expires")
    @classmethod
    def _date(cls, v: str) -> str:
        parse_date(v)
        return v


class Attestation(_Expiring):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    #: A requirement clause (management items) or a check id (a manual confirmation).
    requirement: str
    by: str = Field(min_length=1)
    date: str
    evidence: str = Field(min_length=1)
    statement: Text
    expires: str

    @field_validator("date", "expires")
    @classmethod
    def _date(cls, v: str) -> str:
        parse_date(v)
        return v


class _WaiverFile(Strict):
    waivers: list[Waiver] = Field(default_factory=list)


class _AttestationFile(Strict):
    attestations: list[Attestation] = Field(default_factory=list)


@dataclass(frozen=True)
class Placed:
    """An item and where it was written (for messages and the report)."""

    file: Path
    line: int | None

    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else str(self.file)


def load_waivers(file: Path | None, cat: Catalogue, today: dt.date, strict_expiry: bool = False) -> list[tuple[Waiver, Placed]]:
    if file is None or not Path(file).exists():
        return []
    file = Path(file)
    data, origin, problems = read_yaml(file)
    out: list[tuple[Waiver, Placed]] = []
    parsed = validate(_WaiverFile, data if data is not None else {}, origin, problems) if not problems else None
    if parsed is not None:
        ids: dict[str, int] = {}
        known = cat.check_ids()
        for i, w in enumerate(parsed.waivers):
            at = origin.at("waivers", i)
            if w.id in ids:
                problems.append(at.problem(f"duplicate waiver id {short(w.id)} (also item {ids[w.id]})", "id"))
            ids.setdefault(w.id, i)
            if w.check not in known:
                problems.append(
                    at.problem(f"waiver for unknown check {short(w.check)} (not in catalogue {cat.head.id})", "check")
                )
            if strict_expiry and w.expiry < today:
                problems.append(
                    at.problem(f"expired on {w.expires} (today is {today}): renew it with a new approval or remove it", "expires")
                )
            out.append((w, Placed(file, at.line)))
    if problems:
        raise AuditInputError(file, problems)
    return out


def load_attestations(
    file: Path | None, cat: Catalogue, today: dt.date, strict_expiry: bool = False
) -> list[tuple[Attestation, Placed]]:
    if file is None or not Path(file).exists():
        return []
    file = Path(file)
    data, origin, problems = read_yaml(file)
    out: list[tuple[Attestation, Placed]] = []
    parsed = validate(_AttestationFile, data if data is not None else {}, origin, problems) if not problems else None
    if parsed is not None:
        ids: dict[str, int] = {}
        known = {r.clause for r in cat.requirements} | cat.check_ids()
        for i, a in enumerate(parsed.attestations):
            at: Origin = origin.at("attestations", i)
            if a.id in ids:
                problems.append(at.problem(f"duplicate attestation id {short(a.id)} (also item {ids[a.id]})", "id"))
            ids.setdefault(a.id, i)
            if a.requirement not in known:
                problems.append(at.problem(f"unknown requirement or check {short(a.requirement)}", "requirement"))
            if parse_date(a.date) > today:
                problems.append(at.problem(f"dated {a.date}, in the future", "date"))
            if a.expiry < parse_date(a.date):
                problems.append(at.problem(f"expires {a.expires} before its date {a.date}", "expires"))
            if strict_expiry and a.expiry < today:
                problems.append(at.problem(f"expired on {a.expires} (today is {today})", "expires"))
            out.append((a, Placed(file, at.line)))
    if problems:
        raise AuditInputError(file, problems)
    return out


def problems_of(e: AuditInputError) -> list[Problem]:
    return list(e.problems)
