"""Topology rules rendered from the inventory's circuits (``dcops noc rules``).

One rule group, ``dcops-topology``, evaluated in this order (Prometheus evaluates a group's
rules in sequence, so each sees the ones before it at the same timestamp):

1. ``dcops:site_up`` — 1 if a site's gateway answers the data centre's ICMP probe (federated).
2. ``dcops:site_info`` — one series per site, value 1, labels ``site``, ``area``, ``tier``,
   ``target`` (its gateway), ``parents`` (its neighbours one hop closer to the data centre,
   comma-separated) and ``paths`` (``single`` or ``dual``) — the topology as data (federated).
3. ``dcops:site_behind_unreachable`` — per site, how many of the sites behind it (whose every
   path runs through it) are unreachable now.
4. ``DcopsUpstreamDown`` — the synthetic inhibitors: one per distinct parent set, firing when
   *every* parent of the set is down (Nagios semantics). Never notified (severity ``none``);
   Alertmanager's inhibit rule mutes ``DcopsSiteUnreachable`` with the same ``parents``.
5. ``DcopsSiteUnreachable`` — the site alert, carrying ``parents``; the one not muted is the
   root cause, and its value is the count of sites unreachable behind it.
6. ``DcopsRedundancyLost`` — a dual-path site still up while a neighbour on one of its paths is
   down (warning); never inhibited while the site is up.
7. ``DcopsOspfNeighbourLost`` — a router sees fewer OSPF neighbours than it has circuits while
   every neighbouring site answers (a circuit down, both ends alive).
8. ``DcopsVantageDown`` — a probe job's exporter (the vantage point) does not answer, attributed
   to the site of the monitoring host, not to the services it probes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml

from dcops.inventory.model import Inventory, Tier
from dcops.inventory.topology import Topology
from dcops.noc import PRODUCTION, Intervals

GROUP = "dcops-topology"
#: Probe jobs whose scrape failing means the prober (vantage point) is down, not the target.
PROBE_JOB_RX = "dcops-(icmp|tcp|tls|dns|sip-service|sip|http)"


class TopologyError(ValueError):
    """The inventory's circuits do not give every site a path to the data centre."""


@dataclass(frozen=True)
class SiteFacts:
    name: str
    area: str
    tier: str
    target: str
    parents: tuple[str, ...]
    behind: tuple[str, ...]
    dual: bool
    #: neighbours with a path to the data centre that does not run through this site
    path_neighbours: tuple[str, ...]
    #: sites sharing a circuit with it
    neighbours: tuple[str, ...]

    @property
    def circuits(self) -> int:
        """OSPF neighbours its router should have (one per circuit)."""
        return len(self.neighbours)


def _rx(names: Iterable[str]) -> str:
    return "|".join(re.escape(n).replace("\\-", "-") for n in sorted(names))


def parents_label(parents: Iterable[str]) -> str:
    return ",".join(sorted(parents))


def facts(inv: Inventory, topo: Topology | None = None) -> list[SiteFacts]:
    """What the rules need of every site on the data network (the data centre included)."""
    topo = topo or Topology.of(inv)
    lost = topo.unreachable()
    if lost:
        raise TopologyError(
            f"inventory {inv.source}: no circuit path to the data centre {topo.root!r} for "
            f"{', '.join(lost)} (circuits.yml: add a circuit to a site that reaches it)"
        )
    parents = topo.parents()
    dual = set(topo.dual_path())
    out: list[SiteFacts] = []
    for s in inv.sites:
        if s.name not in topo.adjacency:
            continue
        adj = topo.adjacency[s.name]
        ps: tuple[str, ...] = () if s.name == topo.root else parents[s.name]
        pn = topo.path_neighbours(s.name)
        out.append(
            SiteFacts(
                name=s.name,
                area=inv.area_of(s),
                tier=s.tier.value,
                target=str(inv.gateway_of(s)),
                parents=ps,
                behind=tuple(topo.behind(s.name)) if s.name != topo.root else tuple(topo.sites),
                dual=s.name in dual,
                path_neighbours=pn,
                neighbours=tuple(sorted(adj)),
            )
        )
    return out


def _dur(seconds: int) -> str:
    return f"{seconds}s"


def _summary(en: str, vi: str) -> dict[str, str]:
    return {"summary": en, "summary_vi": vi}


def render(inv: Inventory, iv: Intervals = PRODUCTION) -> dict[str, Any]:
    """The rule file as a mapping (dump it with :func:`dump`)."""
    sites = facts(inv)
    rules: list[dict[str, Any]] = [
        {"record": "dcops:site_up", "expr": 'max by (site) (probe_success{job="dcops-icmp"})'},
    ]
    for f in sites:
        rules.append(
            {
                "record": "dcops:site_info",
                "expr": "vector(1)",
                "labels": {
                    "site": f.name, "area": f.area, "tier": f.tier, "target": f.target,
                    "parents": parents_label(f.parents), "paths": "dual" if f.dual else "single",
                },
            }
        )
    for f in sites:
        expr = f'count(dcops:site_up{{site=~"{_rx(f.behind)}"}} == 0) or vector(0)' if f.behind else "vector(0)"
        rules.append({"record": "dcops:site_behind_unreachable", "expr": expr, "labels": {"site": f.name}})
    inhibitor_for = max(iv.site_for - iv.evaluation_interval, 0)
    for pset in sorted({f.parents for f in sites if f.parents}):
        label = parents_label(pset)
        rules.append(
            {
                "alert": "DcopsUpstreamDown",
                "expr": f'count(dcops:site_up{{site=~"{_rx(pset)}"}} == 0) == {len(pset)}',
                "for": _dur(inhibitor_for),
                "labels": {"severity": "none", "parents": label},
                "annotations": {
                    **_summary(f"Every parent of the sites behind {label} is down (inhibitor, not notified)",
                               f"Mọi điểm cha ({label}) đều mất kết nối (chỉ dùng để chặn cảnh báo, không gửi)"),
                    "runbook": "None: this alert only mutes DcopsSiteUnreachable of the sites behind these parents.",
                },
            }
        )
    rules.append(
        {
            "alert": "DcopsSiteUnreachable",
            "expr": (
                "(dcops:site_behind_unreachable and on(site) (dcops:site_up == 0))\n"
                "  * on(site) group_left(area, tier, parents, paths) dcops:site_info"
            ),
            "for": _dur(iv.site_for),
            "labels": {"severity": "critical"},
            "annotations": {
                **_summary(
                    "{{ $labels.site }} down — {{ $value }} sites unreachable behind it",
                    "{{ $labels.site }} mất kết nối — {{ $value }} điểm phía sau không liên lạc được",
                ),
                "description": "Gateway of {{ $labels.site }} ({{ $labels.area }}, {{ $labels.tier }}) does not "
                               "answer ICMP from the data centre; parents: {{ $labels.parents }}.",
                "runbook": "Call the site; check its router and its circuits to {{ $labels.parents }} "
                           "(dcops noc silence {{ $labels.site }} during planned work).",
            },
        }
    )
    for f in sites:
        if not f.dual or not f.path_neighbours:
            continue
        rules.append(
            {
                "alert": "DcopsRedundancyLost",
                "expr": (
                    f'dcops:site_up{{site="{f.name}"}} == 1\n'
                    f'  and on() (min(dcops:site_up{{site=~"{_rx(f.path_neighbours)}"}}) == 0)'
                ),
                "for": _dur(iv.site_for),
                "labels": {"severity": "warning", "site": f.name, "parents": parents_label(f.parents)},
                "annotations": {
                    **_summary(
                        f"{f.name} lost one of its paths to the data centre (via "
                        f"{', '.join(f.path_neighbours)}); it is still reachable",
                        f"{f.name} mất một đường kết nối về trung tâm dữ liệu (qua "
                        f"{', '.join(f.path_neighbours)}); vẫn còn liên lạc được",
                    ),
                    "runbook": "Restore the failed neighbour or circuit before the second path fails too.",
                },
            }
        )
    for f in sites:
        if not f.neighbours:
            continue
        expr = f'max(dcops_frr_ospf_neighbours_full{{site="{f.name}"}}) < {f.circuits}'
        expr += f'\n  unless on() (min(dcops:site_up{{site=~"{_rx(f.neighbours)}"}}) == 0)'
        rules.append(
            {
                "alert": "DcopsOspfNeighbourLost",
                "expr": expr,
                "for": _dur(iv.site_for),
                "labels": {"severity": "warning", "site": f.name},
                "annotations": {
                    **_summary(
                        f"Router of {f.name} has {{{{ $value }}}} OSPF neighbours in Full state, {f.circuits} expected "
                        "(a circuit is down while both ends answer)",
                        f"Bộ định tuyến {f.name} chỉ có {{{{ $value }}}} láng giềng OSPF (cần {f.circuits}): "
                        "một kênh truyền bị đứt trong khi hai đầu vẫn hoạt động",
                    ),
                    "runbook": "vtysh -c 'show ip ospf neighbor' on the router; call the circuit's carrier.",
                },
            }
        )
    vantage = _vantage_site(inv)
    rules.append(
        {
            "alert": "DcopsVantageDown",
            "expr": f'count by (job) (up{{job=~"{PROBE_JOB_RX}|dcops-exporter|dcops-sweep|dcops-security"}} == 0) > 0',
            "for": _dur(iv.site_for),
            "labels": {"severity": "critical", "site": vantage, "vantage": "true"},
            "annotations": {
                **_summary(
                    f"The prober of job {{{{ $labels.job }}}} at {vantage} does not answer: "
                    "{{ $value }} targets unprobed (the services themselves are not known down)",
                    f"Bộ thăm dò {{{{ $labels.job }}}} tại {vantage} không phản hồi: "
                    "{{ $value }} đích không được kiểm tra (không phải dịch vụ bị lỗi)",
                ),
                "runbook": "systemctl status dcops-connectivity@* dcops-security on the monitoring host.",
            },
        }
    )
    return {"groups": [{"name": GROUP, "rules": rules}]}


def _vantage_site(inv: Inventory) -> str:
    """The site of the monitoring host (where the exporters probe from); the data centre otherwise."""
    for s, h in inv.hosts():
        if "monitoring" in h.roles:
            return s.name
    return next(s.name for s in inv.sites if s.tier is Tier.DATACENTRE)


def dump(rules: dict[str, Any]) -> str:
    return "# Rendered by dcops from the inventory's circuits (dcops noc rules); do not edit.\n" + yaml.safe_dump(
        rules, sort_keys=False, allow_unicode=True, width=1000
    )


# --- the expected behaviour, from the topology alone (for the generated promtool tests) ----
@dataclass(frozen=True)
class Expected:
    unreachable: dict[str, int]  # site -> sites behind it unreachable (its alert's value)
    inhibitors: list[str]  # parents labels whose every member is down
    redundancy_lost: list[str]
    inhibited: list[str]  # sites whose DcopsSiteUnreachable Alertmanager mutes
    root_causes: list[str]  # sites whose DcopsSiteUnreachable is notified


def expect(inv: Inventory, down: Iterable[str] = (), cut: Iterable[str] = ()) -> Expected:
    """What the rules must say with the sites ``down`` and circuits ``cut``: computed by a
    plain reachability search over the circuits, independently of the rules' expressions."""
    topo = Topology.of(inv)
    down_set = set(down)
    alive = topo.reachable(without=down_set, cut=cut)
    dead = {s for s in topo.adjacency if s not in alive}
    fs = {f.name: f for f in facts(inv, topo)}
    unreachable = {s: sum(1 for b in fs[s].behind if b in dead) for s in sorted(dead)}
    psets = {f.parents for f in fs.values() if f.parents}
    inhibitors = sorted(parents_label(p) for p in psets if all(x in dead for x in p))
    red = sorted(
        f.name for f in fs.values()
        if f.dual and f.path_neighbours and f.name in alive and any(n in dead for n in f.path_neighbours)
    )
    inhibited = sorted(s for s in dead if fs[s].parents and all(p in dead for p in fs[s].parents))
    roots = sorted(s for s in dead if s not in inhibited)
    return Expected(unreachable, inhibitors, red, inhibited, roots)
