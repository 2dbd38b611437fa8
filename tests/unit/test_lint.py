"""The code and content stay lint-clean: ruff, mypy --strict, yamllint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, VENV_BIN


def _tool(name: str) -> str:
    exe = VENV_BIN / name
    return str(exe if exe.exists() else Path(sys.executable).parent / name)


@pytest.mark.parametrize(
    "cmd",
    [
        ["ruff", "check", "src", "tests"],
        ["mypy"],
        ["yamllint", "-s", "inventory", "playbooks", "monitors", ".yamllint"],
    ],
    ids=["ruff", "mypy", "yamllint"],
)
def test_lint_clean(cmd: list[str]) -> None:
    r = subprocess.run([_tool(cmd[0]), *cmd[1:]], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{' '.join(cmd)} found problems:\n{r.stdout}\n{r.stderr}"
