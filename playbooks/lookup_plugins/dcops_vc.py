"""Lookup ``dcops_vc``: the video-conference rooms' SIP accounts for the videoconf and vc_endpoint roles.

``lookup('dcops_vc', INVENTORY_DIR, secrets=SECRETS_DIR)`` returns one mapping:

- ``realm``: ``vc.<province domain>``;
- ``accounts``: ``[{site, user, address, room, endpoint, subnet, networks, transport, tier, district, secret, ha1}]``
  (``secret`` decrypted from ``SECRETS_DIR/vc/sip-accounts.yml``, None when the room has none yet);
- ``missing``: the sites whose room has no secret yet (``dcops vc passwd --missing``).

The inventory is read with dcops' own loader, under the shared lock ``dcops vc``/``dcops mail``
changes take exclusively. Use it under ``no_log``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase

DOCUMENTATION = """
name: dcops_vc
short_description: the province's video-conference rooms, their SIP accounts and secrets
description: Reads a dcops inventory folder and the SIP secrets kept in the secrets folder (Ansible Vault).
options:
  _terms:
    description: the inventory folder
    required: true
  secrets:
    description: the secrets folder (holds vc/sip-accounts.yml)
    required: true
"""


class LookupModule(LookupBase):
    def run(self, terms: list[Any], variables: dict[str, Any] | None = None, **kwargs: Any) -> list[dict[str, Any]]:
        self.set_options(var_options=variables, direct=kwargs)
        from dcops.inventory import InventoryError, load
        from dcops.mail.txn import TxnError, reading
        from dcops.vc import accounts as acc

        try:
            with reading(Path(str(terms[0]))):
                inv = load(str(terms[0])).inventory
                path = Path(str(self.get_option("secrets"))) / acc.SUBDOMAIN / acc.secrets_file(inv).name
                data = self._read(path)
        except (TxnError, InventoryError) as e:
            raise AnsibleError(str(e)) from None
        secrets = {str(k): str(v) for k, v in ((data or {}).get(acc.SECTION) or {}).items()}
        rows = []
        for a in acc.accounts(inv):
            secret = secrets.get(a.site)
            rows.append({"site": a.site, "user": a.user, "address": a.address, "room": a.room, "endpoint": a.endpoint,
                         "subnet": a.subnet, "networks": list(a.networks),
                         "transport": a.transport, "tier": a.tier, "district": a.district,
                         "secret": secret, "ha1": acc.ha1(a.user, a.realm, secret) if secret else None})
        return [{"realm": acc.realm(inv), "accounts": rows, "missing": [r["site"] for r in rows if not r["secret"]]}]

    def _read(self, path: Path) -> dict[str, Any] | None:
        if not path.is_file():
            return None
        data = self._loader.load_from_file(str(path))
        if not isinstance(data, dict):
            raise AnsibleError(f"{path}: expected a mapping")
        return data
