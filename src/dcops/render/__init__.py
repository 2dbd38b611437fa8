"""Renderers: every tool's native files, from the one inventory. Deterministic output."""

from __future__ import annotations

import json
from typing import Any


def dump_json(data: Any) -> str:
    """Stable JSON: same data, byte-identical text."""
    return json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
