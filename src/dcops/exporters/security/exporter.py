"""The security exporter: every check runs on scrape, bounded and within the scrape's deadline."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import dns.asyncquery
import dns.exception
import dns.message
import dns.rdatatype
from prometheus_client import CollectorRegistry, generate_latest

from dcops.exporters import exposition
from dcops.exporters.config import ExporterConfig, Module
from dcops.exporters.connectivity import scrape_budget
from dcops.exporters.errors import ProbeFailure, classify
from dcops.exporters.httpserver import CONTENT_TYPE_METRICS, Request, Response
from dcops.exporters.probejobs import TLS_PORTS
from dcops.exporters.probes import tcp, tls
from dcops.exporters.probes.context import ProbeContext
from dcops.exporters.probes.dispatch import PROBERS
from dcops.exporters.probes.result import ProbeResult, Sample
from dcops.exporters.security import ssh, starttls
from dcops.exporters.stats import Stats
from dcops.exporters.targets import Endpoint, parse_target
from dcops.inventory.model import Inventory, Proto


@dataclass(frozen=True)
class TlsEndpoint:
    target: str  # host:port
    name: str  # the name the certificate must carry
    starttls: str | None = None  # "smtp" or None (TLS from the first byte)


@dataclass(frozen=True)
class PortScan:
    host: str
    address: str
    allowed: frozenset[int]


@dataclass(frozen=True)
class MailDomain:
    domain: str
    mail_address: str  # the address SPF must authorise
    dkim_selector: str | None  # where its DKIM key is published (security.dkim_selectors); None: no key


@dataclass
class SecurityTargets:
    tls: list[TlsEndpoint] = field(default_factory=list)
    ssh: list[str] = field(default_factory=list)  # host:port
    scans: list[PortScan] = field(default_factory=list)
    mail: list[MailDomain] = field(default_factory=list)
    dns_server: str | None = None

    def count(self) -> int:
        return len(self.tls) + len(self.ssh) + len(self.scans) + len(self.mail)


def from_inventory(inv: Inventory, cfg: ExporterConfig) -> SecurityTargets:
    o = cfg.security
    out = SecurityTargets()
    hosted: dict[str, set[int]] = {}
    for svc in inv.services:
        addr = inv.service_address(svc)
        for hname in svc.hosts:
            hosted.setdefault(hname, set()).update(p.port for p in svc.ports if p.proto is Proto.TCP and p.port)
        if addr is None or svc.external:
            continue
        name = svc.url.split("://", 1)[1].split("/", 1)[0].split(":")[0] if svc.url else str(addr)
        for p in svc.ports:
            if p.proto is Proto.TCP and p.port in TLS_PORTS:
                out.tls.append(TlsEndpoint(f"{addr}:{p.port}", name))
            elif p.proto is Proto.TCP and p.port in o.starttls_ports and svc.type.value == "mail":
                out.tls.append(TlsEndpoint(f"{addr}:{p.port}", name, "smtp"))
    for _, h in inv.hosts():
        out.ssh.append(f"{h.management}:{o.ssh_port}")
        out.scans.append(PortScan(h.name, str(h.address), frozenset(hosted.get(h.name, set()) | {o.ssh_port})))
    mail_addr = next((inv.service_address(s) for s in inv.services if s.type.value == "mail"), None)
    if mail_addr is not None:
        out.mail = [MailDomain(a.domain, str(mail_addr), o.dkim_selectors.get(a.domain)) for a in inv.agencies]
    dns_svc = next((s for s in inv.services if s.type.value == "dns"), None)
    dns_addr = inv.service_address(dns_svc) if dns_svc else None
    out.dns_server = o.dns_server or (str(dns_addr) if dns_addr else None)
    return out


def _g(name: str, help: str, value: float, **labels: str) -> Sample:
    return Sample(name, help, float(value), tuple(sorted(labels.items())))


class SecurityExporter:
    name = "security"

    def __init__(self, config: ExporterConfig, targets: SecurityTargets) -> None:
        self.config = config
        self.targets = targets
        self.ctx = ProbeContext(config)
        self.registry = CollectorRegistry()
        self.stats = Stats(self.registry, ["tls", "ssh", "portscan", "maildns"], config.max_tracked_targets)
        self._sem: asyncio.Semaphore | None = None
        self._scan_module = Module(prober="tcp", timeout=config.security.timeout)

    def describe(self) -> str:
        t = self.targets
        return f"{len(t.tls)} TLS endpoints, {len(t.ssh)} SSH servers, {len(t.scans)} hosts to scan, {len(t.mail)} mail domains"

    async def startup(self) -> None:
        self._sem = asyncio.Semaphore(self.config.concurrency)

    async def shutdown(self) -> None:
        self.ctx.close()

    async def handle(self, req: Request) -> Response:
        if req.path == "/metrics":
            start = time.monotonic()
            body = await self.scrape(start + scrape_budget(req, self.config))
            self.stats.scrape_duration.labels("metrics").observe(time.monotonic() - start)
            return Response(200, body + generate_latest(self.registry), CONTENT_TYPE_METRICS)
        if req.path == "/":
            return Response(200, b"dcops security exporter: /metrics\n")
        return Response(404, b"not found: /metrics\n")

    async def _bounded(self, kind: str, target: str, deadline: float, coro_fn: object) -> tuple[list[Sample], str | None]:
        assert self._sem is not None
        samples: list[Sample] = []
        reason: str | None = None
        async with self._sem:
            budget = min(self.config.security.timeout, deadline - time.monotonic())
            try:
                if budget <= 0:
                    raise ProbeFailure("deadline")
                async with asyncio.timeout(budget):
                    samples = await coro_fn(budget)  # type: ignore[operator]
            except Exception as e:
                reason = classify(e).reason
        self.stats.record(target, kind, reason)
        return samples, reason

    async def scrape(self, deadline: float) -> bytes:
        if self._sem is None:
            await self.startup()
        t = self.targets
        jobs = (
            [self._tls(e, deadline) for e in t.tls]
            + [self._ssh(s, deadline) for s in t.ssh]
            + [self._scan(s, deadline) for s in t.scans]
            + [self._mail(m, deadline) for m in t.mail]
        )
        samples: list[Sample] = []
        for part in await asyncio.gather(*jobs):
            samples.extend(part)
        return exposition.render(samples)

    # --- TLS ---------------------------------------------------------------------------
    async def _tls(self, e: TlsEndpoint, deadline: float) -> list[Sample]:
        o = self.config.security
        mod = Module(prober="tls", timeout=o.timeout, tls=o.tls.model_copy(update={"server_name": e.name, "verify": False}))

        async def run(budget: float) -> list[Sample]:
            ep = parse_target(e.target, "tls")
            addr = await self.ctx.resolve(ep.host)
            res = ProbeResult()
            if e.starttls == "smtp":
                assert ep.port is not None
                reader, writer = await asyncio.open_connection(sock=await tcp.connect(addr, ep.port))
                try:
                    await starttls.smtp(reader, writer, self.ctx.ssl_context(), tls.sni(Endpoint(e.name, None), mod))
                    tls.inspect(self.ctx, writer, ep, mod, res)
                finally:
                    await tls.close(writer)
            else:
                await PROBERS["tls"](self.ctx, addr, ep, mod, budget, res)
            return [
                Sample(
                    s.name.replace("probe_ssl_earliest_cert_expiry", "dcops_security_tls_cert_expiry_timestamp_seconds")
                    .replace("probe_tls_version_info", "dcops_security_tls_version_info")
                    .replace("dcops_tls_", "dcops_security_tls_"),
                    s.help, s.value, tuple(sorted((*s.labels, ("target", e.target)))),
                )
                for s in res.samples
            ]

        samples, reason = await self._bounded("tls", e.target, deadline, run)
        up = _g("dcops_security_tls_up", "1 if the TLS handshake completed (STARTTLS included).", reason is None, target=e.target)
        return [up, *samples]

    # --- SSH ---------------------------------------------------------------------------
    async def _ssh(self, target: str, deadline: float) -> list[Sample]:
        async def run(budget: float) -> list[Sample]:
            ep = parse_target(target, "tcp")
            addr = await self.ctx.resolve(ep.host)
            assert ep.port is not None
            p = await asyncio.to_thread(ssh.probe, addr, ep.port, budget)
            out = []
            for kind, algos in p.weak().items():
                out.append(_g("dcops_security_ssh_weak_algorithms", "Weak algorithms the SSH server offers, by kind.",
                              len(algos), target=target, kind=kind))
                out.extend(
                    _g("dcops_security_ssh_weak_algorithm_info", "A weak algorithm the SSH server offers (value 1).",
                       1, target=target, kind=kind, algorithm=a) for a in algos
                )
            out.append(_g("dcops_security_ssh_password_auth_offered", "1 if the server offers password authentication.",
                          "password" in p.auth_methods, target=target))
            out.append(_g("dcops_security_ssh_keyboard_interactive_offered",
                          "1 if the server offers keyboard-interactive authentication.",
                          "keyboard-interactive" in p.auth_methods, target=target))
            return out

        samples, reason = await self._bounded("ssh", target, deadline, run)
        return [_g("dcops_security_ssh_up", "1 if the SSH key exchange offer could be read.", reason is None, target=target),
                *samples]

    # --- open ports vs flows -------------------------------------------------------------
    async def _scan(self, s: PortScan, deadline: float) -> list[Sample]:
        async def run(budget: float) -> list[Sample]:
            addr = await self.ctx.resolve(s.address)
            ports = sorted(set(self.config.security.scan_ports) | s.allowed)
            opened = await asyncio.gather(*(self._port_open(addr, p, budget) for p in ports))
            out = []
            unexpected = 0
            for p, is_open in zip(ports, opened, strict=True):
                expected = p in s.allowed
                if is_open or expected:
                    out.append(_g("dcops_security_port_open", "1 if the TCP port accepts connections (scanned ports "
                                  "that are open or that the inventory allows).", is_open,
                                  host=s.host, port=str(p), expected=str(expected).lower()))
                unexpected += is_open and not expected
            out.append(_g("dcops_security_unexpected_open_ports",
                          "Open TCP ports that no inventory flow allows.", unexpected, host=s.host))
            return out

        samples, reason = await self._bounded("portscan", s.host, deadline, run)
        return [_g("dcops_security_port_scan_success", "1 if the port scan completed.", reason is None, host=s.host),
                *samples]

    async def _port_open(self, address: str, port: int, budget: float) -> bool:
        try:
            await PROBERS["tcp"](self.ctx, address, Endpoint(address, port), self._scan_module, budget, ProbeResult())
        except OSError:
            return False
        return True

    # --- mail DNS ------------------------------------------------------------------------
    async def _mail(self, m: MailDomain, deadline: float) -> list[Sample]:
        server = self.targets.dns_server

        async def txt(name: str, budget: float) -> list[str]:
            assert server is not None
            ep = parse_target(server, "dns")
            addr = await self.ctx.resolve(ep.host)
            q = dns.message.make_query(name, "TXT")
            try:
                r = await dns.asyncquery.udp(q, addr, timeout=budget, port=ep.port or 53)
            except dns.exception.Timeout:
                raise ProbeFailure("timeout") from None
            except dns.exception.DNSException as e:
                raise ProbeFailure("protocol", str(e)) from None
            return [b"".join(rd.strings).decode("utf-8", "replace")
                    for rrset in r.answer if rrset.rdtype == dns.rdatatype.TXT for rd in rrset]

        async def run(budget: float) -> list[Sample]:
            if server is None:
                raise ProbeFailure("error", "no DNS server: set security.dns_server")
            names = {"spf": m.domain, "dmarc": f"_dmarc.{m.domain}"}
            if m.dkim_selector is not None:  # else not published: nothing to query (no guessed name)
                names["dkim"] = f"{m.dkim_selector}._domainkey.{m.domain}"
            answers = dict(zip(names, await asyncio.gather(*(txt(n, budget) for n in names.values())), strict=True))
            spf = [t for t in answers["spf"] if t.lower().startswith("v=spf1")]
            dmarc = [t for t in answers["dmarc"] if t.lower().startswith("v=dmarc1")]
            dkim = [t for t in answers.get("dkim", []) if "p=" in t and (t.lower().startswith("v=dkim1") or "k=" in t)]
            spf_ok = len(spf) == 1 and (f"ip4:{m.mail_address}" in spf[0].split() or " mx" in f" {spf[0]}") and (
                spf[0].rstrip().endswith(("-all", "~all"))
            )
            dmarc_ok = len(dmarc) == 1 and any(
                f.strip().lower() in ("p=quarantine", "p=reject") for f in dmarc[0].split(";")
            )
            dkim_ok = len(dkim) == 1 and "p=;" not in dkim[0].replace(" ", "") + ";"
            out = []
            for rec, present, ok in (("spf", spf, spf_ok), ("dmarc", dmarc, dmarc_ok), ("dkim", dkim, dkim_ok)):
                if rec not in names:
                    continue
                out.append(_g("dcops_security_mail_dns_record_present", "1 if the mail DNS record exists.",
                              bool(present), domain=m.domain, record=rec))
                out.append(_g("dcops_security_mail_dns_record_valid",
                              "1 if the record is consistent with the inventory (SPF authorises the mail server and "
                              "ends in -all/~all; DMARC p=quarantine/reject; one DKIM key, not revoked).",
                              ok, domain=m.domain, record=rec))
            return out

        samples, reason = await self._bounded("maildns", m.domain, deadline, run)
        published = [_g("dcops_security_mail_dkim_key_published",
                        "1 if the exporter's config names the selector of the domain's DKIM key (0: no key published).",
                        m.dkim_selector is not None, domain=m.domain)]
        if m.dkim_selector is not None:
            published.append(_g("dcops_security_mail_dkim_selector_info", "The DKIM selector checked (value 1).",
                                1, domain=m.domain, selector=m.dkim_selector))
        return [_g("dcops_security_mail_dns_success", "1 if the mail DNS records could be queried.", reason is None,
                   domain=m.domain), *published, *samples]
