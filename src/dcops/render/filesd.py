"""Prometheus file_sd target files, with ``site``, ``district``, ``area`` and ``tier`` as target labels.

Files (each a list of target groups, one group per site or host):

- ``sites.json``: each site's gateway (ICMP reachability of the site);
- ``nodes.json``: node_exporter on every managed host (``<management>:9100``);
- ``services.json``: every TCP/UDP port of every internal service (``<address>:<port>``),
  with ``service``, ``port_name`` and ``proto`` labels;
- ``external.json``: the URLs of the external services, watched from the data centre;
- ``videoconf.json``: every video-conference endpoint (``<endpoint>:5060``).
"""

from __future__ import annotations

from typing import Any

from dcops.inventory.model import Inventory, Proto, Site
from dcops.render import dump_json
from dcops.render.ansible import NODE_EXPORTER, SIP_PORT, site_hosts

NODE_EXPORTER_PORT = NODE_EXPORTER["port"]


def site_labels(inv: Inventory, site: Site) -> dict[str, str]:
    """A site's target labels: ``district`` only in a province with a district level; ``area``
    (the administrative grouping, = the district where there is one) everywhere."""
    district = inv.district_of(site)
    return {
        "site": site.name,
        **({"district": district} if district is not None else {}),
        "area": inv.area_of(site),
        "tier": site.tier.value,
    }


def targets(inv: Inventory) -> dict[str, list[dict[str, Any]]]:
    sites: list[dict[str, Any]] = []
    nodes: list[dict[str, Any]] = []
    vc: list[dict[str, Any]] = []
    for s in inv.sites:
        labels = site_labels(inv, s)
        sites.append(
            {"targets": [str(inv.gateway_of(s))], "labels": {**labels, "datanet": str(s.datanet).lower()}}
        )
        for h in site_hosts(inv, s):
            nodes.append(
                {"targets": [f"{h.management}:{NODE_EXPORTER_PORT}"], "labels": {**labels, "host": h.name}}
            )
        if s.videoconf is not None:
            vc.append(
                {
                    "targets": [f"{s.videoconf.endpoint}:{SIP_PORT}"],
                    "labels": {**labels, "transport": s.videoconf.transport},
                }
            )

    services: list[dict[str, Any]] = []
    external: list[dict[str, Any]] = []
    for svc in inv.services:
        if svc.external:
            external.append(
                {"targets": [svc.url], "labels": {"service": svc.name, "service_type": svc.type.value}}
            )
            continue
        addr = inv.service_address(svc)
        if addr is None:
            continue
        host_site = inv.host(svc.hosts[0])[0] if svc.hosts else inv.site_of_address(addr)
        labels = site_labels(inv, host_site) if host_site is not None else {}
        for pt in svc.ports:
            if pt.proto is Proto.ICMP:
                continue
            services.append(
                {
                    "targets": [f"{addr}:{pt.port}"],
                    "labels": {
                        **labels,
                        "service": svc.name,
                        "service_type": svc.type.value,
                        "port_name": pt.name,
                        "proto": pt.proto.value,
                    },
                }
            )
    return {
        "sites.json": sites,
        "nodes.json": nodes,
        "services.json": services,
        "external.json": external,
        "videoconf.json": vc,
    }


def file_sd(inv: Inventory) -> dict[str, str]:
    """File name → file text, for ``file_sd_configs``."""
    return {name: dump_json(groups) for name, groups in targets(inv).items()}
