"""What a TLS peer presented: version, certificate expiry, chain and name verification.

The handshake is done without verification (so expired, self-signed and wrong-name
certificates are still measured); the chain is then verified with ``cryptography`` against
the module's CA file, and the name checked separately, so each failure has its own reason.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from typing import Any

from cryptography import x509
from cryptography.x509 import verification as xv

from dcops.exporters.config import TlsOptions
from dcops.exporters.errors import ProbeFailure
from dcops.exporters.probes.result import ProbeResult


def peer_chain(sslobj: ssl.SSLObject | ssl.SSLSocket) -> list[x509.Certificate]:
    """The certificates the peer sent, leaf first."""
    inner: Any = getattr(sslobj, "_sslobj", None)
    ders: list[bytes] = []
    if inner is not None and hasattr(inner, "get_unverified_chain"):  # CPython ≥ 3.10 (public in 3.13)
        ders = [c.public_bytes(ssl._ssl.ENCODING_DER) for c in (inner.get_unverified_chain() or [])]  # type: ignore[attr-defined]
    if not ders:
        der = sslobj.getpeercert(binary_form=True)
        if der:
            ders = [der]
    return [x509.load_der_x509_certificate(d) for d in ders]


def _subject(name: str) -> x509.verification.Subject:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _verifies(store: xv.Store, now: dt.datetime, name: str, leaf: x509.Certificate, rest: list[x509.Certificate]) -> bool:
    verifier = xv.PolicyBuilder().store(store).time(now).build_server_verifier(_subject(name))
    try:
        verifier.verify(leaf, rest)
    except (xv.VerificationError, ValueError):
        return False
    return True


def _san_names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    names: list[str] = [str(n).replace("*.", "wildcard.", 1) for n in san.get_values_for_type(x509.DNSName)]
    names += [str(a) for a in san.get_values_for_type(x509.IPAddress)]
    return names


def inspect(
    sslobj: ssl.SSLObject | ssl.SSLSocket,
    server_name: str,
    opts: TlsOptions,
    ca_certs: list[x509.Certificate],
    result: ProbeResult,
) -> None:
    """Add the TLS samples to ``result``; raise a cert_* ProbeFailure when ``opts.verify`` and it fails."""
    version = sslobj.version() or "unknown"
    result.add("probe_tls_version_info", "The TLS version negotiated (value 1).", 1, version=version.replace("v", " "))
    chain = peer_chain(sslobj)
    if not chain:
        raise ProbeFailure("tls", "the peer sent no certificate")
    leaf, rest = chain[0], chain[1:]
    now = dt.datetime.now(dt.UTC)
    earliest = min(c.not_valid_after_utc for c in chain)
    result.add(
        "probe_ssl_earliest_cert_expiry",
        "Expiry of the certificate of the chain that expires first, in seconds since the epoch.",
        earliest.timestamp(),
    )
    time_ok = leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc
    store = xv.Store(ca_certs) if ca_certs else None
    # The chain at a time the leaf is valid, so "expired" and "untrusted" stay separate findings.
    second = dt.timedelta(seconds=1)
    if time_ok:
        at = now
    elif now > leaf.not_valid_after_utc:
        at = leaf.not_valid_after_utc - second
    else:
        at = leaf.not_valid_before_utc + second
    names = _san_names(leaf)
    chain_ok = store is not None and any(_verifies(store, at, n, leaf, rest) for n in names[:1] or [server_name])
    name_ok = store is not None and chain_ok and _verifies(store, at, server_name, leaf, rest)
    if not chain_ok:  # untrusted chain: still say whether the name matches the SAN
        name_ok = _name_matches(server_name, names)
    result.add("dcops_tls_chain_valid", "1 if the chain verifies against the module's CA file.", int(chain_ok))
    result.add("dcops_tls_hostname_valid", "1 if the certificate is valid for the expected name.", int(name_ok))
    days_left = (leaf.not_valid_after_utc - now).total_seconds() / 86400
    if not opts.verify:
        return
    if not time_ok or days_left < opts.min_days_left:
        raise ProbeFailure("cert_expired", f"certificate valid {leaf.not_valid_before_utc} to {leaf.not_valid_after_utc}")
    if not chain_ok:
        raise ProbeFailure("cert_untrusted", f"chain does not verify against {opts.ca_file}")
    if not name_ok:
        raise ProbeFailure("cert_hostname", f"certificate is not valid for {server_name} (SAN: {', '.join(names)})")


def _name_matches(name: str, sans: list[str]) -> bool:
    name = name.lower().rstrip(".")
    for s in sans:
        s = s.lower()
        if s == name or (s.startswith("wildcard.") and name.split(".", 1)[-1] == s[len("wildcard.") :] and "." in name):
            return True
    return False
