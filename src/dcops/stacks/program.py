"""The Pulumi program of the data centre on Proxmox VE (pulumi_proxmoxve 8), from the inventory.

Per node: the bridges, a VLAN interface per declared VLAN, the cloud image (``download.File``).
Per data-centre host: a ``VmLegacy`` with its disks and NICs in slot order (reordering the
inventory changes nothing), cloud-init with the inventory's static addresses, the DNS servers
and the admins' SSH keys (no password), ``protect`` when stateful, ``ignore_changes`` on the
cloud-init data (day-2 configuration is Ansible's), tags for site, role and province; an HA
resource for each HA host. Outputs per host: VM id, node, MAC addresses, addresses (the
inventory's: the guest agent is never waited on).

``stacks/datacentre/__main__.py`` calls :func:`main`, which reads the inventory folder from the
stack config ``dcops:inventory``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
import pulumi_proxmoxve as px

from dcops.inventory import InventoryError, load
from dcops.inventory.model import Inventory
from dcops.stacks.spec import StackSpec, VmSpec, build_spec

#: The cloud-init data: what ``ignore_changes`` names (a change would replace the VM).
CLOUD_INIT_PROPERTIES = ["initialization"]


def bridge_name(node: str, bridge: str) -> str:
    return f"{node}-{bridge}"


def vlan_name(node: str, bridge: str, vlan: int) -> str:
    return f"{node}-{bridge}-vlan{vlan}"


def image_name(node: str) -> str:
    return f"{node}-image"


def ha_name(host: str) -> str:
    return f"{host}-ha"


def _node_resources(spec: StackSpec) -> tuple[dict[tuple[str, str], pulumi.Resource], dict[str, px.download.File]]:
    plat = spec.platform
    nets: dict[tuple[str, str], pulumi.Resource] = {}
    images: dict[str, px.download.File] = {}
    for node in sorted(plat.cluster.nodes, key=lambda n: n.name):
        for br in sorted(plat.bridges, key=lambda b: b.name):
            vids = sorted({n.vlan for n in plat.networks if n.bridge == br.name and n.vlan is not None})
            bridge = px.network.linux.Bridge(
                bridge_name(node.name, br.name),
                node_name=node.name,
                name=br.name,
                comment=br.comment or None,
                ports=sorted(node.bridge_ports.get(br.name, [])),
                vlan_aware=True,
                vids=" ".join(str(v) for v in vids) if vids else None,
                mtu=br.mtu,
                autostart=True,
            )
            nets[(node.name, br.name)] = bridge
            for vid in vids:
                names = sorted(n.name for n in plat.networks if n.bridge == br.name and n.vlan == vid)
                nets[(node.name, f"{br.name}.{vid}")] = px.network.linux.Vlan(
                    vlan_name(node.name, br.name, vid),
                    node_name=node.name,
                    name=f"{br.name}.{vid}",
                    comment=f"dcops: {', '.join(names)}",
                    autostart=True,
                    opts=pulumi.ResourceOptions(depends_on=[bridge]),
                )
        img = plat.image
        images[node.name] = px.download.File(
            image_name(node.name),
            node_name=node.name,
            datastore_id=img.datastore,
            content_type="import",
            file_name=img.file_name,
            url=img.url,
            checksum=img.checksum,
            checksum_algorithm=img.checksum_algorithm,
            overwrite=False,
        )
    return nets, images


def _vm(spec: StackSpec, v: VmSpec, nets: dict[tuple[str, str], pulumi.Resource], image: px.download.File) -> px.VmLegacy:
    deps: list[pulumi.Resource] = [image]
    for nic in v.nics:
        key = (v.node, f"{nic.bridge}.{nic.vlan}") if nic.vlan is not None else (v.node, nic.bridge)
        deps.append(nets[key])
        if nets[(v.node, nic.bridge)] not in deps:
            deps.append(nets[(v.node, nic.bridge)])
    disks = [
        px.VmLegacyDiskArgs(
            interface=d.slot,
            datastore_id=d.datastore,
            size=d.size_gb,
            import_from=image.id if d.boot else None,
            iothread=True,
            discard="on",
            file_format="raw",
        )
        for d in v.disks
    ]
    nics = [
        px.VmLegacyNetworkDeviceArgs(bridge=n.bridge, vlan_id=n.vlan, mac_address=n.mac, model="virtio", firewall=False)
        for n in v.nics
    ]
    ip_configs = [
        px.VmLegacyInitializationIpConfigArgs(
            ipv4=px.VmLegacyInitializationIpConfigIpv4Args(address=n.address, gateway=n.gateway) if n.address else None
        )
        for n in v.nics
    ]
    return px.VmLegacy(
        v.host,
        name=v.host,
        node_name=v.node,
        vm_id=v.vm_id,
        description=f"{v.host} ({', '.join(v.roles) or 'no role'}) at site {v.site}; managed by dcops (stacks/datacentre)",
        tags=list(v.tags),
        on_boot=True,
        started=True,
        protection=v.stateful,
        # The guest agent is not waited on for addresses: they are the inventory's.
        agent=px.VmLegacyAgentArgs(enabled=False),
        cpu=px.VmLegacyCpuArgs(cores=v.cores, sockets=1, type=spec.platform.cpu_type),
        memory=px.VmLegacyMemoryArgs(dedicated=v.memory_mb),
        scsi_hardware="virtio-scsi-single",
        operating_system=px.VmLegacyOperatingSystemArgs(type="l26"),
        serial_devices=[px.VmLegacySerialDeviceArgs(device="socket")],
        disks=disks,
        network_devices=nics,
        initialization=px.VmLegacyInitializationArgs(
            datastore_id=v.disks[0].datastore,
            dns=px.VmLegacyInitializationDnsArgs(domain=spec.domain, servers=list(spec.dns_servers)),
            ip_configs=ip_configs,
            user_account=px.VmLegacyInitializationUserAccountArgs(username=spec.admin_user, keys=list(spec.admin_keys)),
        ),
        opts=pulumi.ResourceOptions(
            protect=v.stateful,
            ignore_changes=CLOUD_INIT_PROPERTIES,
            depends_on=deps,
        ),
    )


def build(inv: Inventory) -> dict[str, Any]:
    """Declare every resource of the stack for ``inv``; export and return the per-host outputs."""
    spec = build_spec(inv)
    nets, images = _node_resources(spec)
    hosts: dict[str, Any] = {}
    for v in spec.vms:
        vm = _vm(spec, v, nets, images[v.node])
        if v.ha:
            px.Haresource(
                ha_name(v.host),
                resource_id=f"vm:{v.vm_id}",
                state="started",
                comment=f"dcops: {v.host}",
                max_relocate=1,
                max_restart=1,
                opts=pulumi.ResourceOptions(depends_on=[vm]),
            )
        hosts[v.host] = {
            "vmId": vm.vm_id,
            "node": vm.node_name,
            "site": v.site,
            "macAddresses": vm.mac_addresses,
            "addresses": {"management": v.management, "lan": v.address},
        }
    pulumi.export("province", spec.province)
    pulumi.export("hosts", hosts)
    return hosts


def main() -> None:
    """The program as ``pulumi up`` runs it: the inventory folder from ``dcops:inventory``."""
    directory = Path(pulumi.Config("dcops").require("inventory"))
    try:
        loaded = load(directory)
    except InventoryError as e:
        raise pulumi.RunError(str(e)) from None
    build(loaded.inventory)
