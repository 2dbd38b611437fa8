"""The continuous ICMP prober (smokeping-style) for the data-network links.

One packet per scrape cannot measure loss; this prober sends ``packets`` echoes to every
target each ``interval`` on its own schedule and keeps a latency histogram and sent/lost
counters per target, which Prometheus reads on ``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

from prometheus_client import CollectorRegistry, Counter, Histogram

from dcops.exporters.config import ExporterConfig, SmokepingOptions
from dcops.exporters.errors import ProbeFailure
from dcops.exporters.probes.icmp import Pinger

log = logging.getLogger("dcops.exporters.smokeping")


class Smokeping:
    def __init__(self, config: ExporterConfig, targets: list[str], pinger: Pinger, registry: CollectorRegistry) -> None:
        self.opts: SmokepingOptions = config.smokeping
        self.config = config
        self.targets = targets
        self.pinger = pinger
        self.rtt = Histogram(
            "dcops_icmp_rtt_seconds", "Round-trip time of the continuous ICMP prober's echoes.",
            ["target"], buckets=self.opts.buckets, registry=registry,
        )
        self.sent = Counter("dcops_icmp_sent", "Echo requests sent by the continuous ICMP prober.", ["target"], registry=registry)
        self.lost = Counter(
            "dcops_icmp_lost", "Echo requests without a reply within the timeout (continuous prober).",
            ["target"], registry=registry,
        )
        self.rounds = Counter("dcops_icmp_rounds", "Completed rounds of the continuous ICMP prober.", registry=registry)
        for t in targets:
            self.rtt.labels(t)
            self.sent.labels(t)
            self.lost.labels(t)
        self._task: asyncio.Task[None] | None = None

    async def _one(self, target: str) -> None:
        address = self.config.address_map.get(target, target)
        if not self.config.allows(address):
            log.error("smokeping target %s (%s) is outside allowed_networks; not probed", target, address)
            return
        try:
            rtts = await self.pinger.ping(address, self.opts.packets, self.opts.packet_interval, self.opts.timeout)
        except (ProbeFailure, OSError) as e:
            rtts = [None] * self.opts.packets
            log.debug("smokeping %s: %s", target, e)
        self.sent.labels(target).inc(len(rtts))
        for r in rtts:
            if r is None:
                self.lost.labels(target).inc()
            else:
                self.rtt.labels(target).observe(r)

    async def round(self) -> None:
        await asyncio.gather(*(self._one(t) for t in self.targets))
        self.rounds.inc()

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(random.uniform(0, min(1.0, self.opts.interval)))  # no burst with other exporters
        while True:
            start = loop.time()
            try:
                await self.round()
            except Exception:
                log.exception("smokeping round failed")
            await asyncio.sleep(max(0.0, self.opts.interval - (loop.time() - start)))

    def start(self) -> None:
        if self._task is None and self.targets:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
