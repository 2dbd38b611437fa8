"""Read and check an accounts CSV file for ``dcops mail import``.

The file (what a sysadmin exports from a spreadsheet as "CSV UTF-8"):

- UTF-8, with or without a byte-order mark; comma-separated; fields with a comma or a quote
  inside are double-quoted (``"Nguyễn Văn A, Phó Giám đốc"``);
- first line, the header, exactly these four columns in any order (case and spaces ignored)::

      agency,user,display_name,quota_mb

- ``agency``: the agency's name in the inventory (``so-tttt``) or its mail domain;
- ``user``: the local part of the address: a-z, 0-9, ``.``, ``_``, ``-``; starting and ending
  with a letter or a digit; at most 64 characters; upper case is folded to lower case;
- ``display_name``: the person's name as shown in mail clients (Vietnamese, UTF-8), required, at
  most 128 characters, without characters YAML cannot carry or mail clients show garbled
  (:mod:`dcops.mail.names`: controls, line breaks, noncharacters, zero-width and bidirectional
  characters, a byte-order mark, private-use characters, lone combining marks);
- ``quota_mb``: the mailbox quota in MiB (a whole number), or empty for the agency's default.

Blank lines are skipped. Every problem in the file is reported in one run, each with the
file, the line and the column; nothing is written while any remains.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import io
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from dcops.inventory.errors import Problem
from dcops.inventory.model import MailAccount
from dcops.mail.accounts import Store
from dcops.mail.names import display_name_problem

COLUMNS = ("agency", "user", "display_name", "quota_mb")
HEADER = ",".join(COLUMNS)
LOCAL_PART = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$")
#: Addresses every domain has as aliases (RFC 2142); not mailboxes of a person.
RESERVED = frozenset({"postmaster", "abuse", "mailer-daemon", "hostmaster", "root"})


@dataclass(frozen=True)
class Row:
    line: int
    account: MailAccount


def ascii_fold(s: str) -> str:
    """``Nguyễn.Văn-Đức`` -> ``nguyen.van-duc``: a suggestion for a local part."""
    s = s.replace("đ", "d").replace("Đ", "D")
    s = "".join(c for c in unicodedata.normalize("NFD", s) if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9._-]", "", s.lower())


def local_part_problem(user: str) -> str | None:
    """Why ``user`` (already lower-cased) is not an acceptable local part, or None."""
    if not user:
        return "user is empty"
    if LOCAL_PART.match(user) and ".." not in user:
        if user in RESERVED:
            return f"bad local part {user!r}: reserved (an alias every domain has)"
        return None
    why = "only a-z, 0-9, '.', '_' and '-', starting and ending with a letter or digit, at most 64 characters"
    if ".." in user:
        why = "two dots in a row"
    hint = ascii_fold(user).strip("._-")
    tip = f" (try {hint!r})" if hint and hint != user and LOCAL_PART.match(hint) else ""
    return f"bad local part {user!r}: {why}{tip}"


def _decode(path: Path, data: bytes) -> tuple[str, list[Problem]]:
    """The text of the file; a problem for each line that is not UTF-8 (those lines are emptied)."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "", [Problem(path, (), "the file is UTF-16; save it as UTF-8 (\"CSV UTF-8\" in a spreadsheet)", 1)]
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    problems: list[Problem] = []
    lines: list[str] = []
    for n, raw in enumerate(data.split(b"\n"), start=1):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            bad = raw[e.start : e.start + 1].hex()
            problems.append(
                Problem(path, (), f"not UTF-8 (byte 0x{bad} at column {e.start + 1}): save the file as UTF-8"
                        " (a Windows-1258 or TCVN3 export garbles Vietnamese names)", n)
            )
            lines.append("")
    return "\n".join(lines), problems


def read_accounts_csv(path: Path, store: Store, *, update: bool = False) -> tuple[list[Row], list[Problem]]:
    """The accounts the file adds (or, with ``update``, changes), and every problem found."""
    try:
        data = path.read_bytes()
    except OSError as e:
        return [], [Problem(path, (), f"cannot read: {e}")]
    if not data.strip(b" \t\r\n\xef\xbb\xbf"):
        return [], [Problem(path, (), f"the file is empty: expected the header line {HEADER!r} and one line per account", 1)]
    text, problems = _decode(path, data)
    if text.startswith("\x00") or "\x00" in text[:1000]:
        return [], [*problems, Problem(path, (), "the file holds NUL bytes: not a CSV text file (UTF-16?)", 1)]
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return [], problems or [Problem(path, (), f"the file is empty: expected the header line {HEADER!r}", 1)]
    except csv.Error as e:
        return [], [*problems, Problem(path, (), f"CSV error in the header: {e}", 1)]
    names = [h.strip().lower().replace(" ", "_") for h in header]
    missing = [c for c in COLUMNS if c not in names]
    extra = [h for h in names if h not in COLUMNS]
    dup = sorted({h for h in names if names.count(h) > 1 and h in COLUMNS})
    head_problems = []
    if missing:
        hint = " (the first line must be the header)" if any("@" in h or h in store.agencies for h in names) else ""
        head_problems.append(f"missing column{'s' * (len(missing) > 1)} {', '.join(map(repr, missing))}{hint}")
    if extra:
        head_problems.append(f"unknown column{'s' * (len(extra) > 1)} {', '.join(map(repr, extra))}")
    if dup:
        head_problems.append(f"column{'s' * (len(dup) > 1)} {', '.join(map(repr, dup))} given twice")
    if head_problems:
        reason = "; ".join(head_problems) + f"; the header must be: {HEADER}"
        return [], [*problems, Problem(path, (), reason, 1)]
    col = {c: names.index(c) for c in COLUMNS}

    rows: list[Row] = []
    first_line: dict[tuple[str, str], int] = {}
    prev_end = 1
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            problems.append(Problem(path, (), f"CSV error: {e} (a quote opened and not closed?)", prev_end + 1))
            break
        line, prev_end = prev_end + 1, reader.line_num
        if not any(f.strip() for f in record):
            continue
        if len(record) != len(names):
            problems.append(Problem(path, (), f"{len(record)} fields, the header has {len(names)}"
                                    " (quote a display name that holds a comma)", line))
            continue
        f = {c: record[col[c]].strip() for c in COLUMNS}
        bad = False
        ag = store.agency_of(f["agency"])
        if ag is None:
            close = difflib.get_close_matches(f["agency"], list(store.agencies), n=1)
            tip = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(Problem(path, ("agency",), f"unknown agency {f['agency']!r}{tip}", line))
            bad = True
        user = f["user"].lower()
        why = local_part_problem(user)
        if why:
            problems.append(Problem(path, ("user",), why, line))
            bad = True
        name = f["display_name"]
        why_name = display_name_problem(name)
        if why_name:
            problems.append(Problem(path, ("display_name",), why_name, line))
            bad = True
        quota: int | None = None
        if f["quota_mb"]:
            if re.fullmatch(r"[0-9]{1,9}", f["quota_mb"]) and int(f["quota_mb"]) > 0:
                quota = int(f["quota_mb"])
            else:
                default = f" of {ag.quota_mb} MB" if ag else ""
                problems.append(Problem(path, ("quota_mb",), f"quota {f['quota_mb']!r} is not a whole number of MB above 0"
                                        f" (leave it empty for the agency's default{default})", line))
                bad = True
        if ag is None or why:
            continue
        key = (ag.name, user)
        if key in first_line:
            reason = f"duplicate address {user}@{ag.domain} (first on line {first_line[key]})"
            problems.append(Problem(path, ("user",), reason, line))
            continue
        first_line[key] = line
        entry = store.accounts.get(ag.name, {}).get(user)
        if entry is not None and not update:
            problems.append(Problem(path, ("user",), f"{user}@{ag.domain} already exists ({entry[1]});"
                                    " use --update to change its name or quota", line))
            continue
        if entry is not None and not entry[2]:
            reason = f"{user}@{ag.domain} is defined by hand at {entry[1]}; change it there"
            problems.append(Problem(path, ("user",), reason, line))
            continue
        if not bad:
            rows.append(Row(line, MailAccount(agency=ag.name, user=user, display_name=name, quota_mb=quota)))
    problems += _budget_problems(path, rows, store)
    if not rows and not problems:
        problems.append(Problem(path, (), "no accounts after the header", 2))
    return rows, problems


def _budget_problems(path: Path, rows: list[Row], store: Store) -> list[Problem]:
    """Each agency's mailbox count and storage against its budget, once the file is added."""
    out: list[Problem] = []
    by_agency: dict[str, list[Row]] = {}
    for r in rows:
        by_agency.setdefault(r.account.agency, []).append(r)
    for name, new in by_agency.items():
        ag = store.agencies[name]
        existing = store.accounts.get(name, {})
        replaced = {r.account.user for r in new if r.account.user in existing}
        count = len(existing) + len(new) - len(replaced)
        if count > ag.mailboxes:
            n, first_over = len(existing), new[-1]
            for r in new:  # the row that takes the count over the budget
                n += r.account.user not in existing
                if n > ag.mailboxes:
                    first_over = r
                    break
            out.append(Problem(
                path, ("agency",),
                f"agency {name!r} would have {count} mailboxes ({len(existing)} in the inventory, {len(new) - len(replaced)} new"
                f" in this file), over its budget of {ag.mailboxes}; this line is the first over the budget", first_over.line))
            continue
        kept = [m for u, (m, _, _) in existing.items() if u not in replaced]
        quota = sum(x.quota_mb if x.quota_mb is not None else ag.quota_mb for x in [*kept, *(r.account for r in new)])
        storage = ag.mailboxes * ag.quota_mb
        if quota > storage:
            out.append(Problem(
                path, ("quota_mb",),
                f"agency {name!r}: quotas would total {quota} MB, over its storage budget of {ag.mailboxes} mailboxes"
                f" x {ag.quota_mb} MB = {storage} MB", new[-1].line))
    return out
