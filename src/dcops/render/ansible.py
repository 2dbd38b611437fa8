"""The Ansible inventory of a province, in the JSON form of ``ansible-inventory --list``.

Groups (Ansible group names cannot hold ``-``, so names are slugged with ``_``):

- ``province_<code>`` → ``provincial`` (data centre, departments, centres, hubs) and
  ``district_<name>`` → ``site_<name>`` → hosts: the province → district → site hierarchy; in a
  province without a district level, ``area_<name>`` groups (when the sites declare areas) take
  the districts' place and a commune without an area hangs from the province group itself;
- ``tier_<tier>``: the site groups of each tier;
- ``role_<role>``: hosts by role (router, mail, monitoring, ...);
- ``service_<name>``: hosts that provide each internal service.

A site with no hosts listed but with a management address is managed through its router:
it becomes one host named after the site with role ``router``.
"""

from __future__ import annotations

from typing import Any

from dcops.inventory.model import Host, Inventory, Site, Tier
from dcops.lab.ssh import lab_user
from dcops.paths import lab_dir

#: The data centre <-> district WireGuard legs: leg *i* (by circuit name) uses UDP ``port_base + i``
#: at both ends and the *i*-th /30 of ``pool`` inside the tunnel (link-local addresses, as cloud
#: VPNs do). The datanet role builds the tunnels from it, the firewall role opens them: one fact.
WIREGUARD = {"port_base": 51820, "pool": "169.254.252.0/24"}
#: Where Debian's node_exporter listens and reads textfile metrics: the monitoring role runs it,
#: the firewall opens its port to the monitoring hosts, other roles (mail backups, ...) write
#: their metrics into its folder, Prometheus scrapes it (file_sd nodes.json).
NODE_EXPORTER = {"port": 9100, "textfile_dir": "/var/lib/prometheus/node-exporter"}
#: The rooms' endpoints answer the monitoring's SIP OPTIONS probes on this port (file_sd
#: videoconf.json); the firewall lets the monitoring hosts reach them (group_vars/all/firewall.yml).
SIP_PORT = 5060

#: Host variables the roles' network plan is computed from: the inventory plugin publishes them
#: for every host as ``dcops_net_hosts``; playbooks/filter_plugins/dcops_net.py reads them.
NET_PLAN_KEYS = (
    "dcops_site",
    "dcops_tier",
    "dcops_district",
    "dcops_area",
    "dcops_hub",
    "dcops_subnet",
    "dcops_loopback",
    "dcops_address",
    "dcops_router",
    "dcops_circuits",
    "dcops_roles",
)


def group_name(kind: str, name: str) -> str:
    return f"{kind}_{name.replace('-', '_')}"


def site_hosts(inv: Inventory, site: Site) -> list[Host]:
    """The Ansible hosts of a site: its listed hosts, or its router when only that is known."""
    if site.hosts:
        return list(site.hosts)
    if site.management is not None and site.gateway is not None:
        return [Host(name=site.name, roles=["router"], address=site.gateway, management=site.management)]
    return []


def _circuits(inv: Inventory, site: Site) -> list[dict[str, Any]]:
    out = []
    for c in inv.circuits:
        if site.name not in (c.a, c.b):
            continue
        mine, peer = ("a", "b") if c.a == site.name else ("b", "a")
        out.append(
            {
                "name": c.name,
                "peer": getattr(c, peer),
                "address": str(getattr(c, f"{mine}_address")),
                "peer_address": str(getattr(c, f"{peer}_address")),
                "prefixlen": c.subnet.prefixlen,
                "cost": c.cost,
                "bandwidth_mbps": c.bandwidth_mbps,
            }
        )
    return out


def _hostvars(inv: Inventory, site: Site, host: Host) -> dict[str, Any]:
    r = inv.router_of(site)
    router = host.name == r.name if r is not None else not site.hosts  # implicit router host
    hv: dict[str, Any] = {
        "ansible_host": str(host.management),
        "dcops_site": site.name,
        "dcops_site_display_name": site.display_name,
        "dcops_tier": site.tier.value,
        "dcops_roles": list(host.roles),
        "dcops_address": str(host.address),
        "dcops_subnet": str(site.subnet),
        "dcops_uses": list(site.uses),
    }
    district = inv.district_of(site)
    if district is not None:
        hv["dcops_district"] = district
    hv["dcops_area"] = inv.area_of(site)
    if router:
        hv["dcops_router"] = True
        hv["dcops_hub"] = site.hub
        hv["dcops_loopback"] = str(site.loopback) if site.loopback else None
        hv["dcops_circuits"] = _circuits(inv, site)
    if inv.province.lab:
        hv["ansible_user"] = lab_user(inv.province)
        hv["ansible_ssh_common_args"] = f"-F {lab_dir(inv.province.code) / 'ssh_config'}"
    return hv


def _all_vars(inv: Inventory) -> dict[str, Any]:
    p = inv.province
    services = {}
    for s in inv.services:
        addr = inv.service_address(s)
        services[s.name] = {
            "type": s.type.value,
            "external": s.external,
            "hosts": list(s.hosts),
            "address": str(addr) if addr else None,
            "url": s.url,
            "ports": [
                {"name": pt.name, "proto": pt.proto.value, "port": pt.port, "port_end": pt.port_end}
                for pt in s.ports
            ],
        }
    return {
        "dcops_province": {"name": p.name, "code": p.code, "domain": p.domain, "lab": p.lab},
        "dcops_management_network": str(p.management_network),
        "dcops_controller": str(p.controller),
        "dcops_admins": [a.name for a in p.admins],
        "dcops_services": services,
        "dcops_wireguard": dict(WIREGUARD),
        "dcops_node_exporter": dict(NODE_EXPORTER),
        "dcops_vc_probe": {
            "port": SIP_PORT,
            "endpoints": sorted({str(s.videoconf.endpoint) for s in inv.sites if s.videoconf is not None}),
        },
        "dcops_flows": [
            {"to": f.to, "ports": list(f.ports), "from": list(f.from_), "description": f.description}
            for f in inv.flows
        ],
    }


def ansible_inventory(inv: Inventory) -> dict[str, Any]:
    """The inventory as ``ansible-inventory --list`` prints it (also the dynamic-script format)."""
    groups: dict[str, dict[str, Any]] = {}

    def group(name: str) -> dict[str, Any]:
        return groups.setdefault(name, {"hosts": [], "children": []})

    def child(parent: str, name: str) -> None:
        group(name)
        if name not in group(parent)["children"]:
            group(parent)["children"].append(name)

    hostvars: dict[str, dict[str, Any]] = {}
    prov = group_name("province", inv.province.code)
    group(prov)
    child(prov, "provincial")
    for d in inv.districts:
        child(prov, group_name("district", d.name))
    for a in inv.areas:
        child(prov, group_name("area", a.name))
    for t in Tier:
        group(group_name("tier", t.value))

    for site in inv.sites:
        sg = group_name("site", site.name)
        if site.district:
            parent = group_name("district", site.district)
        elif site.area and not inv.province.has_districts:
            parent = group_name("area", site.area)
        elif site.tier is Tier.COMMUNE:
            parent = prov  # two-level: a commune answers to the province itself
        else:
            parent = "provincial"
        child(parent, sg)
        child(group_name("tier", site.tier.value), sg)
        for h in site_hosts(inv, site):
            group(sg)["hosts"].append(h.name)
            hostvars[h.name] = _hostvars(inv, site, h)
            for r in h.roles:
                group(group_name("role", r))["hosts"].append(h.name)

    for svc in inv.services:
        if svc.hosts:
            group(group_name("service", svc.name))["hosts"].extend(svc.hosts)

    out: dict[str, Any] = {"_meta": {"hostvars": {k: hostvars[k] for k in sorted(hostvars)}}}
    out["all"] = {"children": sorted(["ungrouped", *(g for g in groups if _is_top(g, groups))]), "vars": _all_vars(inv)}
    out["ungrouped"] = {"hosts": []}
    for name in sorted(groups):
        g = groups[name]
        entry: dict[str, Any] = {}
        if g["hosts"]:
            entry["hosts"] = sorted(set(g["hosts"]))
        if g["children"]:
            entry["children"] = sorted(g["children"])
        out[name] = entry
    return out


def _is_top(name: str, groups: dict[str, dict[str, Any]]) -> bool:
    return not any(name in g["children"] for g in groups.values())
