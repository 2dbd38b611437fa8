"""dcops-textfile-collector (the monitoring role's host facts for node_exporter), run here.

The script runs on this Debian machine as it does on a host: real apt-get, date, stat. apt-get
is wrapped only to count its calls (the wrapper then runs the real one), because the pending
security count must be recomputed only when dpkg's state or the package lists change: the
simulation costs about 2 s of CPU and the timer fires every minute on every host.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.exporters.procs import promtool_check_metrics

SCRIPT = ROOT / "playbooks" / "roles" / "monitoring" / "files" / "dcops-textfile-collector"

pytestmark = pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs a Debian machine (apt-get)")


@pytest.fixture
def rig(tmp_path: Path) -> dict[str, Path]:
    out = tmp_path / "textfile"
    out.mkdir()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    calls = tmp_path / "apt-calls"
    wrapper = bindir / "apt-get"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {calls}\nexec {shutil.which("apt-get")} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    status, lists = tmp_path / "status", tmp_path / "lists"
    status.write_text("Package: a\n")
    lists.mkdir()
    return {"out": out, "bin": bindir, "calls": calls, "status": status, "lists": lists}


def _collect(rig: dict[str, Path]) -> str:
    env = dict(os.environ)
    env["PATH"] = f"{rig['bin']}:{env['PATH']}"
    env["DCOPS_APT_STATE"] = f"{rig['status']} {rig['lists']}"
    r = subprocess.run(["sh", str(SCRIPT), str(rig["out"])], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return (rig["out"] / "dcops.prom").read_text()


def _apt_calls(rig: dict[str, Path]) -> int:
    return len(rig["calls"].read_text().splitlines()) if rig["calls"].exists() else 0


def _value(text: str, name: str) -> str:
    return next(line.split()[1] for line in text.splitlines() if line.startswith(name + " "))


def test_metrics_are_valid_and_complete(rig: dict[str, Path]) -> None:
    text = _collect(rig)
    assert promtool_check_metrics(text.encode()) == ""
    for name in (
        "dcops_host_apt_security_updates_pending",
        "dcops_host_reboot_required",
        "dcops_host_textfile_last_run_timestamp_seconds",
    ):
        assert f"# TYPE {name} gauge" in text
        assert int(_value(text, name)) >= 0
    assert _value(text, "dcops_host_reboot_required") == ("1" if Path("/run/reboot-required").exists() else "0")
    # written atomically: nothing but the output and the apt cache is left in the folder
    assert sorted(p.name for p in rig["out"].iterdir()) == [".dcops-apt-security", "dcops.prom"]


def test_apt_count_is_recomputed_only_when_apt_state_changes(rig: dict[str, Path]) -> None:
    first = _value(_collect(rig), "dcops_host_apt_security_updates_pending")
    assert _apt_calls(rig) == 1
    again = _value(_collect(rig), "dcops_host_apt_security_updates_pending")
    assert _apt_calls(rig) == 1, "apt-get ran again although neither dpkg's status nor the lists changed"
    assert again == first
    rig["status"].write_text("Package: a\n\nPackage: b\n")  # a package was installed
    _collect(rig)
    assert _apt_calls(rig) == 2
    (rig["lists"] / "new_Packages").write_text("")  # apt update brought a new list
    os.utime(rig["lists"], (1, 1))  # and the folder's mtime moved (to anything else)
    _collect(rig)
    assert _apt_calls(rig) == 3
    _collect(rig)
    assert _apt_calls(rig) == 3


def test_missing_apt_state_still_counts(rig: dict[str, Path]) -> None:
    rig["status"].unlink()
    shutil.rmtree(rig["lists"])
    text = _collect(rig)
    _collect(rig)
    # with nothing to stamp, every run asks apt (never a stale answer)
    assert _apt_calls(rig) == 2
    assert int(_value(text, "dcops_host_apt_security_updates_pending")) >= 0


def test_noc_sources_failed_units_postfix_ospf_wireguard(rig: dict[str, Path]) -> None:
    """The NOC's host sources (issue 14). FRR, wg and Postfix do not run on this machine: the
    commands are stand-ins printing what FRR 8.4's ``show ip ospf neighbor json``, ``wg show all
    latest-handshakes`` and ``postqueue -j`` print; the parsing and the exposition are real."""
    fakes = {
        "vtysh": "cat <<'J'\n"
                 '{"neighbors":{"10.253.0.1":[{"nbrState":"Full/-","ifaceName":"eth1:10.252.0.2"}],'
                 '"10.253.0.21":[{"nbrState":"Init/-","ifaceName":"eth2:10.252.0.9"}],'
                 '"10.253.0.23":[{"nbrState":"Full/DR","ifaceName":"eth3:10.252.0.13"}]}}\nJ',
        "wg": "printf 'wg0\\tAbCd+/=\\t1700000000\\nwg1\\tXyZ=\\t0\\n'",
        "postqueue": "echo '{\"queue_name\": \"deferred\", \"queue_id\": \"A\"}'\n"
                     "echo '{\"queue_name\": \"deferred\", \"queue_id\": \"B\"}'\n"
                     "echo '{\"queue_name\": \"active\", \"queue_id\": \"C\"}'",
        "systemctl": "echo 'dovecot.service loaded failed failed Dovecot IMAP'",
    }
    for name, body in fakes.items():
        p = rig["bin"] / name
        p.write_text(f"#!/bin/sh\n{body}\n")
        p.chmod(0o755)
    text = _collect(rig)
    assert promtool_check_metrics(text.encode()) == ""
    assert _value(text, "dcops_frr_ospf_neighbours_full") == "2"
    assert 'dcops_frr_ospf_neighbour_full{neighbour="10.253.0.21",interface="eth2"} 0' in text
    assert 'dcops_host_wireguard_latest_handshake_timestamp_seconds{interface="wg0",peer="AbCd+/="} 1700000000' in text
    assert 'dcops_host_postfix_queue_messages{queue="deferred"} 2' in text
    assert 'dcops_host_postfix_queue_messages{queue="active"} 1' in text
    assert _value(text, "dcops_host_systemd_units_failed") == "1"
    assert 'dcops_host_systemd_unit_failed{unit="dovecot.service"} 1' in text
