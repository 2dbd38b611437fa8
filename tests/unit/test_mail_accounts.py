"""Mail accounts: the ``accounts`` inventory section, ``dcops mail import/add/remove/passwd``, the vault.

Validation tests follow tests/unit/test_validation.py: a copy of the lab with one targeted
change; each names the file, the YAML path (or CSV column), the line and the reason.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from dcops.cli import app
from dcops.inventory import load
from dcops.mail import hashing, txn
from dcops.mail.accounts import accounts_file
from dcops.mail.csvimport import HEADER, ascii_fold
from dcops.mail.vault import HashFile, SecretsError, Vault, hash_file, read_yaml_with_vault, vault_password_file
from tests.conftest import LAB, YENBAI
from tests.unit.test_validation import add_file, assert_only

runner = CliRunner()


@pytest.fixture
def inv(tmp_path: Path) -> Path:
    d = tmp_path / "inv"
    shutil.copytree(LAB, d)
    return d


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Secrets and the vault password in the test's own folder; returns the secrets folder."""
    pw = tmp_path / "vault-password"
    pw.write_text("test-vault-password\n")
    pw.chmod(0o600)
    monkeypatch.setenv("DCOPS_VAULT_PASSWORD_FILE", str(pw))
    monkeypatch.setenv("DCOPS_SECRETS_DIR", str(tmp_path / "secrets"))
    monkeypatch.setenv("DCOPS_LAB_DIR", str(tmp_path / "labs"))
    monkeypatch.delenv("ANSIBLE_VAULT_PASSWORD_FILE", raising=False)
    return tmp_path / "secrets"


def vault() -> Vault:
    return Vault(Path(os.environ["DCOPS_VAULT_PASSWORD_FILE"]))


def tree(*dirs: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for d in dirs if d.exists() for p in sorted(d.rglob("*")) if p.is_file()}


def csv_file(tmp_path: Path, body: str, name: str = "accounts.csv") -> Path:
    p = tmp_path / name
    p.write_text(body, encoding="utf-8")
    return p


def run(*args: str) -> tuple[int, str]:
    """Exit code and output (messages unwrapped: the console folds long lines)."""
    r = runner.invoke(app, ["mail", *args])
    out = r.output
    if not out.lstrip().startswith("{"):
        out = " ".join(out.split())
    return r.exit_code, out


# --- the accounts section of the inventory --------------------------------------------------
ACC = "mail-accounts/so-tttt.yml"


def test_accounts_section_loads_and_counts(inv: Path) -> None:
    (inv / "mail-accounts").mkdir()
    add_file(inv, ACC, 'accounts:\n  - {agency: "so-tttt", user: "a.b", display_name: "Ánh B", quota_mb: 256}\n')
    boxes = load(inv).inventory.mailboxes()
    assert [m.address for m in boxes if m.agency == "so-tttt"] == ["a.b@stttt.lab.test", "giamdoc@stttt.lab.test",
                                                                   "noc@stttt.lab.test", "vanthu@stttt.lab.test"]
    assert next(m for m in boxes if m.user == "a.b").quota_mb == 256
    assert next(m for m in boxes if m.user == "giamdoc").quota_mb == 512  # the agency's default


def test_account_of_unknown_agency(inv: Path) -> None:
    (inv / "mail-accounts").mkdir()
    add_file(inv, ACC, "accounts:\n  - {agency: so-ttt, user: a}\n")
    assert_only(inv, "so-tttt.yml", "accounts[0].agency", 2, "unknown agency 'so-ttt'")


def test_account_duplicates_an_inline_one(inv: Path) -> None:
    (inv / "mail-accounts").mkdir()
    add_file(inv, ACC, "accounts:\n  - {agency: so-tttt, user: x}\n  - {agency: so-tttt, user: vanthu}\n")
    p = assert_only(inv, "so-tttt.yml", "accounts[1].user", 3, "duplicate account in stttt.lab.test 'vanthu'")
    first = (inv / "mail.yml").read_text(encoding="utf-8").splitlines().index("      - {user: vanthu, display_name: Văn thư}") + 1
    assert p.reason.endswith(f"mail.yml:{first})"), p.reason


def test_account_duplicate_inside_the_section(inv: Path) -> None:
    (inv / "mail-accounts").mkdir()
    add_file(inv, ACC, "accounts:\n" + "".join(f"  - {{agency: so-tttt, user: {u}}}\n" for u in "xyx"))
    assert_only(inv, "so-tttt.yml", "accounts[2].user", 4, "duplicate account in stttt.lab.test 'x'")


def test_account_bad_local_part(inv: Path) -> None:
    (inv / "mail-accounts").mkdir()
    add_file(inv, ACC, "accounts:\n  - {agency: so-tttt, user: Nguyen.A}\n")
    assert_only(inv, "so-tttt.yml", "accounts[0].user", 2, "should match pattern")


def test_accounts_over_the_budget(inv: Path) -> None:
    (inv / "mail-accounts").mkdir()
    users = "".join(f"  - {{agency: so-tttt, user: u{n}}}\n" for n in range(8))  # 3 inline (noc: issue 14) + 8 > 10
    add_file(inv, ACC, "accounts:\n" + users)
    line = (inv / "mail.yml").read_text(encoding="utf-8").splitlines().index("    mailboxes: 10") + 1  # the first agency's
    assert_only(inv, "mail.yml", "agencies[0].mailboxes", line,
                "11 named accounts (3 inline, 8 in the 'accounts' section) exceed the budget of 10 mailboxes")


def test_accounts_over_the_storage_budget(inv: Path) -> None:
    (inv / "mail-accounts").mkdir()
    add_file(inv, ACC, "accounts:\n  - {agency: so-tttt, user: boss, quota_mb: 5000}\n")
    text = (inv / "mail.yml").read_text(encoding="utf-8").splitlines()
    line = text.index("    quota_mb: 512") + 1  # the first agency's
    assert_only(inv, "mail.yml", "agencies[0].quota_mb", line, "quotas total 6536 MB, over the agency's storage budget")


def test_secrets_and_vault_folders_are_not_inventory(inv: Path) -> None:
    for d in ("secrets/mail", "vault"):
        (inv / d).mkdir(parents=True)
        (inv / d / "x.yml").write_text("$ANSIBLE_VAULT;1.1;AES256\n3031\n")
    load(inv)


# --- CSV import: every problem, one run, nothing written ----------------------------------------
BAD_CSV = (
    f"{HEADER}\n"
    "so-ttt,a,Nguyễn A,\n"  # 2 unknown agency
    "so-tttt,Nguyễn.B,Nguyễn B,\n"  # 3 bad local part
    "so-tttt,c,Trần C,2GB\n"  # 4 quota not a number
    "so-tttt,giamdoc,Giám đốc,\n"  # 5 exists already
    "so-tttt,d,Lê D,\n"  # 6 ok
    "so-tttt,d,Lê D bis,\n"  # 7 duplicate address
    "so-tttt,e,,\n"  # 8 empty display name
    "so-tttt,f,Phạm F\n"  # 9 missing field
    "\n"  # 10 blank: skipped
    "ubnd-luc-yen,postmaster,Bưu tá,\n"  # 11 reserved
)


def test_import_reports_every_problem_with_line_and_column(inv: Path, env: Path, tmp_path: Path) -> None:
    before = tree(inv, env)
    code, out = run("import", str(csv_file(tmp_path, BAD_CSV)), "-i", str(inv), "--json")
    assert code == 2
    got = [(p["line"], p["path"], p["reason"]) for p in json.loads(out)["problems"]]
    want = [
        (2, "agency", "unknown agency 'so-ttt' (did you mean 'so-tttt'?)"),
        (3, "user", "bad local part 'nguyễn.b'"),
        (4, "quota_mb", "quota '2GB' is not a whole number of MB"),
        (5, "user", "giamdoc@stttt.lab.test already exists"),
        (7, "user", "duplicate address d@stttt.lab.test (first on line 6)"),
        (8, "display_name", "display name is empty"),
        (9, "(top level)", "3 fields, the header has 4"),
        (11, "user", "reserved"),
    ]
    assert len(got) == len(want), got
    for (line, path, reason), (wl, wp, wr) in zip(got, want, strict=True):
        assert (line, path) == (wl, wp) and wr in reason, (line, path, reason)
    assert "try 'nguyen.b'" in got[1][2]
    assert tree(inv, env) == before, "nothing may be written while a problem remains"


@pytest.mark.parametrize(
    "content,line,reason",
    [
        (b"", 1, "the file is empty"),
        (b"\xef\xbb\xbf\r\n", 1, "the file is empty"),
        (b"agency,user,display_name\nso-tttt,a,A\n", 1, "missing column 'quota_mb'"),
        (b"agency,user,display_name,quota_mb,email\n", 1, "unknown column 'email'"),
        (b"so-tttt,a,Nguyen A,\n", 1, "the first line must be the header"),
        (f"{HEADER}\nso-tttt,a,".encode() + "Lê A".encode("cp1258") + b",\n", 2, "not UTF-8"),
        ("agency,user,display_name,quota_mb\n".encode("utf-16"), 1, "UTF-16"),
        (f"{HEADER}\n".encode(), 2, "no accounts after the header"),
        (f'{HEADER}\nso-tttt,a,"Nguyen A,\n'.encode(), 2, "CSV error"),
    ],
    ids=["empty", "bom-only", "missing-column", "extra-column", "no-header", "cp1258", "utf16", "header-only", "open-quote"],
)
def test_import_file_level_problems(inv: Path, env: Path, tmp_path: Path, content: bytes, line: int, reason: str) -> None:
    f = tmp_path / "a.csv"
    f.write_bytes(content)
    code, out = run("import", str(f), "-i", str(inv), "--json")
    assert code == 2, out
    problems = json.loads(out)["problems"]
    assert len(problems) == 1 and problems[0]["line"] == line and reason in problems[0]["reason"], problems
    assert not env.exists()


def test_import_over_the_agency_budget_names_the_first_line_over(inv: Path, env: Path, tmp_path: Path) -> None:
    rows = "".join(f"so-tttt,u{n},Người {n},\n" for n in range(10))  # 3 inline (noc: issue 14) + 10 > 10: the 8th row is over
    code, out = run("import", str(csv_file(tmp_path, HEADER + "\n" + rows)), "-i", str(inv), "--json")
    assert code == 2
    [p] = json.loads(out)["problems"]
    assert (p["line"], p["path"]) == (9, "agency")
    assert "would have 13 mailboxes" in p["reason"] and "budget of 10" in p["reason"]


def test_import_writes_inventory_and_hashes_only(inv: Path, env: Path, tmp_path: Path) -> None:
    body = f'{HEADER}\nso-tttt,Nguyen.Van.A,"Nguyễn Văn A, Phó Giám đốc",\nubnd-luc-yen,tran.b,Trần Thị B,256\n'
    handover = tmp_path / "out" / "handover.csv"
    code, out = run("import", str(csv_file(tmp_path, body)), "-i", str(inv), "--handover", str(handover), "--json")
    assert code == 0, out
    assert json.loads(out)["added"] == 2
    assert handover.stat().st_mode & 0o777 == 0o600
    issued = {r["address"]: r["initial_password"] for r in csv.DictReader(handover.open(encoding="utf-8"))}
    assert set(issued) == {"nguyen.van.a@stttt.lab.test", "tran.b@lucyen.lab.test"}
    loaded = load(inv)
    boxes = {m.address: m for m in loaded.inventory.mailboxes()}
    assert boxes["nguyen.van.a@stttt.lab.test"].display_name == "Nguyễn Văn A, Phó Giám đốc"
    assert boxes["tran.b@lucyen.lab.test"].quota_mb == 256
    v = vault()
    for addr, pw in issued.items():
        user, _, domain = addr.partition("@")
        agency = boxes[addr].agency
        hf = hash_file(loaded.inventory, agency)
        assert hf.stat().st_mode & 0o777 == 0o600
        h = v.decrypt(HashFile.read(hf, agency, domain).entries[user])
        assert h.startswith("{SHA512-CRYPT}$6$") and hashing.verify_password(pw, h) and not hashing.verify_password(pw + "x", h)
        for f in [*env.rglob("*.yml"), *(inv / "mail-accounts").glob("*.yml")]:
            assert pw not in f.read_text(encoding="utf-8"), f"plaintext password in {f}"
    # the same file again: every address exists already
    code, out = run("import", str(csv_file(tmp_path, body)), "-i", str(inv), "--json")
    assert code == 2 and len(json.loads(out)["problems"]) == 2


def test_import_update_changes_name_and_quota_keeps_password(inv: Path, env: Path, tmp_path: Path) -> None:
    assert run("import", str(csv_file(tmp_path, f"{HEADER}\nso-tttt,a,A,\n")), "-i", str(inv), "--print")[0] == 0
    hf = env / "mail" / "so-tttt.yml"
    before = hf.read_bytes()
    code, out = run("import", str(csv_file(tmp_path, f"{HEADER}\nso-tttt,a,Anh A,300\n", "b.csv")), "-i", str(inv), "--update")
    assert code == 0, out
    assert hf.read_bytes() == before
    [box] = [m for m in load(inv).inventory.mailboxes() if m.user == "a"]
    assert (box.display_name, box.quota_mb) == ("Anh A", 300)


def test_handover_file_inside_the_repository_is_refused(inv: Path, env: Path, tmp_path: Path) -> None:
    code, out = run("import", str(csv_file(tmp_path, f"{HEADER}\nso-tttt,a,A,\n")), "-i", str(inv),
                    "--handover", str(inv / "passwords.csv"))
    assert code == 1 and "keep plaintext passwords out of the repository" in out
    assert not (inv / "passwords.csv").exists() and not env.exists()


# --- one account: add, remove, passwd ---------------------------------------------------------------
def _diff_lines(a: bytes, b: bytes) -> tuple[list[str], list[str]]:
    la, lb = a.decode().splitlines(), b.decode().splitlines()
    return [x for x in la if x not in lb], [x for x in lb if x not in la]


def test_add_and_remove_change_only_that_accounts_entries(inv: Path, env: Path, tmp_path: Path) -> None:
    body = HEADER + "\n" + "".join(f"so-tttt,user{n},Người dùng {n},\n" for n in range(5))
    assert run("import", str(csv_file(tmp_path, body)), "-i", str(inv), "--print")[0] == 0
    acc, hf = accounts_file(inv, "so-tttt"), env / "mail" / "so-tttt.yml"
    before = tree(inv, env)
    code, out = run("add", "an.x@stttt.lab.test", "--name", "An X", "-i", str(inv), "--json")
    assert code == 0, out
    pw = json.loads(out)["passwords"][0]["password"]
    after = tree(inv, env)
    assert {k for k in after if after[k] != before.get(k)} == {str(acc), str(hf)}
    removed, added = _diff_lines(before[str(acc)], after[str(acc)])
    assert removed == [] and added == ['  - {agency: "so-tttt", user: "an.x", display_name: "An X"}']
    old_v, new_v = read_yaml_with_vault(hf), yaml.safe_load(after[str(hf)].replace(b"!vault", b""))
    assert set(new_v["mail_password_hashes"]) - set(old_v and yaml.safe_load(before[str(hf)].replace(b"!vault", b""))
                                                    ["mail_password_hashes"]) == {"an.x"}
    removed, added = _diff_lines(before[str(hf)], after[str(hf)])
    assert removed == [] and added[0] == '  "an.x": !vault |', "other mailboxes' ciphertexts must stay byte for byte"
    assert hashing.verify_password(pw, vault().decrypt(HashFile.read(hf, "so-tttt", "x").entries["an.x"]))

    code, out = run("remove", "an.x@stttt.lab.test", "-i", str(inv))
    assert code == 0, out
    assert tree(inv, env) == before, "removing the account restores exactly the files before it was added"


def test_remove_and_passwd_refuse_unknown_or_hand_written(inv: Path, env: Path) -> None:
    code, out = run("remove", "nobody@stttt.lab.test", "-i", str(inv))
    assert code == 2 and "nobody@stttt.lab.test does not exist" in out
    code, out = run("remove", "giamdoc@stttt.lab.test", "-i", str(inv))
    assert code == 2 and "defined by hand at" in out and "mail.yml:" in out
    code, out = run("add", "x@nowhere.test", "--name", "X", "-i", str(inv))
    assert code == 2 and "no agency has the mail domain 'nowhere.test'" in out


def test_passwd_missing_then_one(inv: Path, env: Path) -> None:
    code, out = run("passwd", "--missing", "-i", str(inv), "--print", "--json")
    assert code == 0, out
    assert sorted(json.loads(out)["changed"]) == sorted(m.address for m in load(inv).inventory.mailboxes())
    hf = env / "mail" / "ubnd-van-yen.yml"
    before = HashFile.read(hf, "ubnd-van-yen", "vanyen.lab.test").entries
    code, out = run("passwd", "vanthu@vanyen.lab.test", "-i", str(inv), "--json")
    assert code == 0
    pw = json.loads(out)["passwords"][0]["password"]
    after = HashFile.read(hf, "ubnd-van-yen", "vanyen.lab.test").entries
    assert after["chutich"] == before["chutich"] and after["vanthu"] != before["vanthu"]
    assert hashing.verify_password(pw, vault().decrypt(after["vanthu"]))
    assert run("passwd", "--missing", "-i", str(inv), "--json")[1].count("@") == 0  # nothing missing any more


def test_wrong_vault_password_writes_nothing(inv: Path, env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run("add", "a@stttt.lab.test", "--name", "A", "-i", str(inv))[0] == 0
    before = tree(inv, env)
    other = tmp_path / "other-password"
    other.write_text("another\n")
    other.chmod(0o600)
    monkeypatch.setenv("DCOPS_VAULT_PASSWORD_FILE", str(other))
    code, out = run("add", "b@stttt.lab.test", "--name", "B", "-i", str(inv))
    assert code == 1 and "wrong vault password" in out
    assert tree(inv, env) == before


def test_vault_password_rules(inv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DCOPS_VAULT_PASSWORD_FILE", raising=False)
    monkeypatch.delenv("ANSIBLE_VAULT_PASSWORD_FILE", raising=False)
    monkeypatch.setenv("DCOPS_LAB_DIR", str(tmp_path / "labs"))
    real = load(YENBAI).inventory
    with pytest.raises(SecretsError, match="DCOPS_VAULT_PASSWORD_FILE"):
        vault_password_file(real)
    lab = load(inv).inventory
    p = vault_password_file(lab)  # a lab's own, generated once
    assert p == tmp_path / "labs" / "lab" / "vault-password" and p.stat().st_mode & 0o777 == 0o600
    assert vault_password_file(lab).read_bytes() == p.read_bytes()
    loose = tmp_path / "loose"
    loose.write_text("x\n")
    loose.chmod(0o644)
    with pytest.raises(SecretsError, match="chmod 600"):
        Vault(loose)


def test_commit_is_all_or_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b, c = tmp_path / "a.yml", tmp_path / "sub" / "b.yml", tmp_path / "c.yml"
    a.write_bytes(b"old a")
    c.write_bytes(b"old c")
    real = os.replace
    calls = 0

    def flaky(src: object, dst: object) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError("disk full")
        real(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(txn.os, "replace", flaky)
    with pytest.raises(OSError, match="disk full"):
        txn.commit({a: txn.Change(b"new a"), b: txn.Change(b"new b"), c: txn.Change(None)})
    monkeypatch.setattr(txn.os, "replace", real)
    assert a.read_bytes() == b"old a" and not b.exists() and c.read_bytes() == b"old c"
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["a.yml", "c.yml"], "no temporary file left"
    txn.commit({a: txn.Change(b"new a"), b: txn.Change(b"new b", 0o600), c: txn.Change(None)})
    assert (a.read_bytes(), b.read_bytes(), c.exists(), b.stat().st_mode & 0o777) == (b"new a", b"new b", False, 0o600)


def test_hash_schemes_dovecot_reads() -> None:
    pw = hashing.new_password()
    assert len(pw) == 16 and not set(pw) & set("0O1lI")
    sha = hashing.hash_password(pw)
    blf = hashing.hash_password(pw, hashing.Scheme.BLF_CRYPT, cost=4)
    assert sha.startswith("{SHA512-CRYPT}$6$") and blf.startswith("{BLF-CRYPT}$2b$04$")
    assert all(hashing.verify_password(pw, h) and not hashing.verify_password(pw[:-1], h) for h in (sha, blf))
    assert hashing.hash_password(pw) != sha, "salted"
    assert ascii_fold("Nguyễn.Đức-Ánh") == "nguyen.duc-anh"


# --- the province's size ---------------------------------------------------------------------------
def province_csv(path: Path, inventory: Path) -> int:
    """A realistic accounts file for every agency, filling each one's budget (3,319 in all)."""
    family = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Hà", "Đặng", "Vũ", "Bùi", "Đỗ", "Lò", "Hoàng", "Sùng", "Giàng"]
    middle = ["Văn", "Thị", "Đức", "Minh", "Thu", "Quang", "Ngọc", "Hữu"]
    given = ["An", "Bình", "Chiến", "Dũng", "Giang", "Hà", "Hải", "Hạnh", "Hòa", "Hùng", "Lan", "Linh", "Mai", "Nam",
             "Phương", "Quân", "Sơn", "Thảo", "Trang", "Tuấn", "Vân", "Xuân", "Yến"]
    n = 0
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER.split(","))
        for ag in load(inventory).inventory.agencies:
            seen: set[str] = set()
            for k in range(ag.mailboxes):
                name = f"{family[(k * 7 + n) % len(family)]} {middle[k % len(middle)]} {given[(k * 3 + n) % len(given)]}"
                base = ascii_fold(name.split()[-1] + "." + "".join(x[0] for x in name.split()[:-1]))
                user = base if base not in seen else f"{base}{k}"
                seen.add(user)
                w.writerow([ag.name, user, name, "" if k else str(ag.quota_mb * 2 // 2)])
                n += 1
    return n


def test_import_the_whole_province(tmp_path: Path, env: Path) -> None:
    inv = tmp_path / "yenbai"
    shutil.copytree(YENBAI, inv)
    f = tmp_path / "yenbai-accounts.csv"
    assert province_csv(f, inv) == 3319
    t0 = time.monotonic()
    code, out = run("import", str(f), "-i", str(inv), "--handover", str(tmp_path / "handover.csv"), "--json")
    seconds = time.monotonic() - t0
    assert code == 0, out
    res = json.loads(out)
    print(f"\nimport of 3,319 accounts for 42 agencies: {seconds:.1f} s")
    assert (res["added"], res["agencies"]) == (3319, 42)
    loaded = load(inv)
    assert len(loaded.inventory.mailboxes()) == 3319
    assert len(list((inv / "mail-accounts").glob("*.yml"))) == 42 and len(list((env / "mail").glob("*.yml"))) == 42
    assert sum(1 for _ in (tmp_path / "handover.csv").open(encoding="utf-8")) == 3320
    # Every budget is full: one more is refused; after a removal, it fits, changing one line.
    ag = loaded.inventory.agencies[0]
    code, out = run("add", f"extra@{ag.domain}", "--name", "Thêm", "-i", str(inv))
    assert code == 2 and "exceed the budget" in out
    acc = accounts_file(inv, ag.name)
    first_user = yaml.safe_load(acc.read_text(encoding="utf-8"))["accounts"][0]["user"]
    assert run("remove", f"{first_user}@{ag.domain}", "-i", str(inv))[0] == 0
    before = acc.read_bytes()
    assert run("add", f"extra@{ag.domain}", "--name", "Thêm", "-i", str(inv))[0] == 0
    removed, added = _diff_lines(before, acc.read_bytes())
    assert removed == [] and len(added) == 1 and '"extra"' in added[0]
