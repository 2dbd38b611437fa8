"""Read the rooms' registration state from Kamailio's ``xhttp_prom`` metrics (the videoconf role's cfg)."""

from __future__ import annotations

import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

#: The gauge the role's kamailio.cfg sets on every scrape: contacts registered per room (label ``site``).
REGISTERED = "kamailio_vc_registered_contacts"


class MetricsError(Exception):
    """The metrics could not be read."""


def parse_registered(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == REGISTERED and "site" in s.labels:
                out[s.labels["site"]] = s.value
    return out


def registered(url: str, timeout: float = 5.0) -> dict[str, float]:
    """``{site: registered contacts}`` from Kamailio's metrics endpoint."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            text = r.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise MetricsError(f"cannot read Kamailio's metrics at {url}: {e}") from e
    try:
        return parse_registered(text)
    except ValueError as e:
        raise MetricsError(f"{url}: not Prometheus text format: {e}") from e
