"""Which file_sd targets are probed with which module: one table, read by the sweep and by Prometheus.

Each :class:`ProbeJob` names a file of :mod:`dcops.render.filesd`, the target labels a target
must carry (a regex per label, anchored as in Prometheus' relabelling; ``__address__`` is the
target itself), the module it is probed with and the Prometheus job of those probes. From this
one table come both the connectivity exporter's ``/sweep`` targets
(:func:`dcops.exporters.targets.inventory_targets`) and the multi-target ``/probe`` jobs of the
rendered Prometheus config (:mod:`dcops.exporters.promconfig`, ``keep`` relabelling), so the two
always probe the same (target, module) pairs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

#: Ports whose service speaks TLS from the first byte: probed with the ``tls`` module (beside
#: ``tcp``), and checked by the security exporter without STARTTLS.
TLS_PORTS = frozenset({443, 465, 636, 993, 995, 5061, 8443})


@dataclass(frozen=True)
class ProbeJob:
    name: str  # the Prometheus job label
    file: str  # the file_sd file (dcops.render.filesd)
    module: str  # the exporter module (dcops.exporters.config.default_modules)
    keep: Mapping[str, str] = field(default_factory=dict)  # target label → regex it must match

    def matches(self, target: str, labels: Mapping[str, str]) -> bool:
        """Whether Prometheus keeps ``target`` (with its group's ``labels``) for this job."""
        values = {**labels, "__address__": target}
        return all(re.fullmatch(rx, values.get(label, "")) for label, rx in self.keep.items())


_TLS_ADDRESS = r".+:(?:" + "|".join(str(p) for p in sorted(TLS_PORTS)) + ")"

#: What the inventory's file_sd targets are probed with (the sweep probes the union of these).
PROBE_JOBS: tuple[ProbeJob, ...] = (
    ProbeJob("dcops-icmp", "sites.json", "icmp"),
    ProbeJob("dcops-tcp", "services.json", "tcp", {"proto": "tcp"}),
    ProbeJob("dcops-tls", "services.json", "tls", {"proto": "tcp", "__address__": _TLS_ADDRESS}),
    ProbeJob("dcops-dns", "services.json", "dns", {"service_type": "dns", "proto": "udp"}),
    ProbeJob("dcops-sip-service", "services.json", "sip_udp", {"port_name": "sip-udp", "proto": "udp"}),
    ProbeJob("dcops-sip", "videoconf.json", "sip_udp"),
    ProbeJob("dcops-http", "external.json", "http"),
)
