"""Teardown of the lab (clean and after an interrupted `up`) and light mode. Named to run last:
it takes the session lab down, so every test module that uses the `lab` fixture runs before it."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from dcops import ROOT, lab_dir
from dcops.inventory import InventoryError, load
from tests.lab.helpers import DCOPS, dcops, leftovers, nothing_left, ping, status

pytestmark = pytest.mark.lab


def test_down_leaves_nothing(lab: dict[str, Any]) -> None:
    dcops("lab", "down", check=True, timeout=180)
    assert leftovers() == {"nspawn": [], "links": [], "netns": [], "mounts": [], "cgroups": []}
    assert status()["phase"] == "down"


def test_interrupted_up_then_down_leaves_nothing(root: None) -> None:
    dcops("lab", "down", timeout=180)
    state = lab_dir("lab") / "state.json"
    proc = subprocess.Popen([*DCOPS, "lab", "up"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:  # wait until the first host has been started
            if state.exists():
                try:
                    hosts = json.loads(state.read_text())["hosts"]
                except (ValueError, KeyError):
                    hosts = {}
                if any(h.get("pid") for h in hosts.values()):
                    break
            time.sleep(0.05)
        else:
            pytest.fail("`dcops lab up` started no host in 300 s")
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        dcops("lab", "down", timeout=180)
    assert nothing_left(), leftovers()


def test_a_host_not_ready_in_time_is_named_with_its_journal(root: None) -> None:
    dcops("lab", "down", timeout=180)
    try:
        p = dcops("lab", "up", env={"DCOPS_LAB_BOOT_TIMEOUT": "0.5"}, timeout=120)
        assert p.returncode == 1
        assert "not ready after" in p.stderr and "last journal lines" in p.stderr, p.stderr
        assert "dcops lab down" in p.stderr
    finally:
        dcops("lab", "down", timeout=180)
    assert nothing_left(), leftovers()


def _light_inventory() -> Path:
    yenbai = ROOT / "inventory" / "yenbai"
    try:
        load(yenbai)
        return yenbai
    except (InventoryError, OSError, ValueError):
        return ROOT / "inventory" / "lab"


def test_light_mode_every_site_answers_ping(root: None) -> None:
    inv_path = _light_inventory()
    inv = load(inv_path).inventory
    code = inv.province.code
    dcops("lab", "down", "-i", str(inv_path), timeout=120)
    try:
        t0 = time.monotonic()
        dcops("lab", "up", "--light", "-i", str(inv_path), check=True, timeout=300)
        up_s = time.monotonic() - t0
        st = status("-i", str(inv_path))
        assert st["mode"] == "light" and st["up"]
        sites = [s for s in inv.sites if s.datanet or s.tier.value == "datacentre"]
        assert len(st["hosts"]) == len(sites)
        silent = [s.name for s in sites if not ping(str(inv.gateway_of(s)))]
        assert silent == [], f"sites not answering ping: {silent}"
        print(f"light mode of {code}: {len(sites)} sites up in {up_s:.1f} s")
    finally:
        dcops("lab", "down", "-i", str(inv_path), timeout=120)
    assert nothing_left(code), leftovers(code)


def test_full_mode_refuses_a_province_that_is_not_a_lab(root: None) -> None:
    p = dcops("lab", "up", "-i", str(ROOT / "inventory" / "yenbai"), timeout=60)
    assert p.returncode != 0
    assert "not a lab province" in p.stderr
