"""Shared fixtures: repository paths and a fixed lab folder so rendered output is stable."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAB = ROOT / "inventory" / "lab"
YENBAI = ROOT / "inventory" / "yenbai"
TWOLEVEL = ROOT / "inventory" / "twolevel"
GOLDEN = ROOT / "tests" / "golden"
VENV_BIN = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin"

# Rendered Ansible inventories name the lab's ssh_config by absolute path; pin it for golden files.
os.environ.setdefault("DCOPS_LAB_DIR", "/var/lib/dcops/lab")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT
