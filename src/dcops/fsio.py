"""Files written whole or not at all: the one atomic-write helper every dcops module uses.

A new content goes to a temporary file beside its target (same file system), is flushed and
synced, gets its mode, and is renamed over the target; a reader sees the old file or the new
one, never half of either, and a process killed mid-write leaves at most a hidden temporary
file (``.<name>.<random>.tmp``), never a truncated target. Several files that must change
together go through :mod:`dcops.mail.txn` instead, which builds on :func:`stage`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (best effort: some file systems refuse)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def stage(target: Path, data: bytes, mode: int = 0o644) -> Path:
    """Write ``data`` to a synced temporary file beside ``target`` (mode ``mode``); return its path.

    The caller renames it over the target (``os.replace``) or removes it. Missing parent folders
    are created (0700 for a private file, 0755 otherwise)."""
    return stage_parts(target, (data,), mode)


def stage_parts(target: Path, parts: Iterable[bytes], mode: int = 0o644) -> Path:
    """:func:`stage` for content given in pieces, each written to the file before the next is taken.

    A caller that must do something between two pieces (:mod:`dcops.mail.txn`'s crash-injection
    steps) passes a generator; if it raises, the temporary file is removed."""
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700 if mode & 0o077 == 0 else 0o755)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            for part in parts:
                f.write(part)
                f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def atomic_write(target: Path, data: bytes | str, mode: int = 0o644, *, only_if_changed: bool = False) -> bool:
    """Replace ``target`` with ``data`` atomically (text is written as UTF-8); True if written.

    ``only_if_changed``: leave a target that already holds ``data`` untouched (no new inode,
    no new mtime), so that tools watching it see no change."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if only_if_changed:
        with contextlib.suppress(OSError):
            if target.read_bytes() == raw and (target.stat().st_mode & 0o7777) == mode:
                return False
    tmp = stage(target, raw, mode)
    try:
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)
    return True
