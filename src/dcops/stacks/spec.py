"""What the stack makes of the inventory, as plain data: the nodes, each VM (size, node, disks
and NICs in slot order, addresses, cloud-init, tags) and the facts the policies check against.

Pure and deterministic: the program (:mod:`dcops.stacks.program`), the policies and the drift
all read these, so a fact is computed once. Disks and NICs are sorted by slot, hosts by name,
so the order of the inventory's files or keys never changes what is planned.
"""

from __future__ import annotations

from dataclasses import dataclass

from dcops.inventory.model import Inventory, ServiceType, Site
from dcops.inventory.platform import Platform, Vm, slot_key


class StackError(Exception):
    """The inventory cannot be made into a stack (it has no platform, no admin key...)."""


@dataclass(frozen=True)
class NicSpec:
    slot: str
    network: str
    carries: str
    bridge: str
    vlan: int | None
    mac: str
    #: ``a.b.c.d/len`` for cloud-init, or None (uplinks: the datanet role configures them).
    address: str | None
    gateway: str | None


@dataclass(frozen=True)
class DiskSpec:
    slot: str
    datastore: str
    size_gb: int
    boot: bool


@dataclass(frozen=True)
class VmSpec:
    host: str
    site: str
    roles: tuple[str, ...]
    vm_id: int
    node: str
    cores: int
    memory_mb: int
    disks: tuple[DiskSpec, ...]
    nics: tuple[NicSpec, ...]
    stateful: bool
    ha: bool
    tags: tuple[str, ...]
    management: str
    address: str


@dataclass(frozen=True)
class StackSpec:
    province: str
    domain: str
    platform: Platform
    vms: tuple[VmSpec, ...]
    dns_servers: tuple[str, ...]
    admin_user: str
    admin_keys: tuple[str, ...]

    def vm(self, host: str) -> VmSpec:
        return next(v for v in self.vms if v.host == host)


def mac_of(vm_id: int, slot: str) -> str:
    """A stable, locally administered MAC per VM and NIC slot (02:dc:<vm id, 24 bits>:<slot>)."""
    n = slot_key(slot)[1]
    b = vm_id & 0xFFFFFF
    return f"02:DC:{b >> 16 & 0xFF:02X}:{b >> 8 & 0xFF:02X}:{b & 0xFF:02X}:{n:02X}"


def tag(text: str) -> str:
    """A Proxmox tag: lower case letters, digits, ``-`` and ``_``."""
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text.lower())


def site_tag(site: str) -> str:
    return f"site-{tag(site)}"


def role_tag(role: str) -> str:
    return f"role-{tag(role)}"


def province_tag(code: str) -> str:
    return f"province-{tag(code)}"


def _place(plat: Platform, inv: Inventory) -> dict[str, str]:
    """Every VM's node: pinned VMs where they are pinned; the others, by VM id, on the candidate
    node with the most memory left (ties: the first in the placement list)."""
    sizes = {h.name: h.memory_mb for _, h in inv.hosts()}
    free = {n.name: n.memory_mb - plat.node_reserved_mb for n in plat.cluster.nodes}
    out: dict[str, str] = {}
    for host, vm in sorted(plat.vms.items()):
        if vm.node is not None:
            out[host] = vm.node
            free[vm.node] = free.get(vm.node, 0) - sizes.get(host, 0)
    floating: list[tuple[int, str, Vm]] = sorted((vm.vm_id, host, vm) for host, vm in plat.vms.items() if vm.node is None)
    for _, host, vm in floating:
        candidates = list(vm.placement or [])
        best = max(candidates, key=lambda n: (free.get(n, 0), -candidates.index(n)))
        out[host] = best
        free[best] = free.get(best, 0) - sizes.get(host, 0)
    return out


def _dns_servers(inv: Inventory) -> tuple[str, ...]:
    out: list[str] = []
    for svc in inv.services:
        if svc.type is ServiceType.DNS and not svc.external:
            for h in svc.hosts:
                addr = str(inv.host(h)[1].address)
                if addr not in out:
                    out.append(addr)
    return tuple(out)


def _lan_gateway(inv: Inventory, site: Site, address: str) -> str | None:
    gw = str(inv.gateway_of(site))
    return None if gw == address else gw


def build_spec(inv: Inventory) -> StackSpec:
    plat = inv.platform
    if plat is None:
        raise StackError(f"inventory {inv.source} has no platform section (platform.yml): nothing to plan")
    admins = inv.province.admins
    if not admins:
        raise StackError(f"inventory {inv.source}: province.admins is empty; cloud-init needs an admin account")
    keys: list[str] = []
    for a in admins:
        for k in a.ssh_keys:
            if k not in keys:
                keys.append(k)
    nodes = _place(plat, inv)
    mgmt = inv.province.management_network
    vms: list[VmSpec] = []
    for host_name, vm in sorted(plat.vms.items()):
        try:
            site, host = inv.host(host_name)
        except KeyError:
            raise StackError(f"platform.vms.{host_name}: no such host in inventory {inv.source}") from None
        nics: list[NicSpec] = []
        for slot in sorted(vm.nics, key=slot_key):
            net = plat.network(vm.nics[slot])
            if net is None:
                raise StackError(f"{host_name}: network {vm.nics[slot]!r} is not declared")
            address: str | None = None
            gateway: str | None = None
            if net.carries == "management":
                address = f"{host.management}/{mgmt.prefixlen}"
            elif net.carries == "lan":
                lan_site = inv.site(net.site) if net.site else site
                address = f"{host.address}/{lan_site.subnet.prefixlen}"
                gateway = _lan_gateway(inv, lan_site, str(host.address))
            nics.append(NicSpec(slot, net.name, net.carries, net.bridge, net.vlan, mac_of(vm.vm_id, slot), address, gateway))
        first = min(vm.disks, key=slot_key)
        disks = tuple(
            DiskSpec(slot, vm.disks[slot].datastore, vm.disks[slot].size_gb, slot == first)
            for slot in sorted(vm.disks, key=slot_key)
        )
        tags = tuple(sorted({site_tag(site.name), province_tag(inv.province.code), *(role_tag(r) for r in host.roles)}))
        vms.append(VmSpec(
            host=host_name, site=site.name, roles=tuple(host.roles), vm_id=vm.vm_id, node=nodes[host_name],
            cores=host.vcpus, memory_mb=host.memory_mb, disks=disks, nics=tuple(nics), stateful=vm.stateful, ha=vm.ha,
            tags=tags, management=str(host.management), address=str(host.address),
        ))
    return StackSpec(
        province=inv.province.code,
        domain=inv.province.domain,
        platform=plat,
        vms=tuple(vms),
        dns_servers=_dns_servers(inv),
        admin_user=admins[0].name,
        admin_keys=tuple(keys),
    )

