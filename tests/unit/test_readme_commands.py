"""The README's two commands run verbatim as root on a fresh Debian machine, and CI runs the second.

A fresh Debian machine logged in as root has no sudo, so neither command may use it; each
command is a script of the repository that installs what it needs (scripts/setup.sh). CI's
script (.ci/run) reads the test command from the README itself, so what CI runs is what the
README says.
"""

from __future__ import annotations

import os
import re
import subprocess

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def two_commands() -> list[str]:
    section = README.split("## Two commands", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "README: no ```sh block under '## Two commands'"
    return [re.sub(r"\s*#.*$", "", line).strip() for line in block.group(1).splitlines() if line.strip()]


def test_exactly_two_commands_without_sudo() -> None:
    main, tests = two_commands()
    assert main == "bash scripts/main.sh" and tests == "bash scripts/test.sh", (main, tests)
    for cmd in (main, tests):
        assert "sudo" not in cmd.split(), cmd
        script = ROOT / cmd.split()[1]
        assert script.is_file() and "bash scripts/setup.sh" in script.read_text(), f"{script} must install what it needs"


def test_ci_runs_the_readmes_test_command() -> None:
    r = subprocess.run(["bash", str(ROOT / ".ci" / "run")], capture_output=True, text=True, timeout=30, check=False,
                       env={**os.environ, "DCOPS_CI_PRINT_ONLY": "1"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == two_commands()[1]


def test_scripts_refuse_to_run_without_root_clearly() -> None:
    text = (ROOT / "scripts" / "setup.sh").read_text()
    assert "id -u" in text and "run as root" in text
