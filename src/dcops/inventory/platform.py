"""The data centre's platform: the Proxmox VE cluster its servers run on, as typed data.

The ``platform`` section (one mapping, optional, ``inventory/<name>/platform.yml``) describes
the cluster nodes (cores, memory, datastores), the bridges and the networks a VM attaches to
(bridge and VLAN id; what each carries: the management network, a site's LAN, the data
network's uplinks), the cloud image, and for every data-centre host its VM: disks by slot and
datastore, NICs by slot and network, the node or the nodes it may be placed on, whether it is
stateful (protected) and HA, its VM id.

Facts that the rest of the inventory holds are not repeated here: a VM's size is its host's
``vcpus`` and ``memory_mb``, its addresses and site are the host's, the admins' SSH keys are
``province.admins``, the DNS server is the inventory's ``dns`` service. The checks that need
the whole inventory are in :mod:`dcops.inventory.validate_platform`.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, StrictInt, model_validator

from dcops.inventory.model import Bool, Count, Inventory, Name, Strict

#: A VLAN id (802.1Q): 1 to 4094.
VlanId = Annotated[StrictInt, Field(ge=1, le=4094)]
#: A Proxmox VM id: 100 to 999,999,999.
VmId = Annotated[StrictInt, Field(ge=100, le=999_999_999)]
#: A Linux interface name (bridge, physical port): at most 15 characters.
IfName = Annotated[str, Field(pattern=r"^[a-zA-Z][a-zA-Z0-9_.-]{0,14}$")]
#: A datastore (storage) id as Proxmox names them.
StoreName = Annotated[str, Field(pattern=r"^[a-zA-Z][a-zA-Z0-9_.-]{0,62}$")]
#: A disk slot of a VM: ``scsi0``..``scsi30``, ``virtio0``..``virtio15``, ``sata0``..``sata5``.
DiskSlot = Annotated[str, Field(pattern=r"^(scsi([12]?[0-9]|30)|virtio(1[0-5]|[0-9])|sata[0-5])$")]
#: A NIC slot of a VM: ``net0``..``net31``.
NicSlot = Annotated[str, Field(pattern=r"^net([12]?[0-9]|3[01])$")]

#: What a datastore may hold (Proxmox storage content types).
Content = Literal["images", "rootdir", "iso", "vztmpl", "backup", "snippets", "import"]

_SLOT = re.compile(r"^([a-z]+)([0-9]+)$")


def slot_key(slot: str) -> tuple[str, int]:
    """``scsi10`` sorts after ``scsi2``: the slot's bus, then its number."""
    m = _SLOT.match(slot)
    return (m.group(1), int(m.group(2))) if m else (slot, 0)


class Datastore(Strict):
    name: StoreName
    content: list[Content] = Field(min_length=1)
    #: Shared between the nodes (Ceph, NFS): what an HA VM's disks need.
    shared: Bool = False


class Node(Strict):
    """A Proxmox VE cluster node."""

    name: Name
    cores: Count
    memory_mb: Count
    datastores: list[Datastore] = Field(min_length=1)
    #: Physical ports by bridge name (``{vmbr0: [eno1]}``); a bridge without ports is internal.
    bridge_ports: dict[IfName, list[IfName]] = Field(default_factory=dict)


class Bridge(Strict):
    """A Linux bridge created on every node (VLAN-aware: VMs attach with a VLAN tag)."""

    name: IfName
    comment: str = ""
    mtu: Annotated[StrictInt, Field(ge=576, le=9216)] | None = None


class Network(Strict):
    """A network a VM's NIC attaches to: a bridge and a VLAN id."""

    name: Name
    #: management: the province's management network (the host's ``management`` address);
    #: lan: a site's LAN (the host's ``address``; ``site`` names it); uplink: the data network's
    #: circuits (no address from cloud-init: the datanet role configures it).
    carries: Literal["management", "lan", "uplink"]
    site: Name | None = None
    bridge: IfName
    vlan: VlanId | None = None

    @model_validator(mode="after")
    def _site_for_lan(self) -> Network:
        if self.carries == "lan" and self.site is None:
            raise ValueError("a network that carries a site's LAN names the site (site: NAME)")
        if self.carries != "lan" and self.site is not None:
            raise ValueError(f"only a lan network names a site (this one carries {self.carries})")
        return self


class Image(Strict):
    """The cloud image every VM boots from, downloaded to each node."""

    url: str = Field(pattern=r"^https?://\S+$")
    file_name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*\.(qcow2|img|raw)$")
    datastore: StoreName
    checksum: str | None = Field(default=None, pattern=r"^[0-9a-f]{32,128}$")
    checksum_algorithm: Literal["md5", "sha1", "sha224", "sha256", "sha384", "sha512"] | None = None

    @model_validator(mode="after")
    def _checksum_pair(self) -> Image:
        if (self.checksum is None) != (self.checksum_algorithm is None):
            raise ValueError("checksum and checksum_algorithm go together (both or neither)")
        return self


class Disk(Strict):
    datastore: StoreName
    size_gb: Annotated[StrictInt, Field(ge=1, le=65536)]


class Vm(Strict):
    """The VM of one data-centre host (keyed by the host's name in ``platform.vms``)."""

    vm_id: VmId
    #: The node it runs on; or ``placement``: the nodes it may run on (the one with the most
    #: memory left after the pinned VMs is chosen, VMs taken by VM id).
    node: Name | None = None
    placement: list[Name] | None = Field(default=None, min_length=1)
    #: Disks by slot; the first slot (by bus and number) boots from the cloud image.
    disks: dict[DiskSlot, Disk] = Field(min_length=1)
    #: NICs by slot (``net0``, ``net1``...), each the name of a ``networks`` item.
    nics: dict[NicSlot, Name] = Field(min_length=1)
    #: Holds data (mailboxes, backups, logs): protected from deletion and replacement.
    stateful: Bool = False
    #: Managed by the Proxmox HA manager (needs its disks on shared datastores).
    ha: Bool = False

    @model_validator(mode="after")
    def _one_placement(self) -> Vm:
        if (self.node is None) == (self.placement is None):
            raise ValueError("a VM names either its node (node: NAME) or the nodes it may run on (placement: [..]), one of them")
        return self


class Cluster(Strict):
    name: Name
    nodes: list[Node] = Field(min_length=1)


class Platform(Strict):
    """The ``platform`` section."""

    cluster: Cluster
    bridges: list[Bridge] = Field(min_length=1)
    networks: list[Network] = Field(min_length=1)
    image: Image
    vms: dict[Name, Vm] = Field(default_factory=dict)
    description: str = ""
    #: CPU type of every VM (Proxmox's ``cpu.type``).
    cpu_type: str = "x86-64-v2-AES"
    #: The maximum MiB of memory a node keeps for itself (Proxmox, ZFS ARC): VMs fit in the rest.
    node_reserved_mb: Count = 0

    def node(self, name: str) -> Node | None:
        return next((n for n in self.cluster.nodes if n.name == name), None)

    def network(self, name: str) -> Network | None:
        return next((n for n in self.networks if n.name == name), None)


# Inventory names Platform only for type checkers (no import cycle): complete it here.
Inventory.model_rebuild(_types_namespace={"Platform": Platform})
