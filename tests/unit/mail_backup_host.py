"""A fake mail host for dcops-mail-backup's tests: Maildirs, mail configuration, settings file.

Everything lives under one folder (tmp_path): the Maildirs (folders, flags, and the indexes,
caches, quota files and tmp/ that must not be saved), the configuration paths, a local restic
repository and its password file, the state and staging folders and the metrics textfile. The
vmail owner is the current user, so the tests pass as root (CI) and as any other user.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import ROOT

SCRIPT = ROOT / "playbooks" / "roles" / "mail_backup" / "files" / "dcops-mail-backup"
RESTIC = shutil.which("restic") or "restic"
PASSWORD = "correct horse battery staple 7f3a"

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
# Dovecot's own files: rebuilt by Dovecot, never saved (relative to a Maildir).
NOT_SAVED = (
    "dovecot.index",
    "dovecot.index.cache",
    "dovecot.index.log",
    "dovecot.list.index.log",
    "dovecot-uidvalidity",
    "dovecot-uidvalidity.65a1b2c3",
    "maildirsize",
    "tmp/1700000099.inflight",
    ".Sent/dovecot.index.cache",
    ".Sent/tmp/1700000098.inflight",
)
CONFIG = {
    "etc/postfix/main.cf": b"myhostname = mail.lab.test\n",
    "etc/postfix/master.cf": b"smtp inet n - y - - smtpd\n",
    "etc/postfix/dcops/vmailbox": b"alice@lab.test lab.test/alice/Maildir/\n",
    "etc/dovecot/dovecot.conf": b"protocols = imap lmtp\n",
    "etc/opendkim/keys/lab.test.private": b"-----BEGIN PRIVATE KEY-----\nxxx\n-----END PRIVATE KEY-----\n",
    "etc/opendkim.conf": b"Mode sv\n",
    "etc/ssl/private/dcops-mail.key": b"-----BEGIN EC PRIVATE KEY-----\nyyy\n",
}


class Host:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.vmail = root / "vmail"
        self.etc = root / "etc"
        self.repo = root / "repo"
        self.password_file = root / "secrets" / "restic-password"
        self.state = root / "state"
        self.textfile = root / "textfile" / "dcops_mail_backup.prom"
        self.restore_dir = root / "restore"
        self.log = root / "resync.log"
        self.settings_file = root / "settings"
        self.bin = root / "bin"  # first on PATH: restic wrappers of some tests
        self.extra_env: dict[str, str] = {}
        self.config_paths = [
            root / "etc/postfix",
            root / "etc/dovecot",
            root / "etc/opendkim",
            root / "etc/opendkim.conf",
            root / "etc/ssl/private/dcops-mail.key",
            root / "etc/not-there.conf",
        ]
        self.settings: dict[str, str] = {
            "DCOPS_MAIL_BACKUP_REPOSITORY": str(self.repo),
            "DCOPS_MAIL_BACKUP_PASSWORD_FILE": str(self.password_file),
            "DCOPS_MAIL_BACKUP_SFTP_COMMAND": "",
            "DCOPS_MAIL_BACKUP_CACHE_DIR": str(root / "cache"),
            "DCOPS_MAIL_BACKUP_STATE_DIR": str(self.state),
            "DCOPS_MAIL_BACKUP_KEEP_DAILY": "7",
            "DCOPS_MAIL_BACKUP_KEEP_WEEKLY": "4",
            "DCOPS_MAIL_BACKUP_KEEP_MONTHLY": "6",
            "DCOPS_MAIL_BACKUP_CHECK_SUBSET": "10%",
            "DCOPS_MAIL_BACKUP_TEXTFILE": str(self.textfile),
            "DCOPS_MAIL_BACKUP_RESTORE_DIR": str(self.restore_dir),
            "DCOPS_MAIL_VMAIL_DIR": str(self.vmail),
            "DCOPS_MAIL_VMAIL_UID": str(os.getuid()),
            "DCOPS_MAIL_VMAIL_GID": str(os.getgid()),
            "DCOPS_MAIL_CONFIG_PATHS": ":".join(str(p) for p in self.config_paths),
            # postfix, doveconf and opendkim are not on this machine: stand-ins.
            "DCOPS_MAIL_POSTFIX_CHECK": "test -f {dir}/main.cf",
            "DCOPS_MAIL_DOVECOT_CHECK": "test -f {dir}/dovecot.conf",
            "DCOPS_MAIL_OPENDKIM_CHECK": "grep -q Mode {file}",
            "DCOPS_MAIL_RELOAD": f"touch {root / 'reloaded'}",
            "DCOPS_MAIL_RESYNC": f"sh -c 'echo \"force-resync $0 *\" >> {self.log}' {{mailbox}};"
            f"sh -c 'echo \"quota recalc $0\" >> {self.log}' {{mailbox}}",
        }

    def build(self, repository: Path | None = None) -> Host:
        """The tree; with repository, a copy of that (empty) repository is the host's own."""
        if repository:
            shutil.copytree(repository, self.repo)
        for box, files in MESSAGES.items():
            md = self.maildir(box)
            for sub in ("cur", "new", "tmp"):
                (md / sub).mkdir(parents=True)
            for rel, data in files.items():
                p = md / rel
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(data)
                p.chmod(0o600)
                os.utime(p, (1700000000, 1700000000 + len(data)))
        alice = self.maildir("alice@lab.test")
        for sub in ("new", "tmp"):
            (alice / ".Sent" / sub).mkdir(exist_ok=True)
        (alice / ".Sent" / "maildirfolder").write_bytes(b"")
        (alice / "dovecot-uidlist").write_bytes(b"3 V1700000000 N4\n")
        (alice / "dovecot-keywords").write_bytes(b"0 $Forwarded\n")
        (alice / "subscriptions").write_bytes(b"V\t2\n\nSent\n")
        for rel in NOT_SAVED:
            (alice / rel).write_bytes(b"rebuilt by dovecot")
        (alice.parent / "sieve").mkdir()
        (alice.parent / "sieve" / "roundcube.sieve").write_bytes(b"# not a Maildir")
        for rel, data in CONFIG.items():
            p = self.root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        (self.root / "etc/opendkim/keys/lab.test.private").chmod(0o600)
        (self.root / "etc/dovecot/private.pem").symlink_to("/etc/ssl/private/dcops-mail.key")
        self.password_file.parent.mkdir(mode=0o700)
        self.password_file.write_text(PASSWORD + "\n")
        self.password_file.chmod(0o600)
        self.textfile.parent.mkdir()
        self.bin.mkdir()
        self.write_settings()
        return self

    def write_settings(self, path: Path | None = None, **changes: str | None) -> Path:
        """The settings file as the role writes it (shell-quoted values); None drops a key."""
        import shlex

        values = {**self.settings, **changes}
        lines = ["# dcops-mail-backup settings (test)"]
        lines += [f"{k}={shlex.quote(v)}" for k, v in values.items() if v is not None]
        path = path or self.settings_file
        path.write_text("\n".join(lines) + "\n")
        return path

    def maildir(self, box: str) -> Path:
        user, domain = box.split("@")
        return self.vmail / domain / user / "Maildir"

    def env(self) -> dict[str, str]:
        path = f"{self.bin}:{Path(RESTIC).parent}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        return {**os.environ, "PATH": path, "TZ": "UTC", **self.extra_env}

    def run(
        self, *args: str, check: bool = True, settings: Path | None = None, timeout: int = 120
    ) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, str(SCRIPT), *args, "--settings", str(settings or self.settings_file)]
        r = subprocess.run(argv, capture_output=True, text=True, env=self.env(), timeout=timeout)
        if check:
            assert r.returncode == 0, f"{argv}\n{r.stdout}\n{r.stderr}"
        return r

    def json(self, *args: str, settings: Path | None = None) -> Any:
        return json.loads(self.run(*args, "--json", settings=settings).stdout)

    def backup(self, *args: str) -> dict[str, Any]:
        out: dict[str, Any] = self.json("backup", *args)
        return out

    def restic(self, *args: str, check: bool = True, repo: Path | None = None) -> subprocess.CompletedProcess[str]:
        """restic itself on the host's repository (what a test looks at, never what it tests)."""
        argv = [RESTIC, "--repo", str(repo or self.repo), "--password-file", str(self.password_file), "--no-cache", *args]
        r = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "TZ": "UTC"}, timeout=120)
        if check:
            assert r.returncode == 0, f"{argv}\n{r.stdout}\n{r.stderr}"
        return r

    def snapshot_files(self, snapshot: str = "latest") -> list[str]:
        """Paths in a snapshot (restic ls), relative to the host's root."""
        lines = self.restic("ls", "--json", snapshot).stdout.splitlines()
        nodes = [json.loads(x) for x in lines[1:]]
        root = str(self.root) + "/"
        return sorted(n["path"][len(root) :] for n in nodes if n["path"].startswith(root) and n["type"] != "dir")

    def tree(self) -> dict[str, tuple[bytes, int, int]]:
        """Every file under vmail/ and etc/: content, mode, mtime (what must not change)."""
        out = {}
        for base in (self.vmail, self.etc):
            for p in sorted(base.rglob("*")):
                st = p.lstat()
                if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
                    data = os.readlink(p).encode() if stat.S_ISLNK(st.st_mode) else p.read_bytes()
                    out[str(p.relative_to(self.root))] = (data, st.st_mode, st.st_mtime_ns)
        return out

    def metrics(self) -> dict[str, float]:
        out = {}
        for line in self.textfile.read_text().splitlines():
            if line and not line.startswith("#"):
                name, value = line.split()
                out[name] = float(value)
        return out


def empty_repository(path: Path) -> Path:
    """A repository with PASSWORD made once per test module and copied for each host: restic
    init calibrates its key derivation (about 2 s here), every later command costs ~0.4 s."""
    password = path.parent / f"{path.name}.password"
    password.write_text(PASSWORD + "\n")
    password.chmod(0o600)
    argv = [RESTIC, "--repo", str(path), "--password-file", str(password), "--no-cache", "init"]
    subprocess.run(argv, check=True, capture_output=True, timeout=120)
    return path


def one_line_error(r: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lines = [x for x in r.stderr.strip().splitlines() if ": warning: " not in x]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("dcops-mail-backup: error: "), lines[0]
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def wrapper(host: Host, body: str) -> Path:
    """A `restic` first on the host's PATH: a shell snippet, then the real restic."""
    path = host.bin / "restic"
    path.write_text(f'#!/bin/sh\n{body}\nexec {RESTIC} "$@"\n')
    path.chmod(0o755)
    return path
