"""Benchmark: dcops audit (one SSH connection and one fact collection per host, checks local)
against the per-assertion approach (pytest-testinfra, one remote command per check) and Lynis.

Run (as root): .venv/bin/python tests/perf/bench_audit.py [--hosts FILE | --inventory DIR] [-n N]

- ``--inventory DIR``: every managed host of a booted lab (its ssh_config), e.g. the lead's
  100-host generated lab; ``-l`` limits it.
- ``--hosts FILE``: one host a line: ``name address port user key known_hosts``.
- neither: no lab here; a throwaway sshd on 127.0.0.1 is started and audited ``-n`` times
  (default 100) as ``-n`` hosts (same machine, so per-host figures are an upper bound: every
  collector runs on these same 2 cores).

Figures (medians where repeated): wall time, controller CPU, CPU of the whole machine, per-host
time; the per-assertion approach on ``--sample`` hosts (default 3), per check, and the ratio;
Lynis (``lynis audit system --quick``) per host when installed. Reference (issue 15): 100 hosts x
>= 60 checks in <= 60 s on 2 cores; >= 10x faster per check than per-assertion.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from dcops.audit.catalogue import load_catalogue  # noqa: E402
from dcops.audit.checks import HostContext  # noqa: E402
from dcops.audit.collect import Collected, Target, collect_all, scope  # noqa: E402
from dcops.audit.evaluate import evaluate_host  # noqa: E402

#: One remote command per check type (what a per-assertion test would run for each check).
COMMANDS = {
    "sshd": "sshd -T",
    "fact": "cat /etc/login.defs",
    "sysctl": "sysctl -a",
    "service": "systemctl list-units --type=service",
    "packages_absent": "dpkg-query -W",
    "package_present": "dpkg-query -W",
    "shadow": "cat /etc/shadow",
    "accounts": "getent passwd",
    "listening": "ss -lntu",
    "firewall": "nft list ruleset",
    "age": "ls -l /var/lib/apt/lists",
    "updates": "ls /var/lib/apt/lists",  # (cheap on purpose: the comparison is the round trips)
    "ssh_idle": "sshd -T",
    "ssh_allow_users": "sshd -T",
    "file_mode": "stat -c %a /etc/shadow",
}


def cpu_total() -> float:
    """Seconds of CPU used by the whole machine so far (from /proc/stat)."""
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    ticks = sum(int(x) for x in parts[:8]) - int(parts[3]) - int(parts[4])  # minus idle and iowait
    return ticks / os.sysconf("SC_CLK_TCK")


def loopback_targets(n: int, tmp: Path) -> tuple[list[Target], Any]:
    from tests.unit.audit_sshd import loopback_sshd

    cm = loopback_sshd(tmp)
    sshd = cm.__enter__()
    targets = [
        Target(
            HostContext(
                f"h{i:03d}", "dc", "datacentre", ("app",), False, "127.0.0.1", "127.0.0.0/8", ("root",), frozenset({("tcp", 22)})
            ),
            "127.0.0.1",
            sshd.port,
            "root",
            str(sshd.key),
            str(sshd.known_hosts),
        )
        for i in range(n)
    ]
    return targets, cm


def hosts_file(path: Path) -> list[Target]:
    out = []
    for ln in path.read_text().splitlines():
        if not ln.strip() or ln.startswith("#"):
            continue
        name, addr, port, user, key, kh = ln.split()
        ctx = HostContext(name, "?", "?", (), False, addr, "0.0.0.0/0", (user,))
        out.append(Target(ctx, addr, int(port), user, key, kh))
    return out


def per_assertion(targets: list[Target], checks: list[Any]) -> list[float]:
    """Seconds per check with testinfra's paramiko backend: one remote command per check."""
    import testinfra

    per_check = []
    for t in targets:
        cfg = Path(tempfile.mkdtemp()) / "ssh_config"
        cfg.write_text(
            f"Host {t.address}\n  Port {t.port}\n  User {t.user}\n  IdentityFile {t.key_file}\n"
            f"  UserKnownHostsFile {t.known_hosts}\n  StrictHostKeyChecking yes\n"
        )
        host = testinfra.get_host(f"paramiko://{t.user}@{t.address}:{t.port}", ssh_config=str(cfg), sudo=t.user != "root")
        t0 = time.monotonic()
        for c in checks:
            r = host.run(COMMANDS[c.type])
            assert r.rc in (0, 1, 3, 4), (c.id, r.rc)  # the assertion itself is not what is measured
        per_check.append((time.monotonic() - t0) / len(checks))
    return per_check


def lynis(targets: list[Target]) -> list[float] | None:
    import paramiko

    out = []
    for t in targets:
        c = paramiko.SSHClient()
        c.load_host_keys(t.known_hosts)
        c.set_missing_host_key_policy(paramiko.RejectPolicy())
        c.connect(t.address, t.port, t.user, key_filename=t.key_file, allow_agent=False, look_for_keys=False)
        try:
            si, so, _ = c.exec_command(
                "command -v lynis >/dev/null || exit 127; "
                "lynis audit system --quick --no-colors --no-log --noplugins >/dev/null 2>&1; echo $?"
            )
            si.channel.shutdown_write()  # Lynis must not wait for a key press
            so.channel.settimeout(900)
            t0 = time.monotonic()
            rc = so.read().decode().strip()
            if so.channel.recv_exit_status() == 127 or rc == "":
                return None
            out.append(time.monotonic() - t0)
        finally:
            c.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hosts", type=Path)
    ap.add_argument("--inventory", "-i", type=Path)
    ap.add_argument("--limit", "-l")
    ap.add_argument("-n", type=int, default=100)
    ap.add_argument("--workers", "-w", type=int, default=32)
    ap.add_argument("--sample", type=int, default=3)
    args = ap.parse_args()
    cat = load_catalogue()
    cm = None
    if args.hosts:
        targets, where = hosts_file(args.hosts), str(args.hosts)
    elif args.inventory:
        from dcops.inventory import load

        targets, where = scope(load(args.inventory).inventory, args.limit), str(args.inventory)
    else:
        targets, cm = loopback_targets(args.n, Path(tempfile.mkdtemp(prefix="bench-audit-")))
        where = f"{args.n} x loopback sshd"
    try:
        cpu0, self0, t0 = cpu_total(), resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        got: Collected = collect_all(targets, workers=args.workers, timeout=30, progress=False)
        values = cat.defaults()
        import datetime as dt

        for t in targets:
            evaluate_host(cat, values, t.ctx, got.facts.get(t.ctx.name), got.errors.get(t.ctx.name), [], dt.date.today())
        wall = time.monotonic() - t0
        self1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = cpu_total() - cpu0
        ctl = (self1.ru_utime - self0.ru_utime) + (self1.ru_stime - self0.ru_stime)
        per_host = statistics.median(got.seconds.values()) if got.seconds else float("nan")
        n, k = len(targets), len(cat.checks)
        print(f"scope: {where}; {n} hosts ({len(got.errors)} unreachable), {k} checks, {args.workers} workers")
        print(
            f"dcops audit: wall {wall:.1f} s (reference <= 60 s for 100 hosts x >= 60 checks); "
            f"controller CPU {ctl:.1f} s; machine CPU {cpu:.1f} s; per host median {per_host:.2f} s"
        )
        dcops_per_check = wall / (n * k) if n else float("nan")
        sample = [t for t in targets if t.ctx.name in got.facts][: args.sample]
        pa = per_assertion(sample, cat.checks)
        pa_med = statistics.median(pa)
        print(
            f"per-assertion (testinfra paramiko, {len(sample)} hosts): {pa_med * 1000:.0f} ms per check median; "
            f"dcops {dcops_per_check * 1000:.1f} ms per host x check (wall / checks) -> "
            f"{pa_med / dcops_per_check:.0f}x (reference >= 10x)"
        )
        solo = statistics.median(got.seconds[t.ctx.name] for t in sample) / k
        print(
            f"  per host in the pool (under contention): dcops {solo * 1000:.1f} ms per check"
            f" (one collection / {k} checks) -> {pa_med / solo:.0f}x"
        )
        ly = lynis(sample)
        if ly is None:
            print("lynis: not installed on the audited hosts: n/a")
        else:
            print(
                f"lynis audit system --quick: {statistics.median(ly):.1f} s per host median -> "
                f"{statistics.median(ly) / per_host:.1f}x dcops' per-host time"
            )
    finally:
        if cm is not None:
            cm.__exit__(None, None, None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
