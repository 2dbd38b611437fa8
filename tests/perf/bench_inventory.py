"""Benchmark: load + validate + render inventory/yenbai (target: under 1 s).

Run: .venv/bin/python tests/perf/bench_inventory.py [--runs N]
Prints the median and spread of N runs for each step, beside the target.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from dcops.cli.inventory import rendered_files
from dcops.inventory import load
from dcops.inventory.summary import counts

ROOT = Path(__file__).resolve().parents[2]
TARGET_S = 1.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--inventory", type=Path, default=ROOT / "inventory" / "yenbai")
    args = ap.parse_args()
    load_t, render_t, total_t = [], [], []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        loaded = load(args.inventory)
        t1 = time.perf_counter()
        files = rendered_files(loaded.inventory)
        t2 = time.perf_counter()
        load_t.append(t1 - t0)
        render_t.append(t2 - t1)
        total_t.append(t2 - t0)
    c = counts(loaded.inventory)
    size = sum(len(t) for t in files.values())
    print(f"inventory {args.inventory}: {c['sites']} sites, {c['circuits']} circuits, {c['hosts']} hosts,"
          f" {len(loaded.files)} files; renders {len(files)} files, {size:,} bytes")
    print(f"{'step':<26}{'median':>10}{'min':>10}{'max':>10}   target")
    for name, xs in (("load + validate", load_t), ("render (ansible + file_sd)", render_t), ("total", total_t)):
        tgt = f"< {TARGET_S:.1f} s" if name == "total" else ""
        print(f"{name:<26}{statistics.median(xs):>9.3f}s{min(xs):>9.3f}s{max(xs):>9.3f}s   {tgt}")
    verdict = "MET" if statistics.median(total_t) < TARGET_S else "MISSED"
    print(f"target {verdict}: median total {statistics.median(total_t):.3f} s over {args.runs} runs")


if __name__ == "__main__":
    main()
