"""What a probe found: success, duration, failure reason, and the samples to expose."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["gauge", "counter"]


@dataclass(frozen=True)
class Sample:
    name: str
    help: str
    value: float
    labels: tuple[tuple[str, str], ...] = ()
    kind: Kind = "gauge"


@dataclass
class ProbeResult:
    success: bool = False
    duration: float = 0.0
    reason: str | None = None
    detail: str = ""
    samples: list[Sample] = field(default_factory=list)

    def add(self, name: str, help: str, value: float, kind: Kind = "gauge", **labels: str) -> None:
        self.samples.append(Sample(name, help, float(value), tuple(sorted(labels.items())), kind))
