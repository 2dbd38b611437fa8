"""Hostile and careless input: every case is a problem naming the file (and line), exit 2, nothing
written, no traceback, no hang, bounded memory (issue 11).

Classes, one section each: sizes (huge files, many list items, non-regular files), YAML aliases
(bombs in a string and in a list field, nesting through aliases), folders that cannot be read,
files that are not UTF-8, YAML 1.1 surprises (``off``, ``0777``, ``1:30``, numbers for
addresses), explicit tags PyYAML cannot build, domain names, long values quoted back, and
``render -o`` into a place that cannot take the files. The cases that could hang or exhaust
memory run the real command in a subprocess under a timeout and an address-space limit.
"""

from __future__ import annotations

import errno
import json
import os
import pathlib
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dcops.cli import app
from dcops.inventory import load
from dcops.inventory import loader as loader_module
from dcops.inventory.errors import short
from dcops.inventory.files import ReadError, data_files, read_bounded
from dcops.inventory.limits import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES, MAX_TOTAL_BYTES
from dcops.inventory.yaml12 import measure
from tests.conftest import YENBAI
from tests.unit.test_validation import EXTRA, LAB, MAILBOX_ANCHOR, add_file, assert_only, mutate, problems

runner = CliRunner()
#: What a hostile input may cost the real command.
TIMEOUT_S = 20
ADDRESS_SPACE = 1 << 30


def run_cli(*args: str, timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """``dcops ARGS`` in a subprocess, killed after ``timeout`` s, within 1 GiB of address space."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    return subprocess.run(
        [sys.executable, "-c", "from dcops.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=limit,
        env={**os.environ, "COLUMNS": "200"},
    )


def problem_lines(stderr: str) -> list[str]:
    """The problem lines of ``dcops inventory check``'s report (after its one-line header)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines and lines[0].startswith("inventory "), stderr
    return lines[1:]


def assert_refused(r: subprocess.CompletedProcess[str], inv: Path, *needles: str) -> list[str]:
    """Exit 2, no traceback, every problem line names a file of ``inv``, and names ``needles``."""
    assert r.returncode == 2, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr[-3000:]
    found = problem_lines(r.stderr)
    assert found, r.stderr
    for line in found:
        assert line.startswith(f"  {inv}"), line
    text = "\n".join(found)
    for needle in needles:
        assert needle in text, f"{needle!r} not in:\n{text[:3000]}"
    return found


@pytest.fixture
def inv(tmp_path: Path) -> Path:
    d = tmp_path / "inv"
    shutil.copytree(LAB, d)
    return d


# --- sizes ----------------------------------------------------------------------------------
def test_a_file_of_gigabytes_is_refused_unread(inv: Path) -> None:
    f = inv / EXTRA
    with f.open("wb") as out:
        out.write(b"accounts:\n")
        out.truncate(3 << 30)  # sparse: 3 GiB by stat, nothing on disk
    r = run_cli("inventory", "check", str(inv))
    assert_refused(r, inv, f"{f}: (top level): file too large (3 GiB; an inventory file may hold up to 4 MiB)")


def test_ten_megabytes_of_list_items_is_refused_fast(inv: Path) -> None:
    item = "  - {agency: so-tttt, user: u1, display_name: X}\n"
    (inv / EXTRA).write_text("accounts:\n" + item * (10_000_000 // len(item)), encoding="utf-8")
    r = run_cli("inventory", "check", str(inv))
    assert_refused(r, inv, f"{inv / EXTRA}: (top level): file too large")


def test_list_items_under_the_size_limit_but_over_the_node_budget(inv: Path) -> None:
    # 3.4 MB: under the 4 MiB file limit; 490,000 nodes (7 an item)
    (inv / EXTRA).write_text("accounts:\n" + "  - {agency: so-tttt, user: u1, display_name: X}\n" * 70_000, encoding="utf-8")
    r = run_cli("inventory", "check", str(inv))
    (line,) = assert_refused(r, inv, f"{inv / EXTRA}:", f"goes over {MAX_NODES:,} nodes")
    # named where the budget ran out: after the lab's own files (a few thousand nodes), at the
    # item that takes the total over the limit
    assert (MAX_NODES - 5_000) // 7 < int(line.split(":")[1]) < MAX_NODES // 7, line


def test_a_folder_of_files_together_over_the_total(inv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lab_bytes = sum(f.stat().st_size for f in inv.iterdir())
    monkeypatch.setattr(loader_module, "MAX_TOTAL_BYTES", lab_bytes + 5_000)
    for k in range(3):
        add_file(inv, f"zz-{k}.yml", "# padding\n" * 1_000)
    (p,) = problems(inv)
    assert p.file.name == "zz-0.yml"
    assert p.reason.startswith("the inventory's files together go over "), p.reason
    assert p.reason.endswith("with this one: it and the 2 files after it are not read"), p.reason


def test_the_real_limit_values_are_as_documented() -> None:
    assert (MAX_FILE_BYTES, MAX_TOTAL_BYTES, MAX_NODES, MAX_DEPTH) == (4 << 20, 16 << 20, 200_000, 64)


def test_read_bounded_never_reads_past_the_limit(tmp_path: Path) -> None:
    f = tmp_path / "x.yml"
    f.write_bytes(b"a" * 100)
    assert read_bounded(f, 100) == b"a" * 100
    with pytest.raises(ReadError, match="file too large"):
        read_bounded(f, 99)
    # a file whose size stat does not tell (as /proc's): still at most limit + 1 bytes read
    with pytest.raises(ReadError, match="at least"):
        read_bounded(Path("/proc/self/status"), 10)


@pytest.mark.parametrize("kind", ["fifo", "chardev", "broken-link", "folder-link"])
def test_a_file_that_is_not_a_plain_file(inv: Path, kind: str) -> None:
    f = inv / EXTRA
    if kind == "fifo":
        os.mkfifo(f)  # opening it for reading would block until a writer comes: never
        want = "not a regular file (a FIFO (named pipe))"
    elif kind == "chardev":
        f.symlink_to("/dev/zero")  # endless
        want = "not a regular file (a character device)"
    elif kind == "broken-link":
        f.symlink_to(inv / "nowhere.yml")
        want = "cannot read: No such file or directory"
    else:  # a link to a folder named like a file: not followed, not data
        (inv / "elsewhere").mkdir()
        f.symlink_to(inv / "elsewhere")
        r = run_cli("inventory", "check", str(inv))
        assert r.returncode == 0, r.stderr
        return
    r = run_cli("inventory", "check", str(inv))
    assert_refused(r, inv, f"{f}: (top level): {want}")


def test_too_many_files_stops_the_walk(tmp_path: Path) -> None:
    for k in range(5):
        (tmp_path / f"f{k}.yml").write_text("", encoding="utf-8")
    found = data_files(tmp_path, max_files=3)
    assert [p.reason for p in found.problems] == ["more than 3 YAML files under this folder: is it an inventory folder?"]
    assert found.files == [], "none of them is read"


# --- aliases --------------------------------------------------------------------------------
def bomb(levels: int = 9, width: int = 9) -> str:
    """A flow list of nested anchors, each ``width`` aliases of the one before: width**levels leaves."""
    parts = [f"&a0 [{', '.join(['lol'] * width)}]"]
    parts += [f"&a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return "[" + ", ".join(parts) + "]"


@pytest.mark.parametrize(
    ("where", "old", "new_key"),
    [
        ("a string field", "    display_name: Văn phòng lab\n", "    display_name: "),
        ("a list field", "from: [service:docmgmt]", "from: "),
    ],
    ids=["string-field", "list-field"],
)
def test_an_alias_bomb_is_refused_before_it_expands(inv: Path, where: str, old: str, new_key: str) -> None:
    file = "services.yml" if "from" in old else EXTRA
    if file == EXTRA:
        agency = "agencies:\n  - name: vp\n    display_name: Văn phòng lab\n    domain: vp.lab.test\n    mailboxes: 1\n"
        add_file(inv, EXTRA, agency)
    line = mutate(inv, file, old, new_key + bomb() + ("\n" if old.endswith("\n") else ""))
    r = run_cli("inventory", "check", str(inv))
    assert_refused(r, inv, f"{inv / file}:{line}: (top level): this alias copies", f"goes over {MAX_NODES:,} nodes")
    # in process too, and fast: the expansion (9**9 = 387 million leaves) is never built
    (p,) = problems(inv)
    assert p.line == line and "alias" in p.reason


def test_an_alias_inside_its_own_anchor(inv: Path) -> None:
    add_file(inv, EXTRA, "# loops\nflows:\n  - &f {to: ntp, ports: [ntp], from: [*f]}\n")
    assert_only(inv, EXTRA, "(top level)", 3, "alias used inside its own anchor")


def test_nesting_through_aliases_is_bounded(inv: Path) -> None:
    deep = "[" * 40 + "x" + "]" * 40
    add_file(inv, EXTRA, f"x: &d {deep}\ny: &e {'[' * 40}*d{']' * 40}\n")
    assert_only(inv, EXTRA, "(top level)", 2, f"nests the data more than {MAX_DEPTH} levels deep")


def test_deep_nesting_without_aliases(inv: Path) -> None:
    add_file(inv, EXTRA, "x: " + "[" * 100 + "]" * 100 + "\n")
    assert_only(inv, EXTRA, "(top level)", 1, f"nested more than {MAX_DEPTH} levels deep")


def test_aliases_that_share_are_counted_once_per_use() -> None:
    # the mapping, its 3 keys, the list of 3 and two copies of it
    assert measure("a: &x [1, 2, 3]\nb: *x\nc: *x\n", budget=100) == 1 + 3 + 4 + 2 * 4
    # the outer list, a0 (3), a1 (1 + 2 x 3), a2 (1 + 2 x 7)
    assert measure("[&a0 [x, x], &a1 [*a0, *a0], &a2 [*a1, *a1]]", budget=100) == 1 + 3 + 7 + 15


# --- the real province fits with room to spare ------------------------------------------------
def _yenbai_with_accounts(tmp_path: Path, one_file: bool) -> Path:
    """inventory/yenbai with all its 3,319 mailboxes named, in the format `dcops mail` writes."""
    from dcops.inventory.model import MailAccount
    from dcops.mail.accounts import render_accounts

    d = tmp_path / "yenbai"
    shutil.copytree(YENBAI, d)
    (d / "mail-accounts").mkdir()
    agencies = load(d).inventory.agencies
    per_agency = {
        a.name: [MailAccount(agency=a.name, user=f"can-bo.{i:04d}", display_name=f"Cán bộ số {i} của {a.name}")
                 for i in range(a.mailboxes - len(a.accounts))]
        for a in agencies
    }
    if one_file:
        items = [
            line
            for a in agencies
            for line in render_accounts(a, per_agency[a.name]).decode("utf-8").splitlines(keepends=True)
            if line.startswith("  - {")
        ]
        (d / "mail-accounts" / "all.yml").write_text("accounts:\n" + "".join(items), encoding="utf-8")
    else:
        for a in agencies:
            (d / "mail-accounts" / f"{a.name}.yml").write_bytes(render_accounts(a, per_agency[a.name]))
    return d


@pytest.mark.parametrize("one_file", [False, True], ids=["file-per-agency", "one-file"])
def test_yenbai_with_3319_accounts_loads_well_within_the_limits(tmp_path: Path, one_file: bool) -> None:
    d = _yenbai_with_accounts(tmp_path, one_file)
    loaded = load(d)
    assert len(loaded.inventory.mailboxes()) == 3319
    sizes = [f.stat().st_size for f in loaded.files]
    nodes = sum(measure(f.read_text(encoding="utf-8"), MAX_NODES) for f in loaded.files)
    # the headroom limits.py promises
    assert max(sizes) * 10 < MAX_FILE_BYTES
    assert sum(sizes) * 30 < MAX_TOTAL_BYTES
    assert nodes * 4 < MAX_NODES, nodes
    assert len(loaded.files) < 100


# --- folders that cannot be read --------------------------------------------------------------
def _unreadable(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Make ``os.scandir`` fail on ``folder`` as it does for a folder without read permission.

    (The tests run as root, which chmod cannot lock out.)"""
    real = os.scandir

    def scandir(path: str | os.PathLike[str] = ".") -> object:
        if Path(path) == folder:
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)


def test_an_unreadable_subfolder_is_a_problem_not_a_silent_skip(inv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sub = inv / "mail-accounts"
    sub.mkdir()
    (sub / "so-tttt.yml").write_text("accounts:\n  - {agency: so-tttt, user: x}\n", encoding="utf-8")
    _unreadable(monkeypatch, sub)
    (p,) = problems(inv)
    assert p.file == sub and p.line is None
    assert p.reason == "cannot read this folder (Permission denied): the inventory files in it are not checked"
    r = runner.invoke(app, ["inventory", "check", str(inv)])
    assert r.exit_code == 2 and f"  {sub}: (top level): cannot read this folder" in r.stderr


def test_an_unreadable_secrets_folder_is_not_data(inv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (inv / "secrets").mkdir()
    _unreadable(monkeypatch, inv / "secrets")
    load(inv)


def test_an_unreadable_inventory_folder(inv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _unreadable(monkeypatch, inv)
    (p,) = problems(inv)
    assert p.file == inv and "cannot read this folder" in p.reason


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every folder; the monkeypatched tests above stand in")
def test_an_unreadable_subfolder_for_real(inv: Path) -> None:
    sub = inv / "mail-accounts"
    sub.mkdir(mode=0o000)
    try:
        (p,) = problems(inv)
        assert p.file == sub and "cannot read this folder" in p.reason
    finally:
        sub.chmod(0o755)


# --- not UTF-8 --------------------------------------------------------------------------------
def test_a_byte_that_is_not_utf8_is_named_by_line_and_column(inv: Path) -> None:
    text = "agencies:\n  - name: vp\n    display_name: Bé \xff\n".encode()
    raw = text.replace("\xff".encode(), b"\xff")  # a Latin-1 byte in a UTF-8 file
    (inv / EXTRA).write_bytes(raw)
    offset = raw.index(b"\xff")
    (p,) = problems(inv)
    assert (p.file.name, p.line) == (EXTRA, 3)
    # the column counts characters: "    display_name: Bé " is 21 of them (22 bytes)
    assert p.reason.startswith(f"not UTF-8: byte 0xff at line 3, column 22 (byte offset {offset})"), p.reason
    assert "save the file as UTF-8" in p.reason


def test_a_utf16_file_says_so(inv: Path) -> None:
    (inv / EXTRA).write_bytes("flows: []\n".encode("utf-16"))
    (p,) = problems(inv)
    assert p.line == 1 and p.reason.startswith("not UTF-8 (it starts like UTF-16 text): byte 0xff at line 1, column 1")


# --- YAML 1.1 surprises -----------------------------------------------------------------------
YAML11 = [
    # (file, old, new, path, reason)
    ("province.yml", "  lab: true\n", "  lab: off\n", "province.lab", "got 'off'; write true or false"),
    ("province.yml", "  lab: true\n", "  lab: yes\n", "province.lab", "got 'yes'; write true or false"),
    ("province.yml", "  lab: true\n", "  lab: on\n", "province.lab", "got 'on'; write true or false"),
    ("province.yml", "  lab: true\n", "  lab: 1\n", "province.lab", "got 1; write true or false"),
    ("sites.yml", "    tier: datacentre\n", "    tier: datacentre\n    datanet: no\n", "sites[0].datanet",
     "got 'no'; write true or false"),
    ("mail.yml", MAILBOX_ANCHOR, MAILBOX_ANCHOR.replace("mailboxes: 10", "mailboxes: 0777"), "agencies[0].mailboxes",
     "got '0777', and a number with a leading zero is text in YAML 1.2; write 777 (or 0o777 for octal)"),
    ("mail.yml", MAILBOX_ANCHOR, MAILBOX_ANCHOR.replace("mailboxes: 10", "mailboxes: 1:30"), "agencies[0].mailboxes",
     "got '1:30' (YAML 1.1 read this as a base-60 number, YAML 1.2 as text)"),
    ("province.yml", "  controller: 10.250.0.1\n", "  controller: 167772161\n", "province.controller",
     "an address is written as text, like 10.0.0.1: got 167772161"),
    ("province.yml", "  management_network: 10.250.0.0/24\n", "  management_network: 167772160\n",
     "province.management_network", "a network is written as text, like 10.0.0.0/24: got 167772160"),
    ("sites.yml", "address: 10.251.0.4", "address: 167903236", "sites[0].hosts[3].address", "an address is written as text"),
    ("services.yml", "{name: ntp, proto: udp, port: 123}", "{name: ntp, proto: udp, port: 0123}", "services[1].ports[0].port",
     "write 123"),
    ("mail.yml", MAILBOX_ANCHOR, MAILBOX_ANCHOR.replace("mailboxes: 10", "mailboxes: 2020-01-01"), "agencies[0].mailboxes",
     "valid integer (got '2020-01-01')"),
]


@pytest.mark.parametrize(
    ("file", "old", "new", "path", "reason"), YAML11, ids=[f"{y[3]}={y[2].split(':')[-1].strip()[:12]}" for y in YAML11]
)
def test_yaml11_surprises_are_problems(inv: Path, file: str, old: str, new: str, path: str, reason: str) -> None:
    line = mutate(inv, file, old, new)
    p = assert_only(inv, file, path, line, reason)
    assert p.reason.count("got ") == 1, p.reason  # the value is quoted once


def test_yaml12_numbers_and_words_that_are_fine(inv: Path) -> None:
    # 0o and 0x are explicit integers; yes/no/off are just words where text is wanted
    explicit = MAILBOX_ANCHOR.replace("mailboxes: 10\n    quota_mb: 512", "mailboxes: 0o12\n    quota_mb: 0x200")
    mutate(inv, "mail.yml", MAILBOX_ANCHOR, explicit)
    mutate(inv, "mail.yml", "{user: giamdoc, display_name: Giám đốc Sở}", "{user: giamdoc, display_name: no}")
    mutate(inv, "sites.yml", "    display_name: UBND xã Khánh Hòa\n", "    display_name: off\n")
    loaded = load(inv)
    a = loaded.inventory.agencies[0]
    assert (a.mailboxes, a.quota_mb, a.accounts[0].display_name) == (10, 512, "no")
    assert loaded.inventory.sites[4].display_name == "off"


EXPLICIT_TAGS = [
    ("!!timestamp nonsense", "cannot read 'nonsense' as !!timestamp"),
    ("!!int abc", "'abc' is not an integer"),
    ("!!int 0777", "'0777' is not an integer"),
    ("!!bool maybe", "'maybe' is not a boolean; write true or false"),
    ("!!float one", "'one' is not a number"),
    ("!!binary a", "failed to decode base64 data"),
    ("!!python/object:os.system x", "could not determine a constructor"),
    ("0x" + "f" * 500, "a number of more than 100 digits is not inventory data"),
]


@pytest.mark.parametrize(("value", "reason"), EXPLICIT_TAGS, ids=[t[0][:20] for t in EXPLICIT_TAGS])
def test_values_yaml_cannot_build_are_problems(inv: Path, value: str, reason: str) -> None:
    line = mutate(inv, "mail.yml", MAILBOX_ANCHOR, MAILBOX_ANCHOR.replace("mailboxes: 10", f"mailboxes: {value}"))
    assert_only(inv, "mail.yml", "(top level)", line, reason)


# --- domains ----------------------------------------------------------------------------------
DOMAINS = [
    ("stttt.lab.test.", "'stttt.lab.test.': write the domain without the final dot ('stttt.lab.test')"),
    ("STTTT.Lab.Test", "'STTTT.Lab.Test': domain names do not depend on case, so dcops compares them in lower case"
                       " and refuses upper case (one spelling per domain): write 'stttt.lab.test'"),
    ("st_ttt.lab.test", "is not a DNS name: label 'st_ttt' is not 1 to 63 letters, digits or hyphens"),
    ("stttt..lab.test", "is not a DNS name: label '' is not"),
    ("-stttt.lab.test", "label '-stttt' is not"),
    ("stttt", "it needs at least two labels"),
    ("10.0.0.1", "its last label is all digits"),
    ("a" * 64 + ".lab.test", "is not 1 to 63 letters"),
    (("a" * 60 + ".") * 5 + "test", "longer than 253 characters"),
    ("sở.lab.test", "is not an ASCII DNS name: write its ASCII form 'xn--s-lym.lab.test'"),
    ("st ttt.lab.test", "is not a DNS name"),
]


@pytest.mark.parametrize(("domain", "reason"), DOMAINS, ids=[d[0][:20] for d in DOMAINS])
def test_an_agency_domain_must_be_a_dns_name(inv: Path, domain: str, reason: str) -> None:
    line = mutate(inv, "mail.yml", "    domain: stttt.lab.test\n", f"    domain: '{domain}'\n")
    assert_only(inv, "mail.yml", "agencies[0].domain", line, reason)


def test_two_agencies_whose_domains_differ_only_by_case(inv: Path) -> None:
    line = mutate(inv, "mail.yml", "    domain: lucyen.lab.test\n", "    domain: STTTT.lab.test\n")
    reason = "refuses upper case (one spelling per domain): write 'stttt.lab.test'"
    assert_only(inv, "mail.yml", "agencies[1].domain", line, reason)


def test_the_province_domain_too(inv: Path) -> None:
    line = mutate(inv, "province.yml", "  domain: lab.test\n", "  domain: Lab.Test.\n")
    assert_only(inv, "province.yml", "province.domain", line, "'Lab.Test.': write the domain without the final dot ('lab.test')")


# --- long values are quoted short -------------------------------------------------------------
def test_a_huge_value_is_quoted_short(inv: Path) -> None:
    line = mutate(inv, "mail.yml", "  - name: so-tttt\n", "  - name: " + "x" * 100_000 + "!\n")
    (p,) = problems(inv)
    assert p.line == line and "String should match pattern" in p.reason
    assert len(str(p)) < 400, str(p)


def test_a_huge_key_is_named_short(inv: Path) -> None:
    # (an implicit key is at most 1,024 characters in YAML: this one is explicit)
    mutate(inv, "mail.yml", "    site: dc\n", "    site: dc\n    ? " + "k" * 100_000 + "\n    : 1\n")
    (p,) = problems(inv)
    assert "unknown key" in p.reason and len(str(p)) < 400, str(p)[:500]


def test_a_list_as_a_key(inv: Path) -> None:
    line = mutate(inv, "mail.yml", "    site: dc\n", "    site: dc\n    ? [a, b]\n    : 1\n")
    assert_only(inv, "mail.yml", "(top level)", line, "found unhashable key")


def test_short_is_bounded_whatever_the_value() -> None:
    big = [[["x" * 1000] * 1000] * 1000] * 1000  # a billion strings, shared: a repr would never end
    assert len(short(big)) <= 120
    assert len(short("y" * 10**7)) <= 120
    assert short("off") == "'off'"


# --- render -o --------------------------------------------------------------------------------
def _tree(d: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(d)): (p.read_bytes() if p.is_file() else None) for p in sorted(d.rglob("*"))}


def _refused(out: Path, verb: str, path: Path, reason: str) -> None:
    """``render -o out`` fails with one line: ``error: cannot VERB PATH: REASON; nothing was written``."""
    r = runner.invoke(app, ["inventory", "render", "-i", str(LAB), "-o", str(out)])
    assert r.exit_code == 2, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    assert "Traceback" not in r.output
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert lines == [f"error: cannot {verb} {path}: {reason}; nothing was written"], r.stderr


def test_render_into_a_file(tmp_path: Path) -> None:
    f = tmp_path / "afile"
    f.write_text("keep\n", encoding="utf-8")
    _refused(f, "write", f, "it is a file, not a folder")
    assert f.read_text(encoding="utf-8") == "keep\n"


def test_render_under_a_file(tmp_path: Path) -> None:
    f = tmp_path / "afile"
    f.write_text("keep\n", encoding="utf-8")
    _refused(f / "out" / "deeper", "write", f / "out" / "deeper", f"{f} is a file, not a folder")
    assert _tree(tmp_path) == {"afile": b"keep\n"}


def test_render_where_a_subfolder_is_a_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "prometheus").mkdir(parents=True)
    (out / "prometheus" / "file_sd").write_text("x", encoding="utf-8")
    before = _tree(tmp_path)
    _refused(out, "write", out / "prometheus" / "file_sd", "it is a file, where a folder of rendered files goes")
    assert _tree(tmp_path) == before


def test_render_where_a_file_is_a_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "ansible" / "inventory.json").mkdir(parents=True)
    before = _tree(tmp_path)
    _refused(out, "write", out / "ansible" / "inventory.json", "it is a folder, where a rendered file goes")
    assert _tree(tmp_path) == before


def test_render_json_says_what_failed(tmp_path: Path) -> None:
    f = tmp_path / "afile"
    f.write_text("keep\n", encoding="utf-8")
    r = runner.invoke(app, ["inventory", "render", "-i", str(LAB), "-o", str(f), "--json"])
    assert r.exit_code == 2
    want = {"ok": False, "out": str(f), "path": str(f), "reason": "it is a file, not a folder", "written": []}
    assert json.loads(r.stdout) == want


def test_render_into_a_new_folder_makes_it(tmp_path: Path) -> None:
    out = tmp_path / "new" / "deeper"
    r = runner.invoke(app, ["inventory", "render", "-i", str(LAB), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert (out / "ansible" / "inventory.json").is_file()
    assert not [p for p in out.rglob(".*")], "a staged file was left behind"


def test_render_into_a_folder_that_cannot_be_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = pathlib.Path.mkdir

    def mkdir(self: Path, *a: object, **k: object) -> None:
        if self.is_relative_to(tmp_path / "ro"):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        real(self, *a, **k)  # type: ignore[arg-type]

    (tmp_path / "ro").mkdir()
    monkeypatch.setattr(pathlib.Path, "mkdir", mkdir)
    _refused(tmp_path / "ro" / "out", "make the folder", tmp_path / "ro" / "out", "Permission denied")
    assert _tree(tmp_path) == {"ro": None}


@pytest.mark.parametrize("fail_at", [1, 4], ids=["first-file", "fourth-file"])
def test_render_into_a_read_only_folder_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_at: int) -> None:
    """Read-only (simulated: root writes anywhere): the first or a later file cannot be staged."""
    out = tmp_path / "out"
    r = runner.invoke(app, ["inventory", "render", "-i", str(LAB), "-o", str(out)])
    assert r.exit_code == 0
    (out / "ansible" / "inventory.json").write_text("old\n", encoding="utf-8")
    before = _tree(tmp_path)
    real = tempfile.mkstemp
    calls = []

    def mkstemp(*a: object, **k: object) -> tuple[int, str]:
        if str(k.get("dir", "")).startswith(str(out)):
            calls.append(k["dir"])
            if len(calls) >= fail_at:
                raise OSError(errno.EROFS, "Read-only file system", str(k["dir"]))
        return real(*a, **k)  # type: ignore[call-overload,no-any-return]

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    _refused(out, "write", _first_dir(out, fail_at), "Read-only file system")
    assert _tree(tmp_path) == before, "a file changed or a staged file was left behind"


def _first_dir(out: Path, fail_at: int) -> Path:
    """The folder of the ``fail_at``-th rendered file (the order rendered_files gives)."""
    from dcops.cli.inventory import rendered_files
    from dcops.inventory import load_inventory

    rel = list(rendered_files(load_inventory(LAB)))[fail_at - 1]
    return (out / rel).parent


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders; the simulated test above stands in")
def test_render_into_a_read_only_folder_for_real(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir(mode=0o555)
    try:
        _refused(out, "make the folder", out / "ansible", "Permission denied")
    finally:
        out.chmod(0o755)


def test_render_of_an_invalid_inventory_writes_nothing(inv: Path, tmp_path: Path) -> None:
    mutate(inv, "province.yml", "  lab: true\n", "  lab: off\n")
    out = tmp_path / "out"
    r = runner.invoke(app, ["inventory", "render", "-i", str(inv), "-o", str(out), "--json"])
    assert r.exit_code == 2
    assert json.loads(r.stdout)["problems"][0]["reason"] == "got 'off'; write true or false"
    assert not out.exists()
