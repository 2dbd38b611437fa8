"""``dcops inventory``: check, show and render a province inventory."""

from __future__ import annotations

import typer

from dcops.cli.common import InventoryOpt, JsonOpt, console, load_or_exit

app = typer.Typer(help="Check, show and render a province inventory.", no_args_is_help=True)


@app.command()
def show(inventory: InventoryOpt = None, as_json: JsonOpt = False) -> None:  # type: ignore[assignment]
    """Show the province: counts per tier and district, services, addresses."""
    loaded = load_or_exit(inventory, as_json)
    console.print(loaded.inventory.province.name)
