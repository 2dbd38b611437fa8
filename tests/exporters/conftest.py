"""Fixtures of the exporter tests: the loopback fleet, the blackhole, metric parsing."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.exporters.fleet import BLACKHOLE, Blackhole, Fleet, make_fleet

needs_root = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("nft") is None, reason="needs root and nft")


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    lt, f = make_fleet(tmp_path_factory.mktemp("fleet"))
    try:
        yield f
    finally:
        lt.call(f.stop())
        lt.stop()


@pytest.fixture(scope="session")
def blackhole() -> Iterator[str]:
    if os.geteuid() != 0 or shutil.which("nft") is None:
        pytest.skip("the blackhole needs root and nft")
    bh = Blackhole([BLACKHOLE])
    try:
        yield BLACKHOLE
    finally:
        bh.remove()


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str | bytes) -> Samples:
    if isinstance(text, bytes):
        text = text.decode()
    out: Samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def names(samples: Samples) -> set[str]:
    return {n for n, _ in samples}


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path
