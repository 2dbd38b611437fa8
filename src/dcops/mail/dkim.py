"""DKIM keys: one RSA-2048 key pair per agency domain, generated once on the controller and kept.

Why on the controller (``dcops mail dkim-keys``) rather than on the mail host: the public key
must be published in DNS (``dcops mail dns``) before the first signed message, and it must
survive a rebuilt mail host, or every domain's DNS would change with it. The private key is
kept in the vault (``<secrets>/mail/dkim/<domain>.yml``, an Ansible Vault value), the public key
beside it in clear; the mail role installs the private key for OpenDKIM (``no_log``).
Running the command again generates keys only for domains that have none; ``--rotate DOMAIN``
replaces one domain's key under a new selector.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

from dcops.inventory.model import Inventory
from dcops.mail.txn import Change, commit
from dcops.mail.vault import SecretsError, Vault, dkim_file, q, read_yaml_with_vault, vault_block

DEFAULT_SELECTOR = "s1"
KEY_BITS = 2048


@dataclass(frozen=True)
class DkimPublic:
    domain: str
    selector: str
    public_key: str  # base64 DER SubjectPublicKeyInfo: the p= of the DNS record

    def record(self) -> str:
        return f"v=DKIM1; k=rsa; p={self.public_key}"


def generate(bits: int = KEY_BITS) -> tuple[str, str]:
    """A new key pair: (private key PEM, public key base64 DER)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode("ascii")
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem, base64.b64encode(der).decode("ascii")


def render_key_file(domain: str, selector: str, public_key: str, private_ciphertext: str) -> bytes:
    return (
        f"# DKIM key of {domain}, written once by `dcops mail dkim-keys`. The public key is what DNS\n"
        f"# publishes at {selector}._domainkey.{domain}; the private key is Ansible Vault ciphertext.\n"
        f"domain: {q(domain)}\n"
        f"selector: {q(selector)}\n"
        f"public_key: {q(public_key)}\n"
        f"private_key: {vault_block(private_ciphertext, 2)}"
    ).encode()


def read_public(path: Path) -> DkimPublic | None:
    data = read_yaml_with_vault(path)
    if data is None:
        return None
    try:
        return DkimPublic(str(data["domain"]), str(data["selector"]), str(data["public_key"]))
    except (KeyError, TypeError) as e:
        raise SecretsError(f"{path}: expected domain, selector, public_key and private_key ({e})") from e


def public_keys(inv: Inventory) -> dict[str, DkimPublic]:
    """The DKIM public key of every agency domain that has one."""
    out: dict[str, DkimPublic] = {}
    for a in inv.agencies:
        k = read_public(dkim_file(inv, a.domain))
        if k is not None:
            out[a.domain] = k
    return out


def ensure_keys(inv: Inventory, vault: Vault, *, selector: str = DEFAULT_SELECTOR,
                rotate: frozenset[str] = frozenset()) -> tuple[list[str], list[str]]:
    """Generate a key for every agency domain without one (and for ``rotate``); (created, kept)."""
    created: list[str] = []
    kept: list[str] = []
    changes: dict[Path, Change] = {}
    for a in sorted(inv.agencies, key=lambda x: x.domain):
        path = dkim_file(inv, a.domain)
        old = read_public(path)
        if old is not None and a.domain not in rotate:
            kept.append(a.domain)
            continue
        sel = selector
        if old is not None and old.selector == selector:
            sel = _next_selector(old.selector)
        pem, pub = generate()
        changes[path] = Change(render_key_file(a.domain, sel, pub, vault.encrypt(pem)), 0o600)
        created.append(a.domain)
    if changes:
        commit(changes, Path(inv.source))
    return created, kept


def _next_selector(sel: str) -> str:
    """``s1`` -> ``s2``; ``mail`` -> ``mail2``."""
    stem = sel.rstrip("0123456789")
    num = sel[len(stem) :]
    return f"{stem}{int(num) + 1 if num else 2}"
