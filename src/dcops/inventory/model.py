"""The province as typed data.

Every class forbids unknown keys, so a typo in the YAML is an error that names the key.
Field-level checks (address syntax, non-negative counts, known service types) live here;
checks that need the whole province (references, duplicates, overlaps) live in
:mod:`dcops.inventory.validate`.

Types are strict where YAML or pydantic would otherwise guess: a boolean is ``true`` or
``false`` (not ``yes``, ``off`` or ``1``), a count is an integer (not ``'10'``, ``2.5`` or
``true``), an address is text (pydantic would read the number 167772161 as 10.0.0.1), and a
domain is a lower-case DNS name without a final dot.
"""

from __future__ import annotations

import ipaddress
import re
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, model_validator
from pydantic_core import PydanticCustomError

from dcops.inventory.errors import short

if TYPE_CHECKING:  # platform.py builds on this module's types and completes Inventory (model_rebuild)
    from dcops.inventory.platform import Platform

IPv4 = ipaddress.IPv4Address
Net4 = ipaddress.IPv4Network

# Errors raised by the validators below have types starting with ``dcops_``: their messages
# quote the value already (the loader adds no second ``got ...``).


def _strict_bool(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    raise PydanticCustomError("dcops_bool", "got {got}; write true or false", {"got": short(value)})


_LEADING_ZERO = re.compile(r"[-+]?0[0-9]+")
_SEXAGESIMAL = re.compile(r"[-+]?[0-9]+(?::[0-5]?[0-9])+")


def _int_text(value: Any) -> Any:
    """Say why ``0777`` or ``1:30`` is not a number here (YAML 1.2 reads them as text)."""
    if isinstance(value, str) and _LEADING_ZERO.fullmatch(value):
        octal = f" (or 0o{value.lstrip('+-0') or '0'} for octal)" if set(value) <= set("+-01234567") else ""
        raise PydanticCustomError(
            "dcops_int",
            "Input should be a valid integer: got {got}, and a number with a leading zero is text in YAML 1.2;"
            " write {fixed}{octal}",
            {"got": short(value), "fixed": str(int(value)), "octal": octal},
        )
    if isinstance(value, str) and _SEXAGESIMAL.fullmatch(value):
        raise PydanticCustomError(
            "dcops_int",
            "Input should be a valid integer: got {got} (YAML 1.1 read this as a base-60 number, YAML 1.2 as text);"
            " write the number itself",
            {"got": short(value)},
        )
    return value


def _address_text(value: Any) -> Any:
    if isinstance(value, str | IPv4):
        return value
    raise PydanticCustomError(
        "dcops_address", "an address is written as text, like 10.0.0.1: got {got}", {"got": short(value)}
    )


def _network_text(value: Any) -> Any:
    if isinstance(value, str | Net4):
        return value
    raise PydanticCustomError(
        "dcops_network", "a network is written as text, like 10.0.0.0/24: got {got}", {"got": short(value)}
    )


_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def _domain(value: str) -> str:
    """A DNS name as mail and DNS use it: lower case, ASCII, labels of letters, digits and hyphens."""
    got = short(value)
    fixed = short(value.rstrip(".").lower())

    def refuse(why: str, **more: str) -> PydanticCustomError:
        return PydanticCustomError("dcops_domain", why, {"got": got, "fixed": fixed, **more})

    if value.endswith("."):
        raise refuse("{got}: write the domain without the final dot ({fixed})")
    if not value.isascii():
        try:
            ascii_form = f": write its ASCII form {short(value.encode('idna').decode('ascii'))}"
        except UnicodeError:
            ascii_form = ""
        raise refuse("{got} is not an ASCII DNS name{fix}", fix=ascii_form)
    if value != value.lower():
        raise refuse(
            "{got}: domain names do not depend on case, so dcops compares them in lower case and refuses"
            " upper case (one spelling per domain): write {fixed}"
        )
    labels = value.split(".")
    if len(value) > 253:
        raise refuse("{got} is not a DNS name: longer than 253 characters")
    if len(labels) < 2:
        raise refuse("{got} is not a DNS name for mail: it needs at least two labels, like agency.province.gov.vn")
    bad = next((label for label in labels if not _LABEL.fullmatch(label)), None)
    if bad is not None:
        raise refuse(
            "{got} is not a DNS name: label {label} is not 1 to 63 letters, digits or hyphens"
            " (no hyphen first or last)",
            label=short(bad),
        )
    if labels[-1].isdigit():
        raise refuse("{got} is not a DNS name: its last label is all digits")
    return value


#: A name used as an identifier everywhere (Ansible host/group names, file names, labels).
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,62}$")]
#: ``true`` or ``false``, nothing else.
Bool = Annotated[bool, BeforeValidator(_strict_bool)]
#: A count or size: a real integer (not a string, not a float, not a boolean), zero or more.
Count = Annotated[StrictInt, BeforeValidator(_int_text), Field(ge=0)]
Port = Annotated[StrictInt, BeforeValidator(_int_text), Field(ge=1, le=65535)]
#: An OSPF cost: 1 to 65535, the range of a port number.
Cost = Port
#: An IPv4 address, written as text.
Address = Annotated[IPv4, BeforeValidator(_address_text)]
#: An IPv4 network (``a.b.c.d/n``), written as text.
Network = Annotated[Net4, BeforeValidator(_network_text)]
#: A DNS domain name: lower case, ASCII, no final dot (see :func:`_domain`).
Domain = Annotated[str, AfterValidator(_domain)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Tier(StrEnum):
    """Where a site sits in the province's hierarchy."""

    DATACENTRE = "datacentre"  # the provincial data centre (root of the data network)
    DEPARTMENT = "department"  # a provincial department, board or agency (sở, ban, ngành)
    DISTRICT = "district"  # a district-level People's Committee (UBND huyện/thị xã/thành phố)
    CENTRE = "centre"  # a centre under a department (trung tâm)
    COMMUNE = "commune"  # a commune, ward or town People's Committee (UBND xã/phường/thị trấn)
    #: A network aggregation point that is not an administrative unit (a former district
    #: office kept as a point of presence, a regional centre): it carries circuits, nothing more.
    HUB = "hub"


#: The administrative levels a province may declare, top down. Since 1 July 2025 local
#: government is two-level (province → commune); the 2020 source documents describe three.
Level = Literal["province", "district", "commune"]
THREE_LEVEL: tuple[Level, ...] = ("province", "district", "commune")
TWO_LEVEL: tuple[Level, ...] = ("province", "commune")
LEVEL_STRUCTURES: tuple[tuple[Level, ...], ...] = (THREE_LEVEL, TWO_LEVEL)

#: Which parent tiers each tier may hang from administratively (empty: no parent), by the
#: province's levels. The network tree is not this: it comes from the circuits
#: (:mod:`dcops.inventory.topology`).
PARENT_TIERS: dict[tuple[Level, ...], dict[Tier, tuple[Tier, ...]]] = {
    THREE_LEVEL: {
        Tier.DATACENTRE: (),
        Tier.DEPARTMENT: (Tier.DATACENTRE,),
        Tier.DISTRICT: (Tier.DATACENTRE,),
        Tier.CENTRE: (Tier.DATACENTRE, Tier.DEPARTMENT),
        Tier.COMMUNE: (Tier.DISTRICT,),
        Tier.HUB: (),
    },
    TWO_LEVEL: {
        Tier.DATACENTRE: (),
        Tier.DEPARTMENT: (Tier.DATACENTRE,),
        Tier.CENTRE: (Tier.DATACENTRE, Tier.DEPARTMENT),
        Tier.COMMUNE: (),  # a commune answers to the province itself
        Tier.HUB: (),
    },
}


class ServiceType(StrEnum):
    """The kinds of service dcops knows how to configure, watch or audit."""

    MAIL = "mail"
    DNS = "dns"
    NTP = "ntp"
    SYSLOG = "syslog"
    MONITORING = "monitoring"
    VIDEOCONF = "videoconf"  # SIP signalling + media (Kamailio, Janus, TURN)
    WEB = "web"
    PORTAL = "portal"  # the provincial portal (external, watched)
    PUBLIC_SERVICE = "public-service"  # the public-service portal (external, watched)
    DOCMGMT = "docmgmt"  # document management (QLVB, rented; external, watched)
    NATIONAL_AXIS = "national-axis"  # the national document exchange axis (external, watched)
    LGSP = "lgsp"  # the provincial integration platform
    ROUTING = "routing"  # OSPF on the data network
    BACKUP = "backup"  # backup repositories of other hosts (restic over chrooted SFTP)
    SSH = "ssh"


class Proto(StrEnum):
    TCP = "tcp"
    UDP = "udp"
    ICMP = "icmp"


class AddressRange(Strict):
    """A range the inventory owns; nothing outside these ranges may be used by the lab."""

    name: Name
    cidr: Network
    purpose: str = ""


class Admin(Strict):
    """A key-only administrator account created on every host by the baseline role."""

    name: Name
    full_name: str = ""
    ssh_keys: list[str] = Field(default_factory=list)


class Province(Strict):
    name: str
    code: Name
    domain: Domain
    description: str = ""
    lab: Bool = False  # True for a province-in-a-box that dcops may boot
    address_ranges: list[AddressRange] = Field(min_length=1)
    management_network: Network
    #: The controller's address on the management network (the machine running dcops).
    controller: Address
    admins: list[Admin] = Field(default_factory=list)
    #: The administrative structure, top down: ``[province, district, commune]`` (the default,
    #: as the 2020 source documents describe Yên Bái) or ``[province, commune]`` (since 2025).
    levels: list[Level] = Field(default_factory=lambda: list(THREE_LEVEL))

    @model_validator(mode="after")
    def _known_structure(self) -> Province:
        if tuple(self.levels) not in LEVEL_STRUCTURES:
            raise ValueError(
                f"levels {self.levels} is not an administrative structure dcops knows; write"
                f" {list(THREE_LEVEL)} or {list(TWO_LEVEL)}"
            )
        return self

    @property
    def has_districts(self) -> bool:
        return "district" in self.levels


class District(Strict):
    name: Name
    display_name: str
    kind: Literal["city", "town", "district"]
    placeholder: Bool = False


class Area(Strict):
    """An administrative grouping of sites (a label, not a level): in a two-level province, for
    example, the communes that were one district before 2025."""

    name: Name
    display_name: str
    placeholder: Bool = False


class Host(Strict):
    """A machine at a site (data-centre servers; in the lab, every site's router host)."""

    name: Name
    roles: list[Name] = Field(default_factory=list)
    address: Address  # on the site's LAN (inside the site's subnet)
    management: Address  # on the management network
    memory_mb: Count = 1024
    vcpus: Count = 1


class VideoConf(Strict):
    """The video-conference room at a site and its endpoint (SIP user agent)."""

    room: str
    endpoint: Address
    transport: Literal["datanet", "internet"] = "datanet"


class Site(Strict):
    name: Name
    display_name: str
    tier: Tier
    district: Name | None = None  # None for provincial-level sites, and everywhere in a two-level province
    #: The administrative area label (an ``areas`` item); defaults to the district.
    area: Name | None = None
    #: The administrative parent (see PARENT_TIERS); where packets go is the circuits' business.
    parent: Name | None = None
    #: A network hub: aggregates other sites' circuits (a former district office, a regional
    #: centre), whatever its tier. The data centre <-> hub circuits carry the WireGuard legs.
    hub: Bool = False
    placeholder: Bool = False
    datanet: Bool = True  # on the dedicated data network
    subnet: Network  # the site's LAN block
    #: The site router's LAN address (what the NOC probes). Omitted when the site has a
    #: router host: its address is the gateway.
    gateway: Address | None = None
    loopback: Address | None = None  # router ID on the data network
    #: The site router's management address. Omitted when the site has a router host.
    management: Address | None = None
    uses: list[Name] = Field(default_factory=list)  # services this site uses (by name)
    videoconf: VideoConf | None = None
    hosts: list[Host] = Field(default_factory=list)


class Circuit(Strict):
    """A link of the dedicated data network between two sites' routers."""

    a: Name
    b: Name
    subnet: Network
    a_address: Address
    b_address: Address
    bandwidth_mbps: Count = 100
    cost: Cost = 10
    kind: Literal["fibre", "metro-ethernet", "mpls", "radio"] = "fibre"

    @property
    def name(self) -> str:
        return f"{self.a}--{self.b}"


class ServicePort(Strict):
    name: Name
    proto: Proto
    port: Port | None = None  # None only for ICMP
    port_end: Port | None = None  # for a range (RTP media): port..port_end inclusive

    @model_validator(mode="after")
    def _port_fits_proto(self) -> ServicePort:
        if self.proto is Proto.ICMP and self.port is not None:
            raise ValueError("an icmp port takes no port number")
        if self.proto is not Proto.ICMP and self.port is None:
            raise ValueError(f"a {self.proto.value} port needs a port number")
        if self.port_end is not None and (self.port is None or self.port_end < self.port):
            raise ValueError(f"port_end {self.port_end} is below port {self.port}")
        return self


class Service(Strict):
    name: Name
    type: ServiceType
    description: str = ""
    hosts: list[Name] = Field(default_factory=list)  # hosts that provide it (internal services)
    external: Bool = False  # run by someone else; watched, not configured
    url: str | None = None  # for external services and web endpoints
    address: Address | None = None  # the service address that sites reach (default: its first host's)
    ports: list[ServicePort] = Field(default_factory=list)


class Flow(Strict):
    """Traffic a service needs: which ports of which service, from where.

    ``from`` holds selectors; their grammar and meaning are in :mod:`dcops.inventory.selectors`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    to: Name
    ports: list[Name] = Field(min_length=1)
    from_: list[str] = Field(alias="from", min_length=1)
    description: str = ""


#: A mailbox's local part: lowercase ASCII letters, digits, ``.``, ``_``, ``-``; starts and ends
#: with a letter or digit, at most 64 characters (RFC 5321).
LocalPart = Annotated[str, Field(pattern=r"^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$")]


class Account(Strict):
    """A named mailbox of an agency (inline in ``agencies[].accounts``)."""

    user: LocalPart
    display_name: str = ""
    quota_mb: Count | None = None  # None: the agency's default quota


class Agency(Strict):
    """A mail agency: one virtual mailbox domain, its mailbox budget and named accounts."""

    name: Name
    display_name: str
    domain: Domain
    site: Name | None = None
    placeholder: Bool = False
    mailboxes: Count  # accounts allotted (the budget); named accounts may not exceed it
    quota_mb: Count = 1024  # default per-mailbox quota
    accounts: list[Account] = Field(default_factory=list)


class MailAccount(Account):
    """A mailbox kept in the ``accounts`` section (one file per agency, written by ``dcops mail``):
    an :class:`Account` that names its agency."""

    agency: Name


class Mailbox(Strict):
    """A mailbox as the mail role sees it: either kind of account, resolved against its agency."""

    agency: str
    domain: str
    user: str
    display_name: str
    quota_mb: int

    @property
    def address(self) -> str:
        return f"{self.user}@{self.domain}"


class Inventory(Strict):
    """The whole province, as loaded and validated."""

    source: str
    province: Province
    districts: list[District] = Field(default_factory=list)
    areas: list[Area] = Field(default_factory=list)
    sites: list[Site]
    circuits: list[Circuit]
    services: list[Service]
    flows: list[Flow]
    agencies: list[Agency]
    #: Mailboxes kept apart from their agency (``inventory/<name>/mail-accounts/<agency>.yml``).
    accounts: list[MailAccount] = Field(default_factory=list)
    #: The Proxmox VE platform the data centre's VMs run on (``platform.yml``; optional).
    platform: Platform | None = None

    # --- lookups -------------------------------------------------------------------------
    def site(self, name: str) -> Site:
        for s in self.sites:
            if s.name == name:
                return s
        raise KeyError(name)

    def service(self, name: str) -> Service:
        for s in self.services:
            if s.name == name:
                return s
        raise KeyError(name)

    def hosts(self) -> list[tuple[Site, Host]]:
        return [(s, h) for s in self.sites for h in s.hosts]

    def host(self, name: str) -> tuple[Site, Host]:
        for s, h in self.hosts():
            if h.name == name:
                return s, h
        raise KeyError(name)

    def datanet_sites(self) -> list[Site]:
        """Sites on the dedicated data network, the data centre excluded."""
        return [s for s in self.sites if s.datanet and s.tier is not Tier.DATACENTRE]

    def router_of(self, site: Site) -> Host | None:
        """The host that terminates a site's circuits: the one with role ``router``, or the only host."""
        for h in site.hosts:
            if "router" in h.roles:
                return h
        return site.hosts[0] if len(site.hosts) == 1 else None

    def gateway_of(self, site: Site) -> IPv4:
        """The address the NOC probes for a site: its gateway, or its router host's address."""
        if site.gateway is not None:
            return site.gateway
        r = self.router_of(site)
        assert r is not None, f"site {site.name} has neither gateway nor router (validation lets none through)"
        return r.address

    def management_of(self, site: Site) -> IPv4 | None:
        if site.management is not None:
            return site.management
        r = self.router_of(site)
        return r.management if r is not None else None

    def district_of(self, site: Site) -> str | None:
        """The district label of a site (``province`` for provincial-level sites); None in a
        province without a district level."""
        if not self.province.has_districts:
            return None
        return site.district or "province"

    def area_of(self, site: Site) -> str:
        """The administrative area label of a site: its ``area``, else its district, else ``province``."""
        return site.area or site.district or "province"

    def service_address(self, svc: Service) -> IPv4 | None:
        if svc.address is not None:
            return svc.address
        if svc.hosts:
            return self.host(svc.hosts[0])[1].address
        return None

    def site_of_address(self, addr: IPv4) -> Site | None:
        for s in self.sites:
            if addr in s.subnet:
                return s
        return None

    def mail_accounts(self) -> int:
        return sum(a.mailboxes for a in self.agencies)

    def agency(self, name: str) -> Agency:
        for a in self.agencies:
            if a.name == name:
                return a
        raise KeyError(name)

    def mailboxes(self) -> list[Mailbox]:
        """Every named mailbox (inline ``agencies[].accounts`` and the ``accounts`` section), by domain and user."""
        agencies: dict[str, Agency] = {}
        for a in self.agencies:
            agencies.setdefault(a.name, a)
        out = [
            Mailbox(agency=a.name, domain=a.domain, user=acc.user, display_name=acc.display_name,
                    quota_mb=acc.quota_mb if acc.quota_mb is not None else a.quota_mb)
            for a in agencies.values()
            for acc in a.accounts
        ]
        for acc in self.accounts:
            ag = agencies.get(acc.agency)
            if ag is None:
                continue
            out.append(Mailbox(agency=ag.name, domain=ag.domain, user=acc.user, display_name=acc.display_name,
                               quota_mb=acc.quota_mb if acc.quota_mb is not None else ag.quota_mb))
        return sorted(out, key=lambda m: (m.domain, m.user))
