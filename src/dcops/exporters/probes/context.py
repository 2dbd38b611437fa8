"""What probes share within one exporter: the config, the ICMP pinger, TLS trust stores."""

from __future__ import annotations

import asyncio
import socket
import ssl
from dataclasses import dataclass, field

from cryptography import x509

from dcops.exporters.config import ExporterConfig
from dcops.exporters.errors import ProbeFailure
from dcops.exporters.probes.icmp import Pinger


@dataclass
class ProbeContext:
    config: ExporterConfig
    pinger: Pinger | None = None
    _stores: dict[str, list[x509.Certificate]] = field(default_factory=dict)
    _ssl: ssl.SSLContext | None = None

    def ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = insecure_client_context()
        return self._ssl

    def ca_certs(self, path: str) -> list[x509.Certificate]:
        """The certificates of a CA file (read once per exporter)."""
        certs = self._stores.get(path)
        if certs is None:
            with open(path, "rb") as f:
                certs = x509.load_pem_x509_certificates(f.read())
            self._stores[path] = certs
        return certs

    def get_pinger(self) -> Pinger:
        if self.pinger is None:
            self.pinger = Pinger()
        return self.pinger

    async def resolve(self, host: str) -> str:
        """The address to probe for ``host``: address_map first, then the resolver; checked
        against allowed_networks (ProbeFailure ``forbidden`` when outside)."""
        mapped = self.config.address_map.get(host)
        addr = mapped or host
        try:
            socket.inet_pton(socket.AF_INET6 if ":" in addr else socket.AF_INET, addr)
        except OSError:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(addr, None, type=socket.SOCK_STREAM)
            except socket.gaierror as e:
                raise ProbeFailure("dns", f"{host}: {e.strerror}") from None
            addr = str(infos[0][4][0])
        if not self.config.allows(addr):
            raise ProbeFailure("forbidden", f"{addr} is outside allowed_networks")
        return addr

    def close(self) -> None:
        if self.pinger is not None:
            self.pinger.close()
            self.pinger = None


def insecure_client_context() -> ssl.SSLContext:
    """TLS client context that completes the handshake whatever the certificate; the chain and
    the name are verified afterwards (:mod:`dcops.exporters.probes.tlsinfo`) so an expired or
    self-signed certificate still yields its expiry and a precise failure reason."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx
