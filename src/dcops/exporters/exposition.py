"""Probe results to Prometheus text, through a fresh CollectorRegistry per request."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from dcops.exporters.probes.result import ProbeResult, Sample
from dcops.exporters.targets import Target


def result_samples(res: ProbeResult) -> list[Sample]:
    out = [
        Sample("probe_success", "1 if the probe succeeded, else 0.", float(res.success)),
        Sample("probe_duration_seconds", "How long the probe took to complete, in seconds.", res.duration),
    ]
    out.extend(res.samples)
    if res.reason:
        out.append(
            Sample("dcops_probe_failed", "Present (value 1) when the probe failed.", 1.0, (("reason", res.reason),))
        )
    return out


class _Samples(Collector):
    def __init__(self, samples: Iterable[Sample]) -> None:
        self.samples = list(samples)

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for s in self.samples:
            fam = families.get(s.name)
            if fam is None:
                fam = families[s.name] = Metric(s.name, s.help, s.kind)
            name = s.name + "_total" if s.kind == "counter" else s.name
            fam.add_sample(name, dict(s.labels), s.value)
        yield from families.values()


def render(samples: Iterable[Sample]) -> bytes:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(_Samples(samples))
    return generate_latest(reg)


def probe_text(res: ProbeResult) -> bytes:
    """``/probe``: one target, no target labels (Prometheus adds them from file_sd)."""
    return render(result_samples(res))


def sweep_text(results: list[tuple[Target, ProbeResult]], duration: float) -> bytes:
    """``/sweep``: every target, identified by ``target`` and ``module`` labels only."""
    samples = [
        Sample("dcops_sweep_targets", "Targets probed by this sweep.", float(len(results))),
        Sample("dcops_sweep_failed_targets", "Targets whose probe failed in this sweep.",
               float(sum(1 for _, r in results if not r.success))),
        Sample("dcops_sweep_duration_seconds", "Wall time of this sweep, in seconds.", duration),
    ]
    for t, res in results:
        ident = (("module", t.module), ("target", t.target))
        for s in result_samples(res):
            samples.append(Sample(s.name, s.help, s.value, tuple(sorted(s.labels + ident)), s.kind))
    return render(samples)
