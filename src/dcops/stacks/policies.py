"""The CrossGuard policies of the data-centre stack: the validate functions, apart from the
``PolicyPack(...)`` call (``stacks/policy/__main__.py``), which starts a server and never returns.

Each policy is a stack validation over every resource the stack declares, checked against
facts taken from the inventory (:class:`Facts`): which VMs are stateful or HA, which bridges and
VLANs exist, what each node holds, where VM disks may go. The same functions judge the offline
plan (:func:`verdicts`) and, through the pack, a real ``pulumi preview``/``up``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ReportViolation,
    StackValidationArgs,
    StackValidationPolicy,
)

from dcops.inventory.model import Inventory

VM = "proxmoxve:index/vmLegacy:VmLegacy"
BRIDGE = "proxmoxve:network/linux/bridge:Bridge"
VLAN = "proxmoxve:network/linux/vlan:Vlan"
HA = "proxmoxve:index/haresource:Haresource"


@dataclass(frozen=True)
class Facts:
    """What the policies know from the inventory, independent of the plan they judge."""

    stateful: frozenset[str]
    ha: frozenset[str]
    bridges: frozenset[str]
    #: Declared (bridge, VLAN id or None) pairs.
    networks: frozenset[tuple[str, int | None]]
    #: Per node: (cores, MiB of memory for VMs).
    nodes: Mapping[str, tuple[int, int]]
    #: Per node: the datastores that hold VM disks.
    disk_stores: Mapping[str, frozenset[str]]


def facts_of(inv: Inventory) -> Facts:
    plat = inv.platform
    if plat is None:
        raise ValueError(f"inventory {inv.source} has no platform section")
    return Facts(
        stateful=frozenset(h for h, vm in plat.vms.items() if vm.stateful),
        ha=frozenset(h for h, vm in plat.vms.items() if vm.ha),
        bridges=frozenset(b.name for b in plat.bridges),
        networks=frozenset((n.bridge, n.vlan) for n in plat.networks),
        nodes={n.name: (n.cores, n.memory_mb - plat.node_reserved_mb) for n in plat.cluster.nodes},
        disk_stores={n.name: frozenset(d.name for d in n.datastores if "images" in d.content) for n in plat.cluster.nodes},
    )


#: A violation: its message and the URN of the resource concerned (None: the stack).
Violation = tuple[str, str | None]
Check = Callable[[Sequence[PolicyResource], Facts], Iterator[Violation]]


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _vms(resources: Sequence[PolicyResource]) -> list[PolicyResource]:
    return sorted((r for r in resources if r.resource_type == VM), key=lambda r: r.name)


def unique_vm_ids(resources: Sequence[PolicyResource], facts: Facts) -> Iterator[Violation]:
    seen: dict[int, str] = {}
    for r in _vms(resources):
        vm_id = _int(r.props.get("vmId"))
        if vm_id is None:
            yield f"VM {r.name} has no VM id (the stack pins every VM id)", r.urn
        elif vm_id in seen:
            yield f"VM {r.name} has VM id {vm_id}, already the VM id of {seen[vm_id]}", r.urn
        else:
            seen[vm_id] = r.name


def tagged(resources: Sequence[PolicyResource], facts: Facts) -> Iterator[Violation]:
    for r in _vms(resources):
        tags = [t for t in r.props.get("tags") or [] if isinstance(t, str)]
        missing = [what for what, prefix in (("site", "site-"), ("role", "role-")) if not any(t.startswith(prefix) for t in tags)]
        if missing:
            yield f"VM {r.name} has no {' and no '.join(missing)} tag (tags: {', '.join(tags) or 'none'})", r.urn


def stateful_protected(resources: Sequence[PolicyResource], facts: Facts) -> Iterator[Violation]:
    for r in _vms(resources):
        if r.name in facts.stateful and not r.opts.protect:
            yield f"VM {r.name} is stateful but not protected (protect=True keeps pulumi from deleting or replacing it)", r.urn


def declared_networks(resources: Sequence[PolicyResource], facts: Facts) -> Iterator[Violation]:
    for r in resources:
        if r.resource_type == BRIDGE and r.props.get("name") not in facts.bridges:
            yield f"bridge {r.props.get('name')} on node {r.props.get('nodeName')} is not declared in the inventory", r.urn
        elif r.resource_type == VLAN:
            bridge, _, vid = str(r.props.get("name", "")).partition(".")
            if not vid.isdigit() or (bridge, int(vid)) not in facts.networks:
                yield f"VLAN interface {r.props.get('name')} on node {r.props.get('nodeName')} is not a declared network", r.urn
    for r in _vms(resources):
        for k, nic in enumerate(r.props.get("networkDevices") or []):
            pair = (nic.get("bridge"), _int(nic.get("vlanId")))
            if pair not in facts.networks:
                what = f"bridge {pair[0]}" + (f" VLAN {pair[1]}" if pair[1] is not None else " without a VLAN")
                yield f"VM {r.name} NIC net{k} is on {what}, which the inventory does not declare", r.urn


def nodes_fit(resources: Sequence[PolicyResource], facts: Facts) -> Iterator[Violation]:
    cores: dict[str, int] = defaultdict(int)
    memory: dict[str, int] = defaultdict(int)
    names: dict[str, list[str]] = defaultdict(list)
    for r in _vms(resources):
        node = str(r.props.get("nodeName"))
        if node not in facts.nodes:
            yield f"VM {r.name} is placed on node {node}, which is not a node of the cluster", r.urn
            continue
        cores[node] += _int((r.props.get("cpu") or {}).get("cores")) or 1
        memory[node] += _int((r.props.get("memory") or {}).get("dedicated")) or 0
        names[node].append(r.name)
    for node in sorted(names):
        have_cores, have_mem = facts.nodes[node]
        if memory[node] > have_mem or cores[node] > have_cores:
            yield (f"node {node} does not fit its VMs ({', '.join(sorted(names[node]))}): they need {cores[node]} cores"
                   f" and {memory[node]} MiB, it has {have_cores} cores and {have_mem} MiB for VMs"), None


def allowed_datastores(resources: Sequence[PolicyResource], facts: Facts) -> Iterator[Violation]:
    for r in _vms(resources):
        node = str(r.props.get("nodeName"))
        allowed = facts.disk_stores.get(node, frozenset())
        stores = [(str(d.get("interface")), d.get("datastoreId")) for d in r.props.get("disks") or []]
        init = r.props.get("initialization") or {}
        if init.get("datastoreId") is not None:
            stores.append(("cloud-init", init.get("datastoreId")))
        for slot, store in stores:
            if store not in allowed:
                yield (f"VM {r.name} disk {slot} is on datastore {store}, not one that holds VM disks on node {node}"
                       f" ({', '.join(sorted(allowed)) or 'none'})"), r.urn


def _passwords(value: Any, path: str) -> Iterator[str]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            if "password" in str(k).lower() and v not in (None, ""):
                yield f"{path}.{k}"
            yield from _passwords(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _passwords(v, f"{path}[{i}]")


def no_password(resources: Sequence[PolicyResource], facts: Facts) -> Iterator[Violation]:
    for r in _vms(resources):
        for where in _passwords(r.props.get("initialization") or {}, "initialization"):
            yield f"VM {r.name} has a plaintext password in its cloud-init data ({where}): admins log in with SSH keys", r.urn


def ha_resources(resources: Sequence[PolicyResource], facts: Facts) -> Iterator[Violation]:
    ids = {str(r.props.get("resourceId")) for r in resources if r.resource_type == HA}
    for r in _vms(resources):
        if r.name in facts.ha and f"vm:{_int(r.props.get('vmId'))}" not in ids:
            yield f"VM {r.name} is HA in the inventory but the stack has no HA resource vm:{_int(r.props.get('vmId'))}", r.urn
    for host in sorted(facts.ha - {r.name for r in _vms(resources)}):
        yield f"HA host {host} has no VM in the stack", None


@dataclass(frozen=True)
class PolicySpec:
    name: str
    description: str
    check: Check


POLICIES: tuple[PolicySpec, ...] = (
    PolicySpec("dcops-unique-vm-ids", "Every VM has its own VM id.", unique_vm_ids),
    PolicySpec("dcops-vm-tags", "Every VM is tagged with its site and role.", tagged),
    PolicySpec("dcops-stateful-protected", "Stateful VMs are protected.", stateful_protected),
    PolicySpec("dcops-declared-networks", "No VM on a bridge or VLAN the inventory does not declare.", declared_networks),
    PolicySpec("dcops-nodes-fit", "The VMs placed on a node fit its memory and cores.", nodes_fit),
    PolicySpec("dcops-allowed-datastores", "Disks only on datastores that hold VM disks.", allowed_datastores),
    PolicySpec("dcops-no-cloud-init-password", "No plaintext password in cloud-init.", no_password),
    PolicySpec("dcops-ha-resources", "Every HA host has an HA resource.", ha_resources),
)


def _validator(spec: PolicySpec, facts: Facts) -> Callable[[StackValidationArgs, ReportViolation], None]:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        for message, urn in spec.check(args.resources, facts):
            report_violation(message, urn)

    return validate


def stack_policies(facts: Facts) -> list[StackValidationPolicy]:
    """The policies as pulumi_policy objects (for the pack, and for :func:`verdicts`)."""
    return [
        StackValidationPolicy(
            name=p.name, description=p.description, validate=_validator(p, facts),
            enforcement_level=EnforcementLevel.MANDATORY,
        )
        for p in POLICIES
    ]


def policy_resource(typ: str, name: str, urn: str, props: Mapping[str, Any], protect: bool,
                    ignore_changes: Sequence[str]) -> PolicyResource:
    """A resource as the policy engine hands it to a stack validation."""
    opts = PolicyResourceOptions(
        protect=protect, ignore_changes=list(ignore_changes), delete_before_replace=None, aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0), additional_secret_outputs=[],
    )
    return PolicyResource(typ, props, urn, name, opts, None, None, [], {})


@dataclass(frozen=True)
class Verdict:
    policy: str
    description: str
    violations: tuple[Violation, ...]

    @property
    def ok(self) -> bool:
        return not self.violations

    def as_dict(self) -> dict[str, Any]:
        return {"policy": self.policy, "description": self.description, "ok": self.ok,
                "violations": [{"message": m, "urn": u} for m, u in self.violations]}


def verdicts(resources: Sequence[PolicyResource], facts: Facts) -> list[Verdict]:
    """Every policy's verdict on ``resources``, through the pulumi_policy validate call."""
    out = []
    for spec, policy in zip(POLICIES, stack_policies(facts), strict=True):
        found: list[Violation] = []
        policy.validate(StackValidationArgs(list(resources)), lambda m, u, f=found: f.append((m, u)))  # type: ignore[misc]
        out.append(Verdict(spec.name, spec.description, tuple(found)))
    return out
