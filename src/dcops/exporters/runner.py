"""Runs probes: per-probe timeout, a scrape deadline, bounded concurrency, failure reasons."""

from __future__ import annotations

import asyncio
import logging
import time

from dcops.exporters.config import ExporterConfig
from dcops.exporters.errors import ProbeFailure, classify
from dcops.exporters.probes.context import ProbeContext
from dcops.exporters.probes.dispatch import PROBERS
from dcops.exporters.probes.result import ProbeResult
from dcops.exporters.stats import Stats
from dcops.exporters.targets import Target, parse_target

log = logging.getLogger("dcops.exporters")


class Runner:
    """Owned by one exporter: its semaphore bounds the probes in flight across all scrapes."""

    def __init__(self, config: ExporterConfig, stats: Stats | None = None) -> None:
        self.config = config
        self.ctx = ProbeContext(config)
        self.stats = stats
        self._sem: asyncio.Semaphore | None = None

    @property
    def sem(self) -> asyncio.Semaphore:
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.config.concurrency)
        return self._sem

    async def run(self, t: Target, deadline: float) -> ProbeResult:
        """Probe ``t``; never raises (every failure becomes ``result.reason``)."""
        res = ProbeResult()
        start = time.monotonic()
        try:
            mod = self.config.modules.get(t.module)
            if mod is None:
                raise ProbeFailure("error", f"unknown module {t.module!r}")
            try:
                ep = parse_target(t.target, mod.prober)
            except ValueError as e:
                raise ProbeFailure("error", str(e)) from None
            async with self.sem:
                start = time.monotonic()
                budget = min(mod.timeout, deadline - start)
                if budget <= 0:
                    raise ProbeFailure("deadline", "no time left in the scrape")
                if self.stats:
                    self.stats.in_flight.inc()
                try:
                    async with asyncio.timeout(budget):
                        address = await self.ctx.resolve(ep.host)
                        await PROBERS[mod.prober](self.ctx, address, ep, mod, budget, res)
                finally:
                    if self.stats:
                        self.stats.in_flight.dec()
            res.success = True
        except asyncio.CancelledError:
            raise
        except Exception as e:  # every failure is a result, never a crashed scrape
            f = classify(e)
            res.reason, res.detail = f.reason, f.detail
            if f.reason == "error":
                log.warning("probe %s (module %s) failed: %s", t.target, t.module, f.detail)
        res.duration = time.monotonic() - start
        if self.stats:
            self.stats.record(t.target, t.module, res.reason)
        return res

    async def sweep(self, targets: list[Target], deadline: float) -> list[tuple[Target, ProbeResult]]:
        results = await asyncio.gather(*(self.run(t, deadline) for t in targets))
        return list(zip(targets, results, strict=True))

    def close(self) -> None:
        self.ctx.close()
