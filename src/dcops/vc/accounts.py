"""SIP accounts of the video-conference rooms: one per ``Site.videoconf`` of the inventory.

The account of site ``S`` in a province with domain ``D`` is ``S@vc.D`` (user ``S``, realm
``vc.D``). Its secret is generated once and kept in Ansible Vault, in one file of the secrets
folder (:func:`dcops.paths.secrets_dir`):

- ``<secrets>/vc/sip-accounts.yml``: ``vc_sip_secrets: {site: !vault ...}``, sorted by site, so
  rotating one room's secret changes that entry only.

Changes are written with the mail transaction machinery (:func:`dcops.mail.txn.commit`, journal in
the inventory folder, under its lock): a process killed at any point leaves the old file or the
new one, never half of one. The file is written mode 0600.

Kamailio never gets a secret in clear: the ``videoconf`` role gives it the HA1 digest
(``MD5(user:realm:secret)``, :func:`ha1`) in a mode-0600 file; the room's user agent gets the secret.
"""

from __future__ import annotations

import hashlib
import secrets as _secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from dcops.inventory import Loaded
from dcops.inventory.model import Inventory
from dcops.mail.txn import Change, commit
from dcops.mail.vault import SecretsError, Vault, q, read_yaml_with_vault, vault_block
from dcops.paths import secrets_dir

SUBDOMAIN = "vc"
SECTION = "vc_sip_secrets"
#: Characters of a generated secret: letters and digits only (safe in every UA's config syntax).
_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
SECRET_LENGTH = 24


class VcError(Exception):
    """A video-conference account change that cannot be made; the message says why."""


@dataclass(frozen=True)
class VcAccount:
    site: str
    room: str
    realm: str
    endpoint: str
    subnet: str
    transport: str  # "datanet" (registers from its site's subnet) or "internet" (anywhere, TLS only)
    tier: str
    district: str | None
    #: Where the room may register from: its site's LAN and its router's own addresses (loopback,
    #: circuit ends: the source a router-hosted user agent's packets carry).
    networks: tuple[str, ...] = ()

    @property
    def user(self) -> str:
        return self.site

    @property
    def address(self) -> str:
        return f"{self.site}@{self.realm}"


def realm(inv: Inventory) -> str:
    return f"{SUBDOMAIN}.{inv.province.domain}"


def accounts(inv: Inventory) -> list[VcAccount]:
    """Every room of the inventory, sorted by site."""
    r = realm(inv)
    out = [
        VcAccount(s.name, s.videoconf.room, r, str(s.videoconf.endpoint), str(s.subnet), s.videoconf.transport,
                  str(s.tier), inv.district_of(s), site_networks(inv, s.name))
        for s in inv.sites if s.videoconf is not None
    ]
    return sorted(out, key=lambda a: a.site)


def site_networks(inv: Inventory, name: str) -> tuple[str, ...]:
    """The site's LAN, then its router's loopback and circuit addresses (/32), from the inventory."""
    site = inv.site(name)
    out = [str(site.subnet)]
    if site.loopback is not None:
        out.append(f"{site.loopback}/32")
    for c in inv.circuits:
        if site.name == c.a:
            out.append(f"{c.a_address}/32")
        elif site.name == c.b:
            out.append(f"{c.b_address}/32")
    return tuple(dict.fromkeys(out))


def find(inv: Inventory, site: str) -> VcAccount:
    """The account of ``site``; VcError naming the sites that have a room if it has none."""
    for a in accounts(inv):
        if a.site == site:
            return a
    names = {s.name for s in inv.sites}
    rooms = ", ".join(a.site for a in accounts(inv)) or "none"
    if site in names:
        raise VcError(f"site {site!r} has no video-conference room in the inventory (add a videoconf: section to it);"
                      f" sites with a room: {rooms}")
    raise VcError(f"unknown site {site!r} in inventory {inv.source}; sites with a room: {rooms}")


def secrets_file(inv: Inventory) -> Path:
    return secrets_dir(inv) / SUBDOMAIN / "sip-accounts.yml"


def ha1(user: str, realm_: str, secret: str) -> str:
    """The digest HA1 Kamailio checks against (RFC 2617): MD5 of ``user:realm:secret``."""
    return hashlib.md5(f"{user}:{realm_}:{secret}".encode(), usedforsecurity=False).hexdigest()


def new_secret() -> str:
    return "".join(_secrets.choice(_ALPHABET) for _ in range(SECRET_LENGTH))


class SecretFile:
    """The rooms' secrets: site -> vault ciphertext."""

    def __init__(self, realm_: str, entries: dict[str, str] | None = None) -> None:
        self.realm = realm_
        self.entries: dict[str, str] = dict(entries or {})

    @classmethod
    def read(cls, path: Path, realm_: str) -> SecretFile:
        data = read_yaml_with_vault(path)
        if data is None:
            return cls(realm_)
        entries = data.get(SECTION) if isinstance(data, dict) else None
        if not isinstance(entries, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in entries.items()):
            raise SecretsError(f"{path}: expected '{SECTION}: {{site: !vault ...}}'")
        return cls(realm_, entries)

    def render(self) -> bytes:
        lines = [
            "# SIP secrets of the video-conference rooms: one Ansible Vault value per site.\n",
            "# Written by `dcops vc passwd`; sorted by site. Never plaintext.\n",
            f"realm: {q(self.realm)}\n",
        ]
        if not self.entries:
            lines.append(f"{SECTION}: {{}}\n")
        else:
            lines.append(f"{SECTION}:\n")
            for site in sorted(self.entries):
                lines.append(f"  {q(site)}: {vault_block(self.entries[site], 4)}")
        return "".join(lines).encode("utf-8")


def load_secrets(inv: Inventory) -> SecretFile:
    return SecretFile.read(secrets_file(inv), realm(inv))


def decrypt_all(inv: Inventory, vault: Vault) -> dict[str, str]:
    """``{site: secret}`` of every room that has one (orphans of removed sites left out)."""
    sf = load_secrets(inv)
    path = secrets_file(inv)
    sites = {a.site for a in accounts(inv)}
    return {s: vault.decrypt(c, f"{path} [{s}]") for s, c in sf.entries.items() if s in sites}


def missing(inv: Inventory) -> list[str]:
    """Sites with a room and no secret yet."""
    have = load_secrets(inv).entries
    return [a.site for a in accounts(inv) if a.site not in have]


def issue(loaded: Loaded, vault: Vault, sites: Iterable[str]) -> dict[str, str]:
    """New secrets for ``sites`` (each checked to have a room), written in one transaction.

    Entries of sites no longer in the inventory are dropped in the same write. Call it under
    :func:`dcops.mail.txn.settled` (the inventory's lock, an interrupted change finished first)."""
    inv = loaded.inventory
    wanted = sorted({find(inv, s).site for s in sites})
    sf = load_secrets(inv)
    path = secrets_file(inv)
    for s, c in sf.entries.items():  # the vault password must open what is there before anything is added
        vault.decrypt(c, f"{path} [{s}]")
    rooms = {a.site for a in accounts(inv)}
    out = {s: new_secret() for s in wanted}
    entries = {s: c for s, c in sf.entries.items() if s in rooms}
    entries |= {s: vault.encrypt(secret) for s, secret in out.items()}
    if not out and entries == sf.entries:
        return {}
    commit({path: Change(SecretFile(sf.realm, entries).render(), 0o600)}, Path(loaded.inventory.source),
           about=f"new SIP secrets for {', '.join(wanted)} in {path}")
    return out


def ensure_lab(inventory_dir: Path) -> list[str]:
    """A lab converges with nothing by hand: every room without a secret gets one (a real province
    issues them with ``dcops vc passwd --missing``). Returns the sites that got one."""
    from dcops.inventory import load
    from dcops.mail.txn import settled
    from dcops.mail.vault import vault_password_file

    with settled(Path(inventory_dir)):
        loaded = load(inventory_dir)
        inv = loaded.inventory
        if not inv.province.lab:
            raise VcError(f"{inventory_dir}: province {inv.province.code!r} is not a lab; use `dcops vc passwd --missing`")
        todo = missing(inv)
        if not todo:
            return []
        return sorted(issue(loaded, Vault(vault_password_file(inv)), todo))
