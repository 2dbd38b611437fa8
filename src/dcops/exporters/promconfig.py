"""A Prometheus configuration that scrapes the dcops exporters, rendered from the inventory.

The multi-target pattern: every file_sd target of :mod:`dcops.render.filesd` becomes
``/probe?target=<address>&module=<module>`` on an exporter, one job per entry of
:data:`dcops.exporters.probejobs.PROBE_JOBS` (the table the sweep reads too); site, area, tier (and
district, where there is one) come along as target labels. With several exporter instances the targets are sharded by
``hashmod`` of the target, so each is probed by exactly one instance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from dcops.exporters.probejobs import PROBE_JOBS, ProbeJob

__all__ = ["PROBE_JOBS", "ProbeJob", "dump", "render"]


def render(
    filesd_dir: Path,
    exporters: list[str],
    *,
    scrape_interval: str = "15s",
    scrape_timeout: str = "10s",
    jobs: tuple[ProbeJob, ...] = PROBE_JOBS,
) -> dict[str, Any]:
    """The config as a mapping (dump it with :func:`dump`); ``exporters`` are HOST:PORT of each instance."""
    if not exporters:
        raise ValueError("at least one exporter address is needed")
    n = len(exporters)
    scrape: list[dict[str, Any]] = []
    for job in jobs:
        for shard, exporter in enumerate(exporters):
            relabel: list[dict[str, Any]] = [
                {"source_labels": [label], "regex": regex, "action": "keep"} for label, regex in job.keep.items()
            ]
            relabel += [
                {"source_labels": ["__address__"], "target_label": "__param_target"},
                {"source_labels": ["__param_target"], "target_label": "instance"},
            ]
            if n > 1:
                relabel += [
                    {"source_labels": ["__param_target"], "modulus": n, "target_label": "__tmp_shard", "action": "hashmod"},
                    {"source_labels": ["__tmp_shard"], "regex": str(shard), "action": "keep"},
                ]
            relabel += [
                {"target_label": "__address__", "replacement": exporter},
                {"target_label": "job", "replacement": job.name},
                {"target_label": "module", "replacement": job.module},
            ]
            scrape.append(
                {
                    "job_name": f"{job.name}-shard{shard}" if n > 1 else job.name,
                    "metrics_path": "/probe",
                    "params": {"module": [job.module]},
                    "file_sd_configs": [{"files": [str(filesd_dir / job.file)], "refresh_interval": "1m"}],
                    "relabel_configs": relabel,
                }
            )
    scrape.append(
        {
            "job_name": "dcops-exporter",
            "static_configs": [{"targets": list(exporters), "labels": {"exporter": "connectivity"}}],
        }
    )
    return {
        "global": {"scrape_interval": scrape_interval, "scrape_timeout": scrape_timeout, "evaluation_interval": scrape_interval},
        "scrape_configs": scrape,
    }


def dump(config: dict[str, Any]) -> str:
    return "# Rendered by dcops from the inventory; do not edit.\n" + yaml.safe_dump(config, sort_keys=False)
