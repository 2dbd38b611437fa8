"""The wheelhouse the monitoring role installs dcops from: what it pins (no network needed here)."""

from __future__ import annotations

import importlib.metadata as md
import json
import subprocess
import sys
from pathlib import Path

from dcops import wheelhouse


def test_closure_pins_the_installed_versions_of_the_exporters_runtime() -> None:
    pins = wheelhouse.closure()
    for name in ("pydantic", "pyyaml", "prometheus-client", "dnspython", "paramiko", "cryptography", "typer", "rich"):
        assert pins[name] == md.version(name)
    assert "pydantic-core" in pins and "cffi" in pins  # their own requirements come along
    # what the exporters never import stays out of the hosts' virtualenv
    assert not {"ansible", "ansible-core", "pulumi", "pytest-testinfra", "jinja2"} & set(pins)


def test_source_digest_is_stable_and_names_a_wheel_pin() -> None:
    assert wheelhouse.source_digest() == wheelhouse.source_digest()
    assert wheelhouse._wheel_pin(Path("PyYAML-6.0.3-cp311-cp311-manylinux.whl")) == "pyyaml==6.0.3"


#: What a monitoring host runs: the CLI (every command group is imported) and both exporters.
EXPORTER_ENTRY = ("dcops.cli", "dcops.exporters.connectivity", "dcops.exporters.serving", "dcops.exporters.security.exporter")


def test_the_exporter_commands_import_nothing_outside_the_wheelhouse() -> None:
    """EXPORTER_REQUIREMENTS is the one list of what the exporters need: check it against what
    importing them really loads, in a fresh interpreter (a host has only the wheelhouse)."""
    code = "import json, sys\nstartup = set(sys.modules)\n"  # less what site's .pth files load
    code += "".join(f"import {m}\n" for m in EXPORTER_ENTRY) + "print(json.dumps(sorted(set(sys.modules) - startup)))"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    tops = {m.split(".")[0] for m in json.loads(p.stdout)} - set(sys.stdlib_module_names) - {"dcops"}
    owners = md.packages_distributions()
    dists = {wheelhouse._canon(d) for top in tops for d in owners.get(top, [])}
    assert "pydantic" in dists and "typer" in dists  # the check sees the imports at all
    missing = sorted(dists - set(wheelhouse.closure()) - {"dcops"})
    assert not missing, f"the exporter commands import {missing}, which the wheelhouse leaves out (EXPORTER_REQUIREMENTS)"
