"""What every dcops command shares: consoles, the inventory option, error output."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from dcops import DEFAULT_INVENTORY
from dcops.inventory import InventoryError, Loaded, load

# No emoji codes (":100:" in "file.yml:100:" is a line number) and no highlighting of data.
console = Console(emoji=False)
err_console = Console(stderr=True, emoji=False)

InventoryOpt = Annotated[
    Path,
    typer.Option("--inventory", "-i", help="Inventory directory (default: the lab province).", show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def load_or_exit(path: Path | None, as_json: bool = False) -> Loaded:
    """Load an inventory; on problems print every one (file, line, path, reason) and exit 2."""
    try:
        return load(path or DEFAULT_INVENTORY)
    except InventoryError as e:
        if as_json:
            emit_json({"ok": False, "inventory": str(e.source), "problems": [p.as_dict() for p in e.problems]})
        else:
            n = len(e.problems)
            head = f"inventory {escape(str(e.source))}: {n} problem{'s' if n != 1 else ''}"
            err_console.print(f"[bold red]{head}[/]", highlight=False, soft_wrap=True)
            for p in e.problems:
                err_console.print(f"  [cyan]{escape(p.where())}[/]: {escape(p.reason)}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
