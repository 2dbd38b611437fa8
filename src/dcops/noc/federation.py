"""The national view: a Prometheus that federates the provinces' site-state series.

Each province's Prometheus keeps its alerting; its ``dcops:site_*`` recording rules (site up,
the topology as ``dcops:site_info``, the count behind every site) are what it exposes on
``/federate``. Its ``external_labels`` carry ``province``; with ``honor_labels: true`` the
national server keeps them, so the same site name in two provinces stays two series.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

#: What a national Prometheus pulls from each province (the recording rules of dcops.noc.rules).
MATCH = ['{__name__=~"dcops:site_.*"}', '{__name__="ALERTS",severity="critical"}']
_TARGET = re.compile(r"^(?P<code>[a-z0-9][a-z0-9-]*)=(?P<addr>[A-Za-z0-9.-]+:\d{1,5})$")


class FederationError(ValueError):
    pass


def parse_provinces(items: list[str]) -> dict[str, str]:
    """``CODE=HOST:PORT`` per province (the Prometheus of each)."""
    out: dict[str, str] = {}
    for item in items:
        m = _TARGET.match(item.strip())
        if m is None:
            raise FederationError(f"--province {item!r}: expected CODE=HOST:PORT (e.g. laocai=10.1.0.10:9090)")
        if m["code"] in out:
            raise FederationError(f"--province {m['code']} given twice")
        out[m["code"]] = m["addr"]
    if not out:
        raise FederationError("at least one --province CODE=HOST:PORT is needed")
    return out


def render(provinces: dict[str, str], *, scrape_interval: str = "30s", scrape_timeout: str = "20s") -> dict[str, Any]:
    """A national Prometheus's configuration: one federation job, one target per province."""
    return {
        "global": {"scrape_interval": scrape_interval, "scrape_timeout": scrape_timeout,
                   "evaluation_interval": scrape_interval, "external_labels": {"level": "national"}},
        "scrape_configs": [
            {
                "job_name": "dcops-federate",
                "honor_labels": True,
                "metrics_path": "/federate",
                "params": {"match[]": list(MATCH)},
                "static_configs": [
                    {"targets": [addr], "labels": {"federated_from": code}} for code, addr in sorted(provinces.items())
                ],
            }
        ],
    }


def dump(config: dict[str, Any]) -> str:
    return "# Rendered by dcops (dcops noc federation); checked with promtool check config.\n" + yaml.safe_dump(
        config, sort_keys=False, allow_unicode=True, width=1000
    )
