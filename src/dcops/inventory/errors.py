"""Validation problems: each names the file, the YAML path, the line where known, and the reason."""

from __future__ import annotations

import reprlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dcops.inventory.limits import MAX_PROBLEMS, REPR_CHARS

#: A path into a YAML document: mapping keys and sequence indexes.
YPath = tuple[str | int, ...]

_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = REPR_CHARS
_repr.maxlong = 40
_repr.maxlist = _repr.maxtuple = _repr.maxset = _repr.maxfrozenset = _repr.maxdict = 3
_repr.maxlevel = 2


def short(value: Any) -> str:
    """``repr(value)`` for a message, at most about :data:`REPR_CHARS` characters whatever the value.

    Built piece by piece (:mod:`reprlib`), so a value of millions of items or a huge string costs
    no more than a short one."""
    text = _repr.repr(value)
    return text if len(text) <= 2 * REPR_CHARS else text[: 2 * REPR_CHARS - 3] + "..."


def _key(part: str | int) -> str:
    text = str(part)
    return text if len(text) <= REPR_CHARS else text[: REPR_CHARS - 3] + "..."


def format_path(path: YPath) -> str:
    """``("sites", 3, "hosts", 0, "address")`` -> ``sites[3].hosts[0].address`` (long keys shortened)."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + _key(part)
    return out or "(top level)"


@dataclass(frozen=True)
class Problem:
    file: Path
    path: YPath
    reason: str
    line: int | None = None

    def where(self) -> str:
        loc = str(self.file)
        if self.line is not None:
            loc += f":{self.line}"
        return f"{loc}: {format_path(self.path)}"

    def __str__(self) -> str:
        return f"{self.where()}: {self.reason}"

    def as_dict(self) -> dict[str, object]:
        return {
            "file": str(self.file),
            "line": self.line,
            "path": format_path(self.path),
            "reason": self.reason,
        }


@dataclass
class InventoryError(Exception):
    """Raised when an inventory does not load or validate; carries every problem found."""

    source: Path
    problems: list[Problem] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        n = len(self.problems)
        head = f"inventory {self.source}: {n} problem{'s' if n != 1 else ''}"
        return "\n".join([head, *(f"  {p}" for p in self.problems)])


def sort_problems(problems: Iterable[Problem], limit: int = MAX_PROBLEMS) -> list[Problem]:
    """Problems by file, line, path and reason; past ``limit``, one more line counts the rest."""
    out = sorted(problems, key=lambda p: (str(p.file), p.line or 0, format_path(p.path), p.reason))
    if len(out) <= limit:
        return out
    rest = out[limit:]
    files = {p.file for p in rest}
    where = f"in {len(files)} files" if len(files) > 1 else "in this file"
    more = Problem(
        rest[0].file,
        (),
        f"and {len(rest):,} more problems {where}, not listed (only the first {limit:,} are): fix these first",
        rest[0].line,
    )
    return [*out[:limit], more]
