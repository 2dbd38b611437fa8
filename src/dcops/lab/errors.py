"""The one exception the lab raises: its message tells a sysadmin what to do."""

from __future__ import annotations


class LabError(Exception):
    """A lab operation failed; ``str(e)`` says what failed and what to do about it."""
