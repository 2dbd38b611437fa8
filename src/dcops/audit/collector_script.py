#!/usr/bin/python3
"""dcops audit fact collector: READ-ONLY, one run per host, prints one JSON document.

Sent over SSH (``sudo -n python3 - ARGS``, the script on stdin) by ``dcops audit run``; runs on
a host's own python3 with the standard library only. It reads files and runs read-only
commands (``sshd -T``, ``ss``, ``nft -j list ruleset``, ``systemctl list-units``, ``chronyc``,
``dpkg-query``, ``apt-helper cat-file``, ``postconf``, ``doveconf``);
it writes nothing. Secrets never leave the host: of /etc/shadow only each account's status
(empty / locked / hash and the hash scheme id) is sent, never a hash; no key is read.
Every section that fails is ``{"_error": reason}``, the others are still collected.

Arguments: ``--textfile-dir DIR`` (node_exporter's textfile folder, for backup recency).
"""

from __future__ import annotations

import contextlib
import glob
import grp
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

VERSION = 1
ENV = {"LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
SYSCTLS = (
    "net.ipv4.ip_forward",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.conf.all.accept_redirects",
    "net.ipv4.conf.default.accept_redirects",
    "net.ipv4.conf.all.secure_redirects",
    "net.ipv4.conf.all.send_redirects",
    "net.ipv4.conf.all.accept_source_route",
    "net.ipv4.conf.all.log_martians",
    "net.ipv4.conf.all.rp_filter",
    "net.ipv4.icmp_echo_ignore_broadcasts",
    "net.ipv6.conf.all.accept_ra",
    "net.ipv6.conf.all.accept_redirects",
    "kernel.randomize_va_space",
    "kernel.kptr_restrict",
    "kernel.dmesg_restrict",
    "fs.suid_dumpable",
    "kernel.yama.ptrace_scope",
)
FILES = (
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/passwd",
    "/etc/group",
    "/etc/ssh/sshd_config",
    "/etc/sudoers",
    "/var/log/auth.log",
    "/etc/crontab",
)
SOURCES: dict[str, str] = {}


def run(cmd: list[str], timeout: float = 30) -> str:
    """A read-only command's stdout; RuntimeError with its stderr when it fails."""
    if shutil.which(cmd[0], path=ENV["PATH"]) is None:
        raise RuntimeError(f"{cmd[0]} not installed")
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=ENV, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}: {(p.stderr or p.stdout).strip()[:300]}")
    return p.stdout


def read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def lines(path: str) -> list[str]:
    try:
        text = read(path)
    except OSError:
        return []
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]


def conf_files(main: str, dropins: str) -> list[str]:
    return [p for p in [main, *sorted(glob.glob(dropins))] if os.path.isfile(p)]


def _int(v: str) -> Any:
    """A decimal number as an int; "022" (a umask, octal) and anything else stay text."""
    return int(v) if re.fullmatch(r"-?(0|[1-9]\d*)", v) else v


# --- sections ---------------------------------------------------------------------------------
def virt() -> Any:
    SOURCES["virt"] = "systemd-detect-virt"
    try:
        return run(["systemd-detect-virt"]).strip()
    except RuntimeError as e:
        if "exited 1" in str(e):
            return "none"
        if os.path.exists("/run/systemd/container"):
            return read("/run/systemd/container").strip()
        return "unknown"


def sshd() -> dict[str, Any]:
    SOURCES["sshd"] = "sshd -T (effective sshd configuration)"
    out: dict[str, Any] = {}
    for ln in run(["sshd", "-T"]).splitlines():
        key, _, value = ln.partition(" ")
        if key in out:
            out[key] = f"{out[key]} {value}"
        else:
            out[key] = value
    return out


def keyvalue(path: str, sep: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for ln in lines(path):
        parts = ln.split(None, 1) if sep is None else [x.strip().strip('"') for x in ln.split(sep, 1)]
        if parts:
            out[parts[0]] = _int(parts[1].strip()) if len(parts) > 1 else True
    return out


def login_defs() -> dict[str, Any]:
    SOURCES["login_defs"] = "/etc/login.defs"
    return keyvalue("/etc/login.defs")


def useradd() -> dict[str, Any]:
    SOURCES["useradd"] = "/etc/default/useradd"
    return {"INACTIVE": -1, **keyvalue("/etc/default/useradd", "=")}  # useradd's default: never


def pwquality() -> dict[str, Any]:
    files = conf_files("/etc/security/pwquality.conf", "/etc/security/pwquality.conf.d/*.conf")
    SOURCES["pwquality"] = ", ".join(files) or "/etc/security/pwquality.conf (absent)"
    out: dict[str, Any] = {"minlen": 8, "minclass": 0}  # libpwquality's defaults
    for f in files:
        out.update(keyvalue(f, "="))
    return out


def _pam_lines(name: str) -> list[list[str]]:
    out = []
    for ln in lines(f"/etc/pam.d/{name}"):
        ln = re.sub(r"\[[^\]]*\]", "control", ln)
        parts = ln.split()
        if len(parts) >= 3:
            out.append(parts)
    return out


def pam() -> dict[str, Any]:
    SOURCES["pam"] = "/etc/pam.d/common-auth, /etc/pam.d/common-password"
    auth = _pam_lines("common-auth")
    password = _pam_lines("common-password")
    return {"auth_modules": [p[2] for p in auth], "password_modules": [p[2] for p in password]}


def faillock() -> dict[str, Any]:
    SOURCES["faillock"] = "/etc/security/faillock.conf and pam_faillock.so arguments in /etc/pam.d/common-auth"
    out: dict[str, Any] = {"deny": 3, "fail_interval": 900, "unlock_time": 600}  # pam_faillock's defaults
    out.update(keyvalue("/etc/security/faillock.conf", "="))
    for p in _pam_lines("common-auth"):
        if p[2] == "pam_faillock.so":
            for arg in p[3:]:
                k, _, v = arg.partition("=")
                if v:
                    out[k] = _int(v)
    return out


def accounts() -> dict[str, Any]:
    SOURCES["accounts"] = "/etc/passwd, /etc/shadow (status only: empty, locked or hash scheme; never the hash)"
    status: dict[str, tuple[str, str | None]] = {}
    for ln in read("/etc/shadow").splitlines():
        f = ln.split(":")
        if len(f) < 2:
            continue
        pw = f[1]
        if pw == "":
            status[f[0]] = ("empty", None)
        elif pw.startswith(("!", "*")):
            status[f[0]] = ("locked", None)
        elif pw.startswith("$"):
            status[f[0]] = ("hash", pw.split("$")[1])
        else:
            status[f[0]] = ("hash", "des")
        del pw
    users = []
    for u in pwd.getpwall():
        st, scheme = status.get(u.pw_name, ("none", None))
        keys = os.path.exists(os.path.join(u.pw_dir, ".ssh", "authorized_keys")) if u.pw_dir else False
        users.append({"name": u.pw_name, "uid": u.pw_uid, "shell": u.pw_shell, "password": st, "scheme": scheme, "keys": keys})
    return {"users": users}


def sockets() -> dict[str, Any]:
    SOURCES["sockets"] = "ss -H -l -n -t -u -p"
    out = []
    for ln in run(["ss", "-H", "-l", "-n", "-t", "-u", "-p"]).splitlines():
        parts = ln.split()
        if len(parts) < 5:
            continue
        local = parts[4]
        addr, _, port = local.rpartition(":")
        m = re.search(r'users:\(\("([^"]+)"', ln)
        if not port.isdigit():
            continue
        out.append({"proto": parts[0], "address": addr, "port": int(port), "process": m.group(1) if m else None})
    return {"listening": out}


def _prefixes(right: Any, sets: dict[str, list[Any]]) -> list[str]:
    if isinstance(right, str):
        if right.startswith("@"):
            return [p for x in sets.get(right[1:], []) for p in _prefixes(x, sets)]
        return [right]
    if isinstance(right, dict):
        if "prefix" in right:
            return [f"{right['prefix']['addr']}/{right['prefix']['len']}"]
        if "set" in right:
            return [p for x in right["set"] for p in _prefixes(x, sets)]
        if "range" in right:
            return [f"{right['range'][0]}-{right['range'][1]}"]
    if isinstance(right, list):
        return [p for x in right for p in _prefixes(x, sets)]
    return [str(right)]


def _has_port(right: Any, port: int, sets: dict[str, list[Any]]) -> bool:
    if isinstance(right, int):
        return right == port
    if isinstance(right, str) and right.startswith("@"):
        return any(_has_port(x, port, sets) for x in sets.get(right[1:], []))
    if isinstance(right, dict):
        if "set" in right:
            return any(_has_port(x, port, sets) for x in right["set"])
        if "range" in right:
            lo, hi = right["range"]
            return isinstance(lo, int) and lo <= port <= hi
    return False


def firewall() -> dict[str, Any]:
    SOURCES["firewall"] = "nft -j list ruleset"
    doc = json.loads(run(["nft", "-j", "list", "ruleset"]))
    chains, sets, rules = [], {}, []
    for item in doc.get("nftables", []):
        if "chain" in item and "hook" in item["chain"]:
            c = item["chain"]
            chains.append(
                {
                    "family": c.get("family"),
                    "table": c.get("table"),
                    "name": c.get("name"),
                    "hook": c.get("hook"),
                    "type": c.get("type"),
                    "policy": c.get("policy"),
                }
            )
        elif "set" in item:
            sets[item["set"]["name"]] = list(item["set"].get("elem", []))
        elif "rule" in item:
            rules.append(item["rule"])
    input_chains = {(c["family"], c["table"], c["name"]) for c in chains if c["hook"] == "input"}
    ssh_sources: list[str] | None = None
    for r in rules:
        # (rules in chains jumped to from input are followed one level: named chains of the same table)
        exprs = r.get("expr", [])
        if not any("accept" in e for e in exprs):
            continue
        port = saddr = False
        srcs: list[str] = []
        for e in exprs:
            m = e.get("match")
            if not m:
                continue
            left = m.get("left", {}).get("payload", {})
            if left.get("field") == "dport" and _has_port(m.get("right"), 22, sets):
                port = True
            if left.get("field") == "saddr":
                saddr = True
                srcs += _prefixes(m.get("right"), sets)
        if port:
            in_input = (r.get("family"), r.get("table"), r.get("chain")) in input_chains or any(
                c[0] == r.get("family") and c[1] == r.get("table") for c in input_chains
            )
            if in_input:
                ssh_sources = (ssh_sources or []) + (srcs if saddr else ["0.0.0.0/0"])
    return {"chains": chains, "ssh_sources": ssh_sources, "rules": len(rules)}


def services() -> dict[str, Any]:
    SOURCES["services"] = "systemctl list-units --type=service --state=active"
    out = run(["systemctl", "list-units", "--type=service", "--state=active", "--no-legend", "--plain", "--no-pager"])
    return {"active": sorted(ln.split()[0] for ln in out.splitlines() if ln.split())}


def chrony() -> dict[str, Any]:
    SOURCES["chrony"] = "chronyc -n tracking; chronyc -n sources"
    if shutil.which("chronyc", path=ENV["PATH"]) is None:
        return {"installed": False, "synchronised": False, "sources": 0, "leap": None}
    try:
        tracking = run(["chronyc", "-n", "tracking"], timeout=10)
        leap = re.search(r"Leap status\s*:\s*(.+)", tracking)
        ref = re.search(r"Reference ID\s*:\s*(\S+)", tracking)
        srcs = [ln for ln in run(["chronyc", "-n", "sources"], timeout=10).splitlines() if ln[:1] in "^=#"]
        synced = bool(leap and leap.group(1).strip() == "Normal" and ref and ref.group(1) != "00000000")
        return {
            "installed": True,
            "synchronised": synced,
            "leap": leap.group(1).strip() if leap else None,
            "reference": ref.group(1) if ref else None,
            "sources": len(srcs),
        }
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        return {"installed": True, "synchronised": False, "sources": 0, "leap": None, "reason": str(e)[:200]}


_UNITS = {
    "s": 1,
    "sec": 1,
    "m": 60,
    "min": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
    "w": 604800,
    "week": 604800,
    "month": 2629800,
    "y": 31557600,
    "year": 31557600,
}


def _seconds(v: str) -> float:
    total = 0.0
    for num, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", v.lower()):
        total += float(num) * _UNITS.get(unit.rstrip("s") if unit not in _UNITS else unit, 1)
    return total


def journald() -> dict[str, Any]:
    files = conf_files("/etc/systemd/journald.conf", "/etc/systemd/journald.conf.d/*.conf")
    SOURCES["journald"] = ", ".join(files) or "journald defaults"
    conf: dict[str, str] = {}
    for f in files:
        for ln in lines(f):
            if "=" in ln and not ln.startswith("["):
                k, _, v = ln.partition("=")
                conf[k.strip()] = v.strip()
    storage = conf.get("Storage", "auto")
    persistent = storage == "persistent" or (storage == "auto" and os.path.isdir("/var/log/journal"))
    retention = _seconds(conf.get("MaxRetentionSec", "0"))
    return {
        "storage": storage,
        "persistent": persistent,
        "max_retention_days": round(retention / 86400, 2),
        "system_max_use": conf.get("SystemMaxUse"),
    }


def rsyslog() -> dict[str, Any]:
    files = conf_files("/etc/rsyslog.conf", "/etc/rsyslog.d/*.conf")
    SOURCES["rsyslog"] = ", ".join(files) or "/etc/rsyslog.conf (absent)"
    text = [ln for f in files for ln in lines(f)]
    auth = any(re.match(r"^(auth,authpriv|authpriv|auth)\.\S*\s+-?/", ln) or re.match(r"^\*\.\*\s+-?/", ln) for ln in text)
    fwd = [ln for ln in text if re.search(r"(^|\s)@@?[\w\[]", ln) or 'type="omfwd"' in ln]
    return {"installed": bool(files), "auth_logged": auth, "forwarding": len(fwd)}


_PERIOD = {"daily": 1, "weekly": 7, "monthly": 30, "yearly": 365}


def logrotate() -> dict[str, Any]:
    SOURCES["logrotate"] = "/etc/logrotate.conf, /etc/logrotate.d/rsyslog"
    glob_period, glob_rotate = 7, 4
    for ln in lines("/etc/logrotate.conf"):
        w = ln.split()
        if w[0] in _PERIOD:
            glob_period = _PERIOD[w[0]]
        elif w[0] == "rotate" and len(w) > 1 and w[1].isdigit():
            glob_rotate = int(w[1])
    blocks = []
    cur: dict[str, Any] | None = None
    for ln in lines("/etc/logrotate.d/rsyslog"):
        if ln.endswith("{"):
            cur = {"files": ln[:-1].split(), "period": glob_period, "rotate": glob_rotate, "maxage": None}
        elif ln == "}" and cur is not None:
            blocks.append(cur)
            cur = None
        elif cur is not None:
            w = ln.split()
            if w[0] in _PERIOD:
                cur["period"] = _PERIOD[w[0]]
            elif w[0] == "rotate" and len(w) > 1 and w[1].isdigit():
                cur["rotate"] = int(w[1])
            elif w[0] == "maxage" and len(w) > 1 and w[1].isdigit():
                cur["maxage"] = int(w[1])
        else:
            files = ln.split()
            if files and files[0].startswith("/"):
                pass
    for b in blocks:
        days = b["rotate"] * b["period"]
        b["retention_days"] = min(days, b["maxage"]) if b["maxage"] else days
    return {"blocks": blocks, "min_retention_days": min((b["retention_days"] for b in blocks), default=None)}


def disk() -> dict[str, Any]:
    SOURCES["disk"] = "statvfs /var/log"
    st = os.statvfs("/var/log")
    return {"var_log_free_ratio": round(st.f_bavail / st.f_blocks, 4) if st.f_blocks else 0.0}


def auditd() -> dict[str, Any]:
    SOURCES["auditd"] = "/etc/audit/rules.d/*.rules"
    return {"rules_files": len(glob.glob("/etc/audit/rules.d/*.rules"))}


def sysctl() -> dict[str, Any]:
    SOURCES["sysctl"] = "/proc/sys"
    out: dict[str, Any] = {}
    for k in SYSCTLS:
        with contextlib.suppress(OSError):
            out[k] = _int(read("/proc/sys/" + k.replace(".", "/")).strip())
    return out


def packages() -> dict[str, Any]:
    SOURCES["packages"] = "dpkg-query -W"
    out = run(["dpkg-query", "-W", "-f", "${Package}\t${Version}\t${db:Status-Abbrev}\n"])
    inst = {}
    for ln in out.splitlines():
        f = ln.split("\t")
        if len(f) == 3 and f[2].startswith("ii"):
            inst[f[0]] = f[1]
    return {"installed": inst, "count": len(inst)}


def _order(c: str) -> int:
    if c == "~":
        return -1
    if c.isalpha():
        return ord(c)
    return ord(c) + 256


def _cmp_part(a: str, b: str) -> int:
    """dpkg's comparison of an upstream version or a revision (alternating non-digits and digits)."""
    while a or b:
        na = re.match(r"[^0-9]*", a).group()  # type: ignore[union-attr]
        nb = re.match(r"[^0-9]*", b).group()  # type: ignore[union-attr]
        for i in range(max(len(na), len(nb))):
            ca = _order(na[i]) if i < len(na) else 0
            cb = _order(nb[i]) if i < len(nb) else 0
            if ca != cb:
                return -1 if ca < cb else 1
        a, b = a[len(na) :], b[len(nb) :]
        da = re.match(r"[0-9]*", a).group()  # type: ignore[union-attr]
        db = re.match(r"[0-9]*", b).group()  # type: ignore[union-attr]
        if int(da or 0) != int(db or 0):
            return -1 if int(da or 0) < int(db or 0) else 1
        a, b = a[len(da) :], b[len(db) :]
    return 0


def version_cmp(a: str, b: str) -> int:
    """Debian version comparison (epoch, upstream, revision), as ``dpkg --compare-versions``."""

    def split(v: str) -> tuple[int, str, str]:
        epoch, _, rest = v.rpartition(":") if ":" in v else ("0", "", v)
        up, _, rev = rest.rpartition("-") if "-" in rest else (rest, "", "0")
        return int(epoch or 0), up, rev

    ea, ua, ra = split(a)
    eb, ub, rb = split(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _cmp_part(ua, ub) or _cmp_part(ra, rb)


def updates(installed: dict[str, str]) -> dict[str, Any]:
    """Security updates pending: installed packages with a newer version in a security archive's index.

    (Reads the security indexes only, through ``apt-helper cat-file`` for compressed ones: a full
    ``apt-get -s dist-upgrade`` costs seconds of CPU per host on large lists.)"""
    lists = [p for p in glob.glob("/var/lib/apt/lists/*security*_Packages*") if not p.endswith(".diff_Index")]
    SOURCES["updates"] = "security package indexes in /var/lib/apt/lists (compared with dpkg's installed versions)"
    best: dict[str, str] = {}
    for p in lists:
        text = read(p) if p.endswith("_Packages") else run(["/usr/lib/apt/apt-helper", "cat-file", p], timeout=60)
        name = None
        for ln in text.splitlines():
            if ln.startswith("Package: "):
                name = ln[9:].strip()
            elif ln.startswith("Version: ") and name in installed:
                v = ln[9:].strip()
                if name not in best or version_cmp(v, best[name]) > 0:
                    best[name] = v
    pending = [
        {"package": n, "installed": installed[n], "version": v, "security": True}
        for n, v in sorted(best.items())
        if version_cmp(v, installed[n]) > 0
    ]
    return {"pending": pending, "indexes": len(lists)}


def apt() -> dict[str, Any]:
    SOURCES["apt"] = "/etc/apt/sources.list*, /var/lib/apt/lists, apt-config dump"
    lists = glob.glob("/var/lib/apt/lists/*Release")
    age = round((time.time() - max(os.path.getmtime(p) for p in lists)) / 86400, 2) if lists else None
    unsigned = 0
    for f in ["/etc/apt/sources.list", *glob.glob("/etc/apt/sources.list.d/*")]:
        for ln in lines(f):
            low = ln.lower().replace(" ", "")
            if "trusted=yes" in low or "allow-insecure=yes" in low or "trusted:yes" in low:
                unsigned += 1
    dump = run(["apt-config", "dump"])

    def conf(key: str) -> str | None:
        m = re.search(rf'^{re.escape(key)} "([^"]*)";', dump, re.M)
        return m.group(1) if m else None

    unauth = (conf("APT::Get::AllowUnauthenticated") or "false").lower() in ("1", "true", "yes")
    uu = os.path.exists("/usr/bin/unattended-upgrade") and conf("APT::Periodic::Unattended-Upgrade") not in (None, "0")
    return {"lists_age_days": age, "unsigned_sources": unsigned, "allow_unauthenticated": unauth, "unattended_upgrade": uu}


def aide() -> dict[str, Any]:
    SOURCES["aide"] = "/var/lib/aide, /etc/cron.daily/aide, dailyaidecheck.timer"
    db = any(os.path.exists(p) for p in ("/var/lib/aide/aide.db", "/var/lib/aide/aide.db.gz"))
    timer = glob.glob("/etc/systemd/system/*.wants/dailyaidecheck.timer")
    return {
        "installed": os.path.exists("/usr/bin/aide"),
        "database": db,
        "scheduled": bool(timer) or (os.path.exists("/etc/cron.daily/aide") and bool(lines("/etc/cron.daily/aide"))),
    }


def clamav() -> dict[str, Any]:
    SOURCES["clamav"] = "/var/lib/clamav/*.cvd, *.cld (signature database files)"
    dbs = glob.glob("/var/lib/clamav/*.cvd") + glob.glob("/var/lib/clamav/*.cld")
    age = round((time.time() - max(os.path.getmtime(p) for p in dbs)) / 86400, 2) if dbs else None
    return {"installed": os.path.exists("/usr/bin/clamscan") or os.path.exists("/usr/sbin/clamd"), "signature_age_days": age}


def tls() -> dict[str, Any]:
    SOURCES["tls"] = "postconf -h; doveconf -h"
    out: dict[str, Any] = {
        "postfix": shutil.which("postconf", path=ENV["PATH"]) is not None and os.path.exists("/etc/postfix/main.cf"),
        "dovecot": shutil.which("doveconf", path=ENV["PATH"]) is not None,
    }
    if out["postfix"]:
        level, protos = run(["postconf", "-h", "smtpd_tls_security_level", "smtpd_tls_protocols"]).splitlines()[:2]
        out["postfix_smtpd_security_level"] = level.strip()
        p = protos.replace(" ", "")
        out["postfix_smtpd_tls_protocols"] = protos.strip()
        out["postfix_min_protocol_ok"] = (
            p.startswith(">=TLSv1.2")
            or p.startswith(">=TLSv1.3")
            or all(f"!{x}" in p for x in ("SSLv2", "SSLv3", "TLSv1", "TLSv1.1"))
        )
    if out["dovecot"]:
        vals = run(["doveconf", "-h", "ssl", "disable_plaintext_auth"]).splitlines()
        out["dovecot_ssl"] = vals[0].strip() if vals else None
        out["dovecot_disable_plaintext_auth"] = vals[1].strip() if len(vals) > 1 else None
    return out


def backup(textfile_dir: str) -> dict[str, Any]:
    SOURCES["backup"] = f"{textfile_dir}/*.prom (*backup*last_success_timestamp_seconds)"
    stamps = []
    for f in glob.glob(os.path.join(textfile_dir, "*.prom")):
        for ln in lines(f):
            m = re.match(r"^(\w*backup\w*last_success_timestamp_seconds)(\{[^}]*\})?\s+(\S+)", ln)
            if m:
                stamps.append(float(m.group(3)))
    if not stamps:
        return {"present": False, "last_success_age_hours": None}
    last = max(stamps)
    return {"present": True, "last_success_age_hours": round((time.time() - last) / 3600, 2) if last > 0 else None}


def shell() -> dict[str, Any]:
    files = [p for p in ["/etc/profile", "/etc/bash.bashrc", *sorted(glob.glob("/etc/profile.d/*.sh"))] if os.path.isfile(p)]
    SOURCES["shell"] = "TMOUT in " + ", ".join(files)
    vals = [int(m.group(1)) for f in files for ln in lines(f) for m in [re.search(r"\bTMOUT=(\d+)", ln)] if m]
    return {"tmout": min(vals) if vals else None}


def files() -> dict[str, Any]:
    SOURCES["files"] = "stat"
    out = {}
    for p in FILES:
        try:
            st = os.stat(p)
        except OSError:
            continue
        try:
            owner = pwd.getpwuid(st.st_uid).pw_name
        except KeyError:
            owner = str(st.st_uid)
        try:
            group = grp.getgrgid(st.st_gid).gr_name
        except KeyError:
            group = str(st.st_gid)
        out[p] = {"mode": st.st_mode & 0o7777, "owner": owner, "group": group}
    return out


def main(argv: list[str]) -> int:
    textfile_dir = "/var/lib/prometheus/node-exporter"
    if "--textfile-dir" in argv:
        textfile_dir = argv[argv.index("--textfile-dir") + 1]
    started = time.time()
    facts: dict[str, Any] = {}
    sections: dict[str, Callable[[], Any]] = {
        "virt": virt,
        "sshd": sshd,
        "login_defs": login_defs,
        "useradd": useradd,
        "pwquality": pwquality,
        "pam": pam,
        "faillock": faillock,
        "accounts": accounts,
        "sockets": sockets,
        "firewall": firewall,
        "services": services,
        "chrony": chrony,
        "journald": journald,
        "rsyslog": rsyslog,
        "logrotate": logrotate,
        "disk": disk,
        "auditd": auditd,
        "sysctl": sysctl,
        "packages": packages,
        "apt": apt,
        "aide": aide,
        "clamav": clamav,
        "tls": tls,
        "backup": lambda: backup(textfile_dir),
        "shell": shell,
        "files": files,
    }
    for name, fn in sections.items():
        try:
            facts[name] = fn()
        except Exception as e:  # one section's failure is that section's error, the others go on
            facts[name] = {"_error": f"{type(e).__name__}: {e}"[:400]}
    pk = facts.get("packages", {})
    try:
        if "_error" in pk:
            raise RuntimeError(f"no package list: {pk['_error']}")
        facts["updates"] = updates(pk["installed"])
    except Exception as e:
        facts["updates"] = {"_error": f"{type(e).__name__}: {e}"[:400]}
    facts["_sources"] = SOURCES
    facts["_host"] = {
        "hostname": os.uname().nodename,
        "collector": VERSION,
        "time": started,
        "seconds": round(time.time() - started, 3),
        "euid": os.geteuid(),
    }
    json.dump(facts, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
