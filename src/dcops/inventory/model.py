"""The province as typed data.

Every class forbids unknown keys, so a typo in the YAML is an error that names the key.
Field-level checks (address syntax, non-negative counts, known service types) live here;
checks that need the whole province (references, duplicates, overlaps) live in
:mod:`dcops.inventory.validate`.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

#: A name used as an identifier everywhere (Ansible host/group names, file names, labels).
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,62}$")]
#: A count or size: a real integer (not a string, not a float), zero or more.
Count = Annotated[StrictInt, Field(ge=0)]
Port = Annotated[StrictInt, Field(ge=1, le=65535)]
IPv4 = ipaddress.IPv4Address
Net4 = ipaddress.IPv4Network


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Tier(StrEnum):
    """Where a site sits in the province's hierarchy."""

    DATACENTRE = "datacentre"  # the provincial data centre (root of the data network)
    DEPARTMENT = "department"  # a provincial department, board or agency (sở, ban, ngành)
    DISTRICT = "district"  # a district-level People's Committee (UBND huyện/thị xã/thành phố)
    CENTRE = "centre"  # a centre under a department (trung tâm)
    COMMUNE = "commune"  # a commune, ward or town People's Committee (UBND xã/phường/thị trấn)


#: Which parent tiers each tier may hang from (None: no parent).
PARENT_TIERS: dict[Tier, tuple[Tier, ...]] = {
    Tier.DATACENTRE: (),
    Tier.DEPARTMENT: (Tier.DATACENTRE,),
    Tier.DISTRICT: (Tier.DATACENTRE,),
    Tier.CENTRE: (Tier.DATACENTRE, Tier.DEPARTMENT),
    Tier.COMMUNE: (Tier.DISTRICT,),
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
    cidr: Net4
    purpose: str = ""


class Admin(Strict):
    """A key-only administrator account created on every host by the baseline role."""

    name: Name
    full_name: str = ""
    ssh_keys: list[str] = Field(default_factory=list)


class Province(Strict):
    name: str
    code: Name
    domain: str
    description: str = ""
    lab: bool = False  # True for a province-in-a-box that dcops may boot
    address_ranges: list[AddressRange] = Field(min_length=1)
    management_network: Net4
    #: The controller's address on the management network (the machine running dcops).
    controller: IPv4
    admins: list[Admin] = Field(default_factory=list)


class District(Strict):
    name: Name
    display_name: str
    kind: Literal["city", "town", "district"]
    placeholder: bool = False


class Host(Strict):
    """A machine at a site (data-centre servers; in the lab, every site's router host)."""

    name: Name
    roles: list[Name] = Field(default_factory=list)
    address: IPv4  # on the site's LAN (inside the site's subnet)
    management: IPv4  # on the management network
    memory_mb: Count = 1024
    vcpus: Count = 1


class VideoConf(Strict):
    """The video-conference room at a site and its endpoint (SIP user agent)."""

    room: str
    endpoint: IPv4
    transport: Literal["datanet", "internet"] = "datanet"


class Site(Strict):
    name: Name
    display_name: str
    tier: Tier
    district: Name | None = None  # None for provincial-level sites (data centre, departments, centres)
    parent: Name | None = None
    placeholder: bool = False
    datanet: bool = True  # on the dedicated data network
    subnet: Net4  # the site's LAN block
    #: The site router's LAN address (what the NOC probes). Omitted when the site has a
    #: router host: its address is the gateway.
    gateway: IPv4 | None = None
    loopback: IPv4 | None = None  # router ID on the data network
    #: The site router's management address. Omitted when the site has a router host.
    management: IPv4 | None = None
    uses: list[Name] = Field(default_factory=list)  # services this site uses (by name)
    videoconf: VideoConf | None = None
    hosts: list[Host] = Field(default_factory=list)


class Circuit(Strict):
    """A link of the dedicated data network between two sites' routers."""

    a: Name
    b: Name
    subnet: Net4
    a_address: IPv4
    b_address: IPv4
    bandwidth_mbps: Count = 100
    cost: Annotated[StrictInt, Field(ge=1, le=65535)] = 10
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
    external: bool = False  # run by someone else; watched, not configured
    url: str | None = None  # for external services and web endpoints
    address: IPv4 | None = None  # the service address that sites reach (default: its first host's)
    ports: list[ServicePort] = Field(default_factory=list)


class Flow(Strict):
    """Traffic a service needs: which ports of which service, from where.

    ``from`` selectors: ``all-sites``, ``tier:<tier>``, ``district:<name>``, ``site:<name>``,
    ``host:<name>``, ``service:<name>`` (the hosts providing it), ``management``, ``internet``.
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
    user: LocalPart
    display_name: str = ""
    quota_mb: Count | None = None


class Agency(Strict):
    """A mail agency: one virtual mailbox domain, its mailbox budget and named accounts."""

    name: Name
    display_name: str
    domain: str
    site: Name | None = None
    placeholder: bool = False
    mailboxes: Count  # accounts allotted (the budget); named accounts may not exceed it
    quota_mb: Count = 1024  # default per-mailbox quota
    accounts: list[Account] = Field(default_factory=list)


class MailAccount(Strict):
    """A mailbox kept in the ``accounts`` section (one file per agency, written by ``dcops mail``)."""

    agency: Name
    user: LocalPart
    display_name: str = ""
    quota_mb: Count | None = None


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
    districts: list[District]
    sites: list[Site]
    circuits: list[Circuit]
    services: list[Service]
    flows: list[Flow]
    agencies: list[Agency]
    #: Mailboxes kept apart from their agency (``inventory/<name>/mail-accounts/<agency>.yml``).
    accounts: list[MailAccount] = Field(default_factory=list)

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

    def district_of(self, site: Site) -> str:
        """The district label of a site (``province`` for provincial-level sites)."""
        return site.district or "province"

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
