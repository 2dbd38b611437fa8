"""Find and read the data files of an inventory folder: every problem named, nothing unbounded.

A folder that cannot be listed, a file that is not a plain file (a FIFO would block the read
forever, a device could be endless), a file too large, or one that is not UTF-8 is a
:class:`~dcops.inventory.errors.Problem` naming it, never a silent skip, a hang or a traceback.
The limits are in :mod:`dcops.inventory.limits`.
"""

from __future__ import annotations

import codecs
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from dcops.inventory.errors import Problem
from dcops.inventory.limits import MAX_FILES, human_bytes
from dcops.inventory.yaml12 import line_and_column

SUFFIXES = (".yml", ".yaml")
#: Files in an inventory directory that are not province data.
NOT_DATA = {"ansible.yml"}
#: Folders of an inventory directory that are not province data: Ansible Vault files
#: (password hashes, DKIM and WireGuard keys) are kept there, encrypted; ``audit/`` holds the
#: audit's waivers, attestations and thresholds (read by dcops.audit, not province data).
NOT_DATA_DIRS = {"secrets", "vault", "audit"}


@dataclass
class Found:
    """The data files of a folder, in order, and the problems met while looking for them."""

    files: list[Path] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def data_files(directory: Path, max_files: int = MAX_FILES) -> Found:
    """Every ``*.yml``/``*.yaml`` under ``directory``, hidden and secret folders left out.

    Symbolic links to files are read; links to folders are not followed (as ``Path.rglob``
    does), so a link loop cannot make the walk endless. A folder that cannot be listed is a
    problem (its files would otherwise be missing without a word)."""
    found = Found()

    def unreadable(e: OSError) -> None:
        where = Path(e.filename) if e.filename else directory
        found.problems.append(
            Problem(where, (), f"cannot read this folder ({e.strerror or e}): the inventory files in it are not checked")
        )

    for top, dirs, names in os.walk(directory, onerror=unreadable):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in NOT_DATA_DIRS)
        found.files += (
            Path(top, n) for n in names if n.endswith(SUFFIXES) and not n.startswith(".") and n not in NOT_DATA
        )
        if len(found.files) > max_files:
            found.problems.append(
                Problem(directory, (), f"more than {max_files:,} YAML files under this folder: is it an inventory folder?")
            )
            found.files = []  # none is read
            break
    found.files.sort()
    return found


class ReadError(Exception):
    """A data file that cannot be read as inventory text; the message says why."""


_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _not_regular(mode: int) -> ReadError | None:
    if stat.S_ISREG(mode):
        return None
    kind = next((what for test, what in _KINDS if test(mode)), "not a plain file")
    return ReadError(f"not a regular file ({kind}): an inventory file is a plain text file")


def read_bounded(path: Path, limit: int) -> bytes:
    """The bytes of ``path``, a regular file of at most ``limit`` bytes; else :class:`ReadError`.

    The file is checked with ``stat`` before it is opened (so a FIFO or a device is never
    opened), opened without blocking and checked again on the open descriptor (so a file
    swapped meanwhile is caught), and at most ``limit + 1`` bytes are read (so a file that
    grows, or lies about its size, cannot exhaust memory)."""
    try:
        st = os.stat(path)
        if (err := _not_regular(st.st_mode)) is not None:
            raise err
        if st.st_size > limit:
            raise ReadError(_too_big(st.st_size, limit))
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:
        raise ReadError(f"cannot read: {e.strerror or e}") from None
    try:
        if (err := _not_regular(os.fstat(fd).st_mode)) is not None:
            raise err
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as e:
        raise ReadError(f"cannot read: {e.strerror or e}") from None
    finally:
        os.close(fd)
    if size > limit:
        raise ReadError(_too_big(size, limit, at_least=True))
    return b"".join(chunks)


def _too_big(size: int, limit: int, at_least: bool = False) -> str:
    got = f"at least {human_bytes(size)}" if at_least else human_bytes(size)
    return f"file too large ({got}; an inventory file may hold up to {human_bytes(limit)}): refused, nothing in it is read"


_BOMS = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"), (codecs.BOM_UTF16_LE, "UTF-16"),
         (codecs.BOM_UTF16_BE, "UTF-16"))


def decode(file: Path, data: bytes) -> str | Problem:
    """``data`` as UTF-8 text, or a problem at the line and column of the first byte that is not."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line, column = line_and_column(data[: e.start].decode("utf-8"))
        hint = next((f" (it starts like {name} text)" for bom, name in _BOMS if data.startswith(bom)), "")
        return Problem(
            file,
            (),
            f"not UTF-8{hint}: byte 0x{data[e.start]:02x} at line {line}, column {column} (byte offset {e.start})"
            " cannot be decoded; save the file as UTF-8",
            line,
        )
