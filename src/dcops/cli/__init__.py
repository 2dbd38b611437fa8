"""The ``dcops`` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dcops.cli import audit as audit_cmd
from dcops.cli import dns as dns_cmd
from dcops.cli import exporter as exporter_cmd
from dcops.cli import inventory as inventory_cmd
from dcops.cli import lab as lab_cmd
from dcops.cli import mail as mail_cmd
from dcops.cli import noc as noc_cmd
from dcops.cli import stack as stack_cmd
from dcops.cli import vc as vc_cmd
from dcops.cli.common import InventoryOpt
from dcops.cli.converge import converge_cmd

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
app.add_typer(dns_cmd.app, name="dns")
app.add_typer(stack_cmd.app, name="stack")
app.add_typer(audit_cmd.app, name="audit")
app.add_typer(noc_cmd.app, name="noc")
app.add_typer(vc_cmd.app, name="vc")


app.command("converge")(converge_cmd)


@app.command("main")
def main_job(
    inventory: InventoryOpt = None,  # type: ignore[assignment]
    converge: Annotated[bool, typer.Option(help="Converge site.yml after the lab is up.")] = True,
) -> None:
    """The main job on a province (default: the lab): boot the lab, converge site.yml, print a per-host summary."""
    from dcops.cli.common import fail, load_or_exit
    from dcops.converge import ConvergeError
    from dcops.converge import converge as run_converge
    from dcops.lab import LabError
    from dcops.lab import main_job as lab_main_job

    loaded = load_or_exit(inventory)
    try:
        lab_main_job(loaded.inventory)
    except LabError as e:
        fail(str(e))
    if not converge:
        return
    try:
        res = run_converge(Path(loaded.inventory.source), "site.yml")
    except ConvergeError as e:
        fail(str(e))
    if not res.ok:
        what = "was stopped after its timeout" if res.timed_out else "failed on some hosts"
        fail(
            f"site.yml {what} (log: {res.log}; runner events: {res.artifacts}); "
            "the lab stays up: dcops lab status, dcops lab down"
        )


def main() -> None:
    app()
