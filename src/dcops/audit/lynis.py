"""Cross-check with Lynis (an independent scanner, Debian's lynis 3.0.8): its report file
(``lynis audit system --report-file F``) against dcops' findings on the same host.

A check's ``references.lynis`` names Lynis test ids, optionally with the detail field Lynis
reports for one setting (``SSH-7408:PermitRootLogin``, ``KRNL-6000:net.ipv4.tcp_syncookies``):
Lynis reports all sshd options under SSH-7408 and all sysctls under KRNL-6000, so a bare id
would compare one dcops check with a verdict on twenty settings. Verdicts agree when dcops
passes and Lynis flags nothing for the reference, or dcops fails and Lynis flags it; a
reference whose test Lynis did not run is not compared. A disagreement is either explained
(the check's ``lynis_note``) or reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dcops.audit.catalogue import Catalogue


@dataclass
class LynisReport:
    executed: set[str] = field(default_factory=set)
    #: Test ids with a warning or a suggestion.
    flagged: set[str] = field(default_factory=set)
    #: (test id, detail field lowercased) that Lynis found off its profile.
    fields: set[tuple[str, str]] = field(default_factory=set)
    messages: dict[str, list[str]] = field(default_factory=dict)


def parse_report(text: str) -> LynisReport:
    r = LynisReport()
    for ln in text.splitlines():
        key, _, value = ln.partition("=")
        if key == "tests_executed":
            r.executed |= {x for x in value.split("|") if x}
        elif key in ("warning[]", "suggestion[]"):
            parts = value.split("|")
            r.flagged.add(parts[0])
            r.messages.setdefault(parts[0], []).append(" ".join(p for p in parts[1:3] if p and p != "-"))
        elif key == "details[]":
            parts = value.split("|")
            for kv in (parts[2] if len(parts) > 2 else "").split(";"):
                k, _, v = kv.partition(":")
                if k == "field" and v:
                    r.fields.add((parts[0], v.lower()))
    return r


@dataclass
class Comparison:
    check: str
    dcops: str
    lynis: str  # "flags" or "silent"
    references: list[str]
    agree: bool
    explained: str | None = None
    messages: list[str] = field(default_factory=list)


def cross_check(cat: Catalogue, findings: list[dict[str, Any]], report: LynisReport) -> list[Comparison]:
    """One comparison per check with a Lynis counterpart that both decided (pass or fail) on the host."""
    status = {f["check"]: f["status"] for f in findings}
    out = []
    for c in cat.checks:
        refs = c.references.get("lynis", [])
        st = status.get(c.id)
        if not refs or st not in ("pass", "fail"):
            continue
        ran = [r for r in refs if r.split(":", 1)[0] in report.executed]
        if not ran:
            continue
        flags = []
        for r in ran:
            tid, _, fld = r.partition(":")
            if (fld and (tid, fld.lower()) in report.fields) or (not fld and tid in report.flagged):
                flags.append(r)
        agree = (st == "fail") == bool(flags)
        msgs = [m for r in flags for m in report.messages.get(r.split(":", 1)[0], [])][:5]
        out.append(
            Comparison(
                c.id,
                st,
                "flags" if flags else "silent",
                ran,
                agree,
                c.lynis_note.en if (c.lynis_note and not agree) else None,
                msgs,
            )
        )
    return out
