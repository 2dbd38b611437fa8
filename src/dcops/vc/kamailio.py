"""The videoconf role's Kamailio files rendered outside Ansible (unit tests, the benchmark), and checked.

The templates and defaults are the role's own (``playbooks/roles/videoconf``): the tests exercise
exactly what a converge installs. :func:`render` takes the role's variables (defaults overridden by
``values``) and the accounts, and returns ``{relative path: content}``.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import jinja2
import yaml

from dcops import ROOT

ROLE = ROOT / "playbooks" / "roles" / "videoconf"
#: Switches the role's cfg knows (the stock cfg's names where the stock cfg has them).
SWITCHES = ("WITH_AUTH", "WITH_NAT", "WITH_TLS", "WITH_WEBSOCKETS", "WITH_RTPENGINE", "WITH_ANTIFLOOD", "WITH_PROM")


class KamailioError(Exception):
    """A cfg Kamailio refuses (the message carries its own)."""


def defaults() -> dict[str, Any]:
    data = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(ROLE / "templates")), undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=True, trim_blocks=True)


def render(values: Mapping[str, Any], accounts: Iterable[Mapping[str, str]]) -> dict[str, str]:
    """kamailio.cfg, the TLS profile and the two htable tables for ``accounts`` (user, ha1, transport, subnet)."""
    v = defaults() | dict(values) | {"videoconf__accounts": list(accounts)}
    env = _env()
    return {
        "kamailio.cfg": env.get_template("kamailio.cfg.j2").render(v),
        "dcops-tls.cfg": env.get_template("dcops-tls.cfg.j2").render(v),
        "db/vcauth": env.get_template("vcauth.j2").render(v),
        "db/vcnet": env.get_template("vcnet.j2").render(v),
    }


def variants() -> Iterator[dict[str, bool]]:
    """Every combination of the switches."""
    for bits in itertools.product((False, True), repeat=len(SWITCHES)):
        yield dict(zip(SWITCHES, bits, strict=True))


def check(cfg: Path, kamailio: str | None = None) -> None:
    """``kamailio -c -f cfg``; KamailioError with Kamailio's own complaint if it refuses it."""
    binary = kamailio or shutil.which("kamailio") or "/usr/sbin/kamailio"
    p = subprocess.run([binary, "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=60, check=False)
    if p.returncode != 0:
        lines = [x for x in (p.stderr + p.stdout).splitlines() if "ERROR" in x or "CRITICAL" in x] or p.stderr.splitlines()[-5:]
        raise KamailioError(f"{cfg}: kamailio -c refuses it: " + " | ".join(lines[:8]))


def render_endpoint(values: Mapping[str, Any]) -> dict[str, str]:
    """The vc_endpoint role's baresip config and accounts files for ``values`` (its defaults overridden)."""
    role = ROLE.parent / "vc_endpoint"
    v = yaml.safe_load((role / "defaults" / "main.yml").read_text(encoding="utf-8")) | dict(values)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(role / "templates")), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, trim_blocks=True)
    return {"config": env.get_template("baresip-config.j2").render(v),
            "accounts": env.get_template("baresip-accounts.j2").render(v)}
