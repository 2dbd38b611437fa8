"""The ``dcops`` command line."""

from __future__ import annotations

import typer

from dcops.cli import exporter as exporter_cmd
from dcops.cli import inventory as inventory_cmd
from dcops.cli import lab as lab_cmd
from dcops.cli import mail as mail_cmd
from dcops.cli.common import InventoryOpt

app = typer.Typer(
    name="dcops",
    help="Infrastructure-as-code and operations toolkit of the provincial e-government data centre.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
app.add_typer(inventory_cmd.app, name="inventory")
app.add_typer(lab_cmd.app, name="lab")
app.add_typer(exporter_cmd.app, name="exporter")
app.add_typer(mail_cmd.app, name="mail")


@app.command("main")
def main_job(inventory: InventoryOpt = None) -> None:  # type: ignore[assignment]
    """The main job on a province (default: the lab): bring the lab up and show how to reach each host."""
    from dcops.cli.common import fail, load_or_exit
    from dcops.lab import LabError
    from dcops.lab import main_job as lab_main_job

    try:
        lab_main_job(load_or_exit(inventory).inventory)
    except LabError as e:
        fail(str(e))


def main() -> None:
    app()
