"""Where loaded data came from: :class:`Origin` (file, YAML path, line map) and :class:`Loaded`.

Shared by the loader, which records an origin for every item, and the cross-checks, which
report problems at those origins; neither imports the other for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dcops.inventory.errors import Problem, YPath
from dcops.inventory.model import Inventory


@dataclass(frozen=True)
class Origin:
    """Where a piece of data came from: its file, its path inside that file and the file's line map."""

    file: Path
    path: YPath
    lines: dict[YPath, int] = field(repr=False, compare=False, hash=False)

    @property
    def line(self) -> int | None:
        return self.line_of(self.path)

    def line_of(self, path: YPath) -> int | None:
        """The line of ``path``, or of its nearest enclosing node that has one."""
        p = path
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return self.lines.get((), None)

    def at(self, *sub: str | int) -> Origin:
        return Origin(self.file, self.path + sub, self.lines)

    def problem(self, reason: str, *sub: str | int) -> Problem:
        path = self.path + sub
        return Problem(self.file, path, reason, self.line_of(path))


@dataclass
class Loaded:
    """An inventory and where each of its items came from, keyed by (section, index)."""

    inventory: Inventory
    origins: dict[tuple[str, int], Origin]
    files: list[Path]

    def origin(self, section: str, index: int) -> Origin:
        return self.origins[(section, index)]
