"""The connectivity exporter: ``/probe`` (multi-target), ``/sweep`` (the inventory), ``/metrics`` (itself)."""

from __future__ import annotations

import contextlib
import html
import json
import time

from prometheus_client import CollectorRegistry, generate_latest

from dcops.exporters import exposition
from dcops.exporters.config import ExporterConfig
from dcops.exporters.httpserver import CONTENT_TYPE_METRICS, Request, Response
from dcops.exporters.probes.icmp import Pinger
from dcops.exporters.runner import Runner
from dcops.exporters.smokeping import Smokeping
from dcops.exporters.stats import Stats
from dcops.exporters.targets import Target

TIMEOUT_HEADER = "x-prometheus-scrape-timeout-seconds"
MIN_BUDGET = 0.1


def scrape_budget(req: Request, config: ExporterConfig) -> float:
    """Seconds a scrape may take: Prometheus' timeout header (else the default) minus the offset."""
    raw = req.headers.get(TIMEOUT_HEADER)
    timeout = config.default_scrape_timeout
    if raw:
        with contextlib.suppress(ValueError):
            timeout = float(raw)
    return max(MIN_BUDGET, timeout - config.timeout_offset)


class ConnectivityExporter:
    name = "connectivity"

    def __init__(self, config: ExporterConfig, targets: list[Target], smokeping_targets: list[str] | None = None) -> None:
        self.config = config
        self.targets = targets
        self.registry = CollectorRegistry(auto_describe=True)
        self.stats = Stats(self.registry, sorted(config.modules), config.max_tracked_targets)
        self.runner = Runner(config, self.stats)
        self.smokeping_targets = smokeping_targets or []
        self.smokeping: Smokeping | None = None

    def describe(self) -> str:
        return f"{len(self.targets)} sweep targets, {len(self.smokeping_targets)} continuous ICMP targets"

    async def startup(self) -> None:
        if self.config.smokeping.enabled and self.smokeping_targets:
            pinger: Pinger = self.runner.ctx.get_pinger()
            self.smokeping = Smokeping(self.config, self.smokeping_targets, pinger, self.registry)
            self.smokeping.start()

    async def shutdown(self) -> None:
        if self.smokeping is not None:
            await self.smokeping.stop()
        self.runner.close()

    async def handle(self, req: Request) -> Response:
        start = time.monotonic()
        if req.path == "/probe":
            resp = await self.probe(req)
            self.stats.scrape_duration.labels("probe").observe(time.monotonic() - start)
        elif req.path in ("/sweep",):
            resp = await self.sweep(req)
            self.stats.scrape_duration.labels("sweep").observe(time.monotonic() - start)
        elif req.path == "/metrics":
            self.stats.scrape_duration.labels("metrics").observe(time.monotonic() - start)
            resp = Response(200, generate_latest(self.registry), CONTENT_TYPE_METRICS)
        elif req.path == "/targets":
            body = json.dumps([{"target": t.target, "module": t.module} for t in self.targets], indent=1)
            resp = Response(200, body.encode(), "application/json")
        elif req.path == "/":
            resp = Response(200, self.index(), "text/html; charset=utf-8")
        else:
            resp = Response(404, b"not found: try /probe?target=...&module=..., /sweep or /metrics\n")
        if resp.status >= 400:
            self.stats.http_errors.labels(str(resp.status)).inc()
        return resp

    async def probe(self, req: Request) -> Response:
        target, module = req.param("target"), req.param("module")
        if not target:
            return Response(400, b"target parameter is missing\n")
        if not module or module not in self.config.modules:
            known = ", ".join(sorted(self.config.modules))
            return Response(400, f"module parameter missing or unknown ({module!r}); known modules: {known}\n".encode())
        deadline = time.monotonic() + scrape_budget(req, self.config)
        res = await self.runner.run(Target(target, module), deadline)
        if req.param("debug") == "true":
            text = f"target {target} module {module}: {'success' if res.success else 'failure'}"
            text += f" reason={res.reason} {res.detail}\n" if res.reason else "\n"
            return Response(200, text.encode() + exposition.probe_text(res))
        return Response(200, exposition.probe_text(res), CONTENT_TYPE_METRICS)

    async def sweep(self, req: Request) -> Response:
        start = time.monotonic()
        deadline = start + scrape_budget(req, self.config)
        results = await self.runner.sweep(self.targets, deadline)
        return Response(200, exposition.sweep_text(results, time.monotonic() - start), CONTENT_TYPE_METRICS)

    def index(self) -> bytes:
        mods = "".join(
            f"<li>{html.escape(m)} ({html.escape(v.prober)}, {v.timeout}s)</li>" for m, v in self.config.modules.items()
        )
        return (
            "<html><head><title>dcops connectivity exporter</title></head><body>"
            "<h1>dcops connectivity exporter</h1><ul><li><a href='/metrics'>/metrics</a> (the exporter and the "
            "continuous ICMP prober)</li><li><a href='/sweep'>/sweep</a> (every inventory target)</li>"
            "<li><a href='/targets'>/targets</a></li><li>/probe?target=HOST[:PORT]&amp;module=NAME</li></ul>"
            f"<h2>Modules</h2><ul>{mods}</ul></body></html>"
        ).encode()
