"""Maintenance windows as Alertmanager silences, through its v2 API (``dcops noc silence``).

A site's silence covers the sites behind it (those whose every path to the data centre runs
through it, from the circuits): one silence with ``site=~"luc-yen|an-phu|khanh-hoa"``. The
silences dcops creates carry ``createdBy: dcops noc`` and the site in their comment.
"""

from __future__ import annotations

import difflib
import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from dcops.inventory.model import Inventory
from dcops.inventory.topology import Topology

DEFAULT_URL = "http://127.0.0.1:9093"
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


class SilenceError(Exception):
    """An operator error or an Alertmanager refusal, with a message to act on."""


def parse_duration(text: str) -> timedelta:
    """``2h``, ``90m``, ``1h30m``, ``1d`` (at least a minute, at most 30 days)."""
    m = _DURATION.match(text.strip())
    if not text.strip() or m is None:
        raise SilenceError(f"--for {text!r}: not a duration (examples: 10m, 2h, 1h30m, 1d)")
    d, h, mi, s = (int(x) if x else 0 for x in m.groups())
    td = timedelta(days=d, hours=h, minutes=mi, seconds=s)
    if td < timedelta(minutes=1) or td > timedelta(days=30):
        raise SilenceError(f"--for {text!r}: a maintenance window lasts between 1 minute and 30 days")
    return td


def covered_sites(inv: Inventory, site: str) -> list[str]:
    """The site and the sites behind it; an unknown site is refused with the nearest names."""
    names = [s.name for s in inv.sites]
    if site not in names:
        near = difflib.get_close_matches(site, names, n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else f"; sites: {', '.join(sorted(names))}"
        raise SilenceError(f"unknown site {site!r} in inventory {inv.source}{hint}")
    topo = Topology.of(inv)
    if site == topo.root:
        return sorted(names)
    return [site, *topo.behind(site)] if site in topo.adjacency else [site]


def _request(url: str, method: str = "GET", body: Any = None, timeout: float = 10) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
    except urllib.error.HTTPError as e:
        raise SilenceError(f"Alertmanager {url}: HTTP {e.code}: {e.read().decode(errors='replace').strip()}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise SilenceError(f"Alertmanager {url}: cannot connect ({reason}); is it running? (--alertmanager URL)") from None
    return json.loads(raw) if raw.strip() else None


@dataclass(frozen=True)
class Silence:
    id: str
    state: str
    sites: list[str]
    matchers: list[dict[str, Any]]
    starts_at: str
    ends_at: str
    created_by: str
    comment: str

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "state": self.state, "sites": self.sites, "matchers": self.matchers,
                "startsAt": self.starts_at, "endsAt": self.ends_at, "createdBy": self.created_by,
                "comment": self.comment}


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def create(
    inv: Inventory, site: str, duration: str, comment: str, *, url: str = DEFAULT_URL, author: str = "dcops noc",
    now: datetime | None = None,
) -> tuple[str, list[str]]:
    """Silence ``site`` and the sites behind it; returns the silence id and the sites covered."""
    if not comment.strip():
        raise SilenceError("--comment is required: say why (change ticket, planned work)")
    td = parse_duration(duration)
    sites = covered_sites(inv, site)
    start = now or datetime.now(UTC)
    body = {
        "matchers": [{"name": "site", "value": "|".join(sites), "isRegex": True, "isEqual": True}],
        "startsAt": _iso(start),
        "endsAt": _iso(start + td),
        "createdBy": author,
        "comment": f"{comment.strip()} [dcops noc silence {site}: {', '.join(sites)}]",
    }
    answer = _request(f"{url.rstrip('/')}/api/v2/silences", "POST", body)
    return str(answer["silenceID"]), sites


def _sites_of(matchers: list[dict[str, Any]]) -> list[str]:
    for m in matchers:
        if m.get("name") == "site":
            return m["value"].split("|") if m.get("isRegex") else [m["value"]]
    return []


def list_silences(*, url: str = DEFAULT_URL, include_expired: bool = False) -> list[Silence]:
    raw = _request(f"{url.rstrip('/')}/api/v2/silences") or []
    out = [
        Silence(id=s["id"], state=s["status"]["state"], sites=_sites_of(s["matchers"]), matchers=s["matchers"],
                starts_at=s["startsAt"], ends_at=s["endsAt"], created_by=s.get("createdBy", ""),
                comment=s.get("comment", ""))
        for s in raw
    ]
    if not include_expired:
        out = [s for s in out if s.state != "expired"]
    return sorted(out, key=lambda s: (s.state, s.ends_at, s.id))


def expire(silence_id: str, *, url: str = DEFAULT_URL) -> None:
    if not re.fullmatch(r"[0-9a-fA-F-]{8,64}", silence_id):
        raise SilenceError(f"{silence_id!r} is not a silence id (see dcops noc silences)")
    _request(f"{url.rstrip('/')}/api/v2/silence/{silence_id}", "DELETE")
