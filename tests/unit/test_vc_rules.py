"""The videoconf alert rules pass promtool's own unit tests (monitors/tests/videoconf.test.yml)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import ROOT

MONITORS = ROOT / "monitors"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="needs promtool (Debian's prometheus)")
def test_videoconf_rules_check_and_their_promtool_tests_pass() -> None:
    check = subprocess.run(["promtool", "check", "rules", str(MONITORS / "rules" / "videoconf.rules.yml")],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    test = subprocess.run(["promtool", "test", "rules", "videoconf.test.yml"], cwd=MONITORS / "tests",
                          capture_output=True, text=True, timeout=60)
    assert test.returncode == 0, test.stdout + test.stderr
