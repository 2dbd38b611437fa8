"""The NOC's alerting, rendered from the inventory: topology rules and their promtool tests,
Alertmanager routes and inhibitions, silences, federation, a webhook receiver.

Static rules (the same in every province) live in ``monitors/rules``; what depends on the
province's network (which site is behind which) is rendered here from
:class:`dcops.inventory.topology.Topology`, never from the administrative districts.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Intervals:
    """The alert latency budget's terms (seconds). A site cut off is notified within
    :meth:`budget` seconds: the next scrape starts within one scrape interval, the probe waits
    its timeout, the rule sees the sample at the next evaluation, stays pending ``for:``, and
    Alertmanager holds a new group for ``group_wait``."""

    scrape_interval: int = 10
    probe_timeout: int = 5
    evaluation_interval: int = 10
    site_for: int = 20
    group_wait: int = 10
    group_interval: int = 60
    repeat_interval: int = 4 * 3600

    def budget(self) -> int:
        return self.scrape_interval + self.probe_timeout + self.evaluation_interval + self.site_for + self.group_wait

    def floor(self) -> int:
        """The shortest possible cut-to-notification time: ``for:`` plus group_wait."""
        return self.site_for + self.group_wait


#: The production intervals (monitors/README.md gives the arithmetic): 10+5+10+20+10 = 55 s ≤ 60 s.
PRODUCTION = Intervals()
