"""Lookup ``dcops_mail``: the province's mail data for the mail role, read on the controller.

``lookup('dcops_mail', INVENTORY_DIR, secrets=SECRETS_DIR)`` returns one mapping:

- ``domains``: ``[{name, domain, display_name, quota_mb}]``, one per agency;
- ``mailboxes``: ``[{address, agency, domain, user, display_name, quota_mb, hash}]`` (``hash``
  decrypted from ``SECRETS_DIR/mail/<agency>.yml``, or None when the mailbox has none yet);
- ``dkim``: ``{domain: {selector, private_key}}`` from ``SECRETS_DIR/mail/dkim/<domain>.yml``;
- ``missing_hashes`` and ``missing_dkim``: what ``dcops mail`` still has to create.

The inventory is read with dcops' own loader (validated); vault values are decrypted with the
vault secrets Ansible was given. Use it under ``no_log``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase

DOCUMENTATION = """
name: dcops_mail
short_description: the province's mail domains, mailboxes, password hashes and DKIM keys
description: Reads a dcops inventory folder and the mail secrets kept beside it (Ansible Vault).
options:
  _terms:
    description: the inventory folder
    required: true
  secrets:
    description: the secrets folder (holds mail/<agency>.yml and mail/dkim/<domain>.yml)
    required: true
"""


class LookupModule(LookupBase):
    def run(self, terms: list[Any], variables: dict[str, Any] | None = None, **kwargs: Any) -> list[dict[str, Any]]:
        self.set_options(var_options=variables, direct=kwargs)
        from dcops.mail.txn import TxnError, reading

        # The inventory and its vault files are read together, under the shared lock that
        # `dcops mail` changes take exclusively: never half of a change (an unfinished one is refused).
        try:
            with reading(Path(str(terms[0]))):
                return self._read_all(terms)
        except TxnError as e:
            raise AnsibleError(str(e)) from None

    def _read_all(self, terms: list[Any]) -> list[dict[str, Any]]:
        from dcops.inventory import InventoryError, load

        try:
            inv = load(str(terms[0])).inventory
        except InventoryError as e:
            raise AnsibleError(str(e)) from e
        secrets = Path(str(self.get_option("secrets"))) / "mail"
        domains = [{"name": a.name, "domain": a.domain, "display_name": a.display_name, "quota_mb": a.quota_mb}
                   for a in inv.agencies]
        hashes: dict[str, dict[str, str]] = {}
        for a in inv.agencies:
            data = self._read(secrets / f"{a.name}.yml")
            hashes[a.name] = {str(k): str(v) for k, v in (data or {}).get("mail_password_hashes", {}).items()}
        boxes = []
        for m in inv.mailboxes():
            boxes.append({"address": m.address, "agency": m.agency, "domain": m.domain, "user": m.user,
                          "display_name": m.display_name, "quota_mb": m.quota_mb, "hash": hashes[m.agency].get(m.user)})
        dkim = {}
        for a in inv.agencies:
            data = self._read(secrets / "dkim" / f"{a.domain}.yml")
            if data:
                dkim[a.domain] = {"selector": str(data["selector"]), "private_key": str(data["private_key"])}
        return [{
            "domains": domains,
            "mailboxes": boxes,
            "dkim": dkim,
            "missing_hashes": [b["address"] for b in boxes if not b["hash"]],
            "missing_dkim": [d["domain"] for d in domains if d["domain"] not in dkim],
        }]

    def _read(self, path: Path) -> dict[str, Any] | None:
        if not path.is_file():
            return None
        data = self._loader.load_from_file(str(path))
        if not isinstance(data, dict):
            raise AnsibleError(f"{path}: expected a mapping")
        return data
