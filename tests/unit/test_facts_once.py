"""Facts issue 11 found typed in several places are written once and read everywhere else.

Each test looks where a second copy used to be (or would go) and checks it derives from the
one definition: a literal that comes back, or two readers that disagree, fails here.
"""

from __future__ import annotations

import re

from dcops.inventory import load_inventory
from dcops.lab.ssh import lab_user
from dcops.mail import handover, labsecrets
from dcops.paths import controller_paths, secrets_dir
from dcops.render.ansible import NODE_EXPORTER, WIREGUARD, ansible_inventory
from dcops.render.filesd import targets
from tests.conftest import LAB, ROOT, YENBAI

PLAYBOOKS = ROOT / "playbooks"
ROLE_TEXT = {p: p.read_text() for p in PLAYBOOKS.rglob("*") if p.is_file() and p.suffix in (".yml", ".j2", ".py")
             and "meta" not in p.parts}


def _no_code_line(pattern: str) -> list[str]:
    """Lines (comments aside) of the playbooks that hold ``pattern``."""
    out = []
    for path, text in ROLE_TEXT.items():
        for n, line in enumerate(text.splitlines(), 1):
            code = line.split("#", 1)[0] if path.suffix != ".py" else line
            if re.search(pattern, code):
                out.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    return out


def test_wireguard_port_base_and_pool_come_from_the_inventory() -> None:
    assert _no_code_line(r"\b51820\b|169\.254\.252") == []
    hosts = ansible_inventory(load_inventory(LAB))
    assert hosts["all"]["vars"]["dcops_wireguard"] == WIREGUARD
    for role in ("datanet", "firewall"):
        text = (PLAYBOOKS / "roles" / role / "defaults" / "main.yml").read_text()
        assert "dcops_wireguard.port_base" in text and "dcops_wireguard.pool" in text, role


def test_node_exporter_port_and_folder_come_from_the_inventory() -> None:
    assert _no_code_line(r"\b9100\b|/var/lib/prometheus/node-exporter") == []
    inv = load_inventory(LAB)
    assert ansible_inventory(inv)["all"]["vars"]["dcops_node_exporter"] == NODE_EXPORTER
    assert all(g["targets"][0].endswith(f":{NODE_EXPORTER['port']}") for g in targets(inv)["nodes.json"])


def test_the_secrets_folder_rule_is_dcops_paths_only() -> None:
    assert _no_code_line(r"DCOPS_SECRETS_DIR|DCOPS_LAB_DIR|/var/lib/dcops/lab") == []
    for path in (LAB, YENBAI):
        inv = load_inventory(path)
        assert controller_paths(inv)["secrets_dir"] == str(secrets_dir(inv))
    assert "secrets_dir(" in (ROOT / "src" / "dcops" / "mail" / "vault.py").read_text()


def test_the_lab_user_is_one_function() -> None:
    inv = load_inventory(LAB)
    hv = ansible_inventory(inv)["_meta"]["hostvars"]
    assert {h["ansible_user"] for h in hv.values()} == {lab_user(inv.province)}
    no_admin = inv.province.model_copy(update={"admins": []})
    assert lab_user(no_admin) == "dcops"  # the account the lab image makes, never root (PermitRootLogin no)


def test_the_handover_columns_are_one_list() -> None:
    assert labsecrets.FIELDS is handover.FIELDS
    assert list(handover.FIELDS) == ["agency", "address", "display_name", "initial_password"]


def test_no_fixed_dkim_selector_anywhere() -> None:
    """The selector is each key's own (dcops mail dkim-keys, s1 then s2 on rotation), never a constant."""
    src = "\n".join(p.read_text() for p in (ROOT / "src" / "dcops").rglob("*.py"))
    assert not re.search(r"""["']dcops\._domainkey|dkim_selector\s*[:=]\s*["']""", src)
