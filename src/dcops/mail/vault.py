"""Where mail secrets live, the Ansible Vault password that guards them, and the hash files.

Secrets folder: :func:`dcops.paths.secrets_dir` (the rule every tool and role shares).

Mail keeps there:

- ``mail/<agency>.yml``: the agency's password hashes, one Ansible Vault value (``!vault``)
  per mailbox, sorted by user, so adding, removing or changing one mailbox changes that
  mailbox's entry only and the other ciphertexts stay byte for byte;
- ``mail/dkim/<domain>.yml``: the domain's DKIM private key (Ansible Vault) and public key.

Vault password file: ``--vault-password-file``, else ``$DCOPS_VAULT_PASSWORD_FILE``, else
``$ANSIBLE_VAULT_PASSWORD_FILE``, else for a lab the lab's own (generated once, mode 0600, in the
lab folder, the one ``dcops.converge`` passes to Ansible).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from dcops.inventory.model import Inventory
from dcops.paths import ensure_lab_vault_password, secrets_dir

VAULT_TAG = "!vault"


class SecretsError(Exception):
    """Secrets that cannot be read or written; the message says what to do."""


def mail_dir(inv: Inventory) -> Path:
    return secrets_dir(inv) / "mail"


def hash_file(inv: Inventory, agency: str) -> Path:
    return mail_dir(inv) / f"{agency}.yml"


def dkim_file(inv: Inventory, domain: str) -> Path:
    return mail_dir(inv) / "dkim" / f"{domain}.yml"


def vault_password_file(inv: Inventory, explicit: Path | None = None, *, create_for_lab: bool = True) -> Path:
    """The vault password file to use (see the module's docstring); checked to be readable."""
    for candidate in (explicit, os.environ.get("DCOPS_VAULT_PASSWORD_FILE"), os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE")):
        if candidate:
            p = Path(candidate)
            if not p.is_file():
                raise SecretsError(f"vault password file {p} does not exist")
            return p
    if inv.province.lab and create_for_lab:
        return ensure_lab_vault_password(inv.province.code)
    raise SecretsError(
        f"no vault password for province {inv.province.code!r}: pass --vault-password-file or set"
        " DCOPS_VAULT_PASSWORD_FILE (a file, mode 0600, holding the province's Ansible Vault password)"
    )


class Vault:
    """Encrypt and decrypt Ansible Vault values with one password."""

    def __init__(self, password_file: Path) -> None:
        from ansible.parsing.vault import VaultLib, VaultSecret

        try:
            st = password_file.stat()
            password = password_file.read_bytes().strip()
        except OSError as e:
            raise SecretsError(f"cannot read the vault password file {password_file}: {e}") from e
        if not password:
            raise SecretsError(f"the vault password file {password_file} is empty")
        if st.st_mode & 0o077:
            mode = f"{st.st_mode & 0o777:o}"
            raise SecretsError(f"the vault password file {password_file} is readable by others (mode {mode}); chmod 600 it")
        self.file = password_file
        self._lib = VaultLib([("default", VaultSecret(password))])

    def encrypt(self, text: str) -> str:
        out: bytes = self._lib.encrypt(text)
        return out.decode("ascii")

    def decrypt(self, ciphertext: str, where: str = "") -> str:
        from ansible.errors import AnsibleError

        try:
            out: bytes = self._lib.decrypt(ciphertext)
        except AnsibleError as e:
            raise SecretsError(f"cannot decrypt {where or 'a vault value'} with {self.file}: wrong vault password? ({e})") from e
        return out.decode("utf-8")


class _VaultLoader(yaml.SafeLoader):
    """Reads ``!vault`` values as their ciphertext (left encrypted)."""


def _vault_constructor(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    assert isinstance(node, yaml.ScalarNode)
    return str(loader.construct_scalar(node))


_VaultLoader.add_constructor(VAULT_TAG, _vault_constructor)


def read_yaml_with_vault(path: Path) -> Any:
    """A YAML file whose ``!vault`` values stay ciphertext strings; None if the file does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise SecretsError(f"cannot read {path}: {e}") from e
    try:
        return yaml.load(text, Loader=_VaultLoader)
    except yaml.YAMLError as e:
        raise SecretsError(f"{path}: not valid YAML: {e}") from e


def vault_block(ciphertext: str, indent: int) -> str:
    """``!vault |`` followed by the ciphertext as an indented literal block."""
    pad = " " * indent
    return f"{VAULT_TAG} |\n" + "".join(f"{pad}{line}\n" for line in ciphertext.strip().splitlines())


def q(s: str) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML; UTF-8 kept readable)."""
    return json.dumps(s, ensure_ascii=False)


class HashFile:
    """An agency's password hashes: user -> vault ciphertext of ``{SCHEME}hash``."""

    def __init__(self, agency: str, domain: str, entries: dict[str, str] | None = None) -> None:
        self.agency = agency
        self.domain = domain
        self.entries: dict[str, str] = dict(entries or {})

    @classmethod
    def read(cls, path: Path, agency: str, domain: str) -> HashFile:
        data = read_yaml_with_vault(path)
        if data is None:
            return cls(agency, domain)
        hashes = data.get("mail_password_hashes") if isinstance(data, dict) else None
        if not isinstance(hashes, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in hashes.items()):
            raise SecretsError(f"{path}: expected 'mail_password_hashes: {{user: !vault ...}}'")
        return cls(agency, domain, hashes)

    def render(self) -> bytes:
        lines = [
            f"# Password hashes of {self.agency} ({self.domain}): one Ansible Vault value per mailbox.\n",
            "# Written by `dcops mail` (import, add, remove, passwd); sorted by user. Never plaintext.\n",
            f"agency: {q(self.agency)}\n",
            f"domain: {q(self.domain)}\n",
        ]
        if not self.entries:
            lines.append("mail_password_hashes: {}\n")
        else:
            lines.append("mail_password_hashes:\n")
            for user in sorted(self.entries):
                lines.append(f"  {q(user)}: {vault_block(self.entries[user], 4)}")
        return "".join(lines).encode("utf-8")
