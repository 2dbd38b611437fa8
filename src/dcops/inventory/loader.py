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
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from dcops.inventory.errors import InventoryError, Problem, short, sort_problems
from dcops.inventory.files import ReadError, data_files, decode, read_bounded
from dcops.inventory.limits import MAX_FILE_BYTES, MAX_NODES, MAX_TOTAL_BYTES, human_bytes
from dcops.inventory.model import (
    Agency,
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
from dcops.inventory.validate import cross_check
from dcops.inventory.yaml12 import parse_yaml

_M = TypeVar("_M", bound=BaseModel)

#: The list sections and the model of one item.
LIST_SECTIONS: dict[str, type[BaseModel]] = {
    "districts": District,
    "sites": Site,
    "circuits": Circuit,
    "services": Service,
    "flows": Flow,
    "agencies": Agency,
    "accounts": MailAccount,
}
SECTIONS = ("province", *LIST_SECTIONS)


def _pydantic_problems(err: ValidationError, origin: Origin) -> Iterator[Problem]:
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
    problems: list[Problem] = []
    if not root.is_dir():
        raise InventoryError(root, [Problem(root, (), "not a directory (an inventory is a folder of YAML files)")])
    found = data_files(root)
    problems += found.problems
    files = found.files
    if not files and not problems:
        raise InventoryError(root, [Problem(root, (), "no *.yml files: not an inventory directory")])

    province: tuple[Any, Origin] | None = None
    #: Set when a file or a section could not be read at all: its items are unknown, so
    #: cross-checks would report every reference to them; they wait for the next run.
    incomplete = bool(problems)
    raw: dict[str, list[tuple[Any, Origin]]] = {s: [] for s in LIST_SECTIONS}
    used, room = 0, MAX_TOTAL_BYTES  # nodes and bytes: what the files read so far used, what is left
    for k, f in enumerate(files):
        try:
            data_bytes = read_bounded(f, MAX_FILE_BYTES)
        except ReadError as e:
            problems.append(Problem(f, (), str(e)))
            incomplete = True
            continue
        if len(data_bytes) > room:
            rest = len(files) - k - 1
            problems.append(Problem(f, (), f"the inventory's files together go over {human_bytes(MAX_TOTAL_BYTES)} with this one:"
                                           f" it and the {rest:,} files after it are not read"))
            incomplete = True
            break
        room -= len(data_bytes)
        text = decode(f, data_bytes)
        if isinstance(text, Problem):
            problems.append(text)
            incomplete = True
            continue
        parsed = parse_yaml(f, text, MAX_NODES - used, used)
        used += parsed.nodes
        problems.extend(parsed.problems)
        data, lines = parsed.data, parsed.lines
        if data is None:
            incomplete = incomplete or bool(parsed.problems)
            continue
        top = Origin(f, (), lines)
        if not isinstance(data, dict):
            problems.append(top.problem(f"expected a mapping of sections ({', '.join(SECTIONS)}), got {type(data).__name__}"))
            incomplete = True
            continue
        for key, value in data.items():
            o = top.at(str(key))
            if key == "province":
                if province is not None:
                    problems.append(o.problem(f"'province' is already defined in {province[1].file}"))
                else:
                    province = (value, o)
            elif key in LIST_SECTIONS:
                if value is None:
                    continue
                if not isinstance(value, list):
                    problems.append(o.problem(f"section '{key}' must be a list, got {type(value).__name__}"))
                    incomplete = True
                    continue
                raw[key].extend((item, o.at(i)) for i, item in enumerate(value))
            else:
                problems.append(o.problem(f"unknown section {short(key)}; expected one of: {', '.join(SECTIONS)}"))
                incomplete = True

    prov_model: Province | None = None
    if province is None:
        if not incomplete:  # (else it may be in what could not be read)
            problems.append(Problem(root, (), "no file defines the 'province' section"))
    else:
        try:
            prov_model = Province.model_validate(province[0])
        except ValidationError as e:
            problems.extend(_pydantic_problems(e, province[1]))
            # A typo in the province must not hide every other problem: when unknown keys are
            # all that is wrong, check the rest of the inventory against the province without them.
            prov_model = _without_unknown_keys(Province, province[0], e)

    models: dict[str, list[Any]] = {s: [] for s in LIST_SECTIONS}
    failed: dict[str, set[str]] = {s: set() for s in LIST_SECTIONS}
    origins: dict[tuple[str, int], Origin] = {}
    for section, items in raw.items():
        cls = LIST_SECTIONS[section]
        for item, origin in items:
            try:
                m = cls.model_validate(item)
            except ValidationError as e:
                problems.extend(_pydantic_problems(e, origin))
                if isinstance(item, dict):
                    failed[section].add(str(item.get("name")))
                    hosts = item.get("hosts")
                    if section == "sites" and isinstance(hosts, list):
                        failed.setdefault("hosts", set()).update(str(h.get("name")) for h in hosts if isinstance(h, dict))
                continue
            origins[(section, len(models[section]))] = origin
            models[section].append(m)

    if prov_model is None or province is None or incomplete:
        raise InventoryError(root, sort_problems(problems))

    # Items are validated already: assemble without validating the whole again.
    inv = Inventory.model_construct(
        source=str(root),
        province=prov_model,
        districts=models["districts"],
        sites=models["sites"],
        circuits=models["circuits"],
        services=models["services"],
        flows=models["flows"],
        agencies=models["agencies"],
        accounts=models["accounts"],
    )
    loaded = Loaded(inv, origins, files)
    # Cross-checks run even when some items failed, so one run reports everything; references
    # to items that failed their own checks are not reported twice.
    problems.extend(cross_check(loaded, province[1], failed))
    if problems:
        raise InventoryError(root, sort_problems(problems))
    return loaded


def load_inventory(directory: str | Path) -> Inventory:
    return load(directory).inventory
