"""promtool unit tests for the topology rules, generated from the same inventory.

Scenarios: nothing down; every site down in turn (its loss cuts off the sites behind it: each
site's upstream set is checked from the other side); and, with ``circuits=True``, every circuit
cut. The expected alerts come from :func:`dcops.noc.rules.expect` (a reachability search over
the circuits), the inputs are the raw series the exporters produce (``probe_success`` of the
ICMP job, FRR's neighbour count from the textfile collector), so the rules' PromQL is what is
tested.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from dcops.inventory.model import Inventory
from dcops.inventory.topology import Topology
from dcops.noc import PRODUCTION, Intervals
from dcops.noc.rules import Expected, SiteFacts, expect, facts, parents_label, render

_TPL = re.compile(r"\{\{ \$labels\.(\w+) \}\}|\{\{ \$value \}\}")


def _fill(text: str, labels: dict[str, str], value: float) -> str:
    def sub(m: re.Match[str]) -> str:
        if m.group(1) is None:
            return f"{value:g}"
        return labels.get(m.group(1), "")

    return _TPL.sub(sub, text)


def _annotations(rule: dict[str, Any], labels: dict[str, str], value: float) -> dict[str, str]:
    return {k: _fill(v, labels, value) for k, v in rule.get("annotations", {}).items()}


def _rule(rendered: dict[str, Any], name: str, **labels: str) -> dict[str, Any]:
    for r in rendered["groups"][0]["rules"]:
        if r.get("alert") == name and all(r.get("labels", {}).get(k) == v for k, v in labels.items()):
            found: dict[str, Any] = r
            return found
    raise KeyError(name)


def _scenario(
    name: str, inv: Inventory, fs: list[SiteFacts], rendered: dict[str, Any], iv: Intervals,
    down: tuple[str, ...] = (), cut: tuple[str, ...] = (),
) -> dict[str, Any]:
    topo = Topology.of(inv)
    exp: Expected = expect(inv, down=down, cut=cut)
    dead = set(exp.unreachable)
    steps = 6
    series: list[dict[str, str]] = []
    cuts = {topo.circuits[c] for c in cut}
    for f in fs:
        up = "0" if f.name in dead else "1"
        series.append({
            "series": f'probe_success{{job="dcops-icmp",instance="{f.target}",site="{f.name}"}}',
            "values": f"{up}x{steps}",
        })
        if f.name not in dead:
            full = sum(1 for n in f.neighbours if n not in dead and frozenset((f.name, n)) not in cuts)
            series.append({
                "series": f'dcops_frr_ospf_neighbours_full{{job="node",instance="{f.name}:9100",site="{f.name}"}}',
                "values": f"{full}x{steps}",
            })
    by = {f.name: f for f in fs}
    site_rule = _rule(rendered, "DcopsSiteUnreachable")
    unreachable = []
    for s, n in exp.unreachable.items():
        f = by[s]
        labels = {"severity": "critical", "site": s, "area": f.area, "tier": f.tier,
                  "parents": parents_label(f.parents), "paths": "dual" if f.dual else "single"}
        unreachable.append({"exp_labels": labels, "exp_annotations": _annotations(site_rule, labels, n)})
    inhibitors = []
    for p in exp.inhibitors:
        labels = {"severity": "none", "parents": p}
        inhibitors.append({"exp_labels": labels,
                           "exp_annotations": _annotations(_rule(rendered, "DcopsUpstreamDown", parents=p), labels, 0)})
    redundancy = []
    for s in exp.redundancy_lost:
        f = by[s]
        labels = {"severity": "warning", "site": s, "parents": parents_label(f.parents)}
        r = next(r for r in rendered["groups"][0]["rules"]
                 if r.get("alert") == "DcopsRedundancyLost" and f'site="{s}"' in r["expr"])
        redundancy.append({"exp_labels": labels, "exp_annotations": _annotations(r, labels, 1)})
    ospf = []
    for f in fs:
        if f.name in dead or not f.neighbours or any(n in dead for n in f.neighbours):
            continue
        full = sum(1 for n in f.neighbours if frozenset((f.name, n)) not in cuts)
        if full < f.circuits:
            labels = {"severity": "warning", "site": f.name}
            ospf.append({"exp_labels": labels,
                         "exp_annotations": _annotations(_rule(rendered, "DcopsOspfNeighbourLost", site=f.name), labels, full)})
    # Fired: after for: has passed (pending at the first evaluation that sees the sample).
    t_fire = f"{iv.site_for + iv.evaluation_interval}s"
    t_pending = f"{max(iv.site_for - iv.evaluation_interval - 1, 0)}s"
    checks: list[dict[str, Any]] = [
        {"eval_time": t_fire, "alertname": "DcopsSiteUnreachable", "exp_alerts": unreachable},
        {"eval_time": t_fire, "alertname": "DcopsUpstreamDown", "exp_alerts": inhibitors},
        {"eval_time": t_fire, "alertname": "DcopsRedundancyLost", "exp_alerts": redundancy},
        {"eval_time": t_fire, "alertname": "DcopsOspfNeighbourLost", "exp_alerts": ospf},
        {"eval_time": t_fire, "alertname": "DcopsVantageDown", "exp_alerts": []},
    ]
    if dead:
        # still pending before for: has passed: nothing fires on one failed probe
        checks.append({"eval_time": t_pending, "alertname": "DcopsSiteUnreachable", "exp_alerts": []})
    return {"name": name, "interval": f"{iv.scrape_interval}s", "input_series": series, "alert_rule_test": checks}


def _packed(topo: Topology, per_test: int) -> list[tuple[str, ...]]:
    """Every site exactly once, grouped so that no two sites of a group are related."""
    behind = {s: set(topo.behind(s)) for s in topo.sites}
    groups: list[list[str]] = []
    for s in topo.sites:
        for g in groups:
            if len(g) < per_test and all(
                s not in behind[t] and t not in behind[s] and t not in topo.adjacency[s] for t in g
            ):
                g.append(s)
                break
        else:
            groups.append([s])
    return [tuple(g) for g in groups]


def render_tests(
    inv: Inventory, rule_file: str = "topology.rules.yml", *, circuits: bool = False, iv: Intervals = PRODUCTION,
    max_per_test: int = 1,
) -> dict[str, Any]:
    """A promtool test file for the rule file :func:`dcops.noc.rules.render` gives. With
    ``max_per_test`` > 1, unrelated sites (none behind another, no circuit between them) are
    down together in one test: the same checks in fewer promtool tests (a large province)."""
    topo = Topology.of(inv)
    fs = facts(inv, topo)
    rendered = render(inv, iv)
    tests = [_scenario("nothing down", inv, fs, rendered, iv)]
    for group in _packed(topo, max_per_test):
        tests.append(_scenario(" + ".join(group) + " down", inv, fs, rendered, iv, down=group))
    if circuits:
        for c in sorted(topo.circuits):
            tests.append(_scenario(f"circuit {c} cut", inv, fs, rendered, iv, cut=(c,)))
    return {"rule_files": [rule_file], "evaluation_interval": f"{iv.evaluation_interval}s", "tests": tests}


def dump_tests(tests: dict[str, Any]) -> str:
    return "# Rendered by dcops from the inventory (dcops noc rules); run: promtool test rules THIS\n" + yaml.safe_dump(
        tests, sort_keys=False, allow_unicode=True, width=1000
    )
