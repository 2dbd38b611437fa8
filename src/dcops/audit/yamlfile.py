"""Read one audit YAML file with the inventory's hardened reader: bounded, YAML 1.2, lines kept.

Pydantic errors become :class:`~dcops.inventory.errors.Problem` s at the line of the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from dcops.inventory.errors import Problem
from dcops.inventory.files import ReadError, decode, read_bounded
from dcops.inventory.limits import MAX_FILE_BYTES, MAX_NODES
from dcops.inventory.loader import pydantic_problems
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


def validate(cls: type[_M], data: Any, origin: Origin, problems: list[Problem]) -> _M | None:
    """``data`` as ``cls``, or None with its problems appended."""
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        problems.extend(pydantic_problems(e, origin))
        return None
