"""`dcops exporter config`: the exporters' config rendered on the controller from the DKIM key files."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from dcops.exporters import controller
from dcops.exporters.config import load_config
from dcops.exporters.errors import ConfigError
from dcops.inventory import load_inventory
from dcops.inventory.model import Inventory
from dcops.mail import dkim
from dcops.mail.vault import Vault, dkim_file
from tests.conftest import LAB
from tests.exporters.procs import dcops, write

ROTATED = "stttt.lab.test"


@pytest.fixture
def secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A secrets folder of its own (DCOPS_SECRETS_DIR) with a DKIM key for every lab domain (selector s1)."""
    monkeypatch.setenv("DCOPS_SECRETS_DIR", str(tmp_path / "secrets"))
    pw = write(tmp_path / "vault-password", "test\n")
    pw.chmod(0o600)
    dkim.ensure_keys(load_inventory(LAB), Vault(pw))
    return {**os.environ, "DCOPS_VAULT_PASSWORD_FILE": str(pw)}


def render(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([dcops(), "exporter", "config", "-i", str(LAB), *args], capture_output=True, text=True, env=env)


def domains(inv: Inventory) -> list[str]:
    return sorted(a.domain for a in inv.agencies)


def test_rendered_config_carries_the_selector_of_each_domains_key(secrets: dict[str, str], tmp_path: Path) -> None:
    inv = load_inventory(LAB)
    cfg = controller.exporter_config(inv)
    assert cfg["security"] == {"dkim_selectors": dict.fromkeys(domains(inv), "s1")}
    # the DNS probe asks for the province's own zone (a lab's resolvers cannot answer for the root)
    assert cfg["modules"] == {"dns": {"prober": "dns", "timeout": 3.0,
                                      "dns": {"query_name": "lab.test.", "query_type": "SOA", "min_answers": 1}}}
    assert controller.exporter_config(inv, {"modules": {"dns": {"prober": "dns"}}})["modules"]["dns"] == {"prober": "dns"}
    assert cfg["security"]["dkim_selectors"] == {d: k.selector for d, k in dkim.public_keys(inv).items()}
    # the command prints the same, as YAML or JSON, and writes it with --out
    r = render(env=secrets)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert yaml.safe_load(r.stdout) == cfg and r.stdout.startswith("# Rendered by `dcops exporter config`")
    assert json.loads(render("--json", env=secrets).stdout) == cfg
    out = tmp_path / "exporter.yml"
    r = render("--out", str(out), env=secrets)
    assert r.returncode == 0 and r.stdout == "" and f"wrote {out}" in r.stderr
    assert yaml.safe_load(out.read_text()) == cfg and out.stat().st_mode & 0o777 == 0o644
    # the file the monitoring role installs passes the exporters' own checks
    assert load_config(out).security.dkim_selectors == cfg["security"]["dkim_selectors"]
    for kind in ("connectivity", "security"):
        chk = subprocess.run([dcops(), "exporter", kind, "--check", "-i", str(LAB), "--config", str(out)],
                             capture_output=True, text=True)
        assert chk.returncode == 0 and chk.stdout.startswith("config ok:"), chk.stdout + chk.stderr
        assert "no DKIM selector" not in chk.stdout


def test_rotated_domain_gets_its_new_selector(secrets: dict[str, str]) -> None:
    inv = load_inventory(LAB)
    r = subprocess.run([dcops(), "mail", "dkim-keys", "-i", str(LAB), "--rotate", ROTATED], capture_output=True, text=True,
                       env=secrets)
    assert r.returncode == 0, r.stderr
    want = {**dict.fromkeys(domains(inv), "s1"), ROTATED: "s2"}
    assert controller.exporter_config(inv)["security"]["dkim_selectors"] == want
    assert yaml.safe_load(render(env=secrets).stdout)["security"]["dkim_selectors"] == want


def test_domain_without_a_key_gets_no_entry_and_is_named(secrets: dict[str, str], tmp_path: Path) -> None:
    inv = load_inventory(LAB)
    gone = "vanyen.lab.test"
    dkim_file(inv, gone).unlink()
    out = tmp_path / "exporter.yml"
    r = render("--out", str(out), env=secrets)
    assert r.returncode == 0
    assert f"no DKIM key (run `dcops mail dkim-keys`) for: {gone}" in r.stderr
    assert gone not in yaml.safe_load(out.read_text())["security"]["dkim_selectors"]
    chk = subprocess.run([dcops(), "exporter", "security", "--check", "-i", str(LAB), "--config", str(out)],
                         capture_output=True, text=True)
    assert chk.returncode == 0 and f"no DKIM selector (reported as no key published) for: {gone}" in chk.stdout


def test_base_is_kept_and_the_result_validated(secrets: dict[str, str], tmp_path: Path) -> None:
    base = write(tmp_path / "base.yml", "concurrency: 64\nallowed_networks: [10.250.0.0/24]\n"
                                        "security: {timeout: 3, dkim_selectors: {old.test: s9}}\n")
    got = yaml.safe_load(render("--base", str(base), env=secrets).stdout)
    inv = load_inventory(LAB)
    assert got == {"concurrency": 64, "allowed_networks": ["10.250.0.0/24"],
                   "security": {"timeout": 3, "dkim_selectors": dict.fromkeys(domains(inv), "s1")},
                   "modules": {"dns": controller.dns_module(inv)}}
    out = tmp_path / "exporter.yml"
    for text, problem in (("concurrency: 0\n", "concurrency: Input should be greater than or equal to 1"),
                          ("security: {dkim_selector: dcops}\n", "security: Value error, dkim_selector is gone")):
        r = render("--base", str(write(base, text)), "--out", str(out), env=secrets)
        assert r.returncode == 2 and problem in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert not out.exists()


def test_the_single_guessed_selector_is_refused_with_a_pointer() -> None:
    with pytest.raises(ConfigError, match=r"dkim_selector is gone.*dkim_selectors: \{domain: selector\}.*dcops exporter config"):
        controller.exporter_config(load_inventory(LAB), {"security": {"dkim_selector": "dcops"}})
