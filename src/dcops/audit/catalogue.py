"""A requirement catalogue as data: ``catalogues/<id>/`` (catalogue.yml, requirements.yml, checks/*.yml).

Loaded with the inventory's hardened YAML reader; every problem (an unknown check type,
duplicate ids, an unknown requirement or threshold variable, a threshold of the wrong type,
parameters a type does not take) is reported with its file, line and reason, all at once.
The format is described in ``catalogues/README.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dcops import ROOT
from dcops.audit.checks import TYPES, Compare, Op, Params
from dcops.audit.errors import AuditInputError
from dcops.audit.yamlfile import read_yaml, validate
from dcops.inventory.errors import Problem, short
from dcops.inventory.loader import pydantic_problems
from dcops.inventory.origin import Origin

#: Where the catalogues live (one folder per version of a standard).
CATALOGUES = ROOT / "catalogues"
DEFAULT_CATALOGUE = CATALOGUES / "tcvn-11930-2017"

Severity = Literal["critical", "high", "medium", "low"]
Group = Literal["management", "network", "authentication", "access", "logging", "intrusion", "malware", "application", "data"]
VarType = Literal["int", "float", "str", "bool", "list"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(Strict):
    vi: str = Field(min_length=1)
    en: str = Field(min_length=1)

    def get(self, lang: str) -> str:
        return self.en if lang == "en" else self.vi


def type_ok(kind: str, value: Any) -> bool:
    """Whether ``value`` is of threshold type ``kind`` (a bool is not a number)."""
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    return isinstance(value, list) and all(isinstance(x, str | int) and not isinstance(x, bool) for x in value)


class Variable(Strict):
    type: VarType
    default: Any
    min: float | None = None
    #: Set by the standard itself (log retention ≥ 3 months): a province cannot lower it.
    fixed: bool = False
    title: Text

    @model_validator(mode="after")
    def _default_typed(self) -> Variable:
        if not type_ok(self.type, self.default):
            raise ValueError(f"default {short(self.default)} is not of type {self.type}")
        if self.min is not None:
            if self.type not in ("int", "float"):
                raise ValueError(f"min applies to numbers, not to type {self.type}")
            if self.default < self.min:
                raise ValueError(f"default {self.default} is below min {self.min:g}")
        return self


class Head(Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]*$")
    version: str
    title: Text
    level: int = Field(ge=1, le=5)
    basis: list[str] = Field(default_factory=list)
    variables: dict[str, Variable] = Field(default_factory=dict)


class Requirement(Strict):
    clause: str = Field(min_length=1)
    group: Group
    assessment: Literal["automated", "partial", "attestation"]
    title: Text
    text: Text


class Requirements(Strict):
    requirements: list[Requirement]


class Remediation(Strict):
    role: str
    variable: str
    vi: str | None = None
    en: str | None = None
    #: The role or variable does not exist in dcops yet (the report says so); a test holds every
    #: other remediation to a role and a variable that exist.
    planned: bool = False

    def text(self, lang: str) -> str:
        words = self.en if lang == "en" else self.vi
        todo = (" (chưa có trong dcops)" if lang != "en" else " (not in dcops yet)") if self.planned else ""
        return f"role {self.role}, {self.variable}{todo}" + (f": {words}" if words else "")


class FactCondition(Strict):
    path: str
    op: Op
    value: Any


class Applies(Strict):
    """When a check applies to a host; elsewhere its result is "not applicable" with its reason."""

    roles_any: list[str] | None = None
    not_router: bool = False
    #: A threshold variable (a list) of virtualisation kinds where the check does not apply.
    virt_not: str | None = None
    facts: list[FactCondition] = Field(default_factory=list)


RefKey = Literal["cis_debian", "devsec", "lynis", "nist_800_53", "iso27001"]


class Check(Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9]*(\.[a-z0-9][a-z0-9-]*)+$")
    requirement: str
    severity: Severity
    title: Text
    rationale: Text
    type: str
    params: dict[str, Any] = Field(default_factory=dict)
    references: dict[RefKey, list[str]] = Field(default_factory=dict)
    remediation: Remediation
    applies: Applies | None = None
    not_applicable: Text | None = None
    #: Why this check and its Lynis counterpart may disagree (the cross-check reads it).
    lynis_note: Text | None = None


class Checks(Strict):
    checks: list[Check]


@dataclass
class Catalogue:
    folder: Path
    head: Head
    requirements: list[Requirement]
    checks: list[Check]
    params: dict[str, Params] = field(default_factory=dict)
    origins: dict[str, Origin] = field(default_factory=dict)

    def requirement(self, clause: str) -> Requirement:
        return next(r for r in self.requirements if r.clause == clause)

    def check(self, check_id: str) -> Check:
        return next(c for c in self.checks if c.id == check_id)

    def check_ids(self) -> set[str]:
        return {c.id for c in self.checks}

    def defaults(self) -> dict[str, Any]:
        return {k: v.default for k, v in self.head.variables.items()}


def load_catalogue(folder: Path = DEFAULT_CATALOGUE) -> Catalogue:
    """Load and cross-check a catalogue folder; raise :class:`AuditInputError` with every problem."""
    folder = Path(folder)
    problems: list[Problem] = []
    head_file = folder / "catalogue.yml"
    if not head_file.is_file():
        raise AuditInputError(folder, [Problem(folder, (), "no catalogue.yml here: not a catalogue folder")])
    data, origin, probs = read_yaml(head_file)
    problems += probs
    head = validate(Head, data, origin, problems) if not probs else None
    data, rorigin, probs = read_yaml(folder / "requirements.yml")
    problems += probs
    reqs = validate(Requirements, data, rorigin, problems) if not probs else None
    checks: list[tuple[Check, Origin]] = []
    check_files = sorted((folder / "checks").glob("*.yml"))
    if not check_files:
        problems.append(Problem(folder / "checks", (), "no checks/*.yml files"))
    for f in check_files:
        data, corigin, probs = read_yaml(f)
        problems += probs
        if probs:
            continue
        if not isinstance(data, dict) or not isinstance(data.get("checks"), list):
            problems.append(corigin.problem("a checks file holds `checks:`, a list of checks"))
            continue
        for i, item in enumerate(data["checks"]):
            at = corigin.at("checks", i)
            c = validate(Check, item, at, problems)
            if c is not None:
                checks.append((c, at))
    if head is None or reqs is None:
        raise AuditInputError(folder, problems)
    cat = Catalogue(folder, head, list(reqs.requirements), [c for c, _ in checks])
    _cross_check(cat, checks, rorigin, problems)
    if problems:
        raise AuditInputError(folder, problems)
    return cat


def _cross_check(cat: Catalogue, checks: list[tuple[Check, Origin]], rorigin: Origin, problems: list[Problem]) -> None:
    seen_clause: dict[str, int] = {}
    for i, r in enumerate(cat.requirements):
        if r.clause in seen_clause:
            problems.append(
                rorigin.problem(
                    f"duplicate requirement {short(r.clause)} (also item {seen_clause[r.clause]})", "requirements", i, "clause"
                )
            )
        seen_clause.setdefault(r.clause, i)
    clauses = set(seen_clause)
    variables = cat.head.variables
    seen: dict[str, Origin] = {}
    for c, at in checks:
        if c.id in seen:
            first = seen[c.id]
            problems.append(
                at.problem(f"duplicate check id {short(c.id)} (first at {first.file}:{first.line_of((*first.path, 'id'))})", "id")
            )
            continue
        seen[c.id] = at
        cat.origins[c.id] = at
        if c.requirement not in clauses:
            problems.append(
                at.problem(
                    f"unknown requirement {short(c.requirement)}; requirements.yml has {', '.join(sorted(clauses))}",
                    "requirement",
                )
            )
        if c.type not in TYPES:
            problems.append(at.problem(f"unknown check type {short(c.type)}; dcops knows {', '.join(sorted(TYPES))}", "type"))
            continue
        model = TYPES[c.type][0]
        try:
            p = model.model_validate(c.params)
        except ValidationError as e:
            problems.extend(pydantic_problems(e, at.at("params")))
            continue
        cat.params[c.id] = p
        var = p.var_name()
        if var is not None:
            _check_var(var, p.var_kind(), variables, at.at("params", "var"), problems)
        if isinstance(p, Compare) and p.op in ("ge", "le", "ge_or_zero") and var is None and p.value is None:
            problems.append(at.problem("a numeric comparison needs value or var", "params"))
        if c.applies is not None:
            if c.not_applicable is None:
                problems.append(at.problem("a check with `applies` needs `not_applicable` (the reason, vi and en)", "applies"))
            if c.applies.virt_not is not None:
                _check_var(c.applies.virt_not, "list", variables, at.at("applies", "virt_not"), problems)


def _check_var(name: str, kind: str, variables: dict[str, Variable], at: Origin, problems: list[Problem]) -> None:
    v = variables.get(name)
    if v is None:
        problems.append(
            at.problem(f"unknown threshold variable {short(name)}; catalogue.yml defines {', '.join(sorted(variables))}")
        )
        return
    ok = {"number": v.type in ("int", "float"), "list": v.type == "list", "scalar": v.type != "list"}[kind]
    if not ok:
        problems.append(at.problem(f"threshold {name} is of type {v.type}; this check needs a {kind}"))


# --- the province's thresholds -----------------------------------------------------------------
def load_thresholds(cat: Catalogue, file: Path | None) -> dict[str, Any]:
    """The catalogue's defaults overridden by ``file`` (``thresholds: {name: value}``); problems refused."""
    values = cat.defaults()
    if file is None or not Path(file).exists():
        return values
    data, origin, problems = read_yaml(Path(file))
    if not problems:
        if (
            not isinstance(data, dict)
            or set(data) - {"thresholds", "catalogue"}
            or not isinstance(data.get("thresholds", {}), dict)
        ):
            problems.append(origin.problem("a thresholds file holds `thresholds:`, a mapping of variable names to values"))
        else:
            for name, value in (data.get("thresholds") or {}).items():
                var = cat.head.variables.get(name)
                if var is None:
                    problems.append(
                        origin.problem(
                            f"unknown threshold {short(name)}; the catalogue defines {', '.join(sorted(cat.head.variables))}",
                            "thresholds",
                            name,
                        )
                    )
                elif var.fixed:
                    problems.append(
                        origin.problem(
                            f"{name} is fixed by the standard ({var.default}) and cannot be overridden", "thresholds", name
                        )
                    )
                elif not type_ok(var.type, value):
                    problems.append(origin.problem(f"{name} must be of type {var.type}, got {short(value)}", "thresholds", name))
                elif var.min is not None and value < var.min:
                    problems.append(origin.problem(f"{name} = {value} is below its minimum {var.min:g}", "thresholds", name))
                else:
                    values[name] = value
    if problems:
        raise AuditInputError(Path(file), problems)
    return values
