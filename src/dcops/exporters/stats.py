"""The exporter's own metrics (on ``/metrics``), in a registry owned by one exporter instance."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from dcops.exporters.errors import REASONS

SCRAPE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Stats:
    def __init__(self, registry: CollectorRegistry, modules: list[str], max_tracked_targets: int) -> None:
        self.registry = registry
        self.max_tracked = max_tracked_targets
        self._tracked: set[tuple[str, str]] = set()
        self.probes = Counter(
            "dcops_exporter_probes", "Probes run, by module and result (success or failure).",
            ["module", "result"], registry=registry,
        )
        self.errors = Counter(
            "dcops_exporter_probe_errors", "Failed probes by module and reason.", ["module", "reason"], registry=registry
        )
        self.target_probes = Counter(
            "dcops_exporter_target_probes",
            "Probes run per target (capped at max_tracked_targets distinct targets).",
            ["target", "module"], registry=registry,
        )
        self.scrape_duration = Histogram(
            "dcops_exporter_scrape_duration_seconds", "Time to answer a scrape, by endpoint.",
            ["endpoint"], buckets=SCRAPE_BUCKETS, registry=registry,
        )
        self.in_flight = Gauge("dcops_exporter_probes_in_flight", "Probes running now.", registry=registry)
        self.http_errors = Counter(
            "dcops_exporter_http_requests_rejected", "Requests answered with a 4xx/5xx, by status code.",
            ["code"], registry=registry,
        )
        for m in modules:
            for r in ("success", "failure"):
                self.probes.labels(m, r)
            for reason in REASONS:
                self.errors.labels(m, reason)
        for ep in ("probe", "sweep", "metrics"):
            self.scrape_duration.labels(ep)

    def record(self, target: str, module: str, reason: str | None) -> None:
        self.probes.labels(module, "failure" if reason else "success").inc()
        if reason:
            self.errors.labels(module, reason).inc()
        key = (target, module)
        if key in self._tracked or len(self._tracked) < self.max_tracked:
            self._tracked.add(key)
            self.target_probes.labels(target, module).inc()
