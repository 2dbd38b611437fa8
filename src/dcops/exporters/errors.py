"""Errors of the exporters: configuration problems (stop at start) and probe failures (a reason)."""

from __future__ import annotations

import errno
import ssl


class ConfigError(Exception):
    """A bad exporter configuration or target; the message says what to fix."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


class ProbeFailure(Exception):
    """A probe failed for a known reason (one of :data:`REASONS`)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        assert reason in REASONS, reason
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


#: Why a probe failed, as the ``reason`` label of ``dcops_exporter_probe_errors_total``.
REASONS: tuple[str, ...] = (
    "timeout",  # no answer within the probe's timeout (blackholed, slow)
    "deadline",  # the scrape's time budget ran out before the probe could start
    "refused",  # TCP RST on connect / ICMP port unreachable on UDP
    "reset",  # connection reset or closed by the peer mid-exchange
    "unreachable",  # no route, host unreachable
    "dns",  # the target's name does not resolve
    "tls",  # TLS handshake failed
    "cert_expired",  # certificate not valid now (expired or not yet valid)
    "cert_untrusted",  # chain does not verify against the configured CA file (self-signed, unknown CA)
    "cert_hostname",  # certificate does not match the expected name
    "protocol",  # the peer answered something that is not the protocol (garbage)
    "status",  # valid answer with an unwanted status (HTTP code, DNS rcode, SIP code)
    "forbidden",  # target outside the exporter's allowed networks: not probed
    "error",  # anything else (see the exporter's log)
)


def classify(exc: BaseException) -> ProbeFailure:
    """Map a socket-level exception to a :class:`ProbeFailure` with a reason."""
    if isinstance(exc, ProbeFailure):
        return exc
    if isinstance(exc, TimeoutError):
        return ProbeFailure("timeout")
    if isinstance(exc, ConnectionRefusedError):
        return ProbeFailure("refused", str(exc))
    if isinstance(exc, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        return ProbeFailure("reset", str(exc))
    if isinstance(exc, ssl.SSLError):
        return ProbeFailure("tls", exc.reason or str(exc))
    if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL):
        return ProbeFailure("unreachable", exc.strerror or str(exc))
    if isinstance(exc, OSError) and exc.errno == errno.ECONNREFUSED:
        return ProbeFailure("refused", str(exc))
    return ProbeFailure("error", f"{type(exc).__name__}: {exc}")
