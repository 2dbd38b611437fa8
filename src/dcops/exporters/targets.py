"""What to probe: targets from the inventory (through the file_sd renderer), and target parsing.

A target is what Prometheus passes as ``?target=``: ``host``, ``host:port`` or a URL. The
inventory sweep probes the targets of the rendered file_sd with the modules of
:data:`dcops.exporters.probejobs.PROBE_JOBS`, the table the Prometheus probe jobs come from, so
a sweep and the multi-target pattern agree on what is watched.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from dcops.exporters.config import ExporterConfig
from dcops.exporters.errors import ConfigError
from dcops.exporters.probejobs import PROBE_JOBS
from dcops.inventory.model import Inventory
from dcops.render.filesd import targets as filesd_targets

#: The port of a target given without one, by prober (icmp takes none, tcp needs one).
DEFAULT_PORTS = {"http": 80, "tls": 443, "dns": 53, "sip": 5060}


@dataclass(frozen=True, order=True)
class Target:
    target: str  # as Prometheus passes it
    module: str


@dataclass(frozen=True)
class Endpoint:
    """A parsed target: where to connect, and the name to present (SNI, Host, SIP URI)."""

    host: str  # the name or address in the target
    port: int | None
    url: str | None = None  # for http: the full URL
    scheme: str | None = None

    @property
    def is_ip(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True


def parse_target(target: str, prober: str) -> Endpoint:
    """Parse ``target`` for ``prober``; raises ValueError with a reason a sysadmin can act on."""
    t = target.strip()
    if not t:
        raise ValueError("empty target")
    if "://" in t:
        u = urlsplit(t)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"{target!r}: only http:// and https:// URLs are understood")
        if prober not in ("http", "tls"):
            raise ValueError(f"{target!r}: a URL is a target for the http or tls prober, not {prober}")
        try:
            uport = u.port or (443 if u.scheme == "https" else 80)
        except ValueError:
            raise ValueError(f"{target!r}: bad port") from None
        return Endpoint(host=u.hostname, port=uport, url=t, scheme=u.scheme)
    host: str = t
    port: int | None = None
    if t.startswith("["):  # [v6]:port
        end = t.find("]")
        if end < 0:
            raise ValueError(f"{target!r}: unclosed [")
        host, rest = t[1:end], t[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{target!r}: expected :port after ]")
            port = _port(target, rest[1:])
    elif t.count(":") == 1:
        host, p = t.split(":")
        port = _port(target, p)
    if not host or any(c in host for c in " /?#@"):
        raise ValueError(f"{target!r}: not a host name or address")
    if prober == "icmp":
        if port is not None:
            raise ValueError(f"{target!r}: an icmp target takes no port")
    elif port is None:
        if prober == "tcp":
            raise ValueError(f"{target!r}: a tcp target needs a port (host:port)")
        port = DEFAULT_PORTS[prober]
    return Endpoint(host=host, port=port)


def _port(target: str, p: str) -> int:
    if not p.isdigit() or not 1 <= int(p) <= 65535:
        raise ValueError(f"{target!r}: port {p!r} is not a number from 1 to 65535")
    return int(p)


def inventory_targets(inv: Inventory) -> list[Target]:
    """Every target the inventory declares, with its module (sorted, without duplicates)."""
    files = filesd_targets(inv)
    return sorted({
        Target(t, job.module)
        for job in PROBE_JOBS
        for group in files[job.file]
        for t in group["targets"]
        if job.matches(t, group.get("labels", {}))
    })


def check_targets(cfg: ExporterConfig, targets: list[Target], source: str) -> None:
    """Every target names a known module and parses for its prober; else ConfigError listing all."""
    problems = []
    for t in targets:
        mod = cfg.modules.get(t.module)
        if mod is None:
            problems.append(f"target {t.target}: unknown module {t.module!r} (known: {', '.join(sorted(cfg.modules))})")
            continue
        try:
            parse_target(t.target, mod.prober)
        except ValueError as e:
            problems.append(f"target {t.target} (module {t.module}): {e}")
    if problems:
        raise ConfigError(source, problems)


def load_target_list(path: str) -> list[Target]:
    """A plain target file: one ``target module`` pair per line, ``#`` comments."""
    out = []
    problems = []
    try:
        text = open(path, encoding="utf-8").read()  # noqa: SIM115
    except OSError as e:
        raise ConfigError(path, [f"cannot read: {e.strerror}"]) from None
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2:
            problems.append(f"line {n}: expected 'TARGET MODULE', got {line!r}")
            continue
        out.append(Target(parts[0], parts[1]))
    if problems:
        raise ConfigError(path, problems)
    return out
