"""Fixtures of the lab tests: one full lab booted for the whole session, always torn down."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from dcops import DEFAULT_INVENTORY
from tests.lab.helpers import dcops, status


@pytest.fixture(scope="session")
def root() -> None:
    if os.geteuid() != 0:
        pytest.skip("lab tests need root (network namespaces, systemd-nspawn): run pytest as root")


@pytest.fixture(scope="session")
def lab(root: None) -> Iterator[dict[str, Any]]:
    """inventory/lab booted once for the session; `down` runs afterwards whatever happened."""
    dcops("lab", "down", timeout=120)
    try:
        up = dcops("lab", "up", "-i", str(DEFAULT_INVENTORY), timeout=600)
        assert up.returncode == 0, f"dcops lab up failed:\n{up.stdout}\n{up.stderr}"
        yield status()
    finally:
        dcops("lab", "down", timeout=180)
