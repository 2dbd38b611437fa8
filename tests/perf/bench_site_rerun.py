"""Benchmark: the whole-site idempotent re-run in the lab, before and after, in one run.

Run (as root; boots the lab, tears it down at the end unless --no-cycle):

    .venv/bin/python tests/perf/bench_site_rerun.py [--ref 0150b97] [--reruns 3] [--no-cycle]

"Before" is a reference commit (default: 0150b97, the last commit before issue 11 gave the roles
one probe-then-apply mechanism): a git worktree of it converges site.yml with its own playbooks,
inventory/lab and dcops package (PYTHONPATH), first once, then ``--reruns`` times. "After" is this
checkout, converging the same lab the same way right after (its first run changes what the
reference left differently). Both are timed as ``ansible-playbook site.yml`` with each checkout's
own ansible.cfg, the lab's vault password and nothing else; the re-runs' medians are printed side
by side with their changed counts (both must be 0). Target: no slower than before (~60 s when the
machine is quiet).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from dcops.paths import ensure_lab_vault_password, lab_base  # noqa: E402

RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def dcops(*args: str) -> None:
    p = subprocess.run([sys.executable, "-c", "from dcops.cli import main; main()", *args],
                       capture_output=True, text=True, timeout=900, check=False)
    if p.returncode != 0:
        raise SystemExit(f"dcops {' '.join(args)} failed:\n{p.stdout}\n{p.stderr}")


def site(checkout: Path, pythonpath: Path | None, log: Path) -> tuple[float, int, bool]:
    """One ``ansible-playbook site.yml`` of ``checkout`` over its inventory/lab: (seconds, changed, ok)."""
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(checkout / "playbooks" / "ansible.cfg"),
        ANSIBLE_VAULT_PASSWORD_FILE=str(ensure_lab_vault_password("lab")),
        DCOPS_LAB_DIR=str(lab_base()),
        ANSIBLE_NOCOLOR="1",
    )
    if pythonpath is not None:
        env["PYTHONPATH"] = f"{pythonpath}:{env.get('PYTHONPATH', '')}".rstrip(":")
    exe = Path(sys.executable).parent / "ansible-playbook"
    t0 = time.monotonic()
    with log.open("w") as f:
        p = subprocess.run([str(exe), "-i", str(checkout / "inventory" / "lab"), "site.yml"], cwd=checkout / "playbooks",
                           env=env, stdout=f, stderr=subprocess.STDOUT, timeout=3600, check=False)
    seconds = time.monotonic() - t0
    recap = RECAP.findall(log.read_text())
    changed = sum(int(r[2]) for r in recap)
    ok = p.returncode == 0 and bool(recap) and all(r[3] == "0" and r[4] == "0" for r in recap)
    return seconds, changed, ok


def series(label: str, checkout: Path, pythonpath: Path | None, reruns: int, logs: Path) -> list[tuple[float, int, bool]]:
    out = []
    for i in range(reruns + 1):
        what = "first" if i == 0 else f"re-run {i}"
        r = site(checkout, pythonpath, logs / f"{label}-{i}.log")
        print(f"[{label}] {what}: {r[0]:.1f} s, changed={r[1]}, ok={r[2]}", flush=True)
        out.append(r)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref", default="0150b97", help="the reference commit ('before'; default 0150b97)")
    ap.add_argument("--reruns", type=int, default=3, help="idempotent re-runs of each (median reported)")
    ap.add_argument("--no-cycle", action="store_true", help="use the lab that is up; leave it up")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (the lab)")
    logs = Path(tempfile.mkdtemp(prefix="dcops-bench-site-"))
    ref = logs / "ref"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(ref), args.ref], check=True, capture_output=True)
    try:
        if not args.no_cycle:
            print("booting a fresh lab", flush=True)
            dcops("lab", "down")
            dcops("lab", "up")
        before = series("before", ref, ref / "src", args.reruns, logs)
        after = series("after", ROOT, None, args.reruns, logs)
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(ref)], check=False, capture_output=True)
        shutil.rmtree(ref, ignore_errors=True)
        if not args.no_cycle:
            dcops("lab", "down")
    b = statistics.median(r[0] for r in before[1:])
    a = statistics.median(r[0] for r in after[1:])
    print()
    print(f"{'site.yml over inventory/lab':<44}{'before (' + args.ref + ')':>18}{'after':>12}   target")
    print(f"{'idempotent re-run, median of ' + str(args.reruns):<44}{b:>17.1f}s{a:>11.1f}s   after <= before")
    print(f"{'changed on the re-runs':<44}{[r[1] for r in before[1:]]!s:>18}{[r[1] for r in after[1:]]!s:>12}   all 0")
    ok = all(r[2] for r in before + after) and all(r[1] == 0 for r in before[1:] + after[1:])
    print(f"{'speed-up':<44}{b / a:>17.2f}x")
    print(f"target {'MET' if a <= b and ok else 'MISSED'}; logs in {logs}")


if __name__ == "__main__":
    main()
