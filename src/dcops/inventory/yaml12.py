"""Parse one inventory file: YAML 1.2 core-schema rules, bounded, with a line for every item.

PyYAML implements YAML 1.1, where ``off``, ``yes``, ``no`` and ``on`` are booleans, ``0777`` is
octal, ``1:30`` is 90 (base 60) and ``2020-01-01`` is a date: an inventory that says
``datanet: off`` or ``port: 0110`` would silently mean something else. :class:`Yaml12Loader`
keeps libyaml's C parser (its speed) and replaces the implicit resolvers with the YAML 1.2
core schema's, a little stricter on integers:

- null: ``~``, ``null``, ``Null``, ``NULL`` and the empty value;
- booleans: ``true``/``True``/``TRUE`` and ``false``/``False``/``FALSE`` only;
- integers: decimal without leading zeros (``0``, ``42``, ``-7``), ``0o17`` octal, ``0x1f``
  hex; ``0777`` and ``1:30`` are text, which the model then refuses where it wants a number;
- floats: a dot or an exponent (``2.5``, ``1e3``), ``.inf``, ``.nan``;
- everything else is a string. The ``<<`` merge key (a YAML 1.1 extension that maintainers
  use to share fields between items) is kept.

Before anything is built, the document's event stream is measured: the number of nodes it
expands to (an alias counts as a copy of its anchor, so shared nodes are counted once each
time they are used, memoised per anchor), its depth and any alias used inside its own
anchor. A document over the budget (:mod:`dcops.inventory.limits`) is refused with the line
where it went over, having cost no more than reading that far.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from yaml.constructor import ConstructorError

from dcops.inventory.errors import Problem, YPath, short
from dcops.inventory.limits import MAX_DEPTH, MAX_INT_DIGITS

if TYPE_CHECKING:
    _Base = yaml.SafeLoader
else:
    _Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_MERGE = "tag:yaml.org,2002:merge"

_DECIMAL = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
_OCTAL = re.compile(r"0o[0-7]+")
_HEX = re.compile(r"0x[0-9a-fA-F]+")
_FLOAT_TEXT = re.compile(
    r"[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)(?:[eE][-+]?[0-9]+)?|[-+]?[0-9]+[eE][-+]?[0-9]+"
)
_INF_NAN = re.compile(r"[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)")
_TRUE = ("true", "True", "TRUE")
_FALSE = ("false", "False", "FALSE")


class Yaml12Loader(_Base):
    """libyaml's safe loader with the YAML 1.2 core schema's implicit types (see the module)."""

    yaml_implicit_resolvers: dict[Any, Any] = {}  # noqa: RUF012 (PyYAML's class-level table, filled below)

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        """The tag of a node without an explicit one: a faster path than PyYAML's, same table."""
        if kind is yaml.ScalarNode:
            if implicit[0]:
                for tag, regexp in self.yaml_implicit_resolvers.get(value[:1], ()):
                    if regexp.fullmatch(value):
                        return str(tag)
            return _STR
        if kind is yaml.MappingNode:
            return "tag:yaml.org,2002:map"
        return "tag:yaml.org,2002:seq"

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        """PyYAML's, with a ``ConstructorError`` at the node for any value it cannot build.

        (An explicit tag such as ``!!timestamp nonsense`` raises a bare ``AttributeError`` or
        ``ValueError`` inside PyYAML; here it is a problem at its line.)"""
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError) as e:
            tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
            what = short(node.value) if isinstance(node, yaml.ScalarNode) else "this value"
            raise ConstructorError(None, None, f"cannot read {what} as {tag}", node.start_mark) from e


def _add(tag: str, pattern: str, first: str | list[str]) -> None:
    Yaml12Loader.add_implicit_resolver(tag, re.compile(pattern), list(first))


_add(_NULL, r"~|null|Null|NULL|", ["~", "n", "N", ""])
_add(_BOOL, r"true|True|TRUE|false|False|FALSE", "tTfF")
_add(_INT, rf"{_DECIMAL.pattern}|{_OCTAL.pattern}|{_HEX.pattern}", "-+0123456789")
_add(_FLOAT, rf"{_FLOAT_TEXT.pattern}|{_INF_NAN.pattern}", "-+.0123456789")
_add(_MERGE, r"<<", "<")


def _construct_bool(loader: Yaml12Loader, node: yaml.ScalarNode) -> bool:
    value = loader.construct_scalar(node)
    if value in _TRUE or value in _FALSE:
        return value in _TRUE
    raise ConstructorError(None, None, f"{short(value)} is not a boolean; write true or false", node.start_mark)


def _construct_int(loader: Yaml12Loader, node: yaml.ScalarNode) -> int:
    value = loader.construct_scalar(node)
    if len(value) > MAX_INT_DIGITS + 2:
        raise ConstructorError(
            None, None, f"a number of more than {MAX_INT_DIGITS} digits is not inventory data", node.start_mark
        )
    if _DECIMAL.fullmatch(value):
        return int(value)
    if _OCTAL.fullmatch(value):
        return int(value[2:], 8)
    if _HEX.fullmatch(value):
        return int(value[2:], 16)
    raise ConstructorError(
        None,
        None,
        f"{short(value)} is not an integer (YAML 1.2: decimal without leading zeros, 0o... octal, 0x... hex)",
        node.start_mark,
    )


def _construct_float(loader: Yaml12Loader, node: yaml.ScalarNode) -> float:
    value = loader.construct_scalar(node)
    if _INF_NAN.fullmatch(value):
        return float(value.replace(".", "", 1))
    if len(value) <= MAX_INT_DIGITS + 2 and (_FLOAT_TEXT.fullmatch(value) or _DECIMAL.fullmatch(value)):
        return float(value)
    raise ConstructorError(None, None, f"{short(value)} is not a number", node.start_mark)


Yaml12Loader.add_constructor(_BOOL, _construct_bool)
Yaml12Loader.add_constructor(_INT, _construct_int)
Yaml12Loader.add_constructor(_FLOAT, _construct_float)


# --- the budget -----------------------------------------------------------------------------
class OverBudget(Exception):
    """A document that expands to too many nodes, nests too deep, or loops through an alias."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


@dataclass
class _Open:
    """A collection being read: its expanded size so far and the height of its tallest child."""

    anchor: str | None
    line: int
    size: int = 1
    height: int = 0


def measure(text: str, budget: int, max_depth: int = MAX_DEPTH, used: int = 0) -> int:
    """The number of nodes ``text`` expands to (aliases expanded); raise :class:`OverBudget`.

    Reads the event stream only (no node is built), keeping per anchor its expanded size and
    height, so the cost is that of reading the text once, whatever the aliases multiply to;
    it stops at the first event that takes the total over ``budget`` (what is left of the
    inventory's budget after the ``used`` nodes of the files before). YAML syntax errors
    propagate as PyYAML raises them.
    """
    loader = Yaml12Loader(text)
    next_event: Callable[[], Any] = loader.get_event
    anchors: dict[str, tuple[int, int]] = {}
    stack: list[_Open] = []
    total = 0
    try:
        while loader.check_event():
            ev = next_event()
            line = ev.start_mark.line + 1 if ev.start_mark is not None else 1
            if isinstance(ev, yaml.CollectionStartEvent):
                stack.append(_Open(ev.anchor, line))
                total += 1
                if len(stack) > max_depth:
                    raise OverBudget(line, f"nested more than {max_depth} levels deep")
                if total > budget:
                    raise OverBudget(line, _over(budget, used))
                continue
            if isinstance(ev, yaml.CollectionEndEvent):
                done = stack.pop()
                size, height = done.size, done.height + 1
                if done.anchor is not None:
                    anchors[done.anchor] = (size, height)
            elif isinstance(ev, yaml.AliasEvent):
                inside = next((o for o in stack if o.anchor == ev.anchor), None)
                if inside is not None:
                    raise OverBudget(inside.line, "YAML alias used inside its own anchor (the data would be infinite)")
                size, height = anchors.get(str(ev.anchor), (1, 1))  # an unknown alias: the composer says so
                total += size
                if total > budget:
                    raise OverBudget(line, f"this alias copies {size:,} nodes: {_over(budget, used)}")
                if len(stack) + height > max_depth:
                    raise OverBudget(line, f"this alias nests the data more than {max_depth} levels deep")
            elif isinstance(ev, yaml.ScalarEvent):
                size, height = 1, 1
                total += 1
                if ev.anchor is not None:
                    anchors[ev.anchor] = (1, 1)
                if total > budget:
                    raise OverBudget(line, _over(budget, used))
            else:
                continue  # stream and document events
            if stack:
                parent = stack[-1]
                # a collection's own node was counted when it opened
                parent.size += size
                parent.height = max(parent.height, height)
    finally:
        loader.dispose()
    return total


def _over(budget: int, used: int) -> str:
    before = f", {used:,} of them in the files before this one" if used else ""
    return (
        f"the inventory's YAML goes over {budget + used:,} nodes (keys, values and list items, aliases expanded{before})"
        " here: refused, an inventory is far smaller (see dcops.inventory.limits)"
    )


# --- lines ----------------------------------------------------------------------------------
#: What YAML counts as a line break (its marks count lines by these).
YAML_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


def last_line(text: str) -> int:
    """The number of the last line of ``text`` that can hold a character (at least 1)."""
    n = len(YAML_BREAK.findall(text))
    ends_with_break = YAML_BREAK.search(text[-1:]) is not None
    return max(1, n if ends_with_break else n + 1)


def line_and_column(text: str) -> tuple[int, int]:
    """The line and column (1-based, in characters) just after ``text``, as YAML counts them."""
    breaks = list(YAML_BREAK.finditer(text))
    if not breaks:
        return 1, len(text) + 1
    return len(breaks) + 1, len(text) - breaks[-1].end() + 1


def _line_map(node: yaml.Node, path: YPath, out: dict[YPath, int], problems: list[Problem], file: Path, done: set[int]) -> None:
    """Record the line of every key and item under ``node``; report duplicate keys.

    A node reached again through an alias is not walked again (``done``), which keeps a
    document of nested aliases linear; its inner paths fall back to the alias's enclosing key.
    (Depth and loops were bounded by :func:`measure` first.)
    """
    out.setdefault(path, node.start_mark.line + 1)
    if id(node) in done:
        return
    done.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: set[tuple[str, str]] = set()
        for k, v in node.value:
            # (a key that is a list or a mapping cannot be built: it only needs a name here)
            key = k.value if isinstance(k, yaml.ScalarNode) else f"(a {k.id} as a key, line {k.start_mark.line + 1})"
            if key == "<<":
                continue
            if (k.tag, key) in seen:
                problems.append(
                    Problem(file, (*path, key), f"duplicate key {short(key)} in the same mapping", k.start_mark.line + 1)
                )
            seen.add((k.tag, key))
            # The key's line, not its value's: a block value starts on the next line.
            out[(*path, key)] = k.start_mark.line + 1
            _line_map(v, (*path, key), out, problems, file, done)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_map(item, (*path, i), out, problems, file, done)


# --- one file -------------------------------------------------------------------------------
@dataclass
class Parsed:
    """One file's data, its line map, its problems and the nodes it used of the budget."""

    data: Any = None
    lines: dict[YPath, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    nodes: int = 0


def parse_yaml(file: Path, text: str, budget: int, used: int = 0) -> Parsed:
    """Parse one YAML document of at most ``budget`` nodes; return its data, line map and problems.

    (``used``: the nodes of the files before, for the message when the budget runs out.)"""
    try:
        nodes = measure(text, budget, used=used)
        return _compose(file, text, nodes)
    except OverBudget as e:
        return Parsed(problems=[Problem(file, (), e.reason, e.line)])
    except yaml.MarkedYAMLError as e:
        return Parsed(problems=[_syntax_problem(file, text, e)])
    except yaml.reader.ReaderError as e:
        line = line_and_column(text[: e.position])[0]
        what = f"#x{e.character:04x}" if isinstance(e.character, int) else repr(e.character)
        return Parsed(problems=[Problem(file, (), f"YAML error: character {what} is not allowed in YAML text", line)])
    except yaml.YAMLError as e:
        return Parsed(problems=[Problem(file, (), f"YAML error: {e}")])


def _compose(file: Path, text: str, nodes: int) -> Parsed:
    out = Parsed(nodes=nodes)
    loader = Yaml12Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return out
        _line_map(node, (), out.lines, out.problems, file, set())
        try:
            out.data = loader.construct_document(node)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError, RecursionError) as e:
            # (the parts of PyYAML's constructor that run outside construct_object)
            reason = f"YAML error: cannot build the data: {short(str(e))}"
            return Parsed(problems=[Problem(file, (), reason, node.start_mark.line + 1)])
    finally:
        loader.dispose()
    return out


def _syntax_problem(file: Path, text: str, e: yaml.MarkedYAMLError) -> Problem:
    mark = e.problem_mark or e.context_mark
    what = "YAML error" if isinstance(e, ConstructorError) else "YAML syntax error"
    reason = f"{what}: {e.problem or e.context or e}".strip()
    ctx = e.context_mark
    if e.problem and e.context and ctx is not None and mark is not None and ctx.line != mark.line:
        # the opening of what was left unclosed, usually the line to fix
        reason += f" ({e.context} started on line {ctx.line + 1})"
    line = None
    if mark is not None:
        line = mark.line + 1
        last = last_line(text)
        if line > last:  # the parser got to the end of the file: name its last line
            line, reason = last, f"{reason} (at the end of the file)"
    return Problem(file, (), reason, line)
