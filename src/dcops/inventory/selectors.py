"""The grammar of a flow's ``from`` selectors, written once for the checks and the firewall.

A selector names where a flow's traffic comes from:

- ``all-sites``: every site's LAN (and loopback) except the data centre's;
- ``datacentre``: the data centre's LAN;
- ``management``: the management network;
- ``internet``: anywhere;
- ``tier:<tier>``: the sites of a tier (``commune``, ``district``, ...);
- ``district:<name>``: the sites of a district (three-level provinces);
- ``area:<name>``: the sites of an administrative area (its ``area``, else its district);
- ``site:<name>``: one site;
- ``host:<name>``: one host's address;
- ``service:<name>``: the addresses of the hosts that provide a service.

:func:`parse_selector` is the one parser: :mod:`dcops.inventory.validate` uses it to check
every flow (and then that each name exists), ``playbooks/filter_plugins/dcops_net.py``
(``selector_cidrs``) to turn selectors into source networks.
"""

from __future__ import annotations

from dcops.inventory.errors import short

#: Selectors that take no argument.
PLAIN: tuple[str, ...] = ("all-sites", "datacentre", "management", "internet")
#: Selectors of the form ``kind:name``.
REFS: tuple[str, ...] = ("tier", "district", "area", "site", "host", "service")
#: Every kind of selector.
KINDS: tuple[str, ...] = PLAIN + REFS


class SelectorError(ValueError):
    """A ``from`` selector outside the grammar; the message lists the grammar."""


def grammar() -> str:
    """The selectors as a message lists them."""
    return f"{', '.join(sorted(PLAIN))} or {', '.join(k + ':NAME' for k in sorted(REFS))}"


def parse_selector(selector: str) -> tuple[str, str | None]:
    """``"site:dc"`` -> ``("site", "dc")``; ``"internet"`` -> ``("internet", None)``.

    Raise :class:`SelectorError` for anything else (an unknown kind, a plain kind with an
    argument, a reference kind without one)."""
    if selector in PLAIN:
        return selector, None
    kind, _, arg = selector.partition(":")
    if kind in REFS and arg:
        return kind, arg
    raise SelectorError(f"unknown source {short(selector)}; use one of {grammar()}")
