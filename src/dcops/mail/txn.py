"""All-or-nothing writes of several files (inventory and vault data together).

Every new content is first written to a temporary file beside its target (same file system,
synced); only when all are written are they renamed over their targets, each rename atomic.
The old files are kept as hard links until the end: if a rename fails half-way, the files
already replaced are put back, so a reader sees either every old file or every new one
(a crash between two renames leaves the backups, named ``.<name>.dcops-old``, to restore).
A lock on the inventory folder serialises concurrent ``dcops mail`` commands on one inventory.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Change:
    """The new content of one file (None: delete it) and its mode."""

    content: bytes | None
    mode: int = 0o644


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit(changes: Mapping[Path, Change]) -> None:
    """Apply every change or none (see the module's docstring)."""
    staged: list[tuple[Path, Path | None]] = []  # (target, temp file or None for a delete)
    try:
        for target, ch in sorted(changes.items()):
            if ch.content is None:
                staged.append((target, None))
                continue
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700 if ch.mode & 0o077 == 0 else 0o755)
            fd, tmpname = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), ch.mode)
                f.write(ch.content)
                f.flush()
                os.fsync(f.fileno())
            staged.append((target, Path(tmpname)))
    except BaseException:
        for _, left in staged:
            if left is not None:
                left.unlink(missing_ok=True)
        raise

    backups: dict[Path, Path | None] = {}
    try:
        for target, tmp in staged:
            bak = target.with_name(f".{target.name}.dcops-old")
            if target.exists():
                bak.unlink(missing_ok=True)
                os.link(target, bak)
                backups[target] = bak
            else:
                backups[target] = None
            if tmp is None:
                target.unlink(missing_ok=True)
            else:
                os.replace(tmp, target)
    except BaseException:
        for target, old in backups.items():
            with contextlib.suppress(OSError):
                if old is not None:
                    os.replace(old, target)
                else:
                    target.unlink(missing_ok=True)
        for _, left in staged:
            if left is not None:
                left.unlink(missing_ok=True)
        raise
    for old in backups.values():
        if old is not None:
            old.unlink(missing_ok=True)
    for d in {t.parent for t, _ in staged}:
        with contextlib.suppress(OSError):
            _fsync_dir(d)


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``directory`` itself (waits for another dcops mail command; creates no file)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
