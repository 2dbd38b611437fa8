"""The exporters' config as the controller renders it: the facts only the controller holds.

The exporters run on the monitoring host with a copy of the inventory and no secrets. What
they need from the secrets folder is rendered here, on the controller, into their config
(``dcops exporter config``), which the monitoring role installs:

- ``security.dkim_selectors``: the selector each mail domain's DKIM key is published under,
  from the public part of ``<secrets>/mail/dkim/<domain>.yml`` (:func:`dcops.mail.dkim.public_keys`;
  no vault password needed). A domain without a key file gets no entry, and the security
  exporter reports it as having no DKIM key published.

- ``modules.dns``: the DNS probe asks for the SOA of the province's own domain (the zone every
  DNS host of the province serves from its auth-zone), not of the root: a resolver without a
  way to the internet (a lab; a province whose DNS hosts only forward) answers SERVFAIL for
  ``.``, and every DNS host would show as giving bad answers. A ``--base`` that sets
  ``modules.dns`` keeps its own.

The result is ``--base`` (a config the caller already has, e.g. the role's concurrency and
allowed networks) with these keys set, validated against the exporter's config model.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

import yaml

from dcops.exporters.config import validate
from dcops.inventory.model import Inventory


def dkim_selectors(inv: Inventory) -> dict[str, str]:
    """Mail domain → selector of its DKIM key, for every agency domain that has a key file."""
    from dcops.mail.dkim import public_keys  # controller-side; the exporters never import dcops.mail

    return {domain: key.selector for domain, key in sorted(public_keys(inv).items())}


def dns_module(inv: Inventory) -> dict[str, Any]:
    """The DNS probe's module: one SOA answer for the province's domain, NOERROR."""
    return {"prober": "dns", "timeout": 3.0,
            "dns": {"query_name": f"{inv.province.domain}.", "query_type": "SOA", "min_answers": 1}}


def exporter_config(
    inv: Inventory, base: Mapping[str, Any] | None = None, *, source: str = "(rendered config)"
) -> dict[str, Any]:
    """``base`` with the controller's facts set; ConfigError if the result is not a valid exporter config."""
    out: dict[str, Any] = copy.deepcopy(dict(base or {}))
    security = out.get("security")
    out["security"] = {**(security if isinstance(security, dict) else {}), "dkim_selectors": dkim_selectors(inv)}
    modules = out.get("modules")
    modules = dict(modules) if isinstance(modules, dict) else {}
    modules.setdefault("dns", dns_module(inv))
    out["modules"] = modules
    validate(out, source)
    return out


def without_dkim_key(inv: Inventory, config: Mapping[str, Any]) -> list[str]:
    """The agency domains the rendered config names no DKIM selector for."""
    known = config.get("security", {}).get("dkim_selectors", {})
    return sorted({a.domain for a in inv.agencies} - set(known))


def dump(config: Mapping[str, Any], inventory: str, *, as_json: bool = False) -> str:
    if as_json:
        return json.dumps(config, indent=2, ensure_ascii=False) + "\n"
    head = (
        f"# Rendered by `dcops exporter config` from the inventory {inventory} and its DKIM key files\n"
        "# (public part); do not edit: render it again after `dcops mail dkim-keys`.\n"
    )
    return head + yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
