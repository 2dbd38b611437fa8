"""Render a role template exactly as ``ansible.builtin.template`` writes it, through public API.

The roles compare what a file should hold with what a host's probe read, on every run and for
every host, so rendering is on the hot path of an idempotent converge. Everything that depends
on ansible-core's templating lives in :func:`render_template`, written against the public
``Templar`` API (``copy_with_new_env``, ``template``, ``trust_as_template``,
``generate_ansible_template_vars``) and mirroring what the template action plugin does: the same
Jinja search path, the same ``template_*`` and ``ansible_managed`` variables, trim_blocks on,
backslashes kept; the host's variables are layered over a shallow copy (the builtin *lookup*
deep-copies them for each file, which was two thirds of the controller's CPU on a re-run).

:data:`TESTED` names the ansible-core releases the byte-for-byte test
(tests/unit/test_dcops_template.py) has been run on; :func:`check_version` refuses others
loudly rather than rendering something subtly different.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

#: ansible-core minor releases whose template action this module is known to match.
TESTED = ("2.19", "2.20", "2.21")


class TemplatingError(Exception):
    """A template that cannot be rendered the way the template module would."""


def ansible_core_version() -> str:
    from ansible.release import __version__

    return str(__version__)


def check_version(version: str | None = None) -> None:
    v = version or ansible_core_version()
    minor = ".".join(v.split(".")[:2])
    if minor not in TESTED:
        raise TemplatingError(
            f"dcops renders role templates like ansible-core {', '.join(TESTED)}; this is ansible-core {v}:"
            " run tests/unit/test_dcops_template.py on it, then add it to dcops.ansible_plugins.templating.TESTED"
        )


def search_path(variables: Mapping[str, Any], basedir: str, source: str) -> list[str]:
    """Where ``{% include %}`` looks: as the template action builds it (each path's templates/, then itself)."""
    paths = [*variables.get("ansible_search_path", []), basedir, os.path.dirname(source)]
    out: list[str] = []
    for p in paths:
        out += [os.path.join(p, "templates"), p]
    return out


def render_template(
    templar: Any,
    loader: Any,
    variables: Mapping[str, Any],
    source: str,
    *,
    name: str | None = None,
    dest: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """The text the template module would write for the template file at ``source``.

    ``name`` is the template as the task names it (``template_path``), ``dest`` the file it goes
    to (``template_destpath``), ``extra`` variables layered on top (a loop item, ...)."""
    from ansible.template import generate_ansible_template_vars, trust_as_template

    check_version()
    text = trust_as_template(loader.get_text_file_contents(source))
    layer = dict(variables)  # shallow: rendering never writes into the variables
    generated = dict(generate_ansible_template_vars(path=name or source, fullpath=source, dest_path=dest))
    if "ansible_managed" in layer:  # as the template action: never clobber one set by the user
        generated.pop("ansible_managed", None)
    layer.update(generated)
    layer.update(extra or {})
    data_templar = templar.copy_with_new_env(
        searchpath=search_path(variables, str(getattr(loader, "_basedir", "") or ""), source), available_variables=layer
    )
    out = data_templar.template(text, escape_backslashes=False, overrides={"trim_blocks": True})
    return "" if out is None else str(out)


def render_all(templar: Any, loader: Any, variables: Mapping[str, Any], sources: Sequence[tuple[str, str]]) -> list[str]:
    """:func:`render_template` for each ``(name, source path)``."""
    return [render_template(templar, loader, variables, src, name=name) for name, src in sources]
