"""Facts the exporters keep in one table each: the probers by name."""

from __future__ import annotations

from typing import get_args

from dcops.exporters.config import ProberName, default_modules
from dcops.exporters.probes.dispatch import PROBERS
from dcops.exporters.targets import DEFAULT_PORTS


def test_prober_names_are_the_dispatch_table() -> None:
    assert sorted(get_args(ProberName)) == sorted(PROBERS)
    # every prober that takes a port has a default one; every built-in module names a prober
    assert set(DEFAULT_PORTS) == set(PROBERS) - {"icmp", "tcp"}
    assert {m.prober for m in default_modules().values()} == set(PROBERS)
