"""``dcops stack``: the data centre's Pulumi stack planned offline, and its drift from the inventory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from dcops import DEFAULT_INVENTORY
from dcops.cli.common import InventoryOpt, JsonOpt, console, emit_json, fail, load_or_exit

app = typer.Typer(help="The data centre's Pulumi stack on Proxmox VE: plan it offline, compare a real stack with the inventory.",
                  no_args_is_help=True)


def _mem(r: Any) -> str:
    return f"{(r.inputs.get('memory') or {}).get('dedicated')} MiB"


def key_inputs(r: Any) -> str:
    """The inputs that say what a resource is, on one line."""
    i = r.inputs
    t = r.type.rsplit(":", 1)[-1]
    if t == "VmLegacy":
        disks = " ".join(
            f"{d.get('interface')}={d.get('datastoreId')}:{d.get('size')}G"
            + ("(image)" if d.get("importFrom") else "")
            for d in i.get("disks") or []
        )
        nics = " ".join(
            f"net{k}={n.get('bridge')}" + (f".{n.get('vlanId')}" if n.get("vlanId") is not None else "")
            + f"/{n.get('macAddress')}"
            for k, n in enumerate(i.get("networkDevices") or [])
        )
        ips = " ".join(str((c.get("ipv4") or {}).get("address")) for c in (i.get("initialization") or {}).get("ipConfigs") or []
                       if c.get("ipv4"))
        opts = " protect" if r.protect else ""
        opts += f" ignore_changes={','.join(r.ignore_changes)}" if r.ignore_changes else ""
        return (f"vmId={i.get('vmId')} cores={(i.get('cpu') or {}).get('cores')} memory={_mem(r)} disks[{disks}] nics[{nics}]"
                f" ip[{ips}] tags={','.join(i.get('tags') or [])}{opts}")
    if t == "Bridge":
        ports = ",".join(i.get("ports") or []) or "-"
        return f"name={i.get('name')} ports={ports} vlan_aware={i.get('vlanAware')} vids={i.get('vids')}"
    if t == "Vlan":
        return f"name={i.get('name')}"
    if t == "File":
        return f"{i.get('datastoreId')}:{i.get('contentType')}/{i.get('fileName')} from {i.get('url')}"
    if t == "Haresource":
        return f"resourceId={i.get('resourceId')} state={i.get('state')}"
    return ""


@app.command()
def plan(inventory: InventoryOpt = None, as_json: JsonOpt = False) -> None:  # type: ignore[assignment]
    """What `pulumi up` would create, run offline under the Pulumi SDK's mocks, grouped by node, and
    the policy pack's verdicts on it. Exit 2 on an inventory problem or a policy violation."""
    from dcops.stacks.plan import PROGRAM, judge, plan_inventory, plan_program
    from dcops.stacks.spec import StackError

    directory = inventory or DEFAULT_INVENTORY
    loaded = load_or_exit(directory, as_json)
    inv = loaded.inventory
    try:
        result = plan_program(Path(directory)) if PROGRAM.is_file() else plan_inventory(inv)
    except StackError as e:
        fail(str(e), 2)
    verdicts = judge(result, inv)
    ok = all(v.ok for v in verdicts)
    if as_json:
        emit_json({"ok": ok, "plan": result.as_dict(), "policies": [v.as_dict() for v in verdicts]})
        raise typer.Exit(0 if ok else 2)
    groups: dict[str, list[Any]] = {}
    for r in result.resources:
        groups.setdefault(r.node or "(cluster)", []).append(r)
    console.print(f"[bold]stack {result.project}/{result.stack}[/]: {len(result.resources)} resources to create"
                  f" on {len([g for g in groups if g != '(cluster)'])} nodes (planned offline under the Pulumi SDK's mocks)",
                  highlight=False)
    for node in sorted(groups, key=lambda g: (g == "(cluster)", g)):
        console.print(f"[bold cyan]{escape(node)}[/]", highlight=False)
        for r in sorted(groups[node], key=lambda r: (r.type != "proxmoxve:network/linux/bridge:Bridge", r.type, r.name)):
            line = f"  + {escape(r.type)}  [bold]{escape(r.name)}[/]  {escape(key_inputs(r))}"
            console.print(line, highlight=False, soft_wrap=True)
    bad = [v for v in verdicts if not v.ok]
    console.print(f"[bold]policies[/]: {len(verdicts) - len(bad)} passed, {len(bad)} failed", highlight=False)
    for v in verdicts:
        mark = "[green]ok  [/]" if v.ok else "[red]FAIL[/]"
        console.print(f"  {mark} {v.policy}: {escape(v.description)}", highlight=False, soft_wrap=True)
        for message, _urn in v.violations:
            console.print(f"         {escape(message)}", highlight=False, soft_wrap=True)
    if not ok:
        raise typer.Exit(2)


@app.command()
def drift(
    outputs: Annotated[Path, typer.Argument(help="The stack's outputs: `pulumi stack output --json > outputs.json`.")],
    inventory: InventoryOpt = None,  # type: ignore[assignment]
    as_json: JsonOpt = False,
) -> None:
    """Compare a real stack's exported outputs with the inventory; list every difference (exit 1 if any)."""
    from dcops.stacks.drift import DriftInputError, read_outputs
    from dcops.stacks.drift import drift as find_drift
    from dcops.stacks.spec import StackError

    inv = load_or_exit(inventory or DEFAULT_INVENTORY, as_json).inventory
    try:
        diffs = find_drift(inv, read_outputs(outputs))
    except (DriftInputError, StackError) as e:
        fail(str(e), 2)
    if as_json:
        emit_json({"ok": not diffs, "differences": [d.as_dict() for d in diffs]})
    elif diffs:
        console.print(f"[bold]{len(diffs)} difference{'s' if len(diffs) != 1 else ''}[/] between {escape(str(outputs))}"
                      f" and inventory {escape(inv.source)}", highlight=False)
        for d in diffs:
            console.print(f"  {d.kind:14} {escape(d.message)}", highlight=False, soft_wrap=True)
    else:
        console.print(f"no difference between {escape(str(outputs))} and inventory {escape(inv.source)}", highlight=False)
    if diffs:
        raise typer.Exit(1)
