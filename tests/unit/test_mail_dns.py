"""Mail DNS records: golden zone fragments, determinism, named-checkzone, DKIM keys kept once made."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from dcops.cli.mail import check_zone
from dcops.inventory import load_inventory
from dcops.mail import dkim
from dcops.mail.vault import Vault, dkim_file
from dcops.render.maildns import MailDnsError, assembled_zone, mail_dns
from tests.conftest import GOLDEN, LAB, YENBAI

UPDATE = os.environ.get("DCOPS_UPDATE_GOLDEN") == "1"
GOLD = GOLDEN / "maildns"
#: Fixed public keys (1024-bit, for short golden files; real keys are 2048-bit), one per domain.
KEYS = {d: dkim.DkimPublic(d, "s1", k) for d, k in json.loads((GOLD / "dkim-public-keys.json").read_text()).items()}


@pytest.mark.parametrize("name,path", [("lab", LAB), ("yenbai", YENBAI)])
def test_golden_fragments(name: str, path: Path) -> None:
    files = mail_dns(load_inventory(path), KEYS)
    gold = GOLD / name
    if UPDATE:
        gold.mkdir(parents=True, exist_ok=True)
        for rel, text in files.items():
            (gold / rel).write_text(text, encoding="utf-8")
    assert sorted(p.name for p in gold.glob("*.zone")) == sorted(files)
    for rel, text in files.items():
        assert text == (gold / rel).read_text(encoding="utf-8"), f"{rel} differs from tests/golden/maildns/{name}/{rel}"
    assert mail_dns(load_inventory(path), KEYS) == files, "deterministic"


@pytest.mark.parametrize("path", [LAB, YENBAI])
def test_assembled_zone_passes_named_checkzone(path: Path) -> None:
    if shutil.which("named-checkzone") is None:
        pytest.skip("named-checkzone missing: scripts/setup.sh installs bind9-utils")
    inv = load_inventory(path)
    files = mail_dns(inv, KEYS)
    assert len(files) == len(inv.agencies) + 1
    assert check_zone(inv.province.domain, assembled_zone(inv, files)) == "OK"
    # and the check can fail: a CNAME beside other data at the same name
    broken = dict(files, **{"zz.zone": f"$ORIGIN {inv.agencies[0].domain}.\n@ IN CNAME elsewhere.example.\n"})
    with pytest.raises(MailDnsError, match="CNAME and other data"):
        check_zone(inv.province.domain, assembled_zone(inv, broken))


def test_records_content() -> None:
    inv = load_inventory(LAB)
    text = mail_dns(inv, KEYS)["stttt.lab.test.zone"]
    addr = "10.251.0.2"
    assert "$ORIGIN stttt.lab.test." in text
    assert "IN MX    10 mail.lab.test." in text
    assert f'"v=spf1 ip4:{addr} mx -all"' in text
    assert 'IN TXT   "v=DMARC1; p=quarantine; sp=quarantine; adkim=s; aspf=s; rua=mailto:postmaster@stttt.lab.test"' in text
    dkim_line = text[text.index("s1._domainkey") :].split("_dmarc")[0]
    strings = [s for s in dkim_line.split('"')[1::2]]
    assert "".join(strings) == KEYS["stttt.lab.test"].record()
    assert all(len(s) <= 255 for s in strings)
    assert f"mail                     3600 IN A     {addr}" in mail_dns(inv, KEYS)["mail-host.zone"]


def test_missing_dkim_key_is_named() -> None:
    inv = load_inventory(LAB)
    with pytest.raises(MailDnsError, match=r"1 domain\(s\) have no DKIM key: vanyen.lab.test; run `dcops mail dkim-keys"):
        mail_dns(inv, {d: k for d, k in KEYS.items() if d != "vanyen.lab.test"})
    files = mail_dns(inv, {}, require_dkim=False)
    assert "; no DKIM key yet" in files["vanyen.lab.test.zone"]
    with pytest.raises(MailDnsError, match="DMARC policy"):
        mail_dns(inv, KEYS, dmarc_policy="strict")


def test_dkim_keys_are_generated_once_and_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DCOPS_SECRETS_DIR", str(tmp_path / "secrets"))
    pw = tmp_path / "pw"
    pw.write_text("x\n")
    pw.chmod(0o600)
    vault = Vault(pw)
    shutil.copytree(LAB, tmp_path / "lab")  # the key transaction keeps its journal in the inventory folder
    inv = load_inventory(tmp_path / "lab")
    created, kept = dkim.ensure_keys(inv, vault)
    assert (sorted(created), kept) == (sorted(a.domain for a in inv.agencies), [])
    f = dkim_file(inv, "stttt.lab.test")
    first = f.read_bytes()
    assert f.stat().st_mode & 0o777 == 0o600 and b"PRIVATE KEY" not in first, "the private key is vault ciphertext"
    assert dkim.ensure_keys(inv, vault) == ([], sorted(a.domain for a in inv.agencies))
    assert f.read_bytes() == first
    pub = dkim.public_keys(inv)
    files = mail_dns(inv, pub)
    assert pub["stttt.lab.test"].public_key[:20] in files["stttt.lab.test.zone"].replace('"\n        "', "")
    # the private key decrypts and matches the published public key
    from cryptography.hazmat.primitives import serialization

    from dcops.mail.vault import read_yaml_with_vault

    pem = vault.decrypt(read_yaml_with_vault(f)["private_key"])
    key = serialization.load_pem_private_key(pem.encode(), None)
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    import base64

    assert base64.b64encode(der).decode() == pub["stttt.lab.test"].public_key
    created, _ = dkim.ensure_keys(inv, vault, rotate=frozenset({"stttt.lab.test"}))
    assert created == ["stttt.lab.test"] and dkim.public_keys(inv)["stttt.lab.test"].selector == "s2"
