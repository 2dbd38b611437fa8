"""Merge two provinces' inventories into one (the 2025 reform merged 63 provinces into 34).

:func:`clashes` lists everything the two inventories both claim — names (sites, hosts,
services, agencies, districts, areas), addresses (LAN, management, loopback, circuit, the
controller), overlapping subnets and address ranges, domains (the province's and every mail
domain) and the structures that cannot be combined (different administrative levels, a
management network of B outside A's) — each with the file and line in both inventories.

:func:`merged` builds the merged province when nothing clashes: A's province section stays (its
name, code, domain, controller, management network), B's address ranges and admins join it, every
item of both is kept, B's data centre becomes a hub (``tier: hub``) whose departments and
centres now hang from A's data centre, A's platform (``platform``: the Proxmox cluster and its
VMs) stays while B's is left out (B's former data-centre hosts are a hub's now), and — given
a ``/30`` or ``/31`` for it — a circuit joins the two data centres so that B's sites reach the
merged data centre. The result is validated
like any inventory before anything is written (:func:`write`).
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from dcops.fsio import fsync_dir
from dcops.inventory.errors import InventoryError
from dcops.inventory.loader import load
from dcops.inventory.model import Inventory, Site, Tier
from dcops.inventory.origin import Loaded, Origin
from dcops.inventory.validate import Context, _declared_addresses, _declared_networks


class MergeError(Exception):
    """The merge cannot be made: the message says why and what to do."""


@dataclass(frozen=True)
class Clash:
    """One thing both inventories claim."""

    kind: str  # name, address, subnet, domain, structure
    what: str
    a: Origin
    b: Origin

    @staticmethod
    def _at(o: Origin) -> str:
        return f"{o.file}:{o.line}" if o.line is not None else str(o.file)

    def __str__(self) -> str:
        return f"{self._at(self.a)} and {self._at(self.b)}: {self.kind} clash: {self.what}"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "what": self.what,
            "a": {"file": str(self.a.file), "line": self.a.line},
            "b": {"file": str(self.b.file), "line": self.b.line},
        }


def _context(loaded: Loaded) -> Context:
    return Context(loaded, loaded.origin("province", 0), {})


def _named(loaded: Loaded) -> Iterator[tuple[str, str, Origin]]:
    """(kind, name, origin) of every named item."""
    inv, o = loaded.inventory, loaded.origin
    for i, d in enumerate(inv.districts):
        yield "district", d.name, o("districts", i).at("name")
    for i, a in enumerate(inv.areas):
        yield "area", a.name, o("areas", i).at("name")
    for i, s in enumerate(inv.sites):
        yield "site", s.name, o("sites", i).at("name")
        for j, h in enumerate(s.hosts):
            yield "host", h.name, o("sites", i).at("hosts", j, "name")
    for i, svc in enumerate(inv.services):
        yield "service", svc.name, o("services", i).at("name")
    for i, ag in enumerate(inv.agencies):
        yield "agency", ag.name, o("agencies", i).at("name")


def _domains(loaded: Loaded) -> Iterator[tuple[str, str, Origin]]:
    inv = loaded.inventory
    yield "province domain", inv.province.domain, loaded.origin("province", 0).at("domain")
    for i, ag in enumerate(inv.agencies):
        yield "mail domain", ag.domain, loaded.origin("agencies", i).at("domain")


def clashes(a: Loaded, b: Loaded) -> list[Clash]:
    """Everything ``a`` and ``b`` both claim, in A's file order."""
    out: list[Clash] = []
    pa, pb = a.origin("province", 0), b.origin("province", 0)
    ia, ib = a.inventory, b.inventory
    if ia.province.levels != ib.province.levels:
        out.append(Clash("structure", f"levels {ia.province.levels} and {ib.province.levels}: merge provinces"
                         " of one administrative structure (a two-level province since 2025)", pa.at("levels"), pb.at("levels")))
    if ia.province.code == ib.province.code:
        out.append(Clash("name", f"province code {ia.province.code!r}", pa.at("code"), pb.at("code")))
    mgmt = ia.province.management_network
    if not ib.province.management_network.subnet_of(mgmt):
        out.append(Clash("structure", f"B's management network {ib.province.management_network} is not inside A's {mgmt}:"
                         " one province has one management network; renumber B's management addresses into it",
                         pa.at("management_network"), pb.at("management_network")))

    names: dict[tuple[str, str], Origin] = {}
    for kind, name, o in _named(a):
        names.setdefault((kind, name), o)
    for kind, name, o in _named(b):
        if (kind, name) in names:
            out.append(Clash("name", f"{kind} {name!r}", names[(kind, name)], o))

    def addresses(loaded: Loaded) -> list[tuple[ipaddress.IPv4Address, Origin]]:
        # (B's controller is not kept: the merged province is run from A's)
        return [(x, o) for x, o in _declared_addresses(_context(loaded)) if o.path[-1:] != ("controller",)]

    addrs: dict[ipaddress.IPv4Address, Origin] = {}
    for addr, o in addresses(a):
        addrs.setdefault(addr, o)
    for addr, o in addresses(b):
        if addr in addrs:
            out.append(Clash("address", f"address {addr}", addrs[addr], o))

    def nets(loaded: Loaded) -> list[tuple[ipaddress.IPv4Network, Origin]]:  # sites and circuits
        return [(n, o) for n, o in _declared_networks(_context(loaded)) if o.path[-1:] != ("management_network",)]

    def ranges(loaded: Loaded) -> list[tuple[ipaddress.IPv4Network, Origin]]:
        po = loaded.origin("province", 0)
        return [(r.cidr, po.at("address_ranges", k, "cidr")) for k, r in enumerate(loaded.inventory.province.address_ranges)]

    for nb, ob in nets(b):
        out.extend(Clash("subnet", f"{na} and {nb} overlap", oa, ob) for na, oa in nets(a) if na.overlaps(nb))
    # A range of B inside one of A's is kept as A's (what lies in it is compared item by item
    # above); one that overlaps A's ranges otherwise cannot be declared beside them.
    for nb, ob in ranges(b):
        if not any(nb.subnet_of(na) for na, _ in ranges(a)):
            out.extend(Clash("subnet", f"address range {na} and {nb} overlap", oa, ob) for na, oa in ranges(a) if na.overlaps(nb))

    doms: dict[str, tuple[str, Origin]] = {}
    for kind, d, o in _domains(a):
        doms.setdefault(d, (kind, o))
    for kind, d, o in _domains(b):
        if d in doms:
            out.append(Clash("domain", f"{doms[d][0]} {d!r} is also B's {kind}", doms[d][1], o))
    return out


# --- building the merged province ---------------------------------------------------------
def _dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True, exclude_defaults=True)


def _datacentre(inv: Inventory) -> Site:
    return next(s for s in inv.sites if s.tier is Tier.DATACENTRE)


def merged(a: Loaded, b: Loaded, link_subnet: ipaddress.IPv4Network | None) -> dict[str, Any]:
    """The merged inventory as files: relative path -> YAML data (see the module's docstring)."""
    ia, ib = a.inventory, b.inventory
    dc_a, dc_b = _datacentre(ia), _datacentre(ib)
    prov = _dump(ia.province)
    prov["description"] = (
        f"{ia.province.description} Merged with {ib.province.name} ({ib.province.code}) by dcops inventory merge;"
        f" its data centre {dc_b.name} is now a hub."
    ).strip()
    prov["address_ranges"] = [*prov.get("address_ranges", []), *(
        {**_dump(r), "name": f"{ib.province.code}-{r.name}"} for r in ib.province.address_ranges
        if not any(r.cidr.subnet_of(x.cidr) for x in ia.province.address_ranges)
    )]
    have = {x.name for x in ia.province.admins}
    prov["admins"] = [*prov.get("admins", []), *(_dump(x) for x in ib.province.admins if x.name not in have)]
    if not prov["admins"]:
        del prov["admins"]

    def b_site(s: Site) -> dict[str, Any]:
        d = _dump(s)
        if s.name == dc_b.name:
            d["tier"] = Tier.HUB.value
            d["hub"] = True
            d.pop("parent", None)
        elif s.parent == dc_b.name:
            d["parent"] = dc_a.name
        return d

    circuits_b = [_dump(c) for c in ib.circuits]
    if link_subnet is not None:
        hosts = list(link_subnet.hosts()) if link_subnet.prefixlen < 31 else list(link_subnet)
        if len(hosts) < 2:
            raise MergeError(f"--link-subnet {link_subnet}: needs room for two addresses (a /30 or /31)")
        circuits_b.append({"a": dc_a.name, "b": dc_b.name, "subnet": str(link_subnet),
                           "a_address": str(hosts[0]), "b_address": str(hosts[1]), "bandwidth_mbps": 1000})
    files: dict[str, Any] = {
        "province.yml": {"province": prov},
        f"sites-{ia.province.code}.yml": {"sites": [_dump(s) for s in ia.sites]},
        f"sites-{ib.province.code}.yml": {"sites": [b_site(s) for s in ib.sites]},
        f"circuits-{ia.province.code}.yml": {"circuits": [_dump(c) for c in ia.circuits]},
        f"circuits-{ib.province.code}.yml": {"circuits": circuits_b},
        f"services-{ia.province.code}.yml": {"services": [_dump(s) for s in ia.services],
                                             "flows": [_dump(f) for f in ia.flows]},
        f"services-{ib.province.code}.yml": {"services": [_dump(s) for s in ib.services],
                                             "flows": [_dump(f) for f in ib.flows]},
        f"mail-{ia.province.code}.yml": {"agencies": [_dump(x) for x in ia.agencies]},
        f"mail-{ib.province.code}.yml": {"agencies": [_dump(x) for x in ib.agencies]},
    }
    if ia.platform is not None:  # A's data centre stays, and with it A's platform; B's VMs are B's hub now
        files["platform.yml"] = {"platform": _dump(ia.platform)}
    structure: dict[str, list[Any]] = {"districts": [*ia.districts, *ib.districts], "areas": [*ia.areas, *ib.areas]}
    for key, items in structure.items():
        if items:
            files["province.yml"][key] = [_dump(x) for x in items]
    for acc in (*ia.accounts, *ib.accounts):
        files.setdefault(f"mail-accounts/{acc.agency}.yml", {"accounts": []})["accounts"].append(_dump(acc))
    for data in files.values():
        for k in [k for k, v in data.items() if v == []]:
            del data[k]
    return {rel: data for rel, data in files.items() if data}


HEADER = "# Generated by `dcops inventory merge {a} {b}`: {what}. Edit freely; validate with `dcops inventory check`.\n"


def _texts(files: dict[str, Any], a: Path, b: Path) -> dict[str, str]:
    return {
        rel: HEADER.format(a=a, b=b, what=", ".join(data)) + yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=110)
        for rel, data in files.items()
    }


def write(a_dir: Path, b_dir: Path, out: Path, link_subnet: ipaddress.IPv4Network | None) -> tuple[Loaded, list[Path]]:
    """Merge ``a_dir`` and ``b_dir`` into the new folder ``out``; return the merged inventory.

    Raises :class:`InventoryError` (either input, or the merged result, is invalid: nothing is
    written), :class:`ClashError` (the two clash: nothing is written) or :class:`MergeError`."""
    a, b = load(a_dir), load(b_dir)
    found = clashes(a, b)
    if found:
        raise ClashError(found)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise MergeError(f"{out}: exists and is not an empty folder; the merge writes a new inventory folder")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise MergeError(f"{out}: its folder {parent} does not exist")
    texts = _texts(merged(a, b, link_subnet), a_dir, b_dir)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".merge", dir=parent))
    try:
        for rel, text in texts.items():
            f = stage / rel
            f.parent.mkdir(parents=True, exist_ok=True)
            with open(f, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
        try:
            load(stage)
        except InventoryError as e:
            raise MergeError(_explain(e, link_subnet, stage)) from None
        if out.exists():
            out.rmdir()
        os.replace(stage, out)
        fsync_dir(parent)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return load(out), sorted(out / rel for rel in texts)


def _explain(e: InventoryError, link_subnet: ipaddress.IPv4Network | None, stage: Path) -> str:
    lines = [str(p).replace(str(stage), "<merged>") for p in e.problems]
    hint = ""
    if link_subnet is None and any("no circuit path reaches the data centre" in p.reason for p in e.problems):
        hint = ("\nB's sites have no path to A's data centre: give --link-subnet with a free /30 of the declared"
                " circuit ranges for the circuit between the two data centres.")
    return "the merged inventory would not validate (nothing written):\n  " + "\n  ".join(lines) + hint


class ClashError(Exception):
    def __init__(self, found: Iterable[Clash]) -> None:
        self.clashes = list(found)
        super().__init__(f"{len(self.clashes)} clashes:\n" + "\n".join(f"  {c}" for c in self.clashes))


__all__ = ["Clash", "ClashError", "MergeError", "clashes", "merged", "write"]
