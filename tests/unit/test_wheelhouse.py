"""The wheelhouse the monitoring role installs dcops from: what it pins (no network needed here)."""

from __future__ import annotations

import importlib.metadata as md

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
    assert wheelhouse._wheel_pin(__import__("pathlib").Path("PyYAML-6.0.3-cp311-cp311-manylinux.whl")) == "pyyaml==6.0.3"
