"""Load an inventory directory: every ``*.yml`` file under ``inventory/<name>/``.

Each file is a mapping whose top-level keys are sections. ``province`` is a mapping and
appears in exactly one file; the other sections are lists, concatenated across files in
file-name order, so a province can be split by district or by service as its maintainers
prefer. Every item remembers the file and line it came from, so that every problem found
later names the file, the YAML path and the line.

The steps, each reporting problems rather than raising: find the files
(:mod:`dcops.inventory.files`), read each within the size limits and decode it, parse it
(YAML 1.2 core schema, within the node budget: :mod:`dcops.inventory.yaml12`), validate each
item against the model (:mod:`dcops.inventory.model`), then check the whole province
(:mod:`dcops.inventory.validate`). The limits and their reasons: :mod:`dcops.inventory.limits`.
"""

from __future__ import annotations

import copy
import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from dcops.inventory.errors import InventoryError, Problem, short, sort_problems
from dcops.inventory.files import ReadError, data_files, decode, read_bounded
from dcops.inventory.limits import MAX_FILE_BYTES, MAX_NODES, MAX_TOTAL_BYTES, human_bytes
from dcops.inventory.model import (
    Agency,
    Area,
    Circuit,
    District,
    Flow,
    Inventory,
    MailAccount,
    Province,
    Service,
    Site,
)
from dcops.inventory.origin import Loaded, Origin
from dcops.inventory.platform import Platform
from dcops.inventory.validate import cross_check
from dcops.inventory.yaml12 import parse_yaml
from dcops.mail import txn as mail_txn

_M = TypeVar("_M", bound=BaseModel)

#: The list sections and the model of one item.
LIST_SECTIONS: dict[str, type[BaseModel]] = {
    "districts": District,
    "areas": Area,
    "sites": Site,
    "circuits": Circuit,
    "services": Service,
    "flows": Flow,
    "agencies": Agency,
    "accounts": MailAccount,
}
SECTIONS = ("province", "platform", *LIST_SECTIONS)


def pydantic_problems(err: ValidationError, origin: Origin) -> Iterator[Problem]:
    """Each pydantic error as a problem at its key's line, in the inventory's words (shared with
    the audit's catalogue and waiver files)."""
    for e in err.errors(include_url=False):
        loc = tuple(x for x in e["loc"] if isinstance(x, str | int))
        # pydantic names union members and validator kinds in loc; keep only real YAML keys
        loc = tuple(x for x in loc if not (isinstance(x, str) and ("[" in x or x.startswith("function-"))))
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = f"unknown key {short(loc[-1])} (a typo?)" if loc else "unknown key"
        elif e["type"] == "missing":
            msg = f"missing required key {short(loc[-1])}" if loc else "missing required key"
        elif "input" in e and e["type"] not in ("model_type", "list_type", "dict_type") and not e["type"].startswith("dcops_"):
            msg = f"{msg} (got {short(e['input'])})"
        yield origin.problem(msg, *loc)


def _without_unknown_keys(cls: type[_M], data: Any, err: ValidationError) -> _M | None:
    """``data`` validated as ``cls`` once the unknown keys ``err`` names are dropped, or None."""
    errors = err.errors(include_url=False)
    if not errors or any(e["type"] != "extra_forbidden" for e in errors):
        return None
    data = copy.deepcopy(data)
    try:
        for e in errors:
            *parents, key = e["loc"]
            node = data
            for part in parents:
                node = node[part]
            del node[key]
        return cls.model_validate(data)
    except (ValidationError, LookupError, TypeError, ValueError):
        return None


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: a load makes hundreds of thousands of objects and no
    cycles, and each full collection walks them all again (a third of the time of a big load)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def load(directory: str | Path) -> Loaded:
    """Load and validate an inventory directory; raise :class:`InventoryError` listing every problem."""
    with _gc_paused():
        return _load(Path(directory))


def _load(root: Path) -> Loaded:
    if not root.is_dir():
        raise InventoryError(root, [Problem(root, (), "not a directory (an inventory is a folder of YAML files)")])
    found = data_files(root)
    if not found.files and not found.problems:
        raise InventoryError(root, [Problem(root, (), "no *.yml files: not an inventory directory")])
    read = _Read(problems=list(found.problems), incomplete=bool(found.problems))
    _read_files(found.files, read)
    problems = read.problems

    prov_model: Province | None = None
    if read.province is None:
        if not read.incomplete:  # (else it may be in what could not be read)
            problems.append(Problem(root, (), "no file defines the 'province' section"))
    else:
        try:
            prov_model = Province.model_validate(read.province[0])
        except ValidationError as e:
            problems.extend(pydantic_problems(e, read.province[1]))
            # A typo in the province must not hide every other problem: when unknown keys are
            # all that is wrong, check the rest of the inventory against the province without them.
            prov_model = _without_unknown_keys(Province, read.province[0], e)

    plat_model: Platform | None = None
    if read.platform is not None:
        try:
            plat_model = Platform.model_validate(read.platform[0])
        except ValidationError as e:
            problems.extend(pydantic_problems(e, read.platform[1]))

    models, origins, failed = _validate_items(read.raw, problems)
    if read.platform is not None:
        origins[("platform", 0)] = read.platform[1]
    if prov_model is None or read.province is None or read.incomplete:
        raise InventoryError(root, sort_problems(problems))

    # Items are validated already: assemble without validating the whole again.
    inv = Inventory.model_construct(
        source=str(root),
        province=prov_model,
        districts=models["districts"],
        areas=models["areas"],
        sites=models["sites"],
        circuits=models["circuits"],
        services=models["services"],
        flows=models["flows"],
        agencies=models["agencies"],
        accounts=models["accounts"],
        platform=plat_model,
    )
    loaded = Loaded(inv, {**origins, ("province", 0): read.province[1]}, found.files)
    # Cross-checks run even when some items failed, so one run reports everything; references
    # to items that failed their own checks are not reported twice.
    problems.extend(cross_check(loaded, read.province[1], failed))
    if problems:
        raise InventoryError(root, sort_problems(problems))
    return loaded


@dataclass
class _Read:
    """What the files hold, section by section, before any model check."""

    province: tuple[Any, Origin] | None = None
    platform: tuple[Any, Origin] | None = None
    raw: dict[str, list[tuple[Any, Origin]]] = field(default_factory=lambda: {s: [] for s in LIST_SECTIONS})
    problems: list[Problem] = field(default_factory=list)
    #: Set when a file or a section could not be read at all: its items are unknown, so
    #: cross-checks would report every reference to them; they wait for the next run.
    incomplete: bool = False

    def fail(self, problem: Problem) -> None:
        self.problems.append(problem)
        self.incomplete = True


def _read_files(files: list[Path], read: _Read) -> None:
    """Read, decode and parse each file within the limits; sort its sections into ``read``."""
    used, room = 0, MAX_TOTAL_BYTES  # the nodes the files so far used; the bytes left
    for k, f in enumerate(files):
        try:
            data_bytes = read_bounded(f, MAX_FILE_BYTES)
        except ReadError as e:
            read.fail(Problem(f, (), str(e)))
            continue
        if len(data_bytes) > room:
            rest = len(files) - k - 1
            total = human_bytes(MAX_TOTAL_BYTES)
            read.fail(Problem(f, (), f"the inventory's files together go over {total} with this one:"
                                     f" it and the {rest:,} files after it are not read"))
            return
        room -= len(data_bytes)
        text = decode(f, data_bytes)
        if isinstance(text, Problem):
            read.fail(text)
            continue
        parsed = parse_yaml(f, text, MAX_NODES - used, used)
        used += parsed.nodes
        read.problems.extend(parsed.problems)
        if parsed.data is None:
            read.incomplete = read.incomplete or bool(parsed.problems)
            continue
        _add_sections(read, Origin(f, (), parsed.lines), parsed.data)


def _add_sections(read: _Read, top: Origin, data: Any) -> None:
    if not isinstance(data, dict):
        read.fail(top.problem(f"expected a mapping of sections ({', '.join(SECTIONS)}), got {type(data).__name__}"))
        return
    for key, value in data.items():
        o = top.at(str(key))
        if key == "province":
            if read.province is not None:
                read.problems.append(o.problem(f"'province' is already defined in {read.province[1].file}"))
            else:
                read.province = (value, o)
        elif key == "platform":
            if read.platform is not None:
                read.problems.append(o.problem(f"'platform' is already defined in {read.platform[1].file}"))
            else:
                read.platform = (value, o)
        elif key in LIST_SECTIONS:
            if value is None:
                continue
            if not isinstance(value, list):
                read.fail(o.problem(f"section '{key}' must be a list, got {type(value).__name__}"))
                continue
            read.raw[key].extend((item, o.at(i)) for i, item in enumerate(value))
        elif key == mail_txn.SECTION:  # the journal of an unfinished `dcops mail` change
            read.fail(o.problem(mail_txn.pending_message(o.file)))
        else:
            read.fail(o.problem(f"unknown section {short(key)}; expected one of: {', '.join(SECTIONS)}"))


def _validate_items(
    raw: dict[str, list[tuple[Any, Origin]]], problems: list[Problem]
) -> tuple[dict[str, list[Any]], dict[tuple[str, int], Origin], dict[str, set[str]]]:
    """Each item against its model: the models and their origins by section, and the names of
    the items that failed (so that references to them are not reported again)."""
    models: dict[str, list[Any]] = {s: [] for s in LIST_SECTIONS}
    failed: dict[str, set[str]] = {s: set() for s in LIST_SECTIONS}
    origins: dict[tuple[str, int], Origin] = {}
    for section, items in raw.items():
        cls = LIST_SECTIONS[section]
        for item, origin in items:
            try:
                m = cls.model_validate(item)
            except ValidationError as e:
                problems.extend(pydantic_problems(e, origin))
                if isinstance(item, dict):
                    failed[section].add(str(item.get("name")))
                    hosts = item.get("hosts")
                    if section == "sites" and isinstance(hosts, list):
                        failed.setdefault("hosts", set()).update(str(h.get("name")) for h in hosts if isinstance(h, dict))
                continue
            origins[(section, len(models[section]))] = origin
            models[section].append(m)
    return models, origins, failed


def load_inventory(directory: str | Path) -> Inventory:
    return load(directory).inventory
