"""Exporter configuration: probe modules and exporter settings, from YAML, validated at start.

A module says how to probe a target (blackbox_exporter's notion): which prober, its timeout
and the prober's options. The built-in modules (:func:`default_modules`) cover what the
inventory declares; a config file may change them or add others::

    modules:
      tcp: {prober: tcp, timeout: 3}
      https_internal: {prober: http, timeout: 5, tls: {ca_file: /etc/dcops/ca.pem}}
    concurrency: 256          # probes in flight at once, per exporter
    timeout_offset: 0.5       # seconds kept back from X-Prometheus-Scrape-Timeout-Seconds
    allowed_networks: [127.0.0.0/8]   # refuse to probe anything else (default: no limit)
    address_map: {10.251.0.1: 127.0.0.2}   # probe another address for a target (tests, lab)
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from dcops.exporters.errors import ConfigError

Seconds = Annotated[float, Field(gt=0, le=600)]
ProberName = Literal["icmp", "tcp", "http", "dns", "tls", "sip"]  # = dcops.exporters.probes.dispatch.PROBERS
DEFAULT_CA_FILE = "/etc/ssl/certs/ca-certificates.crt"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsOptions(Strict):
    ca_file: str = DEFAULT_CA_FILE  # PEM bundle the chain must verify against
    server_name: str | None = None  # expected name (default: the target's host name)
    verify: bool = True  # False: report chain/name metrics but do not fail the probe on them
    min_days_left: float = 0  # fail (cert_expired) when the certificate expires sooner than this


class IcmpOptions(Strict):
    packets: Annotated[int, Field(ge=1, le=100)] = 3
    interval: Annotated[float, Field(ge=0, le=10)] = 0.02  # seconds between packets of one probe
    min_replies: Annotated[int, Field(ge=1)] = 1  # replies needed for success
    payload_bytes: Annotated[int, Field(ge=8, le=1400)] = 56


class HttpOptions(Strict):
    method: Literal["GET", "HEAD"] = "GET"
    path: str = "/"  # used when the target is host:port rather than a URL
    valid_status_codes: list[int] = Field(default_factory=list)  # empty: any 2xx
    tls: bool = False  # for host:port targets: use https
    headers: dict[str, str] = Field(default_factory=dict)


class DnsOptions(Strict):
    query_name: str = "."
    query_type: str = "SOA"
    transport: Literal["udp", "tcp"] = "udp"
    valid_rcodes: list[str] = Field(default_factory=lambda: ["NOERROR"])
    min_answers: Annotated[int, Field(ge=0)] = 0


class SipOptions(Strict):
    transport: Literal["udp", "tcp"] = "udp"
    valid_status_codes: list[int] = Field(default_factory=list)  # empty: any final response (200-699)


class Module(Strict):
    prober: ProberName
    timeout: Seconds = 5.0
    icmp: IcmpOptions = IcmpOptions()
    http: HttpOptions = HttpOptions()
    dns: DnsOptions = DnsOptions()
    sip: SipOptions = SipOptions()
    tls: TlsOptions = TlsOptions()


class SmokepingOptions(Strict):
    """The continuous ICMP prober of the data-network links."""

    enabled: bool = True
    interval: Seconds = 10.0  # one round per target every interval
    packets: Annotated[int, Field(ge=1, le=100)] = 5  # packets per round
    packet_interval: Annotated[float, Field(ge=0, le=10)] = 0.2
    timeout: Seconds = 2.0  # a packet without reply after this is lost
    targets: list[str] | None = None  # default: the gateways of the data-network sites
    buckets: list[float] = Field(
        default_factory=lambda: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0]
    )


DEFAULT_SCAN_PORTS = [
    21, 22, 23, 25, 53, 80, 110, 111, 135, 139, 143, 389, 443, 445, 465, 514, 587, 636, 993, 995, 1433, 2049,
    3306, 3389, 5060, 5061, 5432, 5900, 6379, 8080, 8443, 9090, 9093, 9100, 11211, 27017,
]


_DNS_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_SELECTOR = re.compile(rf"{_DNS_LABEL}(?:\.{_DNS_LABEL})*")


def _dkim_selector(value: str) -> str:
    if _SELECTOR.fullmatch(value) is None:
        raise ValueError(f"{value!r} is not a DKIM selector (DNS labels of letters, digits, '-' and '_', joined by dots)")
    return value


#: A DKIM selector (RFC 6376 3.1), e.g. ``s1``.
DkimSelector = Annotated[str, AfterValidator(_dkim_selector)]


class SecurityOptions(Strict):
    """The security exporter's checks."""

    timeout: Seconds = 5.0  # per check
    ssh_port: Annotated[int, Field(ge=1, le=65535)] = 22
    scan_ports: list[Annotated[int, Field(ge=1, le=65535)]] = Field(default_factory=lambda: list(DEFAULT_SCAN_PORTS))
    starttls_ports: list[int] = Field(default_factory=lambda: [25, 587])
    tls: TlsOptions = TlsOptions()
    dns_server: str | None = None  # HOST[:PORT] answering the mail domains (default: the inventory's dns service)
    # Mail domain → selector its DKIM key is published under. The keys live on the controller, so
    # this map is rendered there (`dcops exporter config`, from the DKIM key files); a domain
    # without an entry is reported as having no DKIM key published, and its DKIM record not queried.
    dkim_selectors: dict[str, DkimSelector] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _selector_per_domain(cls, data: Any) -> Any:
        if isinstance(data, dict) and "dkim_selector" in data:
            raise ValueError(
                "dkim_selector is gone: the selector is per domain (dkim_selectors: {domain: selector}), "
                "rendered from the DKIM key files by `dcops exporter config`"
            )
        return data


class ExporterConfig(Strict):
    modules: dict[str, Module] = Field(default_factory=dict)
    concurrency: Annotated[int, Field(ge=1, le=10000)] = 256
    timeout_offset: Annotated[float, Field(ge=0, le=60)] = 0.5
    default_scrape_timeout: Seconds = 10.0  # when Prometheus sends no timeout header
    allowed_networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = Field(default_factory=list)
    address_map: dict[str, str] = Field(default_factory=dict)
    max_tracked_targets: Annotated[int, Field(ge=0)] = 10000  # per-target self-metric series cap
    smokeping: SmokepingOptions = SmokepingOptions()
    security: SecurityOptions = SecurityOptions()

    def module(self, name: str) -> Module:
        return self.modules[name]

    def allows(self, address: str) -> bool:
        if not self.allowed_networks:
            return True
        ip = ipaddress.ip_address(address)
        return any(ip in net for net in self.allowed_networks)


def default_modules() -> dict[str, Module]:
    """The modules the inventory sweep uses (names are those of :mod:`dcops.exporters.targets`)."""
    return {
        "icmp": Module(prober="icmp", timeout=2.0),
        "tcp": Module(prober="tcp", timeout=3.0),
        "http": Module(prober="http", timeout=5.0),
        "https": Module(prober="http", timeout=5.0, http=HttpOptions(tls=True)),
        "tls": Module(prober="tls", timeout=5.0),
        "dns": Module(prober="dns", timeout=3.0),
        "sip_udp": Module(prober="sip", timeout=3.0, sip=SipOptions(transport="udp")),
        "sip_tcp": Module(prober="sip", timeout=3.0, sip=SipOptions(transport="tcp")),
    }


def _problems(e: ValidationError) -> list[str]:
    out = []
    for err in e.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        out.append(f"{where}: {err['msg']}")
    return out


def read_raw(path: Path) -> dict[str, Any]:
    """A config file's mapping, not yet validated; ConfigError when unreadable or not a mapping."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as e:
        raise ConfigError(str(path), [f"cannot read: {e.strerror}"]) from None
    except yaml.YAMLError as e:
        raise ConfigError(str(path), [f"not valid YAML: {e}"]) from None
    if not isinstance(raw, dict):
        raise ConfigError(str(path), ["the top level must be a mapping (modules:, concurrency:, ...)"])
    return raw


def validate(raw: dict[str, Any], source: str) -> ExporterConfig:
    """The settings of ``raw`` checked against the model (what a file may say; no file is looked at)."""
    try:
        return ExporterConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(source, _problems(e)) from None


def load_config(path: Path | None) -> ExporterConfig:
    """Built-in modules, overlaid with the file's (a module of the same name replaces the built-in)."""
    source = str(path) if path else "(built-in config)"
    cfg = validate(read_raw(path) if path is not None else {}, source)
    modules = {**default_modules(), **cfg.modules}
    problems = []
    for name, m in modules.items():
        if m.prober in ("tls", "http") and (m.prober == "tls" or m.http.tls) and not Path(m.tls.ca_file).is_file():
            problems.append(f"modules.{name}.tls.ca_file: {m.tls.ca_file} does not exist")
    for k, v in cfg.address_map.items():
        try:
            ipaddress.ip_address(v)
        except ValueError:
            problems.append(f"address_map.{k}: {v!r} is not an IP address")
    if problems:
        raise ConfigError(source, problems)
    return cfg.model_copy(update={"modules": modules})
