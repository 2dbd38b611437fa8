"""Load an inventory directory: every ``*.yml`` file under ``inventory/<name>/``.

Each file is a mapping whose top-level keys are sections. ``province`` is a mapping and
appears in exactly one file; the other sections are lists, concatenated across files in
file-name order, so a province can be split by district or by service as its maintainers
prefer. Every item remembers the file and line it came from, so that every problem found
later names the file, the YAML path and the line.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from dcops.inventory.errors import InventoryError, Problem, YPath, sort_problems
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

_M = TypeVar("_M", bound=BaseModel)
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

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
#: Files in an inventory directory that are not province data.
NOT_DATA = {"ansible.yml"}
#: Folders of an inventory directory that are not province data: Ansible Vault files
#: (password hashes, DKIM and WireGuard keys) are kept there, encrypted.
NOT_DATA_DIRS = {"secrets", "vault"}


@dataclass(frozen=True)
class Origin:
    """Where a piece of data came from: its file, its path inside that file and the file's line map."""

    file: Path
    path: YPath
    lines: dict[YPath, int] = field(repr=False, compare=False, hash=False)

    @property
    def line(self) -> int | None:
        return self.line_of(self.path)

    def line_of(self, path: YPath) -> int | None:
        """The line of ``path``, or of its nearest enclosing node that has one."""
        p = path
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return self.lines.get((), None)

    def at(self, *sub: str | int) -> Origin:
        return Origin(self.file, self.path + sub, self.lines)

    def problem(self, reason: str, *sub: str | int) -> Problem:
        path = self.path + sub
        return Problem(self.file, path, reason, self.line_of(path))


@dataclass
class Loaded:
    """An inventory and where each of its items came from, keyed by (section, index)."""

    inventory: Inventory
    origins: dict[tuple[str, int], Origin]
    files: list[Path]

    def origin(self, section: str, index: int) -> Origin:
        return self.origins[(section, index)]


class _RecursiveAlias(Exception):
    """An anchor used inside itself (``&a [*a]``): the data would be infinite."""

    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


def _line_map(
    node: yaml.Node,
    path: YPath,
    out: dict[YPath, int],
    problems: list[Problem],
    file: Path,
    active: set[int] | None = None,
    done: set[int] | None = None,
) -> None:
    """Record the line of every key and item under ``node``; report duplicate keys.

    A node reached again through an alias is not walked again (``done``), which keeps a
    document of nested aliases linear; its inner paths fall back to the alias's enclosing key.
    """
    active = set() if active is None else active
    done = set() if done is None else done
    out.setdefault(path, node.start_mark.line + 1)
    if id(node) in active:
        raise _RecursiveAlias(node.start_mark.line + 1)
    if id(node) in done:
        return
    done.add(id(node))
    active.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: set[tuple[str, str]] = set()
        for k, v in node.value:
            key = k.value if isinstance(k, yaml.ScalarNode) else str(k.value)
            if key == "<<":
                continue
            if (k.tag, key) in seen:
                problems.append(Problem(file, (*path, key), f"duplicate key {key!r} in the same mapping", k.start_mark.line + 1))
            seen.add((k.tag, key))
            # The key's line, not its value's: a block value starts on the next line.
            out[(*path, key)] = k.start_mark.line + 1
            _line_map(v, (*path, key), out, problems, file, active, done)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_map(item, (*path, i), out, problems, file, active, done)
    active.discard(id(node))


#: What YAML counts as a line break (its marks count lines by these).
_YAML_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


def _last_line(text: str) -> int:
    """The number of the last line of ``text`` that can hold a character (at least 1)."""
    n = len(_YAML_BREAK.findall(text))
    ends_with_break = _YAML_BREAK.search(text[-1:]) is not None
    return max(1, n if ends_with_break else n + 1)


def parse_yaml(file: Path, text: str) -> tuple[Any, dict[YPath, int], list[Problem]]:
    """Parse one YAML document; return its data, its line map and any problems."""
    problems: list[Problem] = []
    lines: dict[YPath, int] = {}
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None, lines, problems
            _line_map(node, (), lines, problems, file)
            data = loader.construct_document(node)
        finally:
            loader.dispose()
    except _RecursiveAlias as e:
        return None, {}, [Problem(file, (), "YAML alias used inside its own anchor (the data would be infinite)", e.line)]
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        reason = f"YAML syntax error: {e.problem or e.context or e}".strip()
        ctx = e.context_mark
        if e.problem and e.context and ctx is not None and mark is not None and ctx.line != mark.line:
            # the opening of what was left unclosed, usually the line to fix
            reason += f" ({e.context} started on line {ctx.line + 1})"
        line = None
        if mark is not None:
            line = mark.line + 1
            last = _last_line(text)
            if line > last:  # the parser got to the end of the file: name its last line
                line, reason = last, f"{reason} (at the end of the file)"
        return None, {}, [Problem(file, (), reason, line)]
    except yaml.reader.ReaderError as e:
        line = _YAML_BREAK.subn("", text[: e.position])[1] + 1
        what = f"#x{e.character:04x}" if isinstance(e.character, int) else repr(e.character)
        return None, {}, [Problem(file, (), f"YAML error: character {what} is not allowed in YAML text", line)]
    except yaml.YAMLError as e:
        return None, {}, [Problem(file, (), f"YAML error: {e}")]
    return data, lines, problems


def data_files(directory: Path) -> list[Path]:
    files = sorted(
        p
        for p in directory.rglob("*")
        if p.suffix in (".yml", ".yaml")
        and p.is_file()
        and p.name not in NOT_DATA
        and not any(part.startswith(".") for part in p.relative_to(directory).parts)
        and not any(part in NOT_DATA_DIRS for part in p.relative_to(directory).parts[:-1])
    )
    return files


def _pydantic_problems(err: ValidationError, origin: Origin) -> Iterator[Problem]:
    for e in err.errors(include_url=False):
        loc = tuple(x for x in e["loc"] if isinstance(x, str | int))
        # pydantic names union members and validator kinds in loc; keep only real YAML keys
        loc = tuple(x for x in loc if not (isinstance(x, str) and ("[" in x or x.startswith("function-"))))
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = f"unknown key {loc[-1]!r} (a typo?)" if loc else "unknown key"
        elif e["type"] == "missing":
            msg = f"missing required key {loc[-1]!r}" if loc else "missing required key"
        elif "input" in e and e["type"] not in ("model_type", "list_type", "dict_type"):
            msg = f"{msg} (got {e['input']!r})"
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


def load(directory: str | Path) -> Loaded:
    """Load and validate an inventory directory; raise :class:`InventoryError` listing every problem."""
    from dcops.inventory.validate import cross_check  # local import: validate imports this module

    root = Path(directory)
    problems: list[Problem] = []
    if not root.is_dir():
        raise InventoryError(root, [Problem(root, (), "not a directory (an inventory is a folder of YAML files)")])
    files = data_files(root)
    if not files:
        raise InventoryError(root, [Problem(root, (), "no *.yml files: not an inventory directory")])

    province: tuple[Any, Origin] | None = None
    #: Set when a file or a section could not be read at all: its items are unknown, so
    #: cross-checks would report every reference to them; they wait for the next run.
    incomplete = False
    raw: dict[str, list[tuple[Any, Origin]]] = {s: [] for s in LIST_SECTIONS}
    for f in files:
        try:
            text = f.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            problems.append(Problem(f, (), f"cannot read: {e}"))
            incomplete = True
            continue
        data, lines, probs = parse_yaml(f, text)
        problems.extend(probs)
        if data is None:
            incomplete = incomplete or bool(probs)
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
                problems.append(o.problem(f"unknown section {key!r}; expected one of: {', '.join(SECTIONS)}"))
                incomplete = True

    prov_model: Province | None = None
    if province is None:
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
                        failed["hosts"] = failed.get("hosts", set()) | {str(h.get("name")) for h in hosts if isinstance(h, dict)}
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
