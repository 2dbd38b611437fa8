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
loudly rather than rendering something subtly different. To try another release, install it in
a virtualenv of its own and run that test with ``DCOPS_TEST_ANSIBLE_CORE_VENVS=<venv>``.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from typing import Any

#: ansible-core minor releases whose template action this module is known to match: the
#: byte-for-byte test passed on 2.19.14 (Python 3.11, the pinned release), 2.20.10 and 2.21.5
#: (Python 3.12: ansible-core 2.20 and newer require it).
TESTED = ("2.19", "2.20", "2.21")


class TemplatingError(Exception):
    """A template that cannot be rendered the way the template module would."""


def ansible_core_version() -> str:
    from ansible.release import __version__

    return str(__version__)


def minor_release(version: str) -> str:
    """``"2.21"`` of ``"2.21.5"`` (or ``"2.21.0rc1"``, ``"2.21"``)."""
    m = re.match(r"(\d+)\.(\d+)(?!\d)", version.strip())
    if not m:
        raise TemplatingError(f"{version!r} is not an ansible-core release")
    return f"{m.group(1)}.{m.group(2)}"


def check_version(version: str | None = None) -> None:
    """Refuse an ansible-core release the byte-for-byte test has not passed on (default: the installed one).

    ``$DCOPS_ANSIBLE_CORE_TRY`` (a minor release, e.g. ``2.22``) is accepted too: for that test to
    try a release before it is added to :data:`TESTED`."""
    if version:
        _check(version)
    else:
        _check_installed()


def _check(version: str) -> None:
    tried = os.environ.get("DCOPS_ANSIBLE_CORE_TRY", "").strip()
    if minor_release(version) not in (*TESTED, tried):
        raise TemplatingError(
            f"dcops renders role templates like ansible-core {', '.join(TESTED)}; this is ansible-core {version}:"
            " run tests/unit/test_dcops_template.py on it (DCOPS_TEST_ANSIBLE_CORE_VENVS=<its virtualenv>),"
            " then add it to dcops.ansible_plugins.templating.TESTED"
        )


@functools.cache
def _check_installed() -> None:
    # once per process: render_template runs for every file of every host (a refusal is not cached)
    _check(ansible_core_version())


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
