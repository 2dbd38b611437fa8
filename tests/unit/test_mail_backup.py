"""dcops-mail-backup (the mail_backup role's on-host script), run for real: real restic, local
repositories under tmp_path (and one over SFTP through a local sftp-server: no network).

Backup, list, check; retention by policy; deduplication; messages moved between and during
backups; the repository is encrypted and a damaged one is detected; merge-restore of one or
every mailbox (idempotent), unknown mailboxes; configuration restore with failing and passing
checks (postfix/doveconf/opendkim are not on this machine: the checks are stand-in commands);
settings, metrics textfile, lock; the role's and playbooks' static checks.
"""

from __future__ import annotations

import ast
import fcntl
import importlib.machinery
import importlib.util
import json
import os
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, VENV_BIN
from tests.exporters.procs import promtool_check_metrics
from tests.unit.mail_backup_host import (
    CONFIG,
    MESSAGES,
    NOT_SAVED,
    PASSWORD,
    RESTIC,
    SCRIPT,
    Host,
    empty_repository,
    one_line_error,
    wrapper,
)

ROLE = ROOT / "playbooks" / "roles" / "mail_backup"
SFTP_SERVER = Path("/usr/lib/openssh/sftp-server")

pytestmark = pytest.mark.skipif(shutil.which("restic") is None, reason="needs restic (apt-get install restic)")


def load_script() -> Any:
    loader = importlib.machinery.SourceFileLoader("dcops_mail_backup", str(SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec
    mod = importlib.util.module_from_spec(spec)
    sys.modules[loader.name] = mod  # dataclasses look their module up there
    loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return empty_repository(tmp_path_factory.mktemp("template") / "repo")


@pytest.fixture
def host(tmp_path: Path, repository: Path) -> Host:
    return Host(tmp_path).build(repository)


@pytest.fixture
def bare_host(tmp_path: Path) -> Host:
    """A host whose repository does not exist yet."""
    return Host(tmp_path).build()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, repository: Path) -> tuple[Host, dict[str, Any]]:
    """One host backed up once, through a restic wrapper that logs its argv and environment;
    the caller's environment holds a wrong RESTIC_PASSWORD and RESTIC_REPOSITORY. Read-only for the tests."""
    h = Host(tmp_path_factory.mktemp("shared")).build(repository)
    calls = h.root / "restic-calls"
    wrapper(h, f'echo "ARGV $*" >> {calls}; env | sed "s/^/ENV /" >> {calls}')
    h.extra_env = {"RESTIC_PASSWORD": "wrong", "RESTIC_REPOSITORY": "/nonexistent"}
    result = h.backup()
    h.extra_env = {}
    (h.bin / "restic").unlink()
    return h, result


def data_packs(host: Host, repo: Path) -> list[str]:
    """Pack files holding file contents only (restic cat index)."""
    out = []
    for index in host.restic("list", "index", repo=repo).stdout.split():
        for pack in json.loads(host.restic("cat", "index", index, repo=repo).stdout)["packs"]:
            if {b["type"] for b in pack["blobs"]} == {"data"}:
                out.append(pack["id"])
    return sorted(out)


# --------------------------------------------------------------------------- command line, settings


def test_help() -> None:
    for sub in ([], ["init"], ["backup"], ["check"], ["list"], ["restore"]):
        r = subprocess.run([sys.executable, str(SCRIPT), *sub, "--help"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "usage: dcops-mail-backup" in r.stdout


def test_every_setting_is_required_and_named(bare_host: Host) -> None:
    host = bare_host
    mod = load_script()
    keys = [k for k, _ in mod.SETTINGS_KEYS]
    assert sorted(keys) == sorted(host.settings), "the test host sets every key the script reads"
    may_be_empty = {k for k, empty in mod.SETTINGS_KEYS if empty}
    assert may_be_empty == {
        "DCOPS_MAIL_BACKUP_SFTP_COMMAND",
        "DCOPS_MAIL_BACKUP_TEXTFILE",
        "DCOPS_MAIL_RELOAD",
        "DCOPS_MAIL_RESYNC",
    }
    path = host.root / "s"
    for key in keys:
        with pytest.raises(mod.Failure, match=f"^{path}: {key} is not set$"):
            mod.load_settings(str(host.write_settings(path, **{key: None})))
        if key not in may_be_empty:
            with pytest.raises(mod.Failure, match=f"^{path}: {key} is empty$"):
                mod.load_settings(str(host.write_settings(path, **{key: ""})))
    bad = {
        "DCOPS_MAIL_BACKUP_KEEP_DAILY": ("-1", "integer >= 0"),
        "DCOPS_MAIL_VMAIL_UID": ("vmail", "integer >= 0"),
        "DCOPS_MAIL_BACKUP_CHECK_SUBSET": ("some", "n/t, x%"),
        "DCOPS_MAIL_VMAIL_DIR": ("var/vmail", "not an absolute path"),
        "DCOPS_MAIL_CONFIG_PATHS": ("/etc/postfix:etc/dovecot", "not an absolute path"),
        "DCOPS_MAIL_BACKUP_TEXTFILE": ("/var/lib/prometheus/mail.txt", ".prom"),
    }
    for key, (value, why) in bad.items():
        with pytest.raises(mod.Failure, match=f"{key}.*{why}" if key != "DCOPS_MAIL_BACKUP_CHECK_SUBSET" else key):
            mod.load_settings(str(host.write_settings(path, **{key: value})))
    zero = {f"DCOPS_MAIL_BACKUP_KEEP_{k}": "0" for k in ("DAILY", "WEEKLY", "MONTHLY")}
    with pytest.raises(mod.Failure, match="all 0"):
        mod.load_settings(str(host.write_settings(path, **zero)))
    path.write_text(path.read_text() + "DCOPS_MAIL_RELOAD=systemctl reload postfix\n")
    with pytest.raises(mod.Failure, match="must be quoted"):
        mod.load_settings(str(path))
    # As the sysadmin sees it: one line naming the key and the file, exit status 1.
    r = host.run("list", check=False, settings=host.write_settings(path, DCOPS_MAIL_BACKUP_REPOSITORY=None))
    one_line_error(r, str(path), "DCOPS_MAIL_BACKUP_REPOSITORY is not set")
    r = host.run("backup", "--json", check=False, settings=host.root / "nope")
    one_line_error(r, "nope", "no such settings file")
    assert json.loads(r.stdout) == {
        "ok": False,
        "error": f"{host.root / 'nope'}: no such settings file (the mail_backup role writes it)",
    }
    host.password_file.chmod(0o644)
    one_line_error(host.run("list", check=False), str(host.password_file), "readable by others", "0644")


# --------------------------------------------------------------------------- backup, list, check


def test_backup_list_check(shared: tuple[Host, dict[str, Any]]) -> None:
    h, result = shared
    assert result["ok"] and result["mailboxes"] == 3 and result["messages"] == 6
    assert result["files_new"] > 0 and result["bytes_added"] > 0 and result["snapshots_kept"] == 1
    assert result["host"] == socket.gethostname() and result["time"].endswith("Z") and result["seconds"] > 0
    assert result["config_missing"] == [str(h.root / "etc/not-there.conf")]
    assert len(result["snapshot"]) == 64 and result["short_id"] == result["snapshot"][:8]
    assert stat.S_IMODE(h.state.stat().st_mode) == 0o700 and stat.S_IMODE((h.state / "state.json").stat().st_mode) == 0o600

    files = h.snapshot_files(result["snapshot"])
    for box, messages in MESSAGES.items():
        user, domain = box.split("@")
        for rel in messages:
            assert f"vmail/{domain}/{user}/Maildir/{rel}" in files
    alice = "vmail/lab.test/alice/Maildir"
    for rel in ("dovecot-uidlist", "dovecot-keywords", "subscriptions", ".Sent/maildirfolder"):
        assert f"{alice}/{rel}" in files
    for rel in NOT_SAVED:
        assert f"{alice}/{rel}" not in files, f"{rel} is Dovecot's to rebuild"
    assert not [f for f in files if "/sieve/" in f or "/tmp/" in f]
    for rel in CONFIG:
        assert rel in files
    assert "etc/dovecot/private.pem" in files  # a symbolic link
    tags = json.loads(h.restic("snapshots", "--json").stdout)[0]
    assert tags["tags"] == ["dcops-mail"] and {"/etc/passwd", "/etc/group"} <= set(tags["paths"])

    listed = h.json("list")
    (row,) = listed["snapshots"]
    assert row["id"] == result["snapshot"] and row["mailboxes"] == 3 and row["messages"] == 6
    assert row["host"] == socket.gethostname() and row["time"] == result["time"]

    checked = h.json("check")
    assert checked["ok"] and checked["read"] == "10%" and checked["errors"] == []


def test_password_never_on_a_command_line_nor_in_an_environment(shared: tuple[Host, dict[str, Any]]) -> None:
    """The caller's wrong RESTIC_PASSWORD and RESTIC_REPOSITORY did not reach restic; the password only as a file."""
    h, _ = shared
    log = (h.root / "restic-calls").read_text()
    calls = [x for x in log.splitlines() if x.startswith("ARGV ")]
    assert len(calls) >= 2 and all(f"--password-file {h.password_file}" in x for x in calls)
    assert all(f"--repo {h.repo} " in x for x in calls)
    assert PASSWORD not in log and "correct horse" not in log
    assert not [x for x in log.splitlines() if x.startswith("ENV RESTIC_")]


def test_the_repository_is_encrypted(shared: tuple[Host, dict[str, Any]]) -> None:
    h, _ = shared
    secrets = [b"hello", b"new one", "Xin chào".encode(), "Tiếng Việt".encode(), b"Subject", b"alice", b"bob", b"carol"]
    secrets += [b"lab.test", b"so-ttt", b"Maildir", b"vmail", b"PRIVATE KEY", b"myhostname", b"dcops-mail", PASSWORD.encode()]
    files = [p for p in h.repo.rglob("*") if p.is_file()]
    assert len(files) > 5
    for p in files:
        data = p.read_bytes()
        found = [s for s in secrets if s in data]
        assert not found, f"{p.relative_to(h.repo)} holds {found} in clear"


def test_wrong_password_is_refused(shared: tuple[Host, dict[str, Any]], tmp_path: Path) -> None:
    h, _ = shared
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not the password\n")
    wrong.chmod(0o600)
    settings = h.write_settings(
        tmp_path / "settings", DCOPS_MAIL_BACKUP_PASSWORD_FILE=str(wrong), DCOPS_MAIL_BACKUP_STATE_DIR=str(tmp_path / "state")
    )
    for cmd in ("init", "backup"):
        r = h.run(cmd, check=False, settings=settings)
        one_line_error(r, "wrong password", str(h.repo))
    assert len(json.loads(h.restic("snapshots", "--json").stdout)) == 1, "nothing added, nothing re-initialised"


def test_init_is_idempotent(bare_host: Host) -> None:
    host = bare_host
    first = host.json("init")
    assert first["created"] and len(first["id"]) == 64 and (host.repo / "config").is_file()
    keys = sorted(p.name for p in (host.repo / "keys").iterdir())
    assert host.run("init").stdout.strip() == first["id"], "an existing repository is kept: its id printed"
    assert sorted(p.name for p in (host.repo / "keys").iterdir()) == keys


def test_retention_by_policy(host: Host) -> None:
    """restic forget's semantics: the newest snapshot of each of the last N days, weeks, months.
    Only the script's tag on this host is forgotten."""
    host.write_settings(DCOPS_MAIL_BACKUP_KEEP_DAILY="2", DCOPS_MAIL_BACKUP_KEEP_WEEKLY="2", DCOPS_MAIL_BACKUP_KEEP_MONTHLY="2")
    me = socket.gethostname()
    times = [
        "2026-01-10 02:15:00",
        "2026-02-10 02:15:00",
        "2026-03-08 02:15:00",  # Sunday, week 10
        "2026-03-10 02:00:00",  # Tuesday, week 11
        "2026-03-10 03:00:00",
    ]
    for t in times:
        host.restic("backup", "--quiet", "--tag", "dcops-mail", "--host", me, "--time", t, str(host.vmail))
    host.restic(
        "backup", "--quiet", "--tag", "dcops-mail", "--host", "other-host", "--time", "2025-01-01 00:00:00", str(host.vmail)
    )
    host.restic("backup", "--quiet", "--tag", "not-ours", "--host", me, "--time", "2025-01-01 00:00:00", str(host.vmail))

    result = host.backup("--time", "2026-03-12 02:15:00")  # Thursday, week 11
    assert result["snapshots_kept"] == 4 and len(result["forgotten"]) == 2  # 2026-01-10, 2026-03-10 02:00
    listed = [(x["host"], x["time"]) for x in host.json("list")["snapshots"]]
    assert listed == [
        ("other-host", "2025-01-01T00:00:00Z"),  # another host's: never forgotten by this one
        (me, "2026-02-10T02:15:00Z"),  # the newest of February (monthly)
        (me, "2026-03-08T02:15:00Z"),  # the newest of week 10 (weekly)
        (me, "2026-03-10T03:00:00Z"),  # the newest of the 10th (daily)
        (me, "2026-03-12T02:15:00Z"),  # daily
    ]
    tags = [x["tags"] for x in json.loads(host.restic("snapshots", "--json").stdout)]
    assert tags.count(["not-ours"]) == 1, "a snapshot without the script's tag is never forgotten"
    assert host.metrics()["dcops_mail_backup_repository_snapshots"] == 4


def test_dedup_second_backup_adds_almost_nothing(host: Host) -> None:
    big = host.maildir("bob@lab.test") / "cur" / "1700000011.M7P1.mail:2,S"
    big.write_bytes(b"Subject: attachment\r\n\r\n" + os.urandom(300_000))
    first = host.backup()
    assert first["bytes_added"] > 300_000
    second = host.backup()
    assert second["files_new"] == 0 and second["files_changed"] == 0 and second["files_unmodified"] == first["files_new"]
    assert second["bytes_added"] < 2_000, second
    assert second["messages"] == 7 and second["forgotten"] == [first["snapshot"]], "one a day is kept: the newest"


def test_a_message_moved_from_new_to_cur_between_backups_is_not_lost(host: Host) -> None:
    alice = host.maildir("alice@lab.test")
    body = b"Subject: three\r\n\r\n" + os.urandom(200_000)
    (alice / "new/1700000002.M3P1.mail,S=40,W=41").write_bytes(body)
    first = host.backup("--time", "2026-01-01 02:15:00")  # another day: the retention keeps both
    (alice / "new/1700000002.M3P1.mail,S=40,W=41").rename(alice / "cur/1700000002.M3P1.mail,S=40,W=41:2,S")
    second = host.backup()
    assert second["messages"] == 6 and second["bytes_added"] < 20_000, "the moved message is deduplicated"
    files = host.snapshot_files(second["snapshot"])
    assert "vmail/lab.test/alice/Maildir/cur/1700000002.M3P1.mail,S=40,W=41:2,S" in files
    assert "vmail/lab.test/alice/Maildir/new/1700000002.M3P1.mail,S=40,W=41" not in files
    shutil.rmtree(alice)
    host.run("restore", "latest", "--mailbox", "alice@lab.test")
    assert (alice / "cur/1700000002.M3P1.mail,S=40,W=41:2,S").read_bytes() == body
    assert not list((alice / "new").iterdir())
    host.run("restore", first["snapshot"][:8], "--mailbox", "alice@lab.test")
    assert not list((alice / "new").iterdir()), "the older copy (in new/) is the same message: not restored twice"


def test_a_message_moved_during_the_walk_is_still_saved(host: Host) -> None:
    """Dovecot moves new/X to cur/X:2,S while restic walks the folder: restic reads it in neither
    place; the script sees it left new/ and makes a second, incremental pass."""
    alice = host.maildir("alice@lab.test")
    new, cur = alice / "new/1700000002.M3P1.mail,S=40,W=41", alice / "cur/1700000002.M3P1.mail,S=40,W=41:2,S"
    hold, mark = host.root / "in-flight", host.root / "moved"
    (host.bin / "restic").write_text(
        "#!/bin/sh\n"
        f'case " $* " in *" backup "*) if [ ! -e {mark} ]; then touch {mark}; mv "{new}" {hold}; {RESTIC} "$@"; rc=$?; '
        f'mv {hold} "{cur}"; exit $rc; fi;; esac\nexec {RESTIC} "$@"\n'
    )
    (host.bin / "restic").chmod(0o755)
    result = host.backup()
    assert mark.exists() and cur.exists()
    assert result["superseded"] and result["messages"] == 6
    (row,) = host.json("list")["snapshots"]
    assert row["id"] == result["snapshot"], "the first, incomplete snapshot is forgotten"
    files = [f for f in host.snapshot_files() if "M3P1" in f]
    assert files == ["vmail/lab.test/alice/Maildir/cur/1700000002.M3P1.mail,S=40,W=41:2,S"]


# --------------------------------------------------------------------------- restore of mailboxes


def test_restore_one_mailbox_merges_and_is_idempotent(host: Host) -> None:
    host.backup()
    alice, bob = host.maildir("alice@lab.test"), host.maildir("bob@lab.test")
    count_before = sum(1 for sub in ("cur", "new", ".Sent/cur") for _ in (alice / sub).iterdir())
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

    r = host.run("restore", "latest", "--mailbox", "alice@lab.test")
    assert "alice@lab.test: 3 messages restored, 1 already present" in r.stdout
    for rel, data in MESSAGES["alice@lab.test"].items():
        if "M2P1" in rel:
            continue
        p = alice / rel
        assert p.read_bytes() == data, rel
        assert p.stat().st_mtime == 1700000000 + len(data), "received date (mtime) kept"
        assert stat.S_IMODE(p.stat().st_mode) == 0o600 and (p.stat().st_uid, p.stat().st_gid) == (os.getuid(), os.getgid())
    assert not (alice / "cur/1700000001.M2P1.mail,S=40,W=41:2,RS").exists(), "no duplicate of a message whose flags changed"
    assert (alice / "cur/1700000001.M2P1.mail,S=40,W=41:2,FRS").exists()
    assert (alice / "new/1800000000.M9P1.mail").read_bytes() == b"Subject: arrived after the backup\r\n\r\n"
    assert sum(1 for sub in ("cur", "new", ".Sent/cur") for _ in (alice / sub).iterdir()) == count_before + 1
    assert (alice / ".Sent/maildirfolder").exists() and (alice / ".Sent/tmp").is_dir() and (alice / ".Sent/new").is_dir()
    assert not list((alice / "tmp").glob("*dcops-restore*")) and not list((alice / ".Sent/tmp").iterdir())
    assert not (bob / "cur/1700000010.M5P1.mail:2,").exists(), "other mailboxes untouched"
    assert host.log.read_text().splitlines() == ["force-resync alice@lab.test *", "quota recalc alice@lab.test"]
    assert list(host.restore_dir.iterdir()) == [], "the staging folder is removed"

    before = host.tree()
    r = host.run("restore", "latest", "--mailbox", "alice@lab.test")
    assert "alice@lab.test: 0 messages restored, 4 already present" in r.stdout
    assert host.tree() == before, "the second restore changes nothing (no duplicate files)"
    assert len(host.log.read_text().splitlines()) == 2, "nothing restored: no resync"
    out = host.json("restore", "latest", "--mailbox", "alice@lab.test")
    assert out["mailboxes"] == {"alice@lab.test": {"restored": 0, "present": 4}} and out["resynced"] == []


def test_restore_every_mailbox_into_an_empty_host(host: Host) -> None:
    host.backup()
    shutil.rmtree(host.vmail)
    r = host.run("restore", "latest")
    assert "alice@lab.test: 4 messages restored, 0 already present" in r.stdout
    assert "carol@so-ttt.lab.test: 1 messages restored" in r.stdout
    for box, files in MESSAGES.items():
        for rel, data in files.items():
            p = host.maildir(box) / rel
            assert p.read_bytes() == data and p.stat().st_mtime == 1700000000 + len(data)
        for sub in ("cur", "new", "tmp"):
            assert (host.maildir(box) / sub).is_dir()
    alice = host.maildir("alice@lab.test")
    assert (alice / "dovecot-uidlist").read_bytes() == b"3 V1700000000 N4\n"
    assert (alice / "subscriptions").exists() and (alice / "dovecot-keywords").exists()
    assert not [rel for rel in NOT_SAVED if (alice / rel).exists()]
    assert stat.S_IMODE(host.maildir("bob@lab.test").parent.stat().st_mode) == 0o700
    resynced = [x.split()[1] for x in host.log.read_text().splitlines() if x.startswith("force-resync")]
    assert resynced == sorted(MESSAGES)
    assert not (host.root / "reloaded").exists(), "no configuration restored: no reload"


def test_unknown_mailbox_changes_nothing(host: Host) -> None:
    result = host.backup()
    (host.maildir("alice@lab.test") / "new/1700000002.M3P1.mail,S=40,W=41").unlink()
    before = host.tree()
    r = host.run("restore", "latest", "--mailbox", "alice@lab.test", "--mailbox", "mallory@lab.test", check=False)
    one_line_error(r, "mallory@lab.test", "no such mailbox", result["short_id"])
    one_line_error(host.run("restore", "latest", "--mailbox", "../x@lab.test", check=False), "../x@lab.test", "not a mailbox")
    one_line_error(host.run("restore", "0123abcd", check=False), "0123abcd", "no such snapshot")
    assert host.tree() == before
    assert list(host.restore_dir.iterdir()) == [] and not host.log.exists()


def test_interrupted_runs_clean_up_and_are_recorded(shared: tuple[Host, dict[str, Any]], tmp_path: Path) -> None:
    """SIGTERM (systemd stopping the unit) while restic runs: the staging folder is removed, a
    backup is recorded as failed, exit status 1 with one line."""
    h, _ = shared
    restore_dir, textfile = tmp_path / "restore", tmp_path / "metrics.prom"
    settings = h.write_settings(
        tmp_path / "settings",
        DCOPS_MAIL_BACKUP_STATE_DIR=str(tmp_path / "state"),
        DCOPS_MAIL_BACKUP_RESTORE_DIR=str(restore_dir),
        DCOPS_MAIL_BACKUP_TEXTFILE=str(textfile),
    )
    started = tmp_path / "started"
    wrapper(h, f'case " $* " in *" restore "*|*" backup "*) touch {started}; exec sleep 60;; esac')
    try:
        for cmd in ("restore", "backup"):
            started.unlink(missing_ok=True)
            argv = [sys.executable, str(SCRIPT), cmd, *(["latest"] if cmd == "restore" else []), "--settings", str(settings)]
            p = subprocess.Popen(argv, env=h.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                deadline = time.monotonic() + 30
                while not started.exists() and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert started.exists(), "restic was started"
                p.terminate()
                _, err = p.communicate(timeout=30)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            assert p.returncode == 1 and err.strip() == "dcops-mail-backup: error: interrupted by signal SIGTERM", err
            if cmd == "restore":
                assert list(restore_dir.iterdir()) == [], "the staging folder is removed"
    finally:
        (h.bin / "restic").unlink()
    assert "dcops_mail_backup_last_run_ok 0" in textfile.read_text()
    assert "dcops_mail_backup_last_success_timestamp_seconds 0" in textfile.read_text()


# --------------------------------------------------------------------------- a damaged repository


def _flip_a_data_pack(h: Host, repo: Path) -> str:
    pack = data_packs(h, repo)[0]
    path = repo / "data" / pack[:2] / pack
    path.chmod(0o600)  # restic writes its files read-only
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 16):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    return pack


def _remove_a_data_pack(h: Host, repo: Path) -> str:
    pack = data_packs(h, repo)[0]
    (repo / "data" / pack[:2] / pack).unlink()
    return pack


def _remove_the_index(h: Host, repo: Path) -> str:
    for p in (repo / "index").iterdir():
        p.unlink()
    return "not referenced in any index"


@pytest.mark.parametrize(
    "damage", [_flip_a_data_pack, _remove_a_data_pack, _remove_the_index], ids=["pack-altered", "pack-removed", "index-removed"]
)
def test_a_damaged_repository_is_detected(shared: tuple[Host, dict[str, Any]], tmp_path: Path, damage: Any) -> None:
    h, _ = shared
    repo = tmp_path / "repo"
    shutil.copytree(h.repo, repo)
    textfile = tmp_path / "metrics.prom"
    settings = h.write_settings(
        tmp_path / "settings",
        DCOPS_MAIL_BACKUP_REPOSITORY=str(repo),
        DCOPS_MAIL_BACKUP_STATE_DIR=str(tmp_path / "state"),
        DCOPS_MAIL_BACKUP_TEXTFILE=str(textfile),
    )
    named = damage(h, repo)
    if damage is _flip_a_data_pack:
        assert h.run("check", "--subset", "none", settings=settings).returncode == 0, "the structure is intact"
        r = h.run("check", "--read-data", "--json", check=False, settings=settings)
        line = one_line_error(r, str(repo), named, "Pack ID does not match", f"data/{named[:2]}/{named}")
    else:  # found without reading data (reading a missing pack is retried for minutes)
        r = h.run("check", "--subset", "none", "--json", check=False, settings=settings)
        line = one_line_error(r, str(repo), named)
    assert "found errors" in line
    out = json.loads(r.stdout)
    assert out["ok"] is False and out["errors"] and out["error"] == line.split("error: ", 1)[1]
    assert "dcops_mail_backup_last_check_ok 0" in textfile.read_text()


# --------------------------------------------------------------------------- restore of the configuration


def test_config_restore_refused_by_its_check_changes_nothing(host: Host) -> None:
    result = host.backup()
    (host.etc / "postfix/main.cf").write_bytes(b"myhostname = changed.lab.test\n")
    (host.maildir("alice@lab.test") / "new/1700000002.M3P1.mail,S=40,W=41").unlink()
    before = host.tree()
    settings = host.root / "settings-check"
    host.write_settings(settings, DCOPS_MAIL_POSTFIX_CHECK="sh -c 'echo postfix/postconf: fatal: bad main.cf >&2; exit 1' {dir}")
    r = host.run("restore", "latest", "--config", "--all-mailboxes", check=False, settings=settings)
    one_line_error(r, "postfix", "fatal: bad main.cf", result["short_id"])
    assert host.tree() == before
    assert not (host.root / "reloaded").exists() and not host.log.exists()
    assert not [p.name for p in host.etc.rglob("*") if "dcops-restore" in p.name or "dcops-pre-restore" in p.name], (
        "no staging or aside copies"
    )
    assert list(host.restore_dir.iterdir()) == []

    host.write_settings(settings, DCOPS_MAIL_DOVECOT_CHECK="false")
    one_line_error(host.run("restore", "latest", "--config", check=False, settings=settings), "dovecot")
    host.write_settings(settings, DCOPS_MAIL_POSTFIX_CHECK="no-such-postfix-binary {dir}")
    one_line_error(
        host.run("restore", "latest", "--config", check=False, settings=settings), "no-such-postfix-binary", "not found"
    )
    assert host.tree() == before


def test_config_restore_checks_the_staged_copy_then_swaps(host: Host) -> None:
    host.backup()
    (host.etc / "postfix/main.cf").write_bytes(b"myhostname = changed.lab.test\n")
    (host.etc / "postfix/extra.cf").write_bytes(b"added after the backup\n")
    (host.etc / "opendkim/keys/lab.test.private").unlink()
    seen = host.root / "checked"
    host.write_settings(
        DCOPS_MAIL_POSTFIX_CHECK=f"sh -c 'cp $0/main.cf {seen} && test ! -e $0/extra.cf' {{dir}}",
        DCOPS_MAIL_RELOAD=f"touch {host.root / 'reloaded'};true",
    )
    r = host.run("restore", "latest", "--config")
    assert seen.read_bytes() == CONFIG["etc/postfix/main.cf"], "the check saw the snapshot's main.cf"
    assert (host.etc / "postfix/main.cf").read_bytes() == CONFIG["etc/postfix/main.cf"]
    key = host.etc / "opendkim/keys/lab.test.private"
    assert key.read_bytes() == CONFIG["etc/opendkim/keys/lab.test.private"]
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and key.stat().st_uid == os.getuid()
    assert os.readlink(host.etc / "dovecot/private.pem") == "/etc/ssl/private/dcops-mail.key"
    assert not (host.etc / "postfix/extra.cf").exists()
    (aside,) = host.etc.glob("postfix.dcops-pre-restore-*")
    assert (aside / "main.cf").read_bytes() == b"myhostname = changed.lab.test\n" and (aside / "extra.cf").exists()
    assert len(list(host.etc.glob("*.dcops-pre-restore-*"))) == 4  # postfix, dovecot, opendkim, opendkim.conf
    assert len(list(host.etc.glob("ssl/private/dcops-mail.key.dcops-pre-restore-*"))) == 1
    assert "configuration restored" in r.stdout and "previous configuration kept aside" in r.stdout and str(aside) in r.stdout
    assert (host.root / "reloaded").exists()
    assert not host.log.exists(), "--config alone restores no mailbox"
    assert not list(host.etc.glob(".*dcops-restore*")) and list(host.restore_dir.iterdir()) == []


# --------------------------------------------------------------------------- metrics, lock, sftp


def test_metrics_textfile_on_success_and_failure(host: Host) -> None:
    t0 = time.time()
    host.backup()
    text = host.textfile.read_text()
    assert promtool_check_metrics(text.encode()) == ""
    assert stat.S_IMODE(host.textfile.stat().st_mode) == 0o644
    m = host.metrics()
    assert (
        m["dcops_mail_backup_last_run_ok"] == 1 and t0 - 1 <= m["dcops_mail_backup_last_success_timestamp_seconds"] <= time.time()
    )
    assert m["dcops_mail_backup_last_snapshot_messages"] == 6 and m["dcops_mail_backup_last_snapshot_mailboxes"] == 3
    assert m["dcops_mail_backup_last_run_added_bytes"] > 0 and m["dcops_mail_backup_repository_snapshots"] == 1
    assert m["dcops_mail_backup_last_run_duration_seconds"] > 0 and m["dcops_mail_backup_last_check_timestamp_seconds"] == 0
    assert "dcops_mail_backup_last_check_ok" not in m, "no check yet"

    broken = host.root / "not-a-repository"
    broken.write_text("a file\n")
    r = host.run("backup", check=False, settings=host.write_settings(host.root / "s", DCOPS_MAIL_BACKUP_REPOSITORY=str(broken)))
    one_line_error(r, str(broken))
    assert promtool_check_metrics(host.textfile.read_text().encode()) == ""
    after = host.metrics()
    assert after["dcops_mail_backup_last_run_ok"] == 0
    for same in ("last_success_timestamp_seconds", "last_snapshot_messages", "repository_snapshots"):
        assert after[f"dcops_mail_backup_{same}"] == m[f"dcops_mail_backup_{same}"], same
    assert not [p for p in host.textfile.parent.iterdir() if p != host.textfile], "written atomically (no temporary left)"

    host.run("check")
    m = host.metrics()
    assert m["dcops_mail_backup_last_check_ok"] == 1 and m["dcops_mail_backup_last_check_timestamp_seconds"] >= t0
    assert m["dcops_mail_backup_last_run_ok"] == 0, "a check is not a backup run"
    assert promtool_check_metrics(host.textfile.read_text().encode()) == ""


def test_lock_two_runs_never_overlap(host: Host) -> None:
    host.state.mkdir(mode=0o700)
    fd = os.open(host.state / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, f"pid {os.getpid()}, backup since 2026-01-01T02:15:00Z\n".encode())
        t = time.monotonic()
        r = host.run("backup", "--lock-wait", "0.5", check=False)
        assert time.monotonic() - t >= 0.5
        one_line_error(r, "another dcops-mail-backup is running", f"pid {os.getpid()}", str(host.state / "lock"))
        assert not list((host.repo / "snapshots").iterdir()) and not (host.state / "state.json").exists(), "nothing done"
        threading.Timer(1.0, fcntl.flock, (fd, fcntl.LOCK_UN)).start()
        t = time.monotonic()
        host.run("init", "--lock-wait", "30")
        assert time.monotonic() - t >= 1.0, "waited for the other run"
    finally:
        os.close(fd)
    assert (host.repo / "config").is_file()


@pytest.mark.skipif(not SFTP_SERVER.exists(), reason="needs openssh-sftp-server")
def test_sftp_repository_through_the_sftp_command(bare_host: Host) -> None:
    """restic speaks SFTP to the command of DCOPS_MAIL_BACKUP_SFTP_COMMAND (ssh in production;
    here the sftp-server itself, over a pipe: no network). The first backup makes the repository."""
    host = bare_host
    offhost = host.root / "backup-host" / "mail"
    host.write_settings(
        DCOPS_MAIL_BACKUP_REPOSITORY=f"sftp:dcops@backup.invalid:{offhost}", DCOPS_MAIL_BACKUP_SFTP_COMMAND=str(SFTP_SERVER)
    )
    result = host.backup()
    assert result["messages"] == 6 and (offhost / "config").is_file()
    shutil.rmtree(host.maildir("carol@so-ttt.lab.test"))
    assert (
        "carol@so-ttt.lab.test: 1 messages restored" in host.run("restore", "latest", "--mailbox", "carol@so-ttt.lab.test").stdout
    )


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


TEMPLATE = ROLE / "templates" / "dcops-mail-backup.default.j2"


def test_role_settings_file_matches_the_script(tmp_path: Path) -> None:
    """The role writes exactly the keys the script requires, and every value it quotes reads back as it was."""
    import jinja2
    import jinja2.meta

    mod = load_script()
    source = TEMPLATE.read_text()
    keys = [line.split("=", 1)[0] for line in source.splitlines() if "=" in line and not line.startswith("#")]
    assert sorted(keys) == sorted(k for k, _ in mod.SETTINGS_KEYS)
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    quoted: list[str] = []

    def quote(v: object) -> str:
        quoted.append(str(v))
        return shlex.quote(str(v))

    env.filters["quote"] = quote
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    tricky = "it's \"odd\" {mailbox} '*'; $HOME"
    values: dict[str, Any] = {}
    for name in jinja2.meta.find_undeclared_variables(env.parse(source)):
        value = defaults.get(name, tricky)
        values[name] = tricky if isinstance(value, str) and "{{" in value else value
    text = env.from_string(source).render(values)
    (tmp_path / "settings").write_text(text)
    parsed = mod.read_settings_file(str(tmp_path / "settings"))
    assert sorted(parsed) == sorted(keys) and list(parsed.values()) == quoted


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
