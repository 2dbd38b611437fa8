"""Bad audit input (catalogue, waivers, attestations, thresholds): every problem with file, line, reason."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dcops.inventory.errors import Problem, sort_problems


@dataclass
class AuditInputError(Exception):
    """A catalogue, waivers, attestations or thresholds file that does not load; carries every problem."""

    source: Path
    problems: list[Problem] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.problems = sort_problems(self.problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        n = len(self.problems)
        head = f"{self.source}: {n} problem{'s' if n != 1 else ''}"
        return "\n".join([head, *(f"  {p}" for p in self.problems)])


class CollectError(Exception):
    """A host whose facts could not be collected (unreachable, refused, bad output)."""
