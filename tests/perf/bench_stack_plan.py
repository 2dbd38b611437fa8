"""Benchmark: `dcops stack plan -i inventory/yenbai` (target: at most 2 s wall time).

Run: .venv/bin/python tests/perf/bench_stack_plan.py [--runs N] [--inventory DIR]
Each run is a fresh `dcops stack plan --json` process (imports of the Pulumi SDK and the
proxmoxve SDK included, as an operator sees it); prints the median, min and max of the wall
time and of the peak resident memory (the child's ru_maxrss) beside the target. No packet is
sent: the program runs in-process under the SDK's mocks.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TARGET_S = 2.0


#: The child reports its own peak RSS (ru_maxrss, KiB) on stderr as it exits.
CHILD = (
    "import atexit, resource, sys\n"
    "def report():\n"
    "    u = resource.getrusage(resource.RUSAGE_SELF)\n"
    "    sys.stderr.write(f'MAXRSS {u.ru_maxrss} CPU {u.ru_utime + u.ru_stime}\\n')\n"
    "atexit.register(report)\n"
    "from dcops.cli import main\n"
    "main()\n"
)


def one_run(inventory: Path) -> tuple[float, float, float, int]:
    """(wall seconds, CPU seconds, peak RSS in MiB, resources planned) of one `dcops stack plan --json`."""
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", CHILD, "stack", "plan", "-i", str(inventory), "--json"],
                       capture_output=True, text=True, env=dict(os.environ), check=False)
    wall = time.perf_counter() - t0
    if r.returncode not in (0, 2):
        raise SystemExit(f"dcops stack plan failed ({r.returncode}):\n{r.stderr}")
    fields = next(line for line in r.stderr.splitlines() if line.startswith("MAXRSS ")).split()
    return wall, float(fields[3]), int(fields[1]) / 1024, len(json.loads(r.stdout)["plan"]["resources"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--inventory", type=Path, default=ROOT / "inventory" / "yenbai")
    args = ap.parse_args()
    one_run(args.inventory)  # warm the page cache and the .pyc files
    walls, cpus, rsss = [], [], []
    n = 0
    for _ in range(args.runs):
        w, c, r, n = one_run(args.inventory)
        walls.append(w)
        cpus.append(c)
        rsss.append(r)
    print(f"dcops stack plan -i {args.inventory} --json: {n} resources, {args.runs} runs (fresh process each)")
    print(f"{'figure':<22}{'median':>10}{'min':>10}{'max':>10}   target")
    print(f"{'wall time':<22}{statistics.median(walls):>9.3f}s{min(walls):>9.3f}s{max(walls):>9.3f}s   <= {TARGET_S:.1f} s")
    print(f"{'CPU time (user+sys)':<22}{statistics.median(cpus):>9.3f}s{min(cpus):>9.3f}s{max(cpus):>9.3f}s"
          "   (wall time on a loaded machine: compare the two)")
    print(f"{'peak memory (RSS)':<22}{statistics.median(rsss):>7.1f}MiB{min(rsss):>7.1f}MiB{max(rsss):>7.1f}MiB   (reported)")
    verdict = "MET" if statistics.median(walls) <= TARGET_S else "MISSED"
    load1 = os.getloadavg()[0]
    print(f"target {verdict}: median wall time {statistics.median(walls):.3f} s"
          f" (load average {load1:.1f} on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
