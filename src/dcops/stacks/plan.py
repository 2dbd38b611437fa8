"""The offline plan: the stack program run in-process under the Pulumi SDK's mocks.

No CLI and no provider plugin: :func:`run` configures ``pulumi.runtime.set_mocks`` (with
``preview=False``, so outputs are known) and a recording monitor, runs the program (the real
``stacks/datacentre/__main__.py`` through :mod:`runpy`, or :func:`dcops.stacks.program.build`
on an inventory already loaded), and returns every resource registered: its type, name, inputs
(numbers that are whole become integers again: mock inputs arrive as floats), options
(protect, ignoreChanges, dependencies by name) and the stack's outputs.
"""

from __future__ import annotations

import asyncio
import runpy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi.runtime
from pulumi.runtime import mocks as pmocks
from pulumi.runtime import settings as psettings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

import dcops
from dcops.inventory.model import Inventory

#: The stack program of the repository (a source checkout: src/dcops/../../stacks/datacentre).
PROGRAM = Path(dcops.__file__).resolve().parents[2] / "stacks" / "datacentre" / "__main__.py"

PROJECT = "dcops-datacentre"

VM = "proxmoxve:index/vmLegacy:VmLegacy"
BRIDGE = "proxmoxve:network/linux/bridge:Bridge"
VLAN = "proxmoxve:network/linux/vlan:Vlan"
IMAGE = "proxmoxve:download/file:File"
HA = "proxmoxve:index/haresource:Haresource"


def normalise(value: Any) -> Any:
    """Mock inputs as plain JSON: whole floats back to integers, mappings with sorted keys."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: normalise(value[k]) for k in sorted(value)}
    if isinstance(value, list | tuple):
        return [normalise(v) for v in value]
    return value


@dataclass
class PlannedResource:
    type: str
    name: str
    urn: str
    inputs: dict[str, Any]
    protect: bool
    ignore_changes: list[str]
    depends_on: list[str]
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def node(self) -> str | None:
        node = self.inputs.get("nodeName")
        return node if isinstance(node, str) else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "name": self.name,
            "inputs": self.inputs,
            "options": {"protect": self.protect, "ignoreChanges": self.ignore_changes, "dependsOn": self.depends_on},
        }


@dataclass
class Plan:
    project: str
    stack: str
    resources: list[PlannedResource]
    outputs: dict[str, Any]

    def by_name(self) -> dict[str, PlannedResource]:
        return {r.name: r for r in self.resources}

    def of_type(self, typ: str) -> list[PlannedResource]:
        return [r for r in self.resources if r.type == typ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "stack": self.stack,
            "resources": [r.as_dict() for r in sorted(self.resources, key=lambda r: (r.type, r.name))],
            "outputs": self.outputs,
        }


class PlanMocks(pulumi.runtime.Mocks):
    """What the provider would answer: the inputs back, an id, and the computed outputs the
    program exports (a VM's MAC addresses are the ones it sets on its NICs)."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        state = dict(args.inputs)
        if args.typ == VM:
            state["macAddresses"] = [n.get("macAddress") for n in args.inputs.get("networkDevices", [])]
            return f"{args.inputs.get('nodeName')}/qemu/{normalise(args.inputs.get('vmId'))}", state
        if args.typ == IMAGE:
            return f"{args.inputs.get('datastoreId')}:import/{args.inputs.get('fileName')}", state
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


class RecordingMonitor(pmocks.MockMonitor):
    """The mock monitor, keeping each registration's resource options (which mocks do not see)."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.options: dict[str, tuple[bool, list[str], list[str]]] = {}
        self.order: list[str] = []

    def RegisterResource(self, request: Any) -> Any:  # the gRPC method's name
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type != "pulumi:pulumi:Stack":
            self.options[response.urn] = (bool(request.protect), list(request.ignoreChanges), list(request.dependencies))
            self.order.append(response.urn)
        return response


def _name_of(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def _resolve(value: Any) -> Any:
    if isinstance(value, pulumi.Output):
        return _resolve(_sync_await(value.future()))
    if isinstance(value, dict):
        return {k: _resolve(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_resolve(v) for v in value]
    return value


def _run(func: Callable[[], None], stack: str, config: dict[str, str]) -> Plan:
    with own_event_loop():
        return _run_on_loop(func, stack, config)


@contextmanager
def own_event_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """A fresh event loop, current for the block, closed after it. Pulumi's runtime creates
    its futures on the thread's current loop, and a process that has used asyncio.run() before
    (the exporters, the SIP clients) has none left."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def _run_on_loop(func: Callable[[], None], stack: str, config: dict[str, str]) -> Plan:
    mocks = PlanMocks()
    monitor = RecordingMonitor(mocks)
    # A fresh root stack for every run: exports of an earlier run must not leak into this one.
    psettings.ROOT.set(None)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
    pulumi.runtime.set_all_config(config)
    try:
        _sync_await(run_pulumi_func(func))
        root = psettings.get_root_resource()
        raw_outputs = getattr(root, "outputs", {}) or {}
        outputs = normalise(_resolve(dict(raw_outputs)))
    finally:
        pulumi.runtime.set_all_config({})
    resources = []
    for urn in monitor.order:
        reg = monitor.resources[urn]
        protect, ignore, deps = monitor.options[urn]
        typ = urn.rsplit("::", 2)[-2].rsplit("$", 1)[-1]
        state = normalise(reg.state)
        inputs = {k: v for k, v in state.items() if k != "macAddresses"} if typ == VM else state
        deps_by_name = sorted(_name_of(d) for d in deps)
        resources.append(PlannedResource(typ, _name_of(urn), urn, inputs, protect, ignore, deps_by_name, state))
    resources.sort(key=lambda r: (r.type, r.name))  # registration order depends on the event loop
    return Plan(PROJECT, stack, resources, outputs)


def plan_inventory(inv: Inventory, stack: str | None = None) -> Plan:
    """The plan of an inventory already in memory (the program's :func:`build`, not ``__main__``)."""
    from dcops.stacks.program import build

    return _run(lambda: _discard(build(inv)), stack or inv.province.code, {})


def plan_program(inventory_dir: Path, program: Path = PROGRAM, stack: str | None = None) -> Plan:
    """The plan of the real program file, given the inventory folder through the stack config
    (``dcops:inventory``), as ``pulumi up`` would run it."""
    if not program.is_file():
        raise FileNotFoundError(f"{program}: the stack program is not there (a source checkout has stacks/datacentre)")
    config = {"dcops:inventory": str(Path(inventory_dir).resolve())}
    return _run(lambda: _discard(runpy.run_path(str(program), run_name="__main__")), stack or Path(inventory_dir).name, config)


def _discard(_: object) -> None:
    return None


def policy_resources(plan: Plan) -> list[Any]:
    """The plan's resources as the policy engine presents them (``PolicyResource``)."""
    from dcops.stacks.policies import policy_resource

    return [policy_resource(r.type, r.name, r.urn, r.inputs, r.protect, r.ignore_changes) for r in plan.resources]


def judge(plan: Plan, inv: Inventory) -> list[Any]:
    """The policy pack's verdicts on ``plan``, with the facts of ``inv``."""
    from dcops.stacks.policies import facts_of, verdicts

    return verdicts(policy_resources(plan), facts_of(inv))
