"""Benchmark: mail at the province's size in the lab, and what our mail configuration costs.

Run (as root): .venv/bin/python tests/perf/bench_mail.py [--messages 2000] [--no-cycle]

1. Boots a fresh lab and converges site.yml (skipped with --no-cycle: the lab is up and converged).
2. Delivery throughput, local submission to mailbox, with Postfix's own ``smtp-source`` (on the
   host, to 127.0.0.1:25, 10 sessions, 1 KiB messages): on dc-mail with dcops' configuration
   (postscreen, quota-status policy, OpenDKIM milter, LMTP into Dovecot Maildir with quota) and,
   on dc-web (the same lab host type, nothing of ours on it), Debian's stock Postfix (its packaged
   main.cf: local delivery to an mbox) with stock Dovecot installed beside it. Messages per second =
   N / (time from the first connection until the N-th message is in the mailbox).
3. 3,319 accounts: a copy of inventory/lab whose mail.yml holds the 42 agencies of inventory/yenbai
   with their published mailbox budgets (3,319 accounts, domains moved under the lab's domain),
   secrets in a temporary folder; times the first converge of mail.yml on dc-mail, an idempotent
   re-run, and adding one account (``dcops mail add``) then converging.
At the end the lab's own mail is converged back (or the lab is torn down when it was booted here).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from rich.console import Console

from dcops import DEFAULT_INVENTORY, lab_dir
from dcops.converge import ConvergeResult, converge
from dcops.inventory import load
from dcops.mail import labsecrets

ROOT = Path(__file__).resolve().parents[2]
CODE = "lab"
OURS, STOCK = "dc-mail", "dc-web"


def dcops(*args: str, env: dict[str, str] | None = None) -> str:
    p = subprocess.run([sys.executable, "-c", "from dcops.cli import main; main()", *args], capture_output=True, text=True,
                       timeout=1800, check=False, env={**os.environ, **(env or {})})
    if p.returncode != 0:
        raise SystemExit(f"dcops {' '.join(args)} failed:\n{p.stdout}\n{p.stderr}")
    return p.stdout


def ssh(host: str, cmd: str, timeout: float = 600) -> str:
    p = subprocess.run(["ssh", "-F", str(lab_dir(CODE) / "ssh_config"), host, "sudo", "sh", "-c", shlex.quote(cmd)],
                       capture_output=True, text=True, timeout=timeout, check=False)
    if p.returncode != 0:
        raise SystemExit(f"{host}: {cmd}: rc={p.returncode}\n{p.stdout}\n{p.stderr}")
    return p.stdout


def must(r: ConvergeResult, what: str) -> ConvergeResult:
    if not r.ok:
        raise SystemExit(f"{what} failed: {r.failures} (log {r.log})")
    return r


def throughput(host: str, rcpt: str, count_cmd: str, n: int) -> float:
    """Messages per second from smtp-source's first connection until n more are in the mailbox."""
    before = int(ssh(host, count_cmd).strip() or 0)
    t0 = time.monotonic()
    ssh(host, f"smtp-source -c -s 10 -l 1024 -m {n} -f bench@lab.test -t {rcpt} 127.0.0.1:25 >/dev/null")
    deadline = t0 + 900
    while int(ssh(host, count_cmd).strip() or 0) < before + n:
        if time.monotonic() > deadline:
            raise SystemExit(f"{host}: {n} messages not delivered after 900 s")
        time.sleep(0.2)
    return n / (time.monotonic() - t0)


def stock_setup() -> None:
    """dc-web: Debian's packaged Postfix and Dovecot as installed (stock main.cf), one local user."""
    ssh(STOCK, "id bench >/dev/null 2>&1 || useradd -m bench; : > /var/mail/bench; chown bench:mail /var/mail/bench; "
               "systemctl start postfix.service; systemctl start dovecot.service || true")


def province_sized_inventory(tmp: Path) -> Path:
    """inventory/lab with the 42 yenbai agencies and 3,319 accounts under the lab's domain."""
    inv = tmp / "inventory"
    shutil.copytree(DEFAULT_INVENTORY, inv)
    yb = yaml.safe_load((ROOT / "inventory" / "yenbai" / "mail.yml").read_text())["agencies"]
    agencies = []
    for a in yb:
        sub = a["domain"].split(".")[0]
        agencies.append({
            "name": a["name"], "display_name": a["display_name"], "domain": f"{sub}.lab.test", "site": "dc",
            "mailboxes": a["mailboxes"] + 5, "quota_mb": a["quota_mb"],  # room for the account added below
            "accounts": [{"user": f"u{i:04d}", "display_name": f"Cán bộ {i}"} for i in range(1, a["mailboxes"] + 1)],
        })
    (inv / "mail.yml").write_text(yaml.safe_dump({"agencies": agencies}, allow_unicode=True, sort_keys=False))
    total = sum(len(a["accounts"]) for a in agencies)
    if total != 3319:
        raise SystemExit(f"expected 3,319 accounts from inventory/yenbai, got {total}")
    return inv


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=2000, help="messages per throughput run")
    ap.add_argument("--no-cycle", action="store_true", help="use the lab that is up and converged")
    args = ap.parse_args()
    con = Console(stderr=True)
    if not args.no_cycle:
        con.print("booting a fresh lab and converging site.yml")
        dcops("lab", "down")
        dcops("lab", "up")
        must(converge(DEFAULT_INVENTORY, quiet=True), "site.yml")
    tmp = Path(tempfile.mkdtemp(prefix="dcops-bench-mail-"))
    try:
        con.print(f"throughput: {args.messages} messages, ours ({OURS}) then stock ({STOCK})")
        ours = throughput(OURS, "chutich@lucyen.lab.test",
                          "find /var/vmail/lucyen.lab.test/chutich/Maildir/new /var/vmail/lucyen.lab.test/chutich/Maildir/cur"
                          " -type f | wc -l", args.messages)
        stock_setup()
        stock = throughput(STOCK, "bench@localhost", "grep -c '^From ' /var/mail/bench || true", args.messages)
        ssh(STOCK, "systemctl stop postfix.service dovecot.service || true")

        con.print("3,319 accounts: hashing the passwords and making 42 DKIM keys (not part of the converge)")
        inv = province_sized_inventory(tmp)
        env = {"DCOPS_SECRETS_DIR": str(tmp / "secrets")}
        os.environ.update(env)
        t = time.monotonic()
        labsecrets.ensure(inv, handover=tmp / "passwords.csv")
        prep = time.monotonic() - t
        n_boxes = len(load(inv).inventory.mailboxes())
        first = must(converge(inv, "mail.yml", limit=OURS, quiet=True), "mail.yml with 3,319 accounts")
        rerun = must(converge(inv, "mail.yml", limit=OURS, quiet=True), "re-run")
        t = time.monotonic()
        dcops("mail", "add", "-i", str(inv), "u9999@vpubnd.lab.test", "--name", "Cán bộ mới", "--handover",
              str(tmp / "new.csv"), env=env)
        add_cli = time.monotonic() - t
        added = must(converge(inv, "mail.yml", limit=OURS, quiet=True), "converge after adding one account")
    finally:
        os.environ.pop("DCOPS_SECRETS_DIR", None)
        if args.no_cycle:
            con.print("converging the lab's own mail back")
            must(converge(DEFAULT_INVENTORY, "mail.yml", limit=OURS, quiet=True), "mail.yml (lab)")
        else:
            dcops("lab", "down")
        shutil.rmtree(tmp, ignore_errors=True)

    print()
    print(f"{'delivery, local submission to mailbox':<44}{'dcops':>12}{'stock Debian':>14}{'ratio':>8}")
    print(f"{'messages per second (' + str(args.messages) + ' x 1 KiB, 10 sessions)':<44}{ours:>12.1f}{stock:>14.1f}"
          f"{ours / stock:>8.2f}")
    print()
    print(f"mail.yml on {OURS} with {n_boxes:,} accounts (42 agencies)")
    print(f"{'  passwords hashed + DKIM keys (once, controller)':<52}{prep:>8.1f} s")
    print(f"{'  first converge':<52}{first.seconds:>8.1f} s  changed={first.changed}")
    print(f"{'  idempotent re-run':<52}{rerun.seconds:>8.1f} s  changed={rerun.changed}")
    print(f"{'  add one account: dcops mail add':<52}{add_cli:>8.1f} s")
    print(f"{'  add one account: converge':<52}{added.seconds:>8.1f} s  changed={added.changed}")


if __name__ == "__main__":
    main()
