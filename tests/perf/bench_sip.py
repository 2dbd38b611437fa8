"""Benchmark (issue 13): the videoconf role's Kamailio against Kamailio's stock sample cfg, on loopback.

Run (as root): .venv/bin/python tests/perf/bench_sip.py [--registrations 4000] [--calls 2000] [--repeat 3]

Both Kamailios run on this host, one at a time, on 127.13.0.1:5060, with the same number of
worker processes; sipp (Debian's sip-tester) drives them from 127.13.x.y addresses:

1. **Registrations per second with digest auth**: ``register.xml`` (REGISTER, 401, REGISTER with
   credentials, 200), as fast as the proxy answers (sipp's rate raised until calls queue, at most
   ``--limit`` outstanding); 2 transactions each.
2. **Call setups per second**: ``call-nomedia.xml`` (INVITE, 407, ACK, INVITE with credentials,
   100/180/200, ACK, BYE, 200) to a registered sipp UAS (``uas.xml``); 3 transactions each.
3. **Kamailio CPU per 1,000 transactions**: user + system time of all Kamailio processes
   (/proc/PID/stat of its process group) during each run, per 1,000 SIP transactions.

The role's cfg has every protection on (WITH_AUTH, WITH_NAT, WITH_TLS, WITH_WEBSOCKETS,
WITH_RTPENGINE with rtpengine running, WITH_ANTIFLOOD, WITH_PROM); pike's density is raised to
``--pike-density`` because every request of the benchmark comes from one address. The stock cfg is
``/etc/kamailio/kamailio.cfg`` with ``WITH_AUTH`` defined (as ``-A WITH_AUTH`` would) (auth_db, plaintext passwords, over db_text
instead of MySQL), listening on the same address. Target: the role's rates ≥ 0.8 × the stock's.

4. **rtpengine CPU per relayed call-second**: 20 concurrent calls through the role's Kamailio,
   each playing Debian's bundled ``/usr/share/sip-tester/g711a.pcap`` (G.711 A-law, ~4.7 s) towards
   a UAS echoing it back (``-rtp_echo``), calls held ``--hold`` ms; rtpengine's user + system time /
   (20 × call seconds).

Medians of ``--repeat`` runs are printed beside the stock figures, and beside them the role's cfg
with WITH_RTPENGINE off ("no relay"): every protection on, media not relayed (what the stock cfg does
for calls that are not NATed), to show what relaying every call's media costs the signalling.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.unit import vc_loopback as L

CHILDREN = 8  # the stock cfg's children=
TICK = os.sysconf("SC_CLK_TCK")
FAILED: list[tuple[str, int, int]] = []  # (scenario, failed, run) of every measured run


def cpu_seconds(pgid: int) -> float:
    """User + system time of every live process of process group ``pgid`` (Kamailio's main and children)."""
    total = 0
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            f = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(f[2]) == pgid:  # field 5: pgrp
            total += int(f[11]) + int(f[12])  # utime, stime
    return total / TICK


def stock_cfg(root: Path) -> Path:
    """Debian's stock kamailio.cfg, auth on (auth_db over db_text), listening on the benchmark address."""
    db = root / "stockdb"
    db.mkdir(parents=True, exist_ok=True)
    (db / "version").write_text("id(int,auto) table_name(string) table_version(int)\n0:subscriber:7\n")
    rows = "".join(f"{i}:{a.user}:{L.REALM}:{a.secret}:x:x\n" for i, a in enumerate(L.ACCOUNTS, 1))
    (db / "subscriber").write_text("id(int,auto) username(string) domain(string) password(string) ha1(string) ha1b(string)\n"
                                   + rows)
    text = Path("/etc/kamailio/kamailio.cfg").read_text()
    head = (f'#!KAMAILIO\n#!define WITH_AUTH\n#!define DBURL "text://{db}"\n'
            f"listen=udp:{L.PROXY}:5060\nlisten=tcp:{L.PROXY}:5060\nalias=\"{L.REALM}\"\n")
    text = text.replace("#!KAMAILIO\n", head, 1)
    text = text.replace('loadmodule "tm.so"', 'loadmodule "db_text.so"\nloadmodule "tm.so"', 1)
    text = text.replace('#!ifdef WITH_JSONRPC\nloadmodule "jsonrpcs.so"', '#!ifdef WITH_JSONRPC\nloadmodule "jsonrpcs.so"', 1)
    text += f'\nmodparam("ctl", "binrpc", "unix:{root}/stock_ctl")\n'
    out = root / "stock.cfg"
    out.write_text(text)
    return out


def measure(stack: L.Stack, scenario: str, n: int, transactions: int, limit: int, **kw: object) -> tuple[float, float]:
    """(successful scenarios per second, Kamailio CPU seconds per 1,000 transactions)."""
    pgid = stack.procs["kamailio"].pid
    c0, t0 = cpu_seconds(pgid), time.monotonic()
    r = L.sipp(scenario, calls=n, rate=100000, limit=limit, timeout=600, **kw)  # type: ignore[arg-type]
    dt = time.monotonic() - t0
    c1 = cpu_seconds(pgid)
    ok = _successes(r.stdout)
    if ok < n * 0.95:  # a few scenarios may fail under full load (sipp timing): rates count successes only
        raise SystemExit(f"{stack.root.name}: {scenario}: only {ok} of {n} succeeded:\n{r.stdout[-1500:]}")
    FAILED.append((scenario, n - ok, n))
    return ok / dt, (c1 - c0) / (ok * transactions / 1000)


def _successes(out: str) -> int:
    for line in out.splitlines()[::-1]:
        if line.strip().startswith("Successful call"):
            return int(line.split("|")[2].strip())
    return 0


def register_callee(port: int) -> subprocess.Popen[bytes]:
    r = L.sipp("register", src="127.13.2.5", port=port, user="luc-yen", password="lucyen-secret-2")
    if r.returncode != 0:
        raise SystemExit(f"callee registration failed:\n{r.stdout[-1000:]}")
    return subprocess.Popen(["sipp", "-sf", str(L.SIPP_DIR / "uas.xml"), "-i", "127.13.2.5", "-p", str(port), "-nostdin",
                             "-mi", "127.13.2.5", "-rtp_echo", "-mp", "16400"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def run_kind(kind: str, root: Path, args: argparse.Namespace) -> dict[str, list[float]]:
    switches = {k: True for k in L.kamailio.SWITCHES} | ({"WITH_RTPENGINE": False} if kind == "role-norelay" else {})
    stack = L.Stack(root / kind, rtpengine=kind == "role", switches=switches,
                    extra={"videoconf_children": CHILDREN, "videoconf_pike_density": args.pike_density,
                           "videoconf_max_contacts": 100})
    if kind == "stock":
        (root / kind).mkdir(parents=True, exist_ok=True)
        stack.cfg_path = stock_cfg(root / kind)
    stack.start()
    out: dict[str, list[float]] = {k: [] for k in ("reg_rate", "reg_cpu", "call_rate", "call_cpu")}
    uas = None
    try:
        uas = register_callee(15900)
        time.sleep(0.3)
        for _ in range(args.repeat):
            rate, cpu = measure(stack, "register", args.registrations, 2, args.limit, src="127.13.1.5", user="an-phu",
                                password="anphu-secret-1")
            out["reg_rate"].append(rate)
            out["reg_cpu"].append(cpu)
            rate, cpu = measure(stack, "call-nomedia", args.calls, 3, args.limit, src="127.13.1.6", user="an-phu",
                                password="anphu-secret-1", hold_ms=0)
            out["call_rate"].append(rate)
            out["call_cpu"].append(cpu)
        if kind == "role":
            out["rtp_cpu"] = [media(stack, args) for _ in range(args.repeat)]
    finally:
        if uas is not None:
            os.killpg(uas.pid, 15)
            uas.wait(10)
        stack.stop()
    return out


def media(stack: L.Stack, args: argparse.Namespace) -> float:
    """rtpengine CPU seconds per relayed call-second, 20 concurrent calls with G.711 from the pcap."""
    pid = stack.procs["rtpengine"].pid
    c0, t0 = cpu_seconds(pid), time.monotonic()
    r = L.sipp("call", src="127.13.1.7", user="an-phu", password="anphu-secret-1", calls=20, rate=100, limit=20,
               hold_ms=args.hold, timeout=120, extra=["-mi", "127.13.1.7", "-mp", "17400"])
    dt = time.monotonic() - t0
    c1 = cpu_seconds(pid)
    if _successes(r.stdout) != 20:
        raise SystemExit(f"media calls failed:\n{r.stdout[-1500:]}")
    return (c1 - c0) / (20 * args.hold / 1000) if dt > 0 else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--registrations", type=int, default=4000)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--limit", type=int, default=30, help="outstanding scenarios at most (sipp -l)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--hold", type=int, default=5000, help="media calls' length (ms)")
    ap.add_argument("--pike-density", type=int, default=1000000)
    args = ap.parse_args()
    missing = L.have_tools()
    if missing:
        raise SystemExit(f"needs {missing}")
    root = Path(tempfile.mkdtemp(prefix="dcops-bench-sip-"))
    try:
        stock = run_kind("stock", root, args)
        role = run_kind("role", root, args)
        norelay = run_kind("role-norelay", root, args)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    med = statistics.median
    print(f"\nbench_sip: medians of {args.repeat} runs, {args.registrations} registrations and {args.calls} call setups each,"
          f" {CHILDREN} Kamailio workers, sipp -l {args.limit} on loopback ({os.cpu_count()} CPUs)")
    print(f"{'figure':44} {'role cfg':>12} {'stock cfg':>12} {'ratio':>7}  target     {'role, no relay':>14} {'ratio':>6}")
    rows = [("registrations/s (digest)", "reg_rate", True), ("call setups/s (INVITE/407/200/ACK/BYE)", "call_rate", True),
            ("Kamailio CPU s / 1000 transactions (REGISTER)", "reg_cpu", False),
            ("Kamailio CPU s / 1000 transactions (calls)", "call_cpu", False)]
    for label, key, higher in rows:
        a, b = med(role[key]), med(stock[key])
        ratio = a / b if b else float("nan")
        target = (">= 0.80 " + ("ok" if ratio >= 0.8 else "MISSED")) if higher else ""
        c = med(norelay[key])
        print(f"{label:44} {a:12.3f} {b:12.3f} {ratio:7.2f}  {target:10} {c:14.3f} {c / b if b else float('nan'):6.2f}")
    worst = max(FAILED, key=lambda f: f[1] / f[2])
    print(f"{'failed scenarios (worst run; not counted)':44} {worst[1]:>5} of {worst[2]} ({worst[0]})")
    print(f"{'rtpengine CPU s per relayed call-second':44} {med(role['rtp_cpu']):12.5f} {'-':>12}"
          f"   (20 concurrent calls, g711a.pcap, {args.hold} ms each)")


if __name__ == "__main__":
    main()
