"""Counts of a province, as `dcops inventory check` prints them and tests compare them."""

from __future__ import annotations

from collections import Counter
from typing import Any

from dcops.inventory.model import Inventory, Tier


def counts(inv: Inventory) -> dict[str, Any]:
    """The figures an auditor compares with the published ones (DESIGN.md)."""
    datanet = inv.datanet_sites()
    vc = [s for s in inv.sites if s.videoconf is not None]
    return {
        "districts": len(inv.districts),
        "sites": len(inv.sites),
        "sites_by_tier": {t.value: sum(1 for s in inv.sites if s.tier is t) for t in Tier},
        "datanet_sites": len(datanet),
        "datanet_sites_by_tier": {t.value: sum(1 for s in datanet if s.tier is t) for t in Tier if t is not Tier.DATACENTRE},
        "videoconf_endpoints": len(vc),
        "videoconf_endpoints_by_tier": {t.value: sum(1 for s in vc if s.tier is t) for t in Tier},
        "circuits": len(inv.circuits),
        "hosts": len(inv.hosts()),
        "services": len(inv.services),
        "external_services": sum(1 for s in inv.services if s.external),
        "flows": len(inv.flows),
        "mail_agencies": len(inv.agencies),
        "mail_accounts": inv.mail_accounts(),
        "placeholders": sum(1 for s in inv.sites if s.placeholder),
    }


def per_district(inv: Inventory) -> dict[str, Counter[str]]:
    """Sites per tier in each district, or each area in a province without districts
    (``province`` for provincial-level sites and sites with no area)."""
    out: dict[str, Counter[str]] = {}
    for s in inv.sites:
        out.setdefault(inv.area_of(s), Counter())[s.tier.value] += 1
    return out
