"""Prometheus scrape jobs of the video-conference servers, from the inventory.

Two jobs per province, added to the config ``dcops exporter prometheus-config`` renders:

- ``dcops-vc-kamailio``: Kamailio's ``xhttp_prom`` metrics on every videoconf host
  (``sip-metrics`` port). Its per-room series carry the room's ``site`` label (Kamailio's own,
  kept with ``honor_labels``); ``metric_relabel_configs`` add that room's ``district``, ``area``
  and ``tier`` from the inventory, as every other per-site series has them.
- ``dcops-vc-rtpengine``: rtpengine's own ``/metrics`` (MOS, loss, jitter, one-way streams) on
  the ``media-metrics`` port.
"""

from __future__ import annotations

from typing import Any

from dcops.inventory.model import Inventory, ServiceType
from dcops.vc.accounts import accounts


def _port(inv: Inventory, service: str, name: str) -> int | None:
    for p in inv.service(service).ports:
        if p.name == name:
            return p.port
    return None


def jobs(inv: Inventory) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for svc in inv.services:
        if svc.type != ServiceType.VIDEOCONF or svc.external:
            continue
        hosts = [inv.host(h) for h in svc.hosts]
        relabel: list[dict[str, Any]] = []
        for a in accounts(inv):
            site = inv.site(a.site)
            extra = {"district": inv.district_of(site), "area": inv.area_of(site), "tier": str(site.tier)}
            for label, value in extra.items():
                if value:
                    relabel.append({"source_labels": ["site"], "regex": a.site, "target_label": label, "replacement": value})
        kinds = (("dcops-vc-kamailio", "sip-metrics", True), ("dcops-vc-rtpengine", "media-metrics", False))
        for job, port_name, labels_extra in kinds:
            port = _port(inv, svc.name, port_name)
            if port is None:
                continue
            cfg: dict[str, Any] = {
                "job_name": job,
                "static_configs": [{"targets": [f"{h.address}:{port}"],
                                    "labels": {"service": svc.name, "host": h.name, "server_site": s.name}} for s, h in hosts],
            }
            if labels_extra:
                cfg["honor_labels"] = True
                cfg["metric_relabel_configs"] = relabel
            out.append(cfg)
    return out
