"""SIP accounts of the rooms: from the inventory, secrets in the vault, rotation, listing, bad input, crashes."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dcops.cli import app
from dcops.inventory import load
from dcops.mail import txn
from dcops.mail.vault import Vault
from dcops.vc import accounts as acc
from tests.conftest import LAB, ROOT

runner = CliRunner()
STEP = re.compile(r"^dcops mail step (\d+): (.*)$", re.M)


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    inv = tmp_path / "inv"
    shutil.copytree(LAB, inv)
    monkeypatch.setenv("DCOPS_LAB_DIR", str(tmp_path / "labs"))
    monkeypatch.delenv("DCOPS_SECRETS_DIR", raising=False)
    monkeypatch.delenv("DCOPS_VAULT_PASSWORD_FILE", raising=False)
    monkeypatch.delenv("ANSIBLE_VAULT_PASSWORD_FILE", raising=False)
    return inv


def _cli(*args: str) -> tuple[int, str]:
    r = runner.invoke(app, ["vc", *args])
    return r.exit_code, r.output


def _vault(inv: Path) -> Vault:
    from dcops.mail.vault import vault_password_file

    return Vault(vault_password_file(load(inv).inventory))


def test_every_room_of_the_inventory_has_an_account_named_after_its_site(world: Path) -> None:
    inv = load(world).inventory
    rooms = sorted(s.name for s in inv.sites if s.videoconf is not None)
    got = acc.accounts(inv)
    assert [a.site for a in got] == rooms and rooms
    assert all(a.address == f"{a.site}@vc.{inv.province.domain}" for a in got)
    assert {a.subnet for a in got} == {str(inv.site(a.site).subnet) for a in got}


def test_missing_secrets_are_made_once_and_rotation_changes_one_entry_only(world: Path) -> None:
    code, out = _cli("passwd", "--missing", "-i", str(world))
    assert code == 0, out
    inv = load(world).inventory
    f = acc.secrets_file(inv)
    assert f.stat().st_mode & 0o777 == 0o600
    text = f.read_text()
    assert "$ANSIBLE_VAULT" in text
    first = acc.decrypt_all(inv, _vault(world))
    assert set(first) == {a.site for a in acc.accounts(inv)}
    for secret in first.values():  # never in clear in the file
        assert secret not in text and len(secret) == acc.SECRET_LENGTH
    code, out = _cli("passwd", "--missing", "-i", str(world))  # nothing missing: nothing changes
    assert code == 0 and f.read_text() == text
    before = acc.load_secrets(inv).entries
    code, out = _cli("passwd", "an-phu", "--print", "--json", "-i", str(world))
    assert code == 0, out
    shown = json.loads(out)["secrets"]["an-phu@vc.lab.test"]
    after = acc.load_secrets(inv).entries
    assert {s for s in after if after[s] != before[s]} == {"an-phu"}
    assert acc.decrypt_all(inv, _vault(world))["an-phu"] == shown != first["an-phu"]


def test_list_shows_no_secret(world: Path) -> None:
    _cli("passwd", "--missing", "-i", str(world))
    secrets = acc.decrypt_all(load(world).inventory, _vault(world))
    code, out = _cli("list", "--json", "-i", str(world))
    assert code == 0, out
    rows = json.loads(out)["accounts"]
    assert {r["site"] for r in rows} == set(secrets) and all(r["secret"] is True for r in rows)
    code, table = _cli("list", "-i", str(world))
    for s in secrets.values():
        assert s not in out and s not in table


@pytest.mark.parametrize(("site", "why"), [
    ("nowhere", "unknown site 'nowhere'"),
    ("../../etc/passwd", "unknown site"),
    ("an-phu; rm -rf /", "unknown site"),
])
def test_bad_site_is_refused_and_nothing_written(world: Path, site: str, why: str) -> None:
    code, out = _cli("passwd", site, "-i", str(world))
    assert code != 0 and why in " ".join(out.split()), out
    assert "sites with a room" in " ".join(out.split())
    assert not acc.secrets_file(load(world).inventory).exists()


def test_site_without_a_room_is_named(world: Path) -> None:
    inv0 = load(world).inventory
    site = inv0.sites[-1].model_copy(update={"videoconf": None})
    inv = inv0.model_copy(update={"sites": [*inv0.sites[:-1], site]})
    with pytest.raises(acc.VcError, match="has no video-conference room"):
        acc.find(inv, site.name)
    assert site.name not in {a.site for a in acc.accounts(inv)}


def test_wrong_vault_password_is_refused_before_anything_is_written(world: Path, tmp_path: Path) -> None:
    _cli("passwd", "--missing", "-i", str(world))
    f = acc.secrets_file(load(world).inventory)
    text = f.read_text()
    other = tmp_path / "other-pw"
    other.write_text("not the lab's password\n")
    other.chmod(0o600)
    code, out = _cli("passwd", "an-phu", "--vault-password-file", str(other), "-i", str(world))
    assert code != 0 and "wrong vault password" in " ".join(out.split()), out
    assert f.read_text() == text


def test_a_tampered_secrets_file_is_named(world: Path) -> None:
    _cli("passwd", "--missing", "-i", str(world))
    f = acc.secrets_file(load(world).inventory)
    f.write_text("vc_sip_secrets: [1, 2]\n")
    code, out = _cli("list", "-i", str(world))
    assert code != 0 and str(f) in "".join(out.split("\n")) and "expected" in out


def test_killed_at_every_step_of_a_rotation_leaves_old_or_new(world: Path) -> None:
    """``dcops vc passwd SITE`` killed (SIGKILL) at every step: the next command sees all-old or all-new."""
    _cli("passwd", "--missing", "-i", str(world))
    inv = load(world).inventory
    f = acc.secrets_file(inv)
    old = f.read_bytes()
    old_secret = acc.decrypt_all(inv, _vault(world))["an-phu"]
    cmd = [sys.executable, "-c", "from dcops.cli import app; app()", "vc", "passwd", "an-phu", "-i", str(world)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    probe = subprocess.run(cmd, env={**env, txn.CRASH_ENV: "0"}, capture_output=True, text=True, timeout=60)
    steps = [int(n) for n, _ in STEP.findall(probe.stderr)]
    assert probe.returncode == 0 and len(steps) >= 5, probe.stderr
    outcomes = set()
    for n in steps:
        f.write_bytes(old)
        f.chmod(0o600)
        p = subprocess.run(cmd, env={**env, txn.CRASH_ENV: str(n)}, capture_output=True, text=True, timeout=60)
        assert p.returncode == -9, (n, p.stderr)
        code, out = _cli("list", "--json", "-i", str(world))  # recovers first
        assert code == 0, (n, out)
        now = acc.decrypt_all(load(world).inventory, _vault(world))
        assert set(now) == {a.site for a in acc.accounts(inv)}
        if f.read_bytes() == old:
            outcomes.add("old")
        else:
            assert now["an-phu"] != old_secret
            outcomes.add("new")
        assert f.stat().st_mode & 0o777 == 0o600
        leftovers = [p.name for p in list(world.iterdir()) + list(f.parent.iterdir()) if "dcops-mail" in p.name]
        assert not leftovers, (n, leftovers)
    assert outcomes == {"old", "new"}
