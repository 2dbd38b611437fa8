"""The difference from the previous run: new failures first, then fixed, then unchanged failures."""

from __future__ import annotations

from typing import Any

from dcops.audit.evaluate import Finding

BAD = ("fail", "error")


def diff(previous: list[Finding] | None, current: list[Finding], previous_id: str | None = None) -> dict[str, Any] | None:
    if previous is None:
        return None
    before = {f.key(): f for f in previous}
    now = {f.key(): f for f in current}
    new, fixed, unchanged = [], [], []
    same_pass = 0

    def change(k: str) -> dict[str, Any]:
        host, check = k.split("|", 1)
        return {
            "host": host,
            "check": check,
            "before": before[k].status if k in before else None,
            "now": now[k].status if k in now else None,
        }

    for k in sorted(set(before) | set(now)):
        b = before[k].status if k in before else None
        n = now[k].status if k in now else None
        if n in BAD and b not in BAD:
            new.append(change(k))
        elif b in BAD and n not in BAD:
            fixed.append(change(k))
        elif b in BAD and n in BAD:
            unchanged.append(change(k))
        else:
            same_pass += 1
    return {
        "previous": previous_id or "",
        "new_failures": new,
        "fixed": fixed,
        "unchanged": unchanged,
        "unchanged_passing": same_pass,
    }
