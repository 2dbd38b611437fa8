"""The probers by name: the one table the runner and the security exporter dispatch through.

Every prober has the signature of :data:`Prober`. A module's ``prober:`` (the config's
:data:`~dcops.exporters.config.ProberName`) names an entry of :data:`PROBERS`; a test checks
that the two list the same names, so a prober cannot be added in one place only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from dcops.exporters.config import Module, ProberName
from dcops.exporters.probes import dns, http, icmp, sip, tcp, tls
from dcops.exporters.probes.context import ProbeContext
from dcops.exporters.probes.result import ProbeResult
from dcops.exporters.targets import Endpoint

#: ``await prober(ctx, address, ep, mod, budget, res)``: probe ``address`` (``ep`` resolved) with
#: module ``mod`` within ``budget`` seconds, adding samples to ``res``; raise on failure.
Prober = Callable[[ProbeContext, str, Endpoint, Module, float, ProbeResult], Awaitable[None]]

PROBERS: Mapping[ProberName, Prober] = {
    "icmp": icmp.probe,
    "tcp": tcp.probe,
    "http": http.probe,
    "dns": dns.probe,
    "tls": tls.probe,
    "sip": sip.probe,
}
