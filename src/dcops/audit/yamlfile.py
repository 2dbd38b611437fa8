"""Read one audit YAML file with the inventory's hardened reader: bounded, YAML 1.2, lines kept.

Pydantic errors become :class:`~dcops.inventory.errors.Problem` s at the line of the key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from dcops.inventory.errors import Problem, short
from dcops.inventory.files import ReadError, decode, read_bounded
from dcops.inventory.limits import MAX_FILE_BYTES, MAX_NODES
from dcops.inventory.origin import Origin
from dcops.inventory.yaml12 import parse_yaml

_M = TypeVar("_M", bound=BaseModel)


def read_yaml(file: Path) -> tuple[Any, Origin, list[Problem]]:
    """The data of ``file``, its origin (line map) and the problems met reading it."""
    try:
        raw = read_bounded(file, MAX_FILE_BYTES)
    except ReadError as e:
        return None, Origin(file, (), {}), [Problem(file, (), str(e))]
    text = decode(file, raw)
    if isinstance(text, Problem):
        return None, Origin(file, (), {}), [text]
    parsed = parse_yaml(file, text, MAX_NODES)
    return parsed.data, Origin(file, (), parsed.lines), list(parsed.problems)


def pydantic_problems(err: ValidationError, origin: Origin) -> Iterator[Problem]:
    """Each pydantic error as a problem at its key's line, in the inventory's words."""
    for e in err.errors(include_url=False):
        loc = tuple(x for x in e["loc"] if isinstance(x, str | int))
        loc = tuple(x for x in loc if not (isinstance(x, str) and ("[" in x or x.startswith("function-"))))
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = f"unknown key {short(loc[-1])} (a typo?)" if loc else "unknown key"
        elif e["type"] == "missing":
            msg = f"missing required key {short(loc[-1])}" if loc else "missing required key"
        elif "input" in e and e["type"] not in ("model_type", "list_type", "dict_type"):
            msg = f"{msg} (got {short(e['input'])})"
        yield origin.problem(msg, *loc)


def validate(cls: type[_M], data: Any, origin: Origin, problems: list[Problem]) -> _M | None:
    """``data`` as ``cls``, or None with its problems appended."""
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        problems.extend(pydantic_problems(e, origin))
        return None
