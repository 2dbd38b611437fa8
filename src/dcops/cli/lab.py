"""``dcops lab``: boot an inventory as real Debian hosts on this machine (placeholder)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Boot an inventory as a lab of real Debian hosts on this machine.", no_args_is_help=True)
