"""Benchmark of the lab (a script, not a pytest module): prints each figure beside its target.

    sudo .venv/bin/python tests/perf/bench_lab.py [--skip-build]

1. image build from scratch (into a temporary image folder; the cache is untouched) ≤ 3 min
2. ``dcops lab up`` of inventory/lab from the cached image ≤ 30 s
3. idle memory per full host (PSS of the container's processes, after 20 s idle) ≤ 120 MB
4. light mode of inventory/yenbai (inventory/lab when yenbai does not load yet): up ≤ 60 s, down ≤ 30 s
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dcops import ROOT
from dcops.inventory import InventoryError, load
from dcops.lab import hosts, state

DCOPS = [sys.executable, "-c", "from dcops.cli import main; main()"]
rows: list[tuple[str, str, str, bool]] = []


def report(what: str, value: float, unit: str, target: float) -> None:
    ok = value <= target
    rows.append((what, f"{value:.1f} {unit}", f"≤ {target:g} {unit}", ok))
    print(f"{what:<58} {value:8.1f} {unit:<3} target ≤ {target:g} {unit}  {'OK' if ok else 'OVER'}", flush=True)


def dcops(*args: str, env: dict[str, str] | None = None) -> float:
    t0 = time.monotonic()
    p = subprocess.run([*DCOPS, *args], capture_output=True, text=True, env=env, check=False)
    took = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit(f"dcops {' '.join(args)} failed ({p.returncode}):\n{p.stderr}")
    return took


def smaps_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def container_memory_mb(leader: int) -> tuple[float, float]:
    """(PSS, RSS) of every process in the container's PID namespace, plus the memory its
    volatile overlay and tmpfs mounts hold (no cgroups needed)."""
    ns = os.readlink(f"/proc/{leader}/ns/pid")
    pss = rss = 0
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if os.readlink(d / "ns/pid") == ns:
                    pss += smaps_kb(int(d.name), "Pss")
                    rss += smaps_kb(int(d.name), "Rss")
            except OSError:
                continue
    df = subprocess.run(
        hosts.nsenter(leader, "df", "-k", "--output=used", "/", "/run", "/tmp"),
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()[1:]
    tmpfs = sum(int(x) for x in df if x.isdigit())
    return (pss + tmpfs) / 1024, (rss + tmpfs) / 1024


def light_inventory() -> Path:
    yenbai = ROOT / "inventory" / "yenbai"
    try:
        load(yenbai)
        return yenbai
    except (InventoryError, OSError, ValueError) as e:
        print(f"(inventory/yenbai does not load yet: {str(e).splitlines()[0]}; light mode on inventory/lab)")
        return ROOT / "inventory" / "lab"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skip-build", action="store_true", help="do not time an image build from scratch")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("the lab benchmark needs root")
    if not args.skip_build:
        with tempfile.TemporaryDirectory(prefix="dcops-bench-images-", dir="/var/lib/dcops") as tmp:
            env = dict(os.environ, DCOPS_IMAGE_DIR=tmp)
            report("image build from scratch", dcops("lab", "image", env=env), "s", 180)
    dcops("lab", "image")  # make sure the cached image exists (not timed)
    dcops("lab", "down")
    report("lab up (inventory/lab, cached image)", dcops("lab", "up"), "s", 30)
    try:
        time.sleep(20)
        st = state.load("lab")
        assert st is not None
        mem = {n: container_memory_mb(h.leader) for n, h in st.hosts.items() if h.leader}
        worst = max(mem, key=lambda n: mem[n][1])
        report("idle memory per host, mean (PSS + overlay/tmpfs)", sum(m[0] for m in mem.values()) / len(mem), "MB", 120)
        report(f"idle memory per host, max ({worst}; RSS + overlay/tmpfs)", mem[worst][1], "MB", 120)
    finally:
        report("lab down (inventory/lab)", dcops("lab", "down"), "s", 30)
    inv = light_inventory()
    light_inv = load(inv).inventory
    n = len([s for s in light_inv.sites if s.datanet or s.tier.value == "datacentre"])
    dcops("lab", "down", "-i", str(inv))
    try:
        report(f"light up ({inv.name}, {n} sites)", dcops("lab", "up", "--light", "-i", str(inv)), "s", 60)
    finally:
        report(f"light down ({inv.name})", dcops("lab", "down", "-i", str(inv)), "s", 30)
    print("\n| figure | measured | target | |\n|---|---|---|---|")
    for what, value, target, ok in rows:
        print(f"| {what} | {value} | {target} | {'OK' if ok else 'OVER'} |")


if __name__ == "__main__":
    main()
