"""Validation problems: each names the file, the YAML path, the line where known, and the reason."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

#: A path into a YAML document: mapping keys and sequence indexes.
YPath = tuple[str | int, ...]


def format_path(path: YPath) -> str:
    """``("sites", 3, "hosts", 0, "address")`` -> ``sites[3].hosts[0].address``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
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


def sort_problems(problems: Iterable[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (str(p.file), p.line or 0, format_path(p.path), p.reason))
