"""Checks of the ``platform`` section against itself and the rest of the inventory.

A VM larger than every node (or than its own node), two VMs with one VM id, a NIC on a network
that is not declared or a network on a bridge that is not, two networks with one bridge and
VLAN, a disk or the image on a datastore the node does not have (or that holds no disks), an HA
VM on a datastore that is not shared, a VM for a host that does not exist or is not in the data
centre, a data-centre host without a VM. Each problem names the file, the line and the reason,
like :mod:`dcops.inventory.validate`.
"""

from __future__ import annotations

from collections.abc import Iterator

from dcops.inventory.errors import Problem, short
from dcops.inventory.model import Host, Site, Tier
from dcops.inventory.origin import Loaded
from dcops.inventory.platform import Node, Platform, Vm


def vm_nodes(plat: Platform, vm: Vm) -> list[Node]:
    """The declared nodes a VM may run on (its node, or its placement's nodes)."""
    names = [vm.node] if vm.node is not None else list(vm.placement or [])
    return [n for n in (plat.node(x) for x in names) if n is not None]


def check_platform(loaded: Loaded, failed: dict[str, set[str]] | None = None) -> Iterator[Problem]:
    inv = loaded.inventory
    plat = inv.platform
    if plat is None or ("platform", 0) not in loaded.origins:
        return
    o = loaded.origin("platform", 0)
    bad_hosts = (failed or {}).get("hosts", set())
    bad_sites = (failed or {}).get("sites", set())

    seen_nodes: set[str] = set()
    for i, n in enumerate(plat.cluster.nodes):
        if n.name in seen_nodes:
            yield o.problem(f"node {short(n.name)} is declared twice", "cluster", "nodes", i, "name")
        seen_nodes.add(n.name)
        stores = [d.name for d in n.datastores]
        for j, d in enumerate(n.datastores):
            if stores.index(d.name) != j:
                yield o.problem(f"datastore {short(d.name)} is declared twice on node {n.name}",
                                "cluster", "nodes", i, "datastores", j, "name")
        for br in n.bridge_ports:
            if br not in {b.name for b in plat.bridges}:
                yield o.problem(f"bridge {short(br)} is not declared in platform.bridges",
                                "cluster", "nodes", i, "bridge_ports", br)
        if plat.image.datastore not in stores:
            yield o.problem(f"the image's datastore {short(plat.image.datastore)} is not on node {n.name}"
                            f" (it has: {', '.join(stores)})", "image", "datastore")
        elif "import" not in next(d for d in n.datastores if d.name == plat.image.datastore).content:
            yield o.problem(f"datastore {short(plat.image.datastore)} on node {n.name} holds no images to import"
                            " (its content has no import)", "image", "datastore")

    bridges = {b.name for b in plat.bridges}
    seen_nets: dict[str, int] = {}
    seen_tags: dict[tuple[str, int | None], str] = {}
    for i, net in enumerate(plat.networks):
        if net.name in seen_nets:
            yield o.problem(f"network {short(net.name)} is declared twice", "networks", i, "name")
        seen_nets.setdefault(net.name, i)
        if net.bridge not in bridges:
            yield o.problem(f"bridge {short(net.bridge)} is not declared in platform.bridges"
                            f" ({', '.join(sorted(bridges))})", "networks", i, "bridge")
        tag = (net.bridge, net.vlan)
        if tag in seen_tags:
            what = f"VLAN {net.vlan}" if net.vlan is not None else "no VLAN"
            yield o.problem(f"networks {seen_tags[tag]} and {net.name} are one network (bridge {net.bridge}, {what})",
                            "networks", i, "vlan")
        seen_tags.setdefault(tag, net.name)
        if net.site is not None and net.site not in {s.name for s in inv.sites} and net.site not in bad_sites:
            yield o.problem(f"site {short(net.site)} does not exist", "networks", i, "site")

    max_cores = max(n.cores for n in plat.cluster.nodes)
    max_mem = max(n.memory_mb - plat.node_reserved_mb for n in plat.cluster.nodes)
    hosts: dict[str, tuple[Site, Host]] = {}
    for s, h in inv.hosts():
        hosts.setdefault(h.name, (s, h))  # the first definition (a duplicate is validate.py's to report)
    ids: dict[int, str] = {}
    for name, vm in plat.vms.items():
        at = ("vms", name)
        if vm.vm_id in ids:
            yield o.problem(f"VM id {vm.vm_id} is already the VM id of {ids[vm.vm_id]}", *at, "vm_id")
        ids.setdefault(vm.vm_id, name)
        site_host = hosts.get(name)
        if site_host is None:
            if name not in bad_hosts:
                yield o.problem(f"host {short(name)} does not exist (platform.vms is keyed by host name)", *at)
            continue
        site, host = site_host
        if site.tier is not Tier.DATACENTRE:
            yield o.problem(f"host {name} is at site {site.name} ({site.tier.value}), not in the data centre:"
                            " only data-centre hosts run on the platform", *at)
        if host.vcpus > max_cores or host.memory_mb > max_mem:
            yield o.problem(f"the VM of {name} ({host.vcpus} cores, {host.memory_mb} MiB, from its host's vcpus and memory_mb)"
                            f" is larger than every node (at most {max_cores} cores and {max_mem} MiB for VMs)", *at)
        names = [vm.node] if vm.node is not None else list(vm.placement or [])
        key = "node" if vm.node is not None else "placement"
        for k, n_name in enumerate(names):
            if plat.node(n_name) is None:
                sub = (key,) if vm.node is not None else (key, k)
                yield o.problem(f"node {short(n_name)} is not a node of cluster {plat.cluster.name}"
                                f" ({', '.join(n.name for n in plat.cluster.nodes)})", *at, *sub)
        nodes = vm_nodes(plat, vm)
        for node in nodes:
            if host.vcpus <= max_cores and host.memory_mb <= max_mem and (
                host.vcpus > node.cores or host.memory_mb > node.memory_mb - plat.node_reserved_mb
            ):
                yield o.problem(f"the VM of {name} ({host.vcpus} cores, {host.memory_mb} MiB) is larger than node {node.name}"
                                f" ({node.cores} cores, {node.memory_mb - plat.node_reserved_mb} MiB for VMs)", *at, key)
        for slot, disk in vm.disks.items():
            missing, no_images, unshared = [], [], []
            for node in nodes:
                store = next((d for d in node.datastores if d.name == disk.datastore), None)
                if store is None:
                    missing.append(node.name)
                elif "images" not in store.content:
                    no_images.append(node.name)
                elif vm.ha and not store.shared:
                    unshared.append(node.name)
            where = (*at, "disks", slot, "datastore")
            if missing:
                yield o.problem(f"datastore {short(disk.datastore)} is not on node {', '.join(missing)}", *where)
            if no_images:
                yield o.problem(f"datastore {disk.datastore} on node {', '.join(no_images)} holds no VM disks"
                                " (its content has no images)", *where)
            if unshared:
                yield o.problem(f"{name} is HA but datastore {disk.datastore} on node {', '.join(unshared)} is not shared:"
                                " the HA manager could not start it on another node", *where)
        lan_nics = 0
        mgmt_nics = 0
        for slot, net_name in vm.nics.items():
            found = plat.network(net_name)
            if found is None:
                yield o.problem(f"network {short(net_name)} is not declared in platform.networks"
                                f" ({', '.join(n.name for n in plat.networks)})", *at, "nics", slot)
                continue
            net = found
            if net.carries == "lan":
                lan_nics += 1
                if net.site != site.name:
                    yield o.problem(f"network {net.name} is the LAN of site {net.site}, but {name} is at site {site.name}",
                                    *at, "nics", slot)
            elif net.carries == "management":
                mgmt_nics += 1
        if lan_nics > 1 or mgmt_nics > 1:
            yield o.problem(f"{name} has {lan_nics} LAN and {mgmt_nics} management NICs: at most one of each"
                            " (each takes the host's one address)", *at, "nics")
        if vm.ha and len(plat.cluster.nodes) < 2:
            yield o.problem(f"{name} is HA on a cluster of one node", *at, "ha")

    for s in inv.sites:
        if s.tier is not Tier.DATACENTRE:
            continue
        for h in s.hosts:
            if h.name not in plat.vms:
                yield o.problem(f"data-centre host {h.name} (site {s.name}) has no VM in platform.vms", "vms")
