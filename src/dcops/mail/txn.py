"""All-or-nothing changes of several files in several folders, that survive a crash at any point.

A ``dcops mail`` change touches up to three stores together: the inventory
(``mail-accounts/<agency>.yml``), the vault (``<secrets>/mail/<agency>.yml``) and the handover file
of the new passwords (outside the repository); they may be on different file systems. :func:`commit`
changes all of them or none, even when the process is killed (``kill -9``, a power cut), with a
journal in the inventory folder (``journal_dir``):

1. **Prepare.** The journal ``.dcops-mail-txn.yml`` (hidden) names the transaction and the staging
   folder it uses beside each target (``.dcops-mail-staging-<id>/``: the same file system, so a rename is
   atomic). Every new content is written there and synced (:func:`dcops.fsio.stage_parts`); every
   target that exists gets a hard link there (its old content, for an undo). No target is touched:
   a crash here leaves every store as it was.
2. **Commit point.** The journal ``dcops-mail-pending.yml`` is renamed into place (one atomic
   rename): for each target, its staged new file and its backup, with the SHA-256 of both contents.
3. **Apply.** Each staged file is renamed over its target (or the target is removed).
4. **Finish.** The staging folders, then ``.dcops-mail-txn.yml``, then ``dcops-mail-pending.yml`` are
   removed (in this order: ``.dcops-mail-txn.yml`` alone always means "not committed").

:func:`recover` (every ``dcops mail`` command runs it first, under the inventory's lock; also
``dcops mail recover``) looks at what a crash left:

- ``dcops-mail-pending.yml`` in state ``committed``: **redo**: every staged file still there is
  renamed over its target (one already gone was applied), deleted targets are removed;
- ``dcops-mail-pending.yml`` in state ``aborting`` (an error, not a crash, stopped step 3 and the
  undo began): **undo**: every backup is put back, a target that did not exist is removed;
- ``.dcops-mail-txn.yml`` alone: the commit point was not reached: **discard** the staging folders
  (a half-written handover file with them), nothing else changed.

After a redo or an undo every target is checked against its SHA-256; a mismatch (a staging folder
removed by hand) stops with the list of files and keeps the journal. A journal found elsewhere than
where it was written (an inventory copied or moved with it) is refused: it names the other one's files. While
``dcops-mail-pending.yml`` exists the inventory does not load: the loader refuses its unknown
section and names the file, so no reader (the ``dcops_mail`` lookup of a converge, the inventory
plugin, renderers) uses a half-applied state; the file's comment says what to run.

A lock on the inventory folder (:func:`locked`) serialises ``dcops mail`` commands on one inventory;
readers that take it shared (:func:`reading`) never see a change under way either.

Crash injection (tests): with ``DCOPS_MAIL_CRASH_AT=N`` the process prints every step it passes on
stderr (``dcops mail step N: ...``) and sends itself SIGKILL at step ``N``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import json
import os
import re
import secrets
import shutil
import signal
import stat
import sys
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from dcops import fsio

PREPARED = ".dcops-mail-txn.yml"
PENDING = "dcops-mail-pending.yml"
#: The journal's one section: the loader does not know it, so it refuses the inventory meanwhile.
SECTION = "pending_mail_change"
STAGING = ".dcops-mail-staging-"
CRASH_ENV = "DCOPS_MAIL_CRASH_AT"
_ID = re.compile(r"^[0-9a-f]{12}$")
_STEPS = itertools.count(1)

State = Literal["prepared", "committed", "aborting"]


class TxnError(Exception):
    """A transaction that cannot be committed or recovered; the message says what to do."""


@dataclass(frozen=True)
class Change:
    """The new content of one file (None: delete it) and its mode."""

    content: bytes | None
    mode: int = 0o644


@dataclass(frozen=True)
class Entry:
    target: str
    new: str | None  # the staged new content; None: the target is removed
    old: str | None  # a hard link to the old content; None: the target did not exist
    new_sha256: str | None
    old_sha256: str | None


@dataclass(frozen=True)
class Journal:
    id: str
    state: State
    folder: str  # where it was written: a journal moved or copied elsewhere names another inventory's files
    staging: list[str]
    entries: list[Entry] = field(default_factory=list)
    about: str = ""  # what the person who finds it finished should be told (where the new passwords are)


@dataclass(frozen=True)
class Recovery:
    """What :func:`recover` did with an interrupted transaction."""

    id: str
    outcome: Literal["finished", "undone"]
    files: list[str]
    about: str = ""


def _step(what: str) -> None:
    """A point where the crash-injection hook may kill the process (see the module's docstring)."""
    at = os.environ.get(CRASH_ENV)
    if not at:
        return
    n = next(_STEPS)
    sys.stderr.write(f"dcops mail step {n}: {what}\n")
    sys.stderr.flush()
    if at.strip() == str(n):
        os.kill(os.getpid(), signal.SIGKILL)


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def _halves(data: bytes, target: Path) -> Iterator[bytes]:
    """``data`` in two pieces, with a crash-injection step between them (a half-written file)."""
    half = len(data) // 2
    yield data[:half]
    _step(f"half of {target} written")
    yield data[half:]


# --- the journal -------------------------------------------------------------------------------
def _render(j: Journal, journal_dir: Path) -> bytes:
    what = {"prepared": "is being prepared (nothing is changed yet)",
            "committed": "passed its commit point and is not finished",
            "aborting": "failed after its commit point and is being undone"}[j.state]
    head = (
        f"# A `dcops mail` change (inventory accounts, vault hashes, handover file) {what}.\n"
        "# Until it is finished or undone this inventory does not load, so that nothing uses a half-applied\n"
        f"# state. Run: dcops mail recover -i {journal_dir}   (every `dcops mail` command does it first).\n"
        "# Do not edit, move or commit this file.\n"
    )
    return (head + f"{SECTION}: " + json.dumps(asdict(j), sort_keys=True) + "\n").encode("utf-8")


def _write(path: Path, j: Journal) -> None:
    tmp = fsio.stage(path, _render(j, path.parent), 0o644)
    _step(f"journal {path.name} ({j.state}) written")
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsio.fsync_dir(path.parent)
    _step(f"journal {path.name} ({j.state}) in place")


def _read(path: Path) -> Journal:
    try:
        text = path.read_text(encoding="utf-8")
        line = next(x for x in text.splitlines() if x.startswith(f"{SECTION}:"))
        raw: dict[str, Any] = json.loads(line.split(":", 1)[1])
        j = Journal(raw["id"], raw["state"], str(raw["folder"]), [str(s) for s in raw["staging"]],
                    [Entry(**e) for e in raw["entries"]], str(raw.get("about", "")))
    except (OSError, UnicodeDecodeError, StopIteration, ValueError, KeyError, TypeError) as e:
        raise TxnError(f"{path}: not a readable dcops mail journal ({e}); check the files it names by hand,"
                       " then remove it") from e
    if not _ID.match(j.id) or j.state not in ("prepared", "committed", "aborting") or any(
            Path(s).name != f"{STAGING}{j.id}" for s in j.staging):
        raise TxnError(f"{path}: not a dcops mail journal (id, state or staging folders are wrong); check it by hand")
    try:
        here = os.path.samefile(j.folder, path.parent)
    except OSError:
        here = False
    if not here:
        raise TxnError(f"{path}: written in {j.folder}, and moved or copied here; it names the files of that inventory:"
                       f" recover it there (dcops mail recover -i {j.folder}), then remove this copy")
    return j


def pending(journal_dir: Path) -> Path | None:
    """The journal of a change that passed its commit point and is not finished, if any."""
    p = Path(journal_dir) / PENDING
    return p if p.exists() else None


def pending_message(journal: Path) -> str:
    return (f"a `dcops mail` change was interrupted after its commit point ({journal}); the inventory and the"
            f" vault may disagree until it is finished: run `dcops mail recover -i {journal.parent}`")


# --- commit ------------------------------------------------------------------------------------
def commit(changes: Mapping[Path, Change], journal_dir: Path | None = None, *, about: str = "") -> None:
    """Apply every change or none, crash or not (see the module's docstring).

    ``journal_dir``: where the journal is kept (the inventory folder; default: the folder that
    holds every target). ``about``: what :func:`recover` reports if it finishes the change for
    this process (where the new passwords are). Call it under :func:`locked`, after :func:`recover`."""
    if not changes:
        return
    items = sorted((Path(os.path.abspath(t)), ch) for t, ch in changes.items())
    jdir = Path(os.path.abspath(journal_dir or os.path.commonpath([t.parent for t, _ in items])))
    for name in (PENDING, PREPARED):
        if (jdir / name).exists():
            raise TxnError(f"{jdir / name}: an earlier `dcops mail` change is not finished;"
                           f" run `dcops mail recover -i {jdir}` first")
    txid = secrets.token_hex(6)
    staging = sorted({str(t.parent / f"{STAGING}{txid}") for t, _ in items})
    prepared = Journal(txid, "prepared", str(jdir), staging, about=about)
    jdir.mkdir(parents=True, exist_ok=True)
    _write(jdir / PREPARED, prepared)
    try:
        entries = [_prepare(target, ch, txid) for target, ch in items]
        for s in staging:
            fsio.fsync_dir(Path(s))
        _step("every new file staged, every old one linked")
        committed = replace(prepared, state="committed", entries=entries)
        _write(jdir / PENDING, committed)  # the commit point
    except BaseException:
        _discard(jdir, prepared)
        raise
    try:
        for e in entries:
            _apply(e)
            _step(f"{e.target} applied")
        for d in {Path(e.target).parent for e in entries}:
            fsio.fsync_dir(d)
    except BaseException as err:
        try:
            aborting = replace(committed, state="aborting")
            _write(jdir / PENDING, aborting)
            _roll(aborting, forward=False)
            _finish(jdir, aborting)
        except BaseException as undo_err:
            raise TxnError(f"{err}; undoing the change failed too ({undo_err}): run `dcops mail recover -i {jdir}`") from err
        raise
    _finish(jdir, committed)


def _prepare(target: Path, ch: Change, txid: str) -> Entry:
    """Stage ``ch`` beside ``target`` and link the old content; nothing of ``target`` changes."""
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700 if ch.mode & 0o077 == 0 else 0o755)
    sdir = target.parent / f"{STAGING}{txid}"
    sdir.mkdir(mode=0o700, exist_ok=True)
    new: Path | None = None
    new_sha = None
    if ch.content is not None:
        new = fsio.stage_parts(sdir / target.name, _halves(ch.content, target), ch.mode)
        new_sha = hashlib.sha256(ch.content).hexdigest()
        _step(f"{target} staged")
    old: Path | None = None
    if target.exists():
        old = sdir / f"{target.name}.old"
        try:
            os.link(target, old)
        except OSError:  # a file system without hard links: a copy
            os.replace(fsio.stage(old, target.read_bytes(), stat.S_IMODE(target.stat().st_mode)), old)
    return Entry(str(target), None if new is None else str(new), None if old is None else str(old),
                 new_sha, None if old is None else _sha256(old))


def _apply(e: Entry) -> None:
    if e.new is not None:
        os.replace(e.new, e.target)
    else:
        Path(e.target).unlink(missing_ok=True)


# --- recovery ----------------------------------------------------------------------------------
def _roll(j: Journal, *, forward: bool) -> None:
    """Redo (``forward``) or undo every entry of ``j``, then check every target against its SHA-256."""
    for e in j.entries:
        src = e.new if forward else e.old
        if src is None:
            Path(e.target).unlink(missing_ok=True)
        elif Path(src).exists():  # gone: already renamed over the target
            os.replace(src, e.target)
    for d in {Path(e.target).parent for e in j.entries}:
        fsio.fsync_dir(d)
    wrong = [e.target for e in j.entries if _sha256(Path(e.target)) != (e.new_sha256 if forward else e.old_sha256)]
    if wrong:
        raise TxnError(f"transaction {j.id}: not as its journal recorded (a staging folder {STAGING}{j.id} removed by hand?):"
                       f" {', '.join(wrong)}; check these files by hand, then remove the journal")


def _remove_staging(j: Journal) -> None:
    for s in j.staging:
        if Path(s).name == f"{STAGING}{j.id}":
            shutil.rmtree(s, ignore_errors=True)
            fsio.fsync_dir(Path(s).parent)


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)
    fsio.fsync_dir(path.parent)
    _step(f"journal {path.name} removed")


def _finish(jdir: Path, j: Journal) -> None:
    _remove_staging(j)
    _step("staging folders removed")
    _remove(jdir / PREPARED)  # first: alone, it would mean "not committed"
    _remove(jdir / PENDING)


def _discard(jdir: Path, j: Journal) -> None:
    """Forget a transaction that did not reach its commit point (or whose commit failed)."""
    with contextlib.suppress(TxnError):  # first: a committed journal without its staged files would be a lie
        if (jdir / PENDING).exists() and _read(jdir / PENDING).id == j.id:
            (jdir / PENDING).unlink()
            fsio.fsync_dir(jdir)
    _remove_staging(j)
    (jdir / PREPARED).unlink(missing_ok=True)
    fsio.fsync_dir(jdir)


def recover(journal_dir: Path) -> Recovery | None:
    """Finish or undo what a crash left (see the module's docstring); None if nothing was left."""
    jdir = Path(os.path.abspath(journal_dir))
    out: Recovery | None = None
    if (jdir / PENDING).exists():
        j = _read(jdir / PENDING)
        _roll(j, forward=j.state == "committed")
        _finish(jdir, j)
        finished = j.state == "committed"
        out = Recovery(j.id, "finished" if finished else "undone", [e.target for e in j.entries], j.about if finished else "")
    elif (jdir / PREPARED).exists():
        j = _read(jdir / PREPARED)
        _discard(jdir, j)
        out = Recovery(j.id, "undone", [])
    for name in (PENDING, PREPARED):  # a journal being written when the process died
        for stray in jdir.glob(f".{name}.*.tmp"):
            stray.unlink(missing_ok=True)
    return out


@contextlib.contextmanager
def locked(directory: Path, *, shared: bool = False) -> Iterator[None]:
    """Hold a lock on ``directory`` itself (creates no file): exclusive for a ``dcops mail`` command
    (it waits for another), ``shared`` for readers (they wait for a command under way, not for each other)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def reading(inventory_dir: Path) -> Iterator[None]:
    """For a reader of the inventory and its mail secrets together (the zone's DKIM keys, the mail role's
    lookup): no ``dcops mail`` change is under way while it reads, and TxnError (naming what to run) if
    one was interrupted and is not finished. A folder that does not exist is left to the loader."""
    if not Path(inventory_dir).is_dir():
        yield
        return
    with locked(inventory_dir, shared=True):
        journal = pending(inventory_dir)
        if journal is not None:
            raise TxnError(pending_message(journal))
        yield


@contextlib.contextmanager
def settled(inventory_dir: Path) -> Iterator[Recovery | None]:
    """The inventory's lock, held, with an interrupted change finished or undone first.

    A folder that does not exist is neither locked nor recovered (loading it says what is wrong)."""
    if not Path(inventory_dir).is_dir():
        yield None
        return
    with locked(inventory_dir):
        yield recover(inventory_dir)
