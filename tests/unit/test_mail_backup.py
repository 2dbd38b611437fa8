"""dcops-mail-backup (the mail_backup role's on-host script), run for real against a temporary tree.

Backup, list, verify, restore of one mailbox (merge, idempotent), corrupt archives, unknown mailboxes,
retention, configuration restore with passing and failing checks (postfix/doveconf are not on this
machine: the checks are stand-in commands), and the role's and playbooks' static checks.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.machinery
import importlib.util
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, VENV_BIN

ROLE = ROOT / "playbooks" / "roles" / "mail_backup"
SCRIPT = ROLE / "files" / "dcops-mail-backup"

MESSAGES = {
    # mailbox: {path under Maildir: content}
    "alice@lab.test": {
        "cur/1700000000.M1P1.mail,S=40,W=41:2,S": b"From: a@lab.test\r\nSubject: one\r\n\r\nhello\r\n",
        "cur/1700000001.M2P1.mail,S=40,W=41:2,RS": b"From: b@lab.test\r\nSubject: two\r\n\r\nworld\r\n",
        "new/1700000002.M3P1.mail,S=40,W=41": b"From: c@lab.test\r\nSubject: three\r\n\r\nnew one\r\n",
        ".Sent/cur/1700000003.M4P1.mail:2,S": b"From: alice@lab.test\r\nSubject: sent\r\n\r\nbye\r\n",
    },
    "bob@lab.test": {"cur/1700000010.M5P1.mail:2,": b"Subject: bob\r\n\r\n" + bytes(range(256)) * 64},
    "carol@so-ttt.lab.test": {"new/1700000020.M6P1.mail": "Subject: Tiếng Việt\r\n\r\nXin chào\r\n".encode()},
}
CONFIG = {
    "etc/postfix/main.cf": b"myhostname = mail.lab.test\n",
    "etc/postfix/master.cf": b"smtp inet n - y - - smtpd\n",
    "etc/postfix/dcops/vmailbox": b"alice@lab.test lab.test/alice/Maildir/\n",
    "etc/dovecot/dovecot.conf": b"protocols = imap lmtp\n",
    "etc/opendkim/keys/lab.test.private": b"-----BEGIN PRIVATE KEY-----\nxxx\n-----END PRIVATE KEY-----\n",
    "etc/opendkim.conf": b"Mode sv\n",
    "etc/ssl/private/dcops-mail.key": b"-----BEGIN EC PRIVATE KEY-----\nyyy\n",
}


class Tree:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.vmail = root / "vmail"
        self.etc = root / "etc"
        self.backups = root / "backups"
        self.log = root / "doveadm.log"
        self.doveadm = root / "bin" / "doveadm"
        self.config_paths = [
            root / "etc/postfix",
            root / "etc/dovecot",
            root / "etc/opendkim",
            root / "etc/opendkim.conf",
            root / "etc/ssl/private/dcops-mail.key",
            root / "etc/not-there.conf",
        ]

    def maildir(self, box: str) -> Path:
        user, domain = box.split("@")
        return self.vmail / domain / user / "Maildir"

    def opts(self) -> list[str]:
        out = [
            f"--backup-dir={self.backups}",
            f"--vmail-dir={self.vmail}",
            f"--vmail-uid={os.getuid()}",
            f"--vmail-gid={os.getgid()}",
        ]
        return out + [f"--config-path={p}" for p in self.config_paths]

    def run(self, *args: str, check: bool = True, **extra: str) -> subprocess.CompletedProcess[str]:
        cmd, rest = args[0], list(args[1:])
        argv = [sys.executable, str(SCRIPT), cmd, *self.opts(), *rest]
        if cmd == "restore":
            argv += [f"--doveadm={self.doveadm}"]
            for k, v in extra.items():
                argv.append(f"--{k.replace('_', '-')}={v}")
        env = {**os.environ, "DCOPS_MAIL_BACKUP_DEFAULTS": str(self.root / "no-defaults")}
        r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
        if check:
            assert r.returncode == 0, f"{argv}\n{r.stdout}\n{r.stderr}"
        return r

    def backup(self, *args: str) -> Path:
        r = self.run("backup", "--json", *args)
        return Path(json.loads(r.stdout)["path"])

    def snapshot(self) -> dict[str, tuple[bytes, int]]:
        """Every file under vmail/ and etc/ with its content and mode (what must not change)."""
        out = {}
        for base in (self.vmail, self.etc):
            for p in sorted(base.rglob("*")):
                if p.is_file() or p.is_symlink():
                    out[str(p.relative_to(self.root))] = (p.read_bytes() if p.is_file() else b"", p.lstat().st_mode)
        return out


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    t = Tree(tmp_path)
    for box, files in MESSAGES.items():
        md = t.maildir(box)
        for sub in ("cur", "new", "tmp"):
            (md / sub).mkdir(parents=True)
        for rel, data in files.items():
            p = md / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
            p.chmod(0o600)
            os.utime(p, (1700000000, 1700000000 + len(data)))
    alice = t.maildir("alice@lab.test")
    for sub in ("new", "tmp"):
        (alice / ".Sent" / sub).mkdir(exist_ok=True)
    (alice / ".Sent" / "maildirfolder").write_bytes(b"")
    (alice / "dovecot-uidlist").write_bytes(b"3 V1700000000 N4\n")
    (alice / "subscriptions").write_bytes(b"V\t2\n\nSent\n")
    (alice / "dovecot.index.log").write_bytes(b"index, rebuilt by dovecot")
    (alice / "tmp" / "1700000099.inflight").write_bytes(b"half a message")
    for rel, data in CONFIG.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    (tmp_path / "etc/opendkim/keys/lab.test.private").chmod(0o600)
    (tmp_path / "etc/dovecot/private.pem").symlink_to("/etc/ssl/private/dcops-mail.key")
    t.doveadm.parent.mkdir()
    t.doveadm.write_text(f'#!/bin/sh\necho "$*" >> {t.log}\n')
    t.doveadm.chmod(0o755)
    return t


def one_line_error(r: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert r.returncode != 0, r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("dcops-mail-backup: error: ")
    for n in needles:
        assert n in lines[0], lines[0]


def members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        out = {}
        for m in tar.getmembers():
            f = tar.extractfile(m) if m.isfile() else None
            out[m.name] = f.read() if f else b""
        return out


# --------------------------------------------------------------------------- backup, list, verify


def test_help() -> None:
    for sub in ([], ["backup"], ["list"], ["verify"], ["restore"]):
        r = subprocess.run([sys.executable, str(SCRIPT), *sub, "--help"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "usage: dcops-mail-backup" in r.stdout


def test_backup_list_verify(tree: Tree) -> None:
    archive = tree.backup()
    assert archive.parent == tree.backups
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    assert stat.S_IMODE(tree.backups.stat().st_mode) == 0o700
    assert not [p for p in tree.backups.iterdir() if ".tmp-" in p.name]

    content = members(archive)
    manifest = json.loads(content["MANIFEST.json"])
    assert list(content)[-1] == "MANIFEST.json"
    assert manifest["mailboxes"] == {
        "alice@lab.test": {"messages": 4},
        "bob@lab.test": {"messages": 1},
        "carol@so-ttt.lab.test": {"messages": 1},
    }
    for box, files in MESSAGES.items():
        user, domain = box.split("@")
        for rel, data in files.items():
            assert content[f"vmail/{domain}/{user}/Maildir/{rel}"] == data
    by_path = {e["path"]: e for e in manifest["files"]}
    key = f"config{tree.etc}/opendkim/keys/lab.test.private"
    assert by_path[key]["sha256"] == hashlib.sha256(CONFIG["etc/opendkim/keys/lab.test.private"]).hexdigest()
    assert by_path[f"config{tree.etc}/dovecot/private.pem"]["symlink"] == "/etc/ssl/private/dcops-mail.key"
    names = set(content)
    assert not any("dovecot.index" in n or n.endswith("inflight") for n in names), "indexes and tmp/ are not saved"
    assert "vmail/lab.test/alice/Maildir/dovecot-uidlist" in names
    assert manifest["config_missing"] == [str(tree.root / "etc/not-there.conf")]

    r = tree.run("list", "--json")
    (row,) = json.loads(r.stdout)
    assert row["archive"] == archive.name and row["mailboxes"] == 3 and row["messages"] == 6
    assert row["size_bytes"] == archive.stat().st_size and row["created"].endswith("Z")
    assert archive.name in tree.run("list").stdout

    r = tree.run("verify", str(archive))
    assert "OK" in r.stdout and "3 mailboxes, 6 messages" in r.stdout
    tree.run("verify", archive.name)  # a name in the backup folder will do


def test_xz_and_list_without_summary(tree: Tree) -> None:
    archive = tree.backup("--compression=xz")
    assert archive.name.endswith(".tar.xz")
    (archive.parent / f"{archive.name}.json").unlink()
    (row,) = json.loads(tree.run("list", "--json").stdout)  # read from the archive itself
    assert row["messages"] == 6
    tree.run("verify", str(archive))


def test_a_message_moved_during_the_walk_is_still_saved(tree: Tree) -> None:
    """Dovecot moves new/X to cur/X:2,S between the listing and the read: the message is kept once."""
    loader = importlib.machinery.SourceFileLoader("dcops_mail_backup", str(SCRIPT))
    spec = importlib.util.spec_from_loader("dcops_mail_backup", loader)
    assert spec
    mod: Any = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    assert isinstance(mod, ModuleType)
    original = mod.ArchiveWriter.add_file
    moved: list[str] = []

    def add_file(self: Any, arcname: str, path: Path) -> bool:
        if "/new/" in arcname and path.exists() and not moved:
            path.rename(path.parent.parent / "cur" / f"{path.name}:2,S")
            moved.append(path.name)
        return bool(original(self, arcname, path))

    mod.ArchiveWriter.add_file = add_file
    try:
        assert mod.main(["backup", *tree.opts(), "--no-config"]) == 0
    finally:
        mod.ArchiveWriter.add_file = original
    assert moved
    (archive,) = [p for p in tree.backups.iterdir() if p.name.endswith(".tar.gz")]
    manifest = json.loads(members(archive)["MANIFEST.json"])
    assert sum(b["messages"] for b in manifest["mailboxes"].values()) == 6
    paths = [e["path"] for e in manifest["files"]]
    assert [p for p in paths if moved[0] in p] == [next(p for p in paths if p.endswith(f"cur/{moved[0]}:2,S"))]


def test_retention_keeps_the_newest(tree: Tree) -> None:
    made = [tree.backup("--keep=2") for _ in range(3)]
    left = sorted(p.name for p in tree.backups.iterdir() if not p.name.startswith("."))
    assert left == sorted([made[1].name, f"{made[1].name}.json", made[2].name, f"{made[2].name}.json"])


# --------------------------------------------------------------------------- restore of mailboxes


def test_restore_one_mailbox_merges_and_is_idempotent(tree: Tree) -> None:
    archive = tree.backup()
    alice, bob = tree.maildir("alice@lab.test"), tree.maildir("bob@lab.test")
    # Alice loses her mail; one message only changed flags; a new message arrived since the backup.
    for rel in (
        "cur/1700000000.M1P1.mail,S=40,W=41:2,S",
        "new/1700000002.M3P1.mail,S=40,W=41",
        ".Sent/cur/1700000003.M4P1.mail:2,S",
    ):
        (alice / rel).unlink()
    (alice / "cur/1700000001.M2P1.mail,S=40,W=41:2,RS").rename(alice / "cur/1700000001.M2P1.mail,S=40,W=41:2,FRS")
    shutil.rmtree(alice / ".Sent")
    (alice / "new/1800000000.M9P1.mail").write_bytes(b"Subject: arrived after the backup\r\n\r\n")
    # Bob's message is gone too, but only Alice is restored.
    (bob / "cur/1700000010.M5P1.mail:2,").unlink()

    r = tree.run("restore", str(archive), "--mailbox", "alice@lab.test")
    assert "alice@lab.test: 3 messages restored, 1 already present" in r.stdout
    for rel, data in MESSAGES["alice@lab.test"].items():
        if "M2P1" in rel:
            continue
        p = alice / rel
        assert p.read_bytes() == data, rel
        assert p.stat().st_mtime == 1700000000 + len(data), "received date (mtime) kept"
        assert stat.S_IMODE(p.stat().st_mode) == 0o600 and p.stat().st_uid == os.getuid()
    assert not (alice / "cur/1700000001.M2P1.mail,S=40,W=41:2,RS").exists(), "no duplicate of a message whose flags changed"
    assert (alice / "cur/1700000001.M2P1.mail,S=40,W=41:2,FRS").exists()
    assert (alice / "new/1800000000.M9P1.mail").read_bytes() == b"Subject: arrived after the backup\r\n\r\n"
    assert (alice / ".Sent/maildirfolder").exists() and (alice / ".Sent/tmp").is_dir()
    assert not list((alice / "tmp").glob("*dcops-restore*")) and not list((alice / ".Sent/tmp").iterdir())
    assert not (bob / "cur/1700000010.M5P1.mail:2,").exists(), "other mailboxes untouched"
    assert tree.log.read_text().splitlines() == ["force-resync -u alice@lab.test *", "quota recalc -u alice@lab.test"]

    before = tree.snapshot()
    r = tree.run("restore", str(archive), "--mailbox", "alice@lab.test")
    assert "alice@lab.test: 0 messages restored, 4 already present" in r.stdout
    assert tree.snapshot() == before
    assert len(tree.log.read_text().splitlines()) == 2, "nothing restored: no resync"


def test_restore_every_mailbox_into_an_empty_host(tree: Tree) -> None:
    archive = tree.backup()
    shutil.rmtree(tree.vmail)
    r = tree.run("restore", str(archive), "--no-resync")
    assert "6" not in r.stderr
    for box, files in MESSAGES.items():
        for rel, data in files.items():
            assert (tree.maildir(box) / rel).read_bytes() == data
        assert (tree.maildir(box) / "tmp").is_dir()
    assert (tree.maildir("alice@lab.test") / "dovecot-uidlist").read_bytes() == b"3 V1700000000 N4\n"
    assert not tree.log.exists()


def test_unknown_mailbox_changes_nothing(tree: Tree) -> None:
    archive = tree.backup()
    (tree.maildir("alice@lab.test") / "new/1700000002.M3P1.mail,S=40,W=41").unlink()
    before = tree.snapshot()
    r = tree.run("restore", str(archive), "--mailbox", "alice@lab.test", "--mailbox", "mallory@lab.test", check=False)
    one_line_error(r, "mallory@lab.test", "no such mailbox", archive.name)
    assert tree.snapshot() == before


def test_missing_archive(tree: Tree) -> None:
    r = tree.run("restore", str(tree.root / "nope.tar.gz"), check=False)
    one_line_error(r, "nope.tar.gz", "no such archive")
    r = tree.run("verify", "nope.tar.gz", check=False)
    one_line_error(r, "nope.tar.gz", "no such archive")


# --------------------------------------------------------------------------- corrupt archives


def _flip(archive: Path) -> None:
    data = bytearray(archive.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 16):
        data[i] ^= 0xFF
    archive.write_bytes(bytes(data))


def _truncate(archive: Path) -> None:
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) * 2 // 3])


def _tamper_member(archive: Path) -> None:
    """A well-formed archive whose message differs from the manifest (bit rot before compression)."""
    out = io.BytesIO()
    with tarfile.open(archive) as src, tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as dst:
        for m in src.getmembers():
            f = src.extractfile(m) if m.isfile() else None
            data = f.read() if f else b""
            if m.name.endswith("M5P1.mail:2,"):
                data = data[:-1] + b"X"
            dst.addfile(m, io.BytesIO(data) if f else None)
    archive.write_bytes(gzip.compress(out.getvalue()))


@pytest.mark.parametrize("damage", [_flip, _truncate, _tamper_member], ids=["flipped-bytes", "truncated", "member-changed"])
def test_corrupt_archive_is_refused_and_nothing_changes(tree: Tree, damage: Any) -> None:
    archive = tree.backup()
    (archive.parent / f"{archive.name}.json").unlink()  # the manifest inside must catch it alone
    damage(archive)
    shutil.rmtree(tree.maildir("bob@lab.test") / "cur")
    (tree.maildir("alice@lab.test") / "new/1700000002.M3P1.mail,S=40,W=41").unlink()
    before = tree.snapshot()

    r = tree.run("verify", str(archive), check=False)
    one_line_error(r, str(archive))
    if damage is _tamper_member:
        assert "vmail/lab.test/bob/Maildir/cur/1700000010.M5P1.mail:2," in r.stderr and "sha256" in r.stderr
    else:
        assert "corrupt" in r.stderr or "truncated" in r.stderr

    r = tree.run("restore", str(archive), check=False)
    one_line_error(r, str(archive))
    r = tree.run("restore", str(archive), "--config", "--all-mailboxes", check=False, postfix_check="true", dovecot_check="true")
    one_line_error(r, str(archive))
    assert tree.snapshot() == before
    assert not tree.log.exists()


def test_summary_checksum_catches_a_replaced_archive(tree: Tree) -> None:
    first = tree.backup()
    (tree.maildir("bob@lab.test") / "cur/1700000010.M5P1.mail:2,").unlink()
    second = tree.backup()
    shutil.copyfile(second, first)  # a valid archive, but not the one the summary describes
    r = tree.run("verify", str(first), check=False)
    one_line_error(r, str(first), "sha256")


# --------------------------------------------------------------------------- configuration restore


def test_config_restore_refused_by_its_check_changes_nothing(tree: Tree) -> None:
    archive = tree.backup()
    (tree.etc / "postfix/main.cf").write_bytes(b"myhostname = changed.lab.test\n")
    (tree.maildir("alice@lab.test") / "new/1700000002.M3P1.mail,S=40,W=41").unlink()
    before = tree.snapshot()
    r = tree.run(
        "restore",
        str(archive),
        "--config",
        "--all-mailboxes",
        check=False,
        postfix_check="sh -c 'echo postfix/postconf: fatal: bad main.cf >&2; exit 1' {dir}",
        dovecot_check="true",
        reload=f"touch {tree.root / 'reloaded'}",
    )
    one_line_error(r, "postfix", "fatal: bad main.cf", archive.name)
    assert tree.snapshot() == before
    assert not (tree.root / "reloaded").exists()
    assert not [p.name for p in tree.etc.rglob("*") if "dcops-restore" in p.name or "dcops-pre-restore" in p.name], (
        "no staging or aside copies"
    )

    r = tree.run("restore", str(archive), "--config", check=False, postfix_check="true", dovecot_check="false")
    one_line_error(r, "dovecot")
    r = tree.run("restore", str(archive), "--config", check=False, postfix_check="no-such-postfix-binary {dir}")
    one_line_error(r, "no-such-postfix-binary", "not found")
    assert tree.snapshot() == before


def test_config_restore_checks_the_staged_copy_then_swaps(tree: Tree) -> None:
    archive = tree.backup()
    (tree.etc / "postfix/main.cf").write_bytes(b"myhostname = changed.lab.test\n")
    (tree.etc / "postfix/extra.cf").write_bytes(b"added after the backup\n")
    (tree.etc / "opendkim/keys/lab.test.private").unlink()
    seen = tree.root / "checked"
    r = tree.run(
        "restore",
        str(archive),
        "--config",
        postfix_check=f"sh -c 'cp $0/main.cf {seen} && test ! -e $0/extra.cf' {{dir}}",
        dovecot_check="test -f {dir}/dovecot.conf",
        opendkim_check="grep -q Mode {file}",
        reload=f"touch {tree.root / 'reloaded'};true",
    )
    assert seen.read_bytes() == CONFIG["etc/postfix/main.cf"], "the check saw the archived main.cf"
    assert (tree.etc / "postfix/main.cf").read_bytes() == CONFIG["etc/postfix/main.cf"]
    assert (tree.etc / "opendkim/keys/lab.test.private").read_bytes() == CONFIG["etc/opendkim/keys/lab.test.private"]
    assert stat.S_IMODE((tree.etc / "opendkim/keys/lab.test.private").stat().st_mode) == 0o600
    assert os.readlink(tree.etc / "dovecot/private.pem") == "/etc/ssl/private/dcops-mail.key"
    assert not (tree.etc / "postfix/extra.cf").exists()
    (aside,) = tree.etc.glob("postfix.dcops-pre-restore-*")
    assert (aside / "main.cf").read_bytes() == b"myhostname = changed.lab.test\n" and (aside / "extra.cf").exists()
    assert "previous configuration kept aside" in r.stdout and str(aside) in r.stdout
    assert (tree.root / "reloaded").exists()
    assert not tree.log.exists(), "--config alone restores no mailbox"
    assert not list(tree.etc.glob(".*dcops-restore*"))


# --------------------------------------------------------------------------- lint, role, playbooks


def _tool(name: str) -> str:
    exe = VENV_BIN / name
    return str(exe if exe.exists() else Path(sys.executable).parent / name)


@pytest.mark.parametrize(
    "cmd", [["ruff", "check"], ["ruff", "format", "--check"], ["mypy", "--strict"]], ids=["ruff", "format", "mypy"]
)
def test_script_lint_clean(cmd: list[str]) -> None:
    r = subprocess.run([_tool(cmd[0]), *cmd[1:], str(SCRIPT)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr}"


def test_script_is_stdlib_only() -> None:
    import ast

    allowed = set(sys.stdlib_module_names) | {"__future__"}
    tree = ast.parse(SCRIPT.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        for n in names:
            assert n.split(".")[0] in allowed, f"{n} is not in the standard library"
    assert SCRIPT.read_text().startswith("#!/usr/bin/python3\n") and os.access(SCRIPT, os.X_OK)


def test_role_variables_prefixed_and_specified() -> None:
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    specified = {name for spec in specs.values() for name in spec["options"]}
    for name in defaults:
        assert name.startswith("mail_backup_"), name
        assert name in specified, f"{name} missing from meta/argument_specs.yml"
    for spec in specs.values():
        for name, opt in spec["options"].items():
            assert name in defaults and opt.get("description"), name


def test_role_settings_file_matches_the_script() -> None:
    """The defaults file the role writes uses the script's variable names (and nothing else)."""
    import jinja2

    lines = (ROLE / "templates" / "dcops-mail-backup.default.j2").read_text().splitlines()
    keys = {line.split("=", 1)[0] for line in lines if "=" in line and not line.startswith("#")}
    source = SCRIPT.read_text()
    assert keys and [k for k in keys if f'"{k}"' not in source] == []
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    values = {k: v for k, v in defaults.items() if not (isinstance(v, str) and "{{" in v)}
    values |= {"mail_backup_vmail_dir": "/var/vmail", "mail_backup_vmail_uid": 5000, "ansible_managed": "managed"}
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters["quote"] = lambda v: __import__("shlex").quote(str(v))
    text = env.from_string((ROLE / "templates" / "dcops-mail-backup.default.j2").read_text()).render(values)
    loader = importlib.machinery.SourceFileLoader("dcops_mail_backup_defaults", str(SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec
    mod: Any = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"dcops-mail-backup-defaults-{os.getpid()}-{time.time_ns()}"
    try:
        path.write_text(text)
        parsed = mod.read_defaults_file(str(path))
    finally:
        path.unlink()
    assert parsed["DCOPS_MAIL_CONFIG_PATHS"].split(":") == defaults["mail_backup_config_paths"]
    assert parsed["DCOPS_MAIL_POSTFIX_CHECK"] == "postfix -c {dir} check"
    assert parsed["DCOPS_MAIL_RELOAD"].split(";") == defaults["mail_backup_reload_commands"]
    assert parsed["DCOPS_MAIL_VMAIL_UID"] == parsed["DCOPS_MAIL_VMAIL_GID"] == "5000"


@pytest.mark.parametrize("playbook", ["mail-backup.yml", "mail-restore.yml"])
def test_playbook_syntax(playbook: str) -> None:
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "playbooks" / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    r = subprocess.run(
        [_tool("ansible-playbook"), "--syntax-check", "-i", str(ROOT / "inventory" / "lab"), f"playbooks/{playbook}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr}"
