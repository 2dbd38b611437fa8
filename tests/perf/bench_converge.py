"""Benchmark: converge base.yml over inventory/lab with dcops' ansible.cfg versus stock settings.

Run (as root; boots and tears down the lab twice): .venv/bin/python tests/perf/bench_converge.py
base.yml is the site playbook of issue 4 (baseline, firewall, data network on every host);
``--playbook site.yml`` measures the whole province (with DNS, mail and monitoring).
The re-run is repeated (``--reruns``, default 3) and its median reported: these machines are noisy.
Another lab province: ``-i /path/to/inventory`` (give it its own fact cache with
``ANSIBLE_CACHE_PLUGIN_CONNECTION=/some/dir`` when its host names are the lab's).

For each configuration it boots a fresh lab, times the first converge and an idempotent
re-run, then tears the lab down. "dcops" is playbooks/ansible.cfg (pipelining, 20 forks,
SSH ControlPersist, smart gathering with a fact cache); "stock" is Ansible's defaults
(pipelining off, 5 forks, facts gathered by every play, no fact cache). Both run the same
playbooks with the same inventory plugin. Targets: re-run <= 60 s and >= 2x faster than stock.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console

from dcops import DEFAULT_INVENTORY
from dcops.converge import ConvergeResult, converge
from dcops.inventory import load

ROOT = Path(__file__).resolve().parents[2]
RERUN_TARGET_S = 60.0
SPEEDUP_TARGET = 2.0
#: Stock Ansible settings (the benchmark's baseline): only what reading the inventory needs.
STOCK_CFG = """\
[defaults]
inventory_plugins = {plugins}
forks = 5
gathering = implicit
fact_caching = memory
host_key_checking = true
retry_files_enabled = false
interpreter_python = auto_silent

[inventory]
enable_plugins = dcops_province, ansible.builtin.host_list, ansible.builtin.ini
unparsed_is_failed = true

[ssh_connection]
pipelining = false
"""




def stock_config() -> Path:
    """An ansible.cfg with stock settings (pipelining off, 5 forks, no fact cache), in a temporary file."""
    fd, name = tempfile.mkstemp(prefix="dcops-stock-", suffix=".cfg")
    with os.fdopen(fd, "w") as f:
        f.write(STOCK_CFG.format(plugins=ROOT / "src" / "dcops" / "ansible_plugins" / "inventory"))
    return Path(name)


FACT_CACHE = Path(os.environ.get("ANSIBLE_CACHE_PLUGIN_CONNECTION") or "~/.cache/dcops/ansible-facts").expanduser()


def dcops(*args: str) -> None:
    p = subprocess.run(
        [sys.executable, "-c", "from dcops.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if p.returncode != 0:
        raise SystemExit(f"dcops {' '.join(args)} failed:\n{p.stdout}\n{p.stderr}")


def clear_fact_cache(hosts: list[str]) -> None:
    """Forget cached facts of the lab's hosts (and only theirs): a first converge starts cold."""
    for h in hosts:
        for name in (h, f"s1_{h}"):  # jsonfile cache files may carry a prefix
            (FACT_CACHE / name).unlink(missing_ok=True)


def run_pair(
    label: str, stock: bool, hosts: list[str], cycle: bool, con: Console, inventory: Path, playbook: str, reruns: int
) -> tuple[ConvergeResult, ConvergeResult]:
    if cycle:
        con.print(f"[{label}] booting a fresh lab", markup=False)
        dcops("lab", "down", "-i", str(inventory))
        dcops("lab", "up", "-i", str(inventory))
    config = stock_config() if stock else None
    try:
        clear_fact_cache(hosts)
        first = converge(inventory, playbook, config=config, console=con, quiet=True)
        con.print(f"[{label}] first converge: {first.seconds:.1f} s, changed={first.changed}, ok={first.ok}", markup=False)
        runs = []
        for _ in range(reruns):
            r = converge(inventory, playbook, config=config, console=con, quiet=True)
            con.print(f"[{label}] re-run: {r.seconds:.1f} s, changed={r.changed}, ok={r.ok}", markup=False)
            runs.append(r)
        rerun = sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]  # the median run
        return first, rerun
    finally:
        if config is not None:
            config.unlink(missing_ok=True)
        if cycle:
            dcops("lab", "down", "-i", str(inventory))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--no-cycle", action="store_true", help="use the lab that is already up (no fresh boot: 'first' is then not from fresh)"
    )
    ap.add_argument("-i", "--inventory", type=Path, default=DEFAULT_INVENTORY, help="lab province (default: inventory/lab)")
    ap.add_argument("-p", "--playbook", default="base.yml", help="playbook under playbooks/ (default: base.yml)")
    ap.add_argument("--reruns", type=int, default=3, help="idempotent re-runs per configuration (median reported)")
    args = ap.parse_args()
    con = Console()
    inv = load(args.inventory).inventory
    hosts = sorted(h.name for _, h in inv.hosts())
    cycle = not args.no_cycle
    ours = run_pair("dcops", False, hosts, cycle, con, args.inventory, args.playbook, args.reruns)
    stock = run_pair("stock", True, hosts, cycle, con, args.inventory, args.playbook, args.reruns)
    print()
    head = f"converge {args.playbook} over {args.inventory.name}"
    print(f"{head:<38}{'dcops cfg':>12}{'stock':>12}{'speed-up':>10}   target")
    for i, name in enumerate(("first converge (fresh lab)", f"idempotent re-run (median of {args.reruns})")):
        a, b = ours[i].seconds, stock[i].seconds
        tgt = f"<= {RERUN_TARGET_S:.0f} s, >= {SPEEDUP_TARGET:.0f}x" if i == 1 else ""
        print(f"{name:<38}{a:>11.1f}s{b:>11.1f}s{b / a:>9.1f}x   {tgt}")
    print(f"{'changed on re-run':<38}{ours[1].changed:>12}{stock[1].changed:>12}")
    met = ours[1].seconds <= RERUN_TARGET_S and stock[1].seconds / ours[1].seconds >= SPEEDUP_TARGET
    ok = all(r.ok for r in (*ours, *stock))
    print(f"targets {'MET' if met else 'MISSED'}; all runs {'succeeded' if ok else 'had FAILURES'}")


if __name__ == "__main__":
    main()
