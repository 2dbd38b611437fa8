"""Crash safety of mailbox changes: the inventory, the vault and the handover file change together.

The sweep tests kill a real ``dcops mail import`` (and a lab's ``labsecrets.ensure``) with SIGKILL
at every step of its transaction (``DCOPS_MAIL_CRASH_AT=N``), one subprocess per step, each on
its own copy of the same inventory, vault and handover folder. For every step they check that:

- before any recovery, a reader sees the old state (before the commit point) or refuses to load
  the inventory (after it: ``load`` and the mail role's ``dcops_mail`` lookup name the journal);
- after the next ``dcops mail`` command (``recover`` or ``list``) the state is all-old (inventory
  and vault byte for byte as before, no handover file) before the commit point, all-new after it
  (the new accounts in the inventory, exactly their hashes added to the vault, a complete 0600
  handover file whose every password verifies against its hash), and nothing is left behind
  (no journal, staging folder or temporary file).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dcops.cli import app
from dcops.inventory import InventoryError, load
from dcops.inventory.model import MailAccount
from dcops.mail import hashing, txn
from dcops.mail.accounts import accounts_file, render_accounts
from dcops.mail.handover import FIELDS, read_passwords
from dcops.mail.vault import HashFile, Vault
from tests.conftest import LAB, ROOT, VENV_BIN

runner = CliRunner()
STEP = re.compile(r"^dcops mail step (\d+): (.*)$", re.M)
COMMIT_POINT = f"journal {txn.PENDING} (committed) in place"


# --- a world: an inventory, its vault and a handover folder, copied once per step ------------------
@dataclass(frozen=True)
class World:
    root: Path

    @property
    def inv(self) -> Path:
        return self.root / "inv"

    @property
    def labs(self) -> Path:
        return self.root / "labs"

    @property
    def secrets(self) -> Path:
        return self.root / "secrets"

    @property
    def handover(self) -> Path:
        return self.root / "out" / "handover.csv"

    @property
    def lab_handover(self) -> Path:
        return self.labs / "lab" / "mail-passwords.csv"

    def env(self, *, lab_secrets: bool = False) -> dict[str, str]:
        """Where this world's secrets are: DCOPS_SECRETS_DIR, or (``lab_secrets``) the lab folder's own."""
        env = {"DCOPS_VAULT_PASSWORD_FILE": str(self.root / "vault-password"), "DCOPS_LAB_DIR": str(self.labs),
               "HOME": str(self.root / "home")}
        env["DCOPS_SECRETS_DIR"] = "" if lab_secrets else str(self.secrets)  # empty: not set
        return env

    def copy(self, root: Path) -> World:
        shutil.copytree(self.root, root, symlinks=True)
        return World(root)

    def files(self) -> dict[str, bytes]:
        """Every file of the world but the password file, by path relative to the world."""
        return {str(p.relative_to(self.root)): p.read_bytes() for p in sorted(self.root.rglob("*"))
                if p.is_file() and p.name != "vault-password"}

    def leftovers(self) -> list[str]:
        return [k for k in self.files() if ".dcops-mail-" in k or txn.PENDING in k or txn.PREPARED in k or k.endswith(".tmp")]


def new_world(root: Path) -> World:
    w = World(root)
    shutil.copytree(LAB, w.inv)
    pw = root / "vault-password"
    pw.write_text("test-vault-password\n")
    pw.chmod(0o600)
    return w


def cli(w: World, *args: str, lab_secrets: bool = False) -> tuple[int, str]:
    r = runner.invoke(app, ["mail", *args], env=w.env(lab_secrets=lab_secrets))
    return r.exit_code, r.output


def vault(w: World) -> Vault:
    return Vault(w.root / "vault-password")


def hashes(w: World, secrets: Path, agency: str) -> dict[str, str]:
    return HashFile.read(secrets / "mail" / f"{agency}.yml", agency, "").entries


def crash_sweep(base: World, tmp: Path, argv: Callable[[World], list[str]], *, lab_secrets: bool = False,
                ) -> tuple[list[str], list[tuple[int, World, subprocess.CompletedProcess[str]]]]:
    """Run ``argv`` once without a crash (listing its steps), then once per step killed there."""
    listing = base.copy(tmp / "listing")
    env = {**os.environ, **listing.env(lab_secrets=lab_secrets), txn.CRASH_ENV: "0"}
    r = subprocess.run(argv(listing), env=env, capture_output=True, text=True, check=False, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    steps = _steps(listing, r.stderr)
    assert [int(n) for n, _ in STEP.findall(r.stderr)] == list(range(1, len(steps) + 1))

    def killed_at(n: int) -> tuple[int, World, subprocess.CompletedProcess[str]]:
        w = base.copy(tmp / f"step-{n:02d}")
        env = {**os.environ, **w.env(lab_secrets=lab_secrets), txn.CRASH_ENV: str(n)}
        return n, w, subprocess.run(argv(w), env=env, capture_output=True, text=True, check=False, cwd=ROOT)

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        runs = list(pool.map(killed_at, range(1, len(steps) + 1)))
    for n, _, r in runs:
        assert r.returncode == -9, f"step {n} ({steps[n - 1]}): exit {r.returncode}, not SIGKILL\n{r.stderr}"
    for n, w, r in runs:
        assert _steps(w, r.stderr) == steps[:n], "the same steps, and killed where it was told"
    return steps, [(0, listing, r), *runs]


def _steps(w: World, stderr: str) -> list[str]:
    """The steps a run passed, its world's folder written ``<world>``."""
    return [what.replace(str(w.root), "<world>") for _, what in STEP.findall(stderr)]


def assert_readers_refuse(w: World, secrets: Path) -> None:
    """Past the commit point and not finished: the inventory does not load, nor does the mail role's lookup."""
    with pytest.raises(InventoryError) as e:
        load(w.inv)
    assert [p.file.name for p in e.value.problems] == [txn.PENDING]
    from ansible.errors import AnsibleError
    from ansible.parsing.dataloader import DataLoader
    from ansible.plugins.loader import lookup_loader

    lookup_loader.add_directory(str(ROOT / "playbooks" / "roles" / "mail" / "lookup_plugins"))
    lookup = lookup_loader.get("dcops_mail", loader=DataLoader())
    with pytest.raises(AnsibleError, match=txn.PENDING):
        lookup.run([str(w.inv)], {}, secrets=str(secrets))
    assert "dcops mail recover" in (w.inv / txn.PENDING).read_text(encoding="utf-8")


# --- dcops mail import, killed at every step ----------------------------------------------------
FIRST = "agency,user,display_name,quota_mb\nso-tttt,x1,Người Một,\nso-tttt,x2,Người Hai,\n"
#: An update (x1), an addition to an agency with files (a) and one to an agency without (b).
SECOND = ("agency,user,display_name,quota_mb\nso-tttt,x1,Người Một Đổi Tên,\nso-tttt,a,Nguyễn Văn A,\n"
          "ubnd-luc-yen,b,Lê Thị B,256\n")


def import_base(root: Path) -> World:
    """A world with the accounts of FIRST imported, and SECOND beside it."""
    base = new_world(root)
    (base.root / "first.csv").write_text(FIRST, encoding="utf-8")
    (base.root / "second.csv").write_text(SECOND, encoding="utf-8")
    code, out = cli(base, "import", str(base.root / "first.csv"), "-i", str(base.inv), "--print")
    assert code == 0, out
    return base


def import_second(w: World) -> list[str]:
    return [str(VENV_BIN / "dcops"), "mail", "import", str(w.root / "second.csv"), "-i", str(w.inv), "--update",
            "--handover", str(w.handover)]


def assert_second_imported(w: World, base: World, accounts: dict[str, bytes], where: str) -> None:
    """All new: the accounts files of SECOND, its two hashes added (the others byte for byte), a complete handover file."""
    assert {k: b for k, b in w.files().items() if k.startswith("inv/")} == accounts, where
    boxes = {m.address: m for m in load(w.inv).inventory.mailboxes()}
    assert boxes["x1@stttt.lab.test"].display_name == "Người Một Đổi Tên" and boxes["b@lucyen.lab.test"].quota_mb == 256
    assert w.handover.stat().st_mode & 0o777 == 0o600, where
    lines = w.handover.read_text(encoding="utf-8").splitlines()
    assert lines[0] == ",".join(FIELDS) and len(lines) == 3, where
    issued = read_passwords(w.handover)
    assert sorted(issued) == ["a@stttt.lab.test", "b@lucyen.lab.test"], where
    before = hashes(base, base.secrets, "so-tttt")
    after = {a: hashes(w, w.secrets, a) for a in ("so-tttt", "ubnd-luc-yen")}
    assert {u: after["so-tttt"][u] for u in before} == before, "old ciphertexts byte for byte"
    assert set(after["so-tttt"]) == {"x1", "x2", "a"} and set(after["ubnd-luc-yen"]) == {"b"}, where
    v = vault(base)
    for address, pw in issued.items():
        user, _, domain = address.partition("@")
        agency = "so-tttt" if domain == "stttt.lab.test" else "ubnd-luc-yen"
        assert hashing.verify_password(pw, v.decrypt(after[agency][user])), f"{where}: {address}"
    assert w.leftovers() == [], where


def test_import_killed_at_every_step_is_all_old_or_all_new(tmp_path: Path) -> None:
    base = import_base(tmp_path / "base")
    old = base.files()
    steps, runs = crash_sweep(base, tmp_path, import_second)
    commit_at = steps.index(COMMIT_POINT) + 1
    assert sum(s.startswith("half of") for s in steps) == 5 and "half of <world>/out/handover.csv written" in steps
    assert len(steps) == 23, steps  # 2 prepare + 5 files x 2 + linked + 2 commit + 5 applied + 3 finish
    accounts = {k: v for k, v in runs[0][1].files().items() if k.startswith("inv/")}
    for n, w, _ in runs:
        where = f"step {n} ({steps[n - 1] if n else 'no crash'})"
        committed = n == 0 or n >= commit_at
        if 0 < n < commit_at:  # readers see the old state, before any recovery
            assert {k: b for k, b in w.files().items() if k in old} == old and not w.handover.exists()
            load(w.inv)
        elif committed and 0 < n < len(steps):
            assert_readers_refuse(w, w.secrets)
        # the next dcops mail command finishes or undoes it
        code, out = cli(w, "recover", "-i", str(w.inv), "--json") if n % 2 else cli(w, "list", "-i", str(w.inv), "--json")
        assert code == 0, (n, out)
        if n % 2 and 1 < n < len(steps):  # (killed at 1: only a half-written journal, removed without a word)
            rec = json.loads(out)["recovered"]
            assert rec["outcome"] == ("finished" if committed else "undone"), where
            assert (str(w.handover) in rec["about"]) == committed, "a finished change says where the passwords are"
        if committed:
            assert_second_imported(w, base, accounts, where)
        else:
            assert w.files() == old, f"{where}: not all old"
            assert not w.handover.exists() and not list(w.handover.parent.glob("*")), "no handover file with dead passwords"


def test_recovery_killed_at_every_step_still_finishes(tmp_path: Path) -> None:
    """A crash during the recovery itself: the next command finishes it all the same. A journal copied away is refused."""
    base = import_base(tmp_path / "base")
    done = base.copy(tmp_path / "done")
    code, out = cli(done, "import", str(done.root / "second.csv"), "-i", str(done.inv), "--update", "--handover",
                    str(done.handover))
    assert code == 0, out
    accounts = {k: v for k, v in done.files().items() if k.startswith("inv/")}
    recover = [str(VENV_BIN / "dcops"), "mail", "recover", "-i"]

    def run(w: World, argv: list[str], at: int) -> list[str]:
        env = {**os.environ, **w.env(), txn.CRASH_ENV: str(at)}
        r = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, cwd=ROOT)
        assert r.returncode == (-9 if at else 0), r.stderr
        return _steps(w, r.stderr)

    worlds = [base.copy(tmp_path / f"recovery-{n}") for n in range(4)]
    for w in worlds:  # the import killed once its first file is applied, four to go
        assert run(w, import_second(w), 16)[-1] == "<world>/inv/mail-accounts/so-tttt.yml applied"
    copied = worlds[0].copy(tmp_path / "copied")
    code, out = cli(copied, "recover", "-i", str(copied.inv))
    assert code == 1 and "moved or copied here" in " ".join(out.split()), out
    steps = run(worlds[0], [*recover, str(worlds[0].inv)], 0)
    assert steps == ["staging folders removed", f"journal {txn.PREPARED} removed", f"journal {txn.PENDING} removed"]
    for n, w in enumerate(worlds):
        if n:
            assert run(w, [*recover, str(w.inv)], n) == steps[:n]
        assert cli(w, "recover", "-i", str(w.inv))[0] == 0
        assert_second_imported(w, base, accounts, f"recovery killed at step {n}")


# --- a lab's labsecrets.ensure (appends to the lab's handover file), killed at every step ----------------
def test_lab_secrets_ensure_killed_at_every_step_appends_all_or_nothing(tmp_path: Path) -> None:
    base = new_world(tmp_path / "base")
    env = base.env(lab_secrets=True)
    ensure = [sys.executable, "-c", "import sys; from dcops.mail.labsecrets import ensure; ensure(sys.argv[1])"]
    r = subprocess.run([*ensure, str(base.inv)], env={**os.environ, **env}, capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    secrets = base.labs / "lab" / "secrets"
    first = read_passwords(base.lab_handover)
    assert len(first) == len(load(base.inv).inventory.mailboxes()) > 0
    # two accounts added by hand (no hashes yet): the next ensure issues their passwords
    inv = load(base.inv).inventory
    for agency, user in (("so-tttt", "moi"), ("ubnd-van-yen", "moi")):
        ag = next(a for a in inv.agencies if a.name == agency)
        f = accounts_file(base.inv, agency)
        f.parent.mkdir(exist_ok=True)
        f.write_bytes(render_accounts(ag, [MailAccount(agency=agency, user=user, display_name="Cán bộ mới")]))
    old = base.files()

    steps, runs = crash_sweep(base, tmp_path, lambda w: [*ensure, str(w.inv)], lab_secrets=True)
    commit_at = steps.index(COMMIT_POINT) + 1
    assert len(steps) == 17 and "half of <world>/labs/lab/mail-passwords.csv written" in steps, steps
    v = vault(base)
    for n, w, _ in runs:
        committed = n == 0 or n >= commit_at
        wsecrets = w.labs / "lab" / "secrets"
        if 0 < n < commit_at:
            assert {k: b for k, b in w.files().items() if k in old} == old
        elif committed and 0 < n < len(steps):
            assert_readers_refuse(w, wsecrets)
        code, out = cli(w, "recover", "-i", str(w.inv), "--json", lab_secrets=True)
        assert code == 0, (n, out)
        assert w.leftovers() == [], n
        handover = w.lab_handover.read_bytes()
        if not committed:
            assert w.files() == old, f"step {n} ({steps[n - 1]}): not all old"
            continue
        where = f"step {n} ({steps[n - 1] if n else 'no crash'})"
        assert handover.startswith(old["labs/lab/mail-passwords.csv"]), f"{where}: appended, the old rows kept"
        assert w.lab_handover.stat().st_mode & 0o777 == 0o600
        issued = read_passwords(w.lab_handover)
        assert {a: p for a, p in issued.items() if a in first} == first
        assert sorted(set(issued) - set(first)) == ["moi@stttt.lab.test", "moi@vanyen.lab.test"], where
        for agency, address in (("so-tttt", "moi@stttt.lab.test"), ("ubnd-van-yen", "moi@vanyen.lab.test")):
            assert hashing.verify_password(issued[address], v.decrypt(hashes(w, wsecrets, agency)["moi"])), where
        assert hashes(w, wsecrets, "ubnd-luc-yen") == hashes(base, secrets, "ubnd-luc-yen"), "an agency not touched"


# --- the transaction itself, in process ---------------------------------------------------------
def test_an_error_after_the_commit_point_undoes_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b, c = tmp_path / "x" / "a.yml", tmp_path / "x" / "b.yml", tmp_path / "y" / "c.yml"  # applied in this order
    for f in (a, c):
        f.parent.mkdir()
        f.write_bytes(b"old " + f.name.encode())
    real = os.replace
    applied: list[str] = []

    def failing(src: object, dst: object) -> None:
        staged = Path(str(src)).parent.name.startswith(".dcops-mail-") and not str(src).endswith(".old")
        if staged and str(dst) == str(c):  # applying c fails; putting old contents back works
            raise OSError("no space left on device")
        if staged:
            applied.append(str(dst))
        real(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(txn.os, "replace", failing)
    with pytest.raises(OSError, match="no space"):
        txn.commit({a: txn.Change(b"new a"), b: txn.Change(b"new b"), c: txn.Change(b"new c")}, tmp_path)
    assert applied == [str(a), str(b)], "two files were applied before the error"
    assert (a.read_bytes(), b.exists(), c.read_bytes()) == (b"old a.yml", False, b"old c.yml")
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["x", "x/a.yml", "y", "y/c.yml"]


def test_recovery_refuses_a_journal_whose_staged_files_were_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = tmp_path / "a.yml"
    a.write_bytes(b"old")

    def die(what: str) -> None:
        if what == COMMIT_POINT:
            raise SystemExit("killed")  # stands for the kill: nothing after the commit point runs

    monkeypatch.setattr(txn, "_step", die)
    monkeypatch.setattr(txn, "_discard", lambda jdir, j: None)  # a killed process cleans nothing up
    with pytest.raises(SystemExit):
        txn.commit({a: txn.Change(b"new")}, tmp_path)
    assert txn.pending(tmp_path) == tmp_path / txn.PENDING
    with pytest.raises(txn.TxnError, match="earlier `dcops mail` change is not finished"):
        txn.commit({a: txn.Change(b"newer")}, tmp_path)
    for d in tmp_path.glob(f"{txn.STAGING}*"):
        shutil.rmtree(d)  # by hand: the staged new content is gone
    with pytest.raises(txn.TxnError, match=r"not as its journal recorded.*a\.yml; check these files by hand"):
        txn.recover(tmp_path)
    assert txn.pending(tmp_path) is not None, "the journal is kept for the sysadmin"
    (tmp_path / txn.PENDING).write_text("pending_mail_change: {not json\n")
    with pytest.raises(txn.TxnError, match="not a readable dcops mail journal"):
        txn.recover(tmp_path)


def test_recover_with_nothing_pending(tmp_path: Path) -> None:
    w = new_world(tmp_path)
    code, out = cli(w, "recover", "-i", str(w.inv))
    assert code == 0 and "no interrupted `dcops mail` change" in " ".join(out.split())
    code, out = cli(w, "recover", "-i", str(tmp_path / "nope"))
    assert code == 2 and "not a directory" in out


def test_readers_wait_for_a_change_under_way_and_refuse_an_unfinished_one(tmp_path: Path) -> None:
    entered = threading.Event()

    def reader() -> None:
        with txn.reading(tmp_path):
            entered.set()

    with txn.locked(tmp_path):  # a dcops mail command under way
        t = threading.Thread(target=reader)
        t.start()
        assert not entered.wait(0.5), "a reader waits for the change to end"
    t.join(30)
    assert entered.is_set()
    (tmp_path / txn.PENDING).write_text("# interrupted\n")
    with pytest.raises(txn.TxnError, match=r"run `dcops mail recover -i "), txn.reading(tmp_path):
        pass
