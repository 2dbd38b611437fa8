"""Mail of the lab province with real protocol clients from a commune host.

Needs root (the lab). site.yml (which includes dns.yml, mail.yml and mail-backup.yml) is
converged once per session by the ``converged`` fixture of tests/lab/conftest.py. The SMTP and
IMAP clients (tests/lab/mailclient.py, Python's smtplib/imaplib, TLS verified against the
internal CA) run ON the commune host an-phu, so every message crosses the data network, the
district's WireGuard leg and the firewalls; DKIM signatures are verified there by dkimpy's
``dkimverify``, which fetches the key from the data centre's DNS. Every packet goes to lab hosts.

The order matters and is the file's order: the fail2ban ban of an-phu comes last (and is lifted).
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import testinfra

from dcops import DEFAULT_INVENTORY, lab_dir
from dcops.converge import ConvergeResult, converge
from dcops.inventory import load
from dcops.mail import dkim, labsecrets
from dcops.render.maildns import mail_dns
from tests.lab.helpers import dcops

pytestmark = pytest.mark.lab

INV = load(DEFAULT_INVENTORY).inventory
CODE = INV.province.code
SSH_CONFIG = lab_dir(CODE) / "ssh_config"
MAIL_HOST = next(s for s in INV.services if s.type.value == "mail").hosts[0]
MAIL_NAME = f"mail.{INV.province.domain}"
CLIENT = "an-phu"  # a commune behind luc-yen: data network + WireGuard leg + firewalls
CLIENT_ADDR = str(next(h.address for _, h in INV.hosts() if h.name == CLIENT))
A = "giamdoc@stttt.lab.test"  # agency A (Sở TT&TT)
B = "chutich@lucyen.lab.test"  # agency B (UBND huyện Lục Yên)
SMALL = "hopthunho@vanyen.lab.test"  # 1 MiB quota
# a sender outside the province (mail from outside reaches the MX on port 25 without a login)
OUTSIDE = "sender@outside.invalid"
CLIENT_CODE = (Path(__file__).parent / "mailclient.py").read_text()


def _ssh(host: str, *cmd: str, stdin: str | bytes = "", timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    data = stdin.encode() if isinstance(stdin, str) else stdin
    args = ["ssh", "-F", str(SSH_CONFIG), host, *cmd]
    return subprocess.run(args, input=data, capture_output=True, timeout=timeout, check=False)


def client(*args: str, timeout: float = 120) -> dict[str, Any]:
    """Run mailclient.py on the commune host; its JSON answer."""
    p = _ssh(CLIENT, "python3", "-", *args, stdin=CLIENT_CODE, timeout=timeout)
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 0, f"mailclient {args[0]} on {CLIENT}: rc={p.returncode}\n{p.stdout!r}\n{err}"
    result: dict[str, Any] = json.loads(p.stdout.decode().strip().splitlines()[-1])
    return result


def mailhost() -> Any:
    return testinfra.get_host(f"ssh://{MAIL_HOST}", ssh_config=str(SSH_CONFIG), sudo=True)


def subject(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def pw(converged: dict[str, ConvergeResult]) -> dict[str, str]:
    """Passwords of the lab's mailboxes (the lab's handover file, written by the converge)."""
    first = converged.get("first")
    if first is not None:
        assert first.ok, f"site.yml failed: {first.failures}"
    known = labsecrets.passwords(CODE)
    for address in (A, B, SMALL):
        assert address in known, f"{address} has no password in {labsecrets.handover_path(CODE)}"
    return known


@pytest.fixture(autouse=True)
def not_banned(pw: dict[str, str]) -> Iterator[None]:
    """The refusal tests are failures to fail2ban too (relay, no AUTH): lift any ban of the client
    before each test and after it, once fail2ban has read the test's log lines (it reads the log
    a moment later), so that each test sees the server, not an earlier test's ban."""
    h = mailhost()
    h.run(f"fail2ban-client unban {CLIENT_ADDR}")
    yield
    time.sleep(3)
    h.run(f"fail2ban-client unban {CLIENT_ADDR}")


def send(pw: dict[str, str], *, user: str | None, frm: str, to: str, subj: str, port: int = 587, tls: str = "starttls",
         size: int = 0, password: str | None = None) -> dict[str, Any]:
    secret = password if password is not None else (pw[user] if user else "-")
    return client("send", MAIL_NAME, str(port), tls, user or "-", secret, frm, to, subj, str(size))


def fetch(pw: dict[str, str], user: str, subj: str, wait: float = 60) -> bytes:
    r = client("imap-fetch", MAIL_NAME, user, pw[user], subj, str(wait), timeout=wait + 60)
    assert r["found"], f"{subj} not in {user}'s INBOX after {wait:.0f} s"
    return base64.b64decode(r["raw"])


def queue_ids() -> list[str]:
    out = mailhost().run("postqueue -j").stdout
    return [json.loads(line)["queue_id"] for line in out.splitlines() if line.strip()]


# ---------------------------------------------------------------------------- the server


def test_mail_services_running_and_configs_valid(pw: dict[str, str]) -> None:
    h = mailhost()
    for unit in ("postfix", "dovecot", "opendkim", "fail2ban"):
        assert h.service(unit).is_running and h.service(unit).is_enabled, unit
    assert h.run("postfix check").rc == 0
    assert h.run("doveconf -n").rc == 0
    for port in (25, 465, 587, 993):
        assert h.socket(f"tcp://0.0.0.0:{port}").is_listening, port
    jails = h.run("fail2ban-client status").stdout
    assert "postfix" in jails and "dovecot" in jails, jails


def test_dns_serves_every_agency_record(pw: dict[str, str]) -> None:
    """MX, SPF, DKIM and DMARC from the data centre's DNS, as rendered from the inventory."""
    keys = dkim.public_keys(INV)
    fragments = mail_dns(INV, keys)
    for a in INV.agencies:
        mx = _ssh(CLIENT, "dig", "+short", "MX", a.domain).stdout.decode().split()
        assert mx == ["10", f"{MAIL_NAME}."], (a.domain, mx)
        spf = _ssh(CLIENT, "dig", "+short", "TXT", a.domain).stdout.decode()
        assert "v=spf1" in spf and "-all" in spf, (a.domain, spf)
        k = keys[a.domain]
        txt = _ssh(CLIENT, "dig", "+short", "TXT", f"{k.selector}._domainkey.{a.domain}").stdout.decode()
        assert "".join(part.strip('"') for part in txt.split()) == k.record().replace(" ", ""), (a.domain, txt)
        dmarc = _ssh(CLIENT, "dig", "+short", "TXT", f"_dmarc.{a.domain}").stdout.decode()
        assert "v=DMARC1" in dmarc, (a.domain, dmarc)
        assert f"{a.domain}.zone" in fragments
    addr = _ssh(CLIENT, "dig", "+short", "A", MAIL_NAME).stdout.decode().split()
    assert addr == [str(INV.service_address(next(s for s in INV.services if s.type.value == "mail")))]


# ---------------------------------------------------------------------------- delivery and DKIM


@pytest.fixture(scope="module")
def delivered(pw: dict[str, str]) -> bytes:
    """A message from A to B, submitted on 587 with STARTTLS, read back by B over IMAPS."""
    subj = subject("a2b")
    r = send(pw, user=A, frm=A, to=B, subj=subj)
    assert r["ok"], r
    return fetch(pw, B, subj)


def test_submission_a_to_b_delivered_and_read_over_imaps(delivered: bytes) -> None:
    assert b"Kinh" in delivered or "Kính".encode() in delivered
    assert f"From: {A}".encode() in delivered


def test_submission_on_465_with_implicit_tls(pw: dict[str, str]) -> None:
    subj = subject("smtps")
    r = send(pw, user=B, frm=B, to=A, subj=subj, port=465, tls="ssl")
    assert r["ok"], r
    assert fetch(pw, A, subj)


def test_dkim_signature_verified_by_a_verifier(delivered: bytes) -> None:
    """dkimpy on the commune host checks the signature with the key it finds in the DNS."""
    domain = A.split("@")[1]
    assert f"d={domain}".encode() in delivered
    ok = _ssh(CLIENT, "dkimverify", stdin=delivered)
    assert ok.returncode == 0 and b"signature ok" in ok.stdout, ok.stdout + ok.stderr
    tampered = delivered.replace("Kính gửi".encode(), b"Kinh gui")
    assert tampered != delivered
    bad = _ssh(CLIENT, "dkimverify", stdin=tampered)
    # dkimpy refuses the altered body: its hash no longer matches the signed bh= value
    assert bad.returncode != 0 and b"body hash mismatch" in bad.stderr, bad.stdout + bad.stderr


# ---------------------------------------------------------------------------- refusals


def test_unauthenticated_relay_to_outside_refused(pw: dict[str, str]) -> None:
    # the recipient is in .invalid (RFC 2606): even a broken server could not send it anywhere
    r = send(pw, user=None, frm="someone@outside.invalid", to="victim@elsewhere.invalid", subj=subject("relay"),
             port=25, tls="plain")
    assert not r["ok"] and r["stage"] == "rcpt" and r["code"] == 554 and "Relay access denied" in r["error"], r


@pytest.mark.parametrize("claimed", ["giamdoc@stttt.lab.test", "GiamDoc@STTTT.lab.test", "admin@lab.test", "x@mail.lab.test"])
def test_unauthenticated_sender_claiming_a_province_domain_refused(pw: dict[str, str], claimed: str) -> None:
    """From a commune host, an SMTP client that has not logged in cannot send as an official of
    the province (any agency domain, the province domain or a subdomain, in any case) to an official."""
    subj = subject("spoof")
    r = send(pw, user=None, frm=claimed, to=B, subj=subj, port=25, tls="starttls")
    assert not r["ok"] and r["code"] == 554 and "must be submitted with a login" in r["error"], r
    assert client("imap-count", MAIL_NAME, B, pw[B], subj)["count"] == 0


def test_mail_from_outside_the_province_still_delivered(pw: dict[str, str]) -> None:
    """The MX keeps taking mail from the rest of the world for the province's mailboxes."""
    subj = subject("inbound")
    r = send(pw, user=None, frm=OUTSIDE, to=B, subj=subj, port=25, tls="starttls")
    assert r["ok"], r
    assert fetch(pw, B, subj)


def test_submission_without_login_refused(pw: dict[str, str]) -> None:
    r = send(pw, user=None, frm=A, to=B, subj=subject("noauth"))
    assert not r["ok"] and r["code"] in (530, 554), r


def test_auth_before_starttls_refused(pw: dict[str, str]) -> None:
    r = client("auth-plain-first", MAIL_NAME, "587", A, pw[A])
    assert "auth" not in r["features"] and "starttls" in r["features"], r
    assert r["code"] in (503, 530, 538), r


def test_sender_login_mismatch_refused(pw: dict[str, str]) -> None:
    r = send(pw, user=A, frm=B, to=A, subj=subject("mismatch"))
    assert not r["ok"] and r["code"] == 553 and "not owned by user" in r["error"], r


def test_over_quota_refused_or_bounced_with_552(pw: dict[str, str]) -> None:
    """1.5 MB into a 1 MiB mailbox: refused at RCPT by the quota policy, or bounced by LMTP with
    552 5.2.2 to the sender, never stored; a small message still fits."""
    subj = subject("big")
    r = send(pw, user=A, frm=A, to=SMALL, subj=subj, size=1_500_000)
    if r["ok"]:
        r2 = client("imap-fetch", MAIL_NAME, A, pw[A], subj, "60", "TEXT", timeout=120)
        assert r2["found"], f"accepted, but no bounce of {subj} reached {A}"
        bounce = base64.b64decode(r2["raw"])
        assert b"MAILER-DAEMON" in bounce and b"5.2.2" in bounce and b"Mailbox is full" in bounce, bounce[:2000]
    else:
        assert r["code"] == 552 and "5.2.2" in r["error"], r
    assert client("imap-count", MAIL_NAME, SMALL, pw[SMALL], subj)["count"] == 0
    small = send(pw, user=A, frm=A, to=SMALL, subj=subject("small"))
    assert small["ok"], small


# ---------------------------------------------------------------------------- nothing lost


def test_mail_queued_while_dovecot_is_stopped_is_delivered_after(pw: dict[str, str]) -> None:
    subj = subject("queued")
    dcops("lab", "drill", "service-stop", MAIL_HOST, "dovecot.service", check=True)
    try:
        r = send(pw, user=None, frm=OUTSIDE, to=B, subj=subj, port=25, tls="starttls")  # inbound MX: no SASL
        assert r["ok"], r
        deadline = time.monotonic() + 30
        while not queue_ids() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert queue_ids(), "the message is not in the queue"
    finally:
        dcops("lab", "drill", "service-start", MAIL_HOST, "dovecot.service", check=True)
    mailhost().run("postqueue -f")
    assert fetch(pw, B, subj, wait=90)
    assert not queue_ids()


def test_mail_survives_a_restart_of_the_mail_host(pw: dict[str, str]) -> None:
    """A delivered message and a queued one (Dovecot stopped) are both there after a reboot."""
    kept, queued = subject("kept"), subject("inqueue")
    assert send(pw, user=A, frm=A, to=B, subj=kept)["ok"]
    assert fetch(pw, B, kept)
    dcops("lab", "drill", "service-stop", MAIL_HOST, "dovecot.service", check=True)
    r = send(pw, user=None, frm=OUTSIDE, to=B, subj=queued, port=25, tls="starttls")
    assert r["ok"], r
    waiting = queue_ids()
    assert waiting
    dcops("lab", "drill", "host-stop", MAIL_HOST, check=True, timeout=120)
    dcops("lab", "drill", "host-start", MAIL_HOST, check=True, timeout=300)
    # the units come back by themselves (enabled): the delivered message is still readable, and
    # the queued one is still in the queue (Postfix retries deferred mail on its own schedule,
    # minutes; a sysadmin flushes after maintenance) and is delivered
    assert fetch(pw, B, kept, wait=60)
    assert set(waiting) <= set(queue_ids()), (waiting, queue_ids())
    mailhost().run("postqueue -f")
    assert fetch(pw, B, queued, wait=120)


# ---------------------------------------------------------------------------- backup and restore


BACKUP_HOST = next(s for s in INV.services if s.type.value == "backup").hosts[0]
REPO = f"/srv/dcops-backup/bk-{MAIL_HOST}/repo/mail"  # on the backup host (roles backup_server, mail_backup)


def backuphost() -> Any:
    return testinfra.get_host(f"ssh://{BACKUP_HOST}", ssh_config=str(SSH_CONFIG), sudo=True)


def backup_now() -> dict[str, Any]:
    """A backup now, through the playbook (-e mail_backup_now=true); the script's JSON summary."""
    taken = converge(DEFAULT_INVENTORY, "mail-backup.yml", extra_args=["-e", "mail_backup_now=true"], quiet=True)
    assert taken.ok, taken.failures
    out = mailhost().run("cat /var/lib/dcops-mail-backup/state.json")
    assert out.rc == 0, out.stderr
    summary: dict[str, Any] = json.loads(out.stdout)["backup"]["last_success"]
    return summary


def restore(*args: str) -> ConvergeResult:
    return converge(DEFAULT_INVENTORY, "mail-restore.yml", extra_args=list(args), quiet=True)


def maildir_files(address: str) -> list[str]:
    user, domain = address.split("@")
    maildir = f"/var/vmail/{domain}/{user}/Maildir"
    return sorted(mailhost().run(f"find {maildir}/cur {maildir}/new -type f -printf '%P\\n'").stdout.split())


@pytest.fixture(scope="module")
def backed_up(pw: dict[str, str]) -> dict[str, Any]:
    """A marked message in B's mailbox, then a backup into the off-host repository."""
    marker = subject("backup")
    assert send(pw, user=A, frm=A, to=B, subj=marker)["ok"]
    assert fetch(pw, B, marker)
    before = client("imap-count", MAIL_NAME, B, pw[B], "*")["count"]
    assert before >= 1
    summary = backup_now()
    assert summary["messages"] >= before and summary["mailboxes"] >= 1, summary
    return {"marker": marker, "count": before, "files": maildir_files(B), "summary": summary}


def test_backups_land_in_the_off_host_repository(backed_up: dict[str, Any]) -> None:
    """The repository is on the backup host, not on the mail host, and restic lists the snapshot."""
    b = backuphost()
    assert b.file(f"{REPO}/config").is_file and b.file(f"{REPO}/data").is_directory
    assert not mailhost().file(REPO).exists
    listed = json.loads(mailhost().run("/usr/local/sbin/dcops-mail-backup list --json").stdout)
    assert listed["ok"] and backed_up["summary"]["snapshot"] in [x["id"] for x in listed["snapshots"]], listed


def test_the_repository_is_encrypted(backed_up: dict[str, Any]) -> None:
    """No file of the repository holds a message's text or a mailbox's name."""
    b = backuphost()
    for needle in (backed_up["marker"], B, B.split("@")[0]):
        found = b.run(f"grep -rlaF -- {needle} {REPO}")
        assert found.rc == 1 and not found.stdout, f"{needle!r} in clear in {found.stdout}"


def test_restore_a_deleted_mailbox_from_backup(pw: dict[str, str], backed_up: dict[str, Any]) -> None:
    user, domain = B.split("@")
    maildir = f"/var/vmail/{domain}/{user}/Maildir"
    h = mailhost()
    assert h.run(f"find {maildir}/cur {maildir}/new -type f -delete && doveadm force-resync -u {B} INBOX").rc == 0
    assert client("imap-count", MAIL_NAME, B, pw[B], "*")["count"] == 0
    restored = restore("-e", "mail_restore_snapshot=latest", "-e", f"mail_restore_mailboxes={B}")
    assert restored.ok, restored.failures
    assert restored.changed >= 1
    assert client("imap-count", MAIL_NAME, B, pw[B], "*")["count"] == backed_up["count"]
    assert fetch(pw, B, backed_up["marker"], wait=5)
    assert maildir_files(B) == backed_up["files"]


def test_a_second_restore_duplicates_nothing(pw: dict[str, str], backed_up: dict[str, Any]) -> None:
    files = maildir_files(B)
    again = restore("-e", "mail_restore_snapshot=latest", "-e", f"mail_restore_mailboxes={B}")
    assert again.ok, again.failures
    assert again.changed == 0, "a second restore of the same snapshot must restore nothing"
    assert maildir_files(B) == files
    assert client("imap-count", MAIL_NAME, B, pw[B], "*")["count"] == backed_up["count"]


def test_a_corrupted_repository_is_detected(backed_up: dict[str, Any]) -> None:
    """One byte of one pack file changed on the backup host: restic's own check, through the
    script, fails and says so; the pack is put back afterwards and the check passes again."""
    b = backuphost()
    pack = b.run(f"find {REPO}/data -type f | sort | head -1").stdout.strip()
    assert pack, "no pack file in the repository"
    saved = f"/root/{Path(pack).name}.good"
    assert b.run(f"cp -a {pack} {saved} && printf 'X' | dd of={pack} bs=1 seek=100 conv=notrunc status=none").rc == 0
    try:
        bad = mailhost().run("/usr/local/sbin/dcops-mail-backup check --read-data")
        assert bad.rc != 0, bad.stdout
        assert "Fatal" in bad.stderr or "error" in bad.stderr.lower(), bad.stderr
    finally:
        assert b.run(f"cp -a {saved} {pack} && rm -f {saved}").rc == 0
    good = mailhost().run("/usr/local/sbin/dcops-mail-backup check --read-data")
    assert good.rc == 0, good.stderr


# ---------------------------------------------------------------------------- brute force (last: bans an-phu)


def test_wrong_password_refused_then_fail2ban_bans_the_source(pw: dict[str, str]) -> None:
    h = mailhost()
    maxretry = 5  # mail_fail2ban_maxretry
    try:
        for _ in range(maxretry):
            r = send(pw, user=A, frm=A, to=B, subj=subject("brute"), password="not-the-password")
            if r["stage"] == "connect":  # banned already (the jail counts every failed AUTH)
                break
            assert not r["ok"] and r["stage"] == "auth" and r["code"] == 535, r
        deadline = time.monotonic() + 30
        banned = ""
        while time.monotonic() < deadline:
            banned = h.run("fail2ban-client status postfix").stdout
            if CLIENT_ADDR in banned:
                break
            time.sleep(1)
        assert CLIENT_ADDR in banned, banned
        blocked = send(pw, user=A, frm=A, to=B, subj=subject("after-ban"))
        assert not blocked["ok"] and blocked["stage"] == "connect", blocked
    finally:
        h.run(f"fail2ban-client unban {CLIENT_ADDR}")
    assert send(pw, user=A, frm=A, to=B, subj=subject("after-unban"))["ok"]
