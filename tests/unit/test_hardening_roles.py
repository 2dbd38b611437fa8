"""The level-3 hardening the compliance audit checks (issue 15): baseline's account, PAM, shell,
journald, logrotate and APT controls, the integrity role (AIDE) and the malware role (ClamAV).

Without a lab: the thresholds of the roles are the catalogue's; the files the roles render for a
lab host, read back by the audit's own collector (its sections pointed at a scratch root) and
judged by the catalogue's own checks, pass; the PAM stack is the one pam-auth-update really
builds from the profiles; every configuration passes the validator the role installs it with
(aide --config-check, clamconf, logrotate, apt-config, sh -n, systemd-analyze); the lab's
signature database makes clamscan and a clamd running the role's clamd.conf detect EICAR; the
AIDE database script makes a database that `aide --check` compares with. What needs a booted
host (units running, the converge itself, a second converge changing nothing) is the lab's:
tests/lab/test_audit.py.
"""

from __future__ import annotations

import datetime as dt
import grp
import os
import pwd
import re
import shutil
import socket
import struct
import subprocess
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from dcops.audit import collector_script as cs
from dcops.audit.catalogue import Catalogue, load_catalogue
from dcops.audit.checks import HostContext
from dcops.audit.evaluate import evaluate_host
from dcops.lab.image import read_packages
from tests.conftest import ROOT
from tests.unit.role_render import ROLES, RoleRender

TODAY = dt.date(2026, 12, 2)
# The EICAR test file, in two pieces so that no file of the repository is the test file itself.
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS" + b"-TEST-FILE!$H+H*"
#: Debian 12's libpam-pwquality profile (used when this machine has none in /usr/share/pam-configs).
PWQUALITY_PROFILE = """Name: Pwquality password strength checking
Default: yes
Priority: 1024
Conflicts: cracklib
Password-Type: Primary
Password:
\trequisite\t\t\tpam_pwquality.so retry=3
Password-Initial:
\trequisite\t\t\tpam_pwquality.so retry=3
"""
#: The checks the baseline files below decide (the others need a running host).
BASELINE_CHECKS = {
    "auth.login-defs-encrypt-method",
    "auth.password-max-days",
    "auth.password-min-days",
    "auth.password-warn-age",
    "auth.pam-pwquality",
    "auth.password-min-length",
    "auth.password-min-classes",
    "auth.pam-faillock",
    "auth.lockout-attempts",
    "auth.lockout-window",
    "auth.lockout-duration",
    "access.shell-tmout",
    "access.umask",
    "ips.account-inactive-lock",
    "log.journald-persistent",
    "log.journald-retention",
    "log.logrotate-retention",
    "mal.apt-sources-signed",
    "mal.apt-no-unauthenticated",
}


@pytest.fixture(scope="module")
def cat() -> Catalogue:
    return load_catalogue()


def _defaults(role: str) -> dict[str, Any]:
    data = yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


# --- one place for the thresholds --------------------------------------------------------------
def test_baseline_thresholds_are_the_catalogues(cat: Catalogue) -> None:
    """The baseline's defaults are the catalogue's threshold defaults (equal where the role sets
    the very value the check compares; satisfying it where the role sets a part of it)."""
    t = cat.defaults()
    b = _defaults("baseline")
    ld = b["baseline_login_defs"]
    equal = {
        "baseline_pwquality_minlen": (b["baseline_pwquality_minlen"], t["password_min_length"]),
        "baseline_pwquality_minclass": (b["baseline_pwquality_minclass"], t["password_min_classes"]),
        "baseline_login_defs.PASS_MAX_DAYS": (ld["PASS_MAX_DAYS"], t["password_max_days"]),
        "baseline_login_defs.PASS_MIN_DAYS": (ld["PASS_MIN_DAYS"], t["password_min_days"]),
        "baseline_login_defs.PASS_WARN_AGE": (ld["PASS_WARN_AGE"], t["password_warn_days"]),
        "baseline_faillock_deny": (b["baseline_faillock_deny"], t["lockout_attempts"]),
        "baseline_faillock_fail_interval": (b["baseline_faillock_fail_interval"], t["lockout_window_seconds"]),
        "baseline_faillock_unlock_time": (b["baseline_faillock_unlock_time"], t["lockout_duration_seconds"]),
        "baseline_useradd_inactive": (b["baseline_useradd_inactive"], t["account_inactive_days"]),
        "baseline_shell_tmout": (b["baseline_shell_tmout"], t["idle_timeout_seconds"]),
        "baseline_log_retention_days": (b["baseline_log_retention_days"], t["log_retention_days"]),
    }
    wrong = [f"{name} = {mine!r}, the catalogue says {theirs!r}" for name, (mine, theirs) in equal.items() if mine != theirs]
    assert not wrong, "\n".join(wrong)
    assert ld["ENCRYPT_METHOD"] in t["password_hash_methods"]
    assert set(t["insecure_server_packages"]) | set(t["insecure_client_packages"]) <= set(b["baseline_remove_packages"])
    # journald never deletes sooner than the retention; logrotate keeps whole weeks covering it
    retention = cs._seconds(str(b["baseline_journald_max_retention"])) / 86400
    assert retention == 0 or retention >= t["log_retention_days"]
    assert ((b["baseline_log_retention_days"] + 6) // 7) * 7 >= t["log_retention_days"]
    # the SSH settings the role already had stay within the catalogue's limits
    assert b["baseline_ssh_max_auth_tries"] <= t["ssh_max_auth_tries"]
    assert b["baseline_ssh_login_grace_time"] <= t["ssh_login_grace_seconds"]
    assert b["baseline_ssh_client_alive_interval"] * b["baseline_ssh_client_alive_count_max"] <= t["idle_timeout_seconds"]


def test_remediations_of_the_new_controls_name_these_roles(cat: Catalogue) -> None:
    by = {c.id: (c.remediation.role, c.remediation.variable) for c in cat.checks}
    assert by["data.fim-installed"] == ("integrity", "integrity_enabled")
    assert by["data.fim-scheduled"] == ("integrity", "integrity_schedule")
    assert by["mal.scanner-running"] == ("malware", "malware_enabled")
    assert by["mal.signatures-fresh"] == ("malware", "malware_freshclam_enabled")
    assert by["auth.pam-faillock"] == ("baseline", "baseline_faillock_enabled")
    assert not [c.id for c in cat.checks if c.remediation.planned]


# --- the lab image has every package a role installs -------------------------------------------
def test_every_role_package_is_in_the_lab_image() -> None:
    """Lab hosts have no internet: every package list a role installs (its `*_packages`
    defaults) is in src/dcops/lab/image-packages.txt."""
    pkgs = read_packages()
    image = set(pkgs.base) | set(pkgs.roles)
    missing = []
    seen = 0
    for defaults in sorted(ROLES.glob("*/defaults/main.yml")):
        data = yaml.safe_load(defaults.read_text(encoding="utf-8")) or {}
        for name, value in data.items():
            if name.endswith("_packages") and isinstance(value, list) and "_remove_" not in name:
                seen += 1
                missing += [f"{defaults.parent.parent.name}: {name}: {p}" for p in value if p not in image]
    assert seen >= 10
    assert not missing, "not in the lab image:\n" + "\n".join(missing)
    for unit in ("clamav-daemon.service", "clamav-freshclam.service", "dailyaidecheck.timer"):
        assert unit in pkgs.disabled, f"{unit} would run on every lab host"


# --- probe scripts ------------------------------------------------------------------------------
def _probe_script(role: str, host: str, **extra: Any) -> str:
    from ansible.template import trust_as_template

    tasks = yaml.safe_load((ROLES / role / "tasks" / "main.yml").read_text(encoding="utf-8"))
    probe = next(t for t in tasks if "dcops_probe" in t)
    r = RoleRender(role, host, extra=extra)
    return str(r.templar().template(trust_as_template(probe["dcops_probe"]["script"])))


@pytest.mark.parametrize(
    ("role", "host"), [("baseline", "dc-core"), ("baseline", "an-phu"), ("integrity", "dc-web"), ("malware", "dc-mail")]
)
def test_probe_scripts_render_to_valid_bash(role: str, host: str) -> None:
    script = _probe_script(role, host)
    p = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True, check=False)
    assert p.returncode == 0, p.stderr + script


def test_baseline_probe_finds_account_defaults_pam_packages_and_trust_overrides(tmp_path: Path) -> None:
    """The baseline probe's checks of login.defs, useradd, the PAM stack and the APT sources,
    run on a scratch copy of those files (paths rewritten): differs on Debian's defaults,
    silent on the files as the role leaves them."""
    script = _probe_script("baseline", "dc-core", baseline_admins=[], baseline_sysctl_enabled=False, baseline_remove_packages=[])
    body = script[script.index('[ "$(awk') :]
    root = tmp_path / "r"
    for d in ("etc/default", "etc/pam.d", "etc/apt/sources.list.d"):
        (root / d).mkdir(parents=True)
    (root / "etc/login.defs").write_text(
        "PASS_MAX_DAYS\t99999\nPASS_MIN_DAYS\t0\nPASS_WARN_AGE\t7\nENCRYPT_METHOD SHA512\nUMASK\t\t022\n"
    )
    (root / "etc/default/useradd").write_text("SHELL=/bin/sh\n# INACTIVE=-1\n")
    (root / "etc/pam.d/common-auth").write_text("auth\t[success=1 default=ignore]\tpam_unix.so nullok\n# pam_faillock.so\n")
    (root / "etc/pam.d/common-account").write_text("account\t[success=1 new_authtok_reqd=done default=ignore]\tpam_unix.so\n")
    (root / "etc/pam.d/common-password").write_text("password\trequisite\t\t\tpam_pwquality.so retry=3\n")
    (root / "etc/apt/sources.list.d/local.list").write_text("deb [ trusted=yes ] http://mirror.example/debian bookworm main\n")
    (root / "etc/apt/sources.list.d/ok.sources").write_text("Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\n")
    local = body.replace("/etc/", f"{root}/etc/")

    def differs() -> set[str]:
        p = subprocess.run(["bash", "-c", local], capture_output=True, text=True, check=False)
        return {ln for ln in p.stdout.splitlines() if ln.startswith("differs ")}

    assert differs() == {
        "differs login.defs PASS_MAX_DAYS",
        "differs login.defs PASS_MIN_DAYS",
        "differs login.defs ENCRYPT_METHOD",
        "differs login.defs UMASK",
        "differs useradd INACTIVE",
        "differs pam common-auth pam_faillock.so",
        "differs pam common-account pam_faillock.so",
        f"differs apt source {root}/etc/apt/sources.list.d/local.list",
    }
    r = RoleRender("baseline", "dc-core")
    text = (root / "etc/login.defs").read_text()
    for key, value in r.value("baseline_login_defs").items():
        text = _lineinfile(text, rf"^\s*{key}\s", f"{key}\t{value}")
    (root / "etc/login.defs").write_text(text)
    (root / "etc/default/useradd").write_text(
        _lineinfile((root / "etc/default/useradd").read_text(), r"^\s*INACTIVE=", "INACTIVE=35")
    )
    (root / "etc/pam.d/common-auth").write_text("auth\trequisite\tpam_faillock.so preauth\n")
    (root / "etc/pam.d/common-account").write_text("account\trequired\tpam_faillock.so \n")
    src = root / "etc/apt/sources.list.d/local.list"
    src.write_text(_apt_fixed(r, src.read_text()))
    assert src.read_text() == "deb http://mirror.example/debian bookworm main\n"
    assert differs() == set()


def _lineinfile(text: str, regexp: str, line: str) -> str:
    """What ansible.builtin.lineinfile does with regexp and line: the last match replaced, else appended."""
    lines = text.splitlines()
    hits = [i for i, ln in enumerate(lines) if re.search(regexp, ln)]
    if hits:
        lines[hits[-1]] = line
    else:
        lines.append(line)
    return "\n".join(lines) + "\n"


def _apt_fixed(r: RoleRender, text: str) -> str:
    """The role's trust-override fixes (baseline__apt_trust_fixes) as ansible.builtin.replace applies them."""
    for fix in r.value("baseline__apt_trust_fixes"):
        text = re.compile(fix["regexp"], re.MULTILINE).sub(fix["replace"], text)
    return text


def test_apt_trust_fixes_on_one_line_and_deb822_sources() -> None:
    r = RoleRender("baseline", "dc-core")
    one = "deb [arch=amd64 trusted=yes] http://m/debian bookworm main\ndeb [allow-insecure=yes] http://n/debian bookworm main\n"
    assert _apt_fixed(r, one) == "deb [arch=amd64] http://m/debian bookworm main\ndeb http://n/debian bookworm main\n"
    deb822 = "Types: deb\nURIs: http://m/debian\nTrusted: yes\nSuites: bookworm\nAllow-Insecure: yes\nComponents: main\n"
    assert _apt_fixed(r, deb822) == "Types: deb\nURIs: http://m/debian\nSuites: bookworm\nComponents: main\n"


# --- the files as a converge leaves them, judged by the audit ---------------------------------
def _pam_auth_update(root: Path, profiles: dict[str, str], enable: list[str]) -> None:
    """pam-auth-update on a scratch root, its debconf answers in a scratch database: first
    Debian's stack as a fresh host has it (unix, pwquality), then the role's command."""
    if shutil.which("pam-auth-update") is None:
        pytest.skip("pam-auth-update (libpam-runtime) not installed")
    configs = root / "usr/share/pam-configs"
    configs.mkdir(parents=True)
    (root / "etc/pam.d").mkdir(parents=True)
    (root / "var/lib/pam").mkdir(parents=True)
    shutil.copy("/usr/share/pam-configs/unix", configs / "unix")
    system = Path("/usr/share/pam-configs/pwquality")
    (configs / "pwquality").write_text(system.read_text() if system.exists() else PWQUALITY_PROFILE)
    dc = root / "debconf"
    dc.mkdir()
    shutil.copy("/var/cache/debconf/templates.dat", dc / "templates.dat")
    (dc / "config.dat").write_text("")
    (dc / "debconf.conf").write_text(
        "Config: configdb\nTemplates: templatedb\n\n"
        f"Name: configdb\nDriver: File\nFilename: {dc}/config.dat\n\n"
        f"Name: templatedb\nDriver: File\nMode: 644\nFilename: {dc}/templates.dat\n"
    )
    env = {**os.environ, "DEBCONF_SYSTEMRC": str(dc / "debconf.conf"), "DEBIAN_FRONTEND": "noninteractive"}
    base = ["pam-auth-update", "--root", str(root), "--package"]
    subprocess.run([*base, "--force"], env=env, check=True, capture_output=True, timeout=60)
    for name, text in profiles.items():
        (configs / name).write_text(text)
    p = subprocess.run([*base, "--enable", *enable], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert p.returncode == 0 and "Local modifications" not in p.stderr, p.stderr


@pytest.fixture
def rooted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """The collector's file reads pointed at ``tmp_path / "root"`` (its commands are not used)."""
    root = tmp_path / "root"
    root.mkdir()
    r = str(root)
    real_read, real_glob, real_os = cs.read, cs.glob, cs.os

    class _Path(types.SimpleNamespace):
        def __getattr__(self, name: str) -> Any:
            return getattr(real_os.path, name)

    path = _Path(
        isfile=lambda p: real_os.path.isfile(r + p),
        isdir=lambda p: real_os.path.isdir(r + p),
        exists=lambda p: real_os.path.exists(r + p),
    )

    class _Os(types.SimpleNamespace):
        def __getattr__(self, name: str) -> Any:
            return getattr(real_os, name)

    monkeypatch.setattr(cs, "read", lambda p: real_read(r + p))
    monkeypatch.setattr(cs, "glob", types.SimpleNamespace(glob=lambda pat: [p[len(r) :] for p in real_glob.glob(r + pat)]))
    monkeypatch.setattr(cs, "os", _Os(path=path))
    monkeypatch.setattr(cs, "SOURCES", {})
    yield root


def _write(root: Path, dest: str, text: str) -> None:
    f = root / dest.lstrip("/")
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(text)


def _converged_root(root: Path, host: str) -> RoleRender:
    """The baseline's files of ``host`` under ``root``: its templates, Debian's login.defs and
    useradd with the role's lines, the PAM stack pam-auth-update makes from the profiles."""
    r = RoleRender("baseline", host)
    files = r.files("baseline__files")
    for dest in (
        "/etc/profile.d/dcops-tmout.sh",
        "/etc/security/pwquality.conf.d/50-dcops.conf",
        "/etc/security/faillock.conf",
        "/etc/systemd/journald.conf.d/50-dcops.conf",
        "/etc/logrotate.d/rsyslog",
        "/etc/apt/apt.conf.d/99dcops-signed-only",
    ):
        _write(root, dest, r.render(files[dest]["template"], dest))
    _write(root, "/etc/security/pwquality.conf", "# minlen = 8\n")
    debian = Path("/etc/login.defs").read_text() if Path("/etc/login.defs").exists() else "PASS_MAX_DAYS\t99999\nUMASK\t\t022\n"
    for key, value in r.value("baseline_login_defs").items():
        debian = _lineinfile(debian, rf"^\s*{key}\s", f"{key}\t{value}")
    _write(root, "/etc/login.defs", debian)
    _write(
        root,
        "/etc/default/useradd",
        _lineinfile("SHELL=/bin/sh\n# INACTIVE=-1\n", r"^\s*INACTIVE=", f"INACTIVE={r.value('baseline_useradd_inactive')}"),
    )
    _write(
        root,
        "/etc/apt/sources.list.d/debian.sources",
        "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\n",
    )
    profiles = {Path(d).name: r.render(files[d]["template"], d) for d in files if d.startswith("/usr/share/pam-configs/")}
    _pam_auth_update(root, profiles, list(r.value("baseline__pam_profiles")))
    return r


def _facts() -> dict[str, Any]:
    facts = {
        name: getattr(cs, name)()
        for name in ("login_defs", "useradd", "pwquality", "pam", "faillock", "journald", "logrotate", "shell")
    }
    facts["_sources"] = dict(cs.SOURCES)
    return facts


def _judge(cat: Catalogue, facts: dict[str, Any], host: str = "dc-core") -> dict[str, Any]:
    ctx = HostContext(host, "dc", "datacentre", ("syslog",), False, "10.250.0.10", "10.250.0.0/24", ("dcops",), frozenset())
    found = evaluate_host(cat, cat.defaults(), ctx, facts, None, [], TODAY)
    return {f.check: f for f in found if f.check in BASELINE_CHECKS}


def test_converged_baseline_files_pass_the_catalogue_checks(
    cat: Catalogue, rooted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _converged_root(rooted, "dc-core")
    auth = (rooted / "etc/pam.d/common-auth").read_text()
    stack = [re.sub(r"\[[^]]*\]", "control", ln).split()[2] for ln in auth.splitlines() if ln.strip() and not ln.startswith("#")]
    # preauth first, pam_unix, then authfail (reached only when pam_unix fails), deny, permit
    assert stack == ["pam_faillock.so", "pam_unix.so", "pam_faillock.so", "pam_deny.so", "pam_permit.so"], auth
    assert re.search(r"^auth\s+\[success=2 default=ignore\]\s+pam_unix\.so", auth, re.M), auth
    assert "pam_faillock.so authfail" in auth and "pam_faillock.so preauth" in auth
    assert re.search(r"^account\s+required\s+pam_faillock\.so", (rooted / "etc/pam.d/common-account").read_text(), re.M)
    facts = _facts()
    real_run = cs.run

    def apt_config(cmd: list[str], timeout: float = 30) -> str:
        if cmd[:2] == ["apt-config", "dump"]:
            cmd = ["apt-config", "--config-file", f"{rooted}/etc/apt/apt.conf.d/99dcops-signed-only", "dump"]
        return real_run(cmd, timeout)

    monkeypatch.setattr(cs, "run", apt_config)
    facts["apt"] = cs.apt()
    assert facts["logrotate"]["min_retention_days"] == 91 and len(facts["logrotate"]["blocks"]) == 2  # dc-core receives the logs
    assert facts["shell"]["tmout"] == 900 and facts["faillock"]["deny"] == 5 and facts["pwquality"]["minlen"] == 12
    judged = _judge(cat, facts)
    assert set(judged) == BASELINE_CHECKS
    bad = [f"{c}: {f.status}: {f.message}" for c, f in sorted(judged.items()) if f.status != "pass"]
    assert not bad, "\n".join(bad)


def test_the_drill_weakening_logrotate_fails_only_that_check(cat: Catalogue, rooted: Path) -> None:
    """tests/lab/test_audit.py's drift drill (`rotate 1` in /etc/logrotate.d/rsyslog) on the
    role's files: log.logrotate-retention fails with its evidence, the rest still pass."""
    _converged_root(rooted, "an-phu")
    f = rooted / "etc/logrotate.d/rsyslog"
    f.write_text(re.sub(r"^(\s*)rotate .*", r"\1rotate 1", f.read_text(), flags=re.M))
    judged = _judge(cat, _facts(), "an-phu")
    failing = {c for c, x in judged.items() if x.status != "pass" and not c.startswith("mal.")}
    assert failing == {"log.logrotate-retention"}
    assert "7" in judged["log.logrotate-retention"].evidence[0].value


def test_baseline_configs_pass_their_validators(tmp_path: Path) -> None:
    """Each new file of baseline__files through the validate command the role installs it with."""
    r = RoleRender("baseline", "dc-core")
    files = r.files("baseline__files")
    checked = []
    broken = {
        "/etc/profile.d/dcops-tmout.sh": "if then\n",
        "/etc/logrotate.d/rsyslog": "/var/log/x {\n bogusoption\n}\n",
        "/etc/apt/apt.conf.d/99dcops-signed-only": 'APT::Get::AllowUnauthenticated "true"\n',
    }
    for dest, junk in broken.items():
        entry = files[dest]
        f = tmp_path / Path(dest).name
        f.write_text(r.render(entry["template"], dest))
        f.chmod(0o600)
        cmd = str(entry["validate"]) % str(f)
        if shutil.which(cmd.split()[0]) is None:
            continue
        p = subprocess.run(cmd.split(), capture_output=True, text=True, check=False, timeout=60)
        assert p.returncode == 0, (cmd, p.stdout, p.stderr)
        checked.append(dest)
        bad = tmp_path / ("bad-" + f.name)
        bad.write_text(f.read_text() + junk)
        bad.chmod(0o600)
        refused = subprocess.run(
            (str(entry["validate"]) % str(bad)).split(), capture_output=True, text=True, check=False, timeout=60
        )
        assert refused.returncode != 0, (dest, refused.stdout)
    assert "/etc/profile.d/dcops-tmout.sh" in checked
    # the shell snippet really sets a readonly TMOUT, and a second sourcing is harmless
    tmout = tmp_path / "dcops-tmout.sh"
    out = subprocess.run(
        ["sh", "-c", f". {tmout}; . {tmout}; echo $TMOUT; (TMOUT=5) 2>/dev/null || echo readonly"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split() == ["900", "readonly"], out


# --- integrity (AIDE) ----------------------------------------------------------------------------
def _need(*tools: str) -> None:
    for t in tools:
        if shutil.which(t) is None:
            pytest.skip(f"{t} not installed (scripts/debian-packages.txt; scripts/setup.sh installs it)")


def test_aide_config_passes_aide_and_watches_what_it_should(tmp_path: Path) -> None:
    _need("aide")
    if not Path("/etc/aide/aide.conf.d").is_dir():
        pytest.skip("aide-common's rules (/etc/aide/aide.conf.d) not installed")
    r = RoleRender("integrity", "dc-mail")
    conf = tmp_path / "aide.conf"
    conf.write_text(r.render("aide.conf.j2", "/etc/aide/aide.conf"))
    entry = r.files("integrity__files")["/etc/aide/aide.conf"]
    p = subprocess.run(str(entry["validate"]).replace("%s", str(conf)).split(), capture_output=True, text=True, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    # the lines the daily check and aideinit grep for
    assert re.search(r"^database_in=file:/var/lib/aide/aide\.db$", conf.read_text(), re.M)
    assert re.search(r"^database_out=file:/var/lib/aide/aide\.db\.new$", conf.read_text(), re.M)

    def rule(path: str) -> str:
        return subprocess.run(["aide", f"--config={conf}", "-p", f"f:{path}"], capture_output=True, text=True, check=False).stdout

    sshd = rule("/etc/ssh/sshd_config")
    assert "[X]" in sshd and "sha512" in sshd and "whirlpool" not in sshd, sshd
    for data in (
        "/var/vmail/lab.test/alice/Maildir/new/1",
        "/var/lib/prometheus/node-exporter/x.prom",
        "/var/lib/clamav/daily.cld",
    ):
        assert "negative rule" in rule(data), rule(data)
    bad = tmp_path / "bad.conf"
    bad.write_text(conf.read_text() + "Checksums = notahash\n")
    assert subprocess.run(["aide", "--config-check", f"--config={bad}"], capture_output=True, check=False).returncode != 0


def test_the_database_script_makes_a_database_the_check_compares_with(tmp_path: Path) -> None:
    _need("aide")
    watched = tmp_path / "watched"
    watched.mkdir()
    (watched / "a").write_text("one\n")
    db = tmp_path / "aide.db"
    conf = tmp_path / "aide.conf"
    conf.write_text(
        f"database_in=file:{db}\ndatabase_out=file:{db}.new\ngzip_dbout=yes\nChecksums = sha512\n"
        f"Full = p+u+g+n+i+s+b+m+c+Checksums\n{watched} Full\n"
    )
    me = pwd.getpwuid(os.getuid()).pw_name
    r = RoleRender(
        "integrity",
        "dc-web",
        extra={
            "integrity_config": str(conf),
            "integrity_database": str(db),
            "integrity_user": me,
            "integrity__init": str(tmp_path / "init"),
            "integrity__init_log": str(tmp_path / "init.log"),
        },
    )
    script = tmp_path / "init"
    script.write_text(r.render("dcops-aide-init.j2", "/usr/local/sbin/dcops-aide-init"))
    script.chmod(0o755)
    p = subprocess.run([str(script)], capture_output=True, text=True, check=False, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "made: 2 entries" in p.stdout and db.exists() and not Path(f"{db}.new").exists()
    assert oct(db.stat().st_mode & 0o777) == "0o600"
    assert subprocess.run(["aide", f"--config={conf}", "--check"], capture_output=True, check=False).returncode == 0
    (watched / "a").write_text("two\n")
    changed = subprocess.run(["aide", f"--config={conf}", "--check"], capture_output=True, text=True, check=False)
    assert changed.returncode != 0 and f"{watched}/a" in changed.stdout
    # a configuration AIDE refuses: the script says so and leaves no database
    db.unlink()
    conf.write_text(conf.read_text() + "Checksums = notahash\n")
    p = subprocess.run([str(script)], capture_output=True, text=True, check=False, timeout=120)
    assert p.returncode != 0 and "aide --init failed" in p.stderr and not db.exists()


def test_the_schedule_dropin_is_checked_by_its_validator(tmp_path: Path) -> None:
    _need("systemd-analyze")
    r = RoleRender("integrity", "dc-web")
    entry = r.files("integrity__files")["/etc/systemd/system/dailyaidecheck.timer.d/dcops.conf"]
    import shlex

    def valid(text: str) -> bool:
        f = tmp_path / "dcops.conf"
        f.write_text(text)
        return (
            subprocess.run(shlex.split(str(entry["validate"]).replace("%s", str(f))), capture_output=True, check=False).returncode
            == 0
        )

    good = r.render("dailyaidecheck.timer.conf.j2")
    assert "OnCalendar=\nOnCalendar=*-*-* 05:00:00\n" in good
    assert valid(good)
    assert not valid(good.replace("*-*-* 05:00:00", "every day at five"))
    assert r.value("integrity__units") == ["dailyaidecheck.timer"]
    off = RoleRender("integrity", "dc-web", extra={"integrity_schedule": ""})
    assert off.value("integrity__units") == [] and off.value("integrity__unwanted_units") == ["dailyaidecheck.timer"]
    assert "/etc/systemd/system/dailyaidecheck.timer.d/dcops.conf" not in off.files("integrity__files")


# --- malware (ClamAV) ----------------------------------------------------------------------------
LAB_DBS = ROLES / "malware" / "files"


def test_malware_runs_on_the_mail_service_only_and_freshclam_is_off_in_a_lab() -> None:
    play = yaml.safe_load((ROOT / "playbooks" / "malware.yml").read_text())
    assert [p["hosts"] for p in play] == ["service_mail"]
    site = [p["ansible.builtin.import_playbook"] for p in yaml.safe_load((ROOT / "playbooks" / "site.yml").read_text())]
    assert site.index("malware.yml") == site.index("mail.yml") + 1 and site[-1] == "integrity.yml"
    lab = RoleRender("malware", "dc-mail")
    assert lab.value("malware_freshclam_enabled") is False and lab.value("malware_lab_signatures") is True
    assert lab.value("malware__unwanted_units") == ["clamav-freshclam.service"]
    assert "/var/lib/clamav/dcops-lab-eicar.hdb" in lab.files("malware__files")
    real = RoleRender(
        "malware", "dc-mail", extra={"dcops_province": {"lab": False, "code": "x", "name": "x", "domain": "x.test"}}
    )
    assert real.value("malware_freshclam_enabled") is True and real.value("malware_lab_signatures") is False
    assert real.value("malware__units") == ["clamav-freshclam.service", "clamav-daemon.socket", "clamav-daemon.service"]
    assert not [d for d in real.files("malware__files") if "dcops-lab" in d]
    assert "DatabaseMirror database.clamav.net" in real.render("freshclam.conf.j2")
    private = RoleRender("malware", "dc-mail", extra={"malware_freshclam_private_mirrors": ["http://clamav-mirror.dc.local"]})
    text = private.render("freshclam.conf.j2")
    assert "PrivateMirror http://clamav-mirror.dc.local" in text and "DatabaseMirror" not in text


def test_the_lab_signatures_make_clamscan_detect_eicar(tmp_path: Path) -> None:
    _need("clamscan")
    (tmp_path / "eicar.com").write_bytes(EICAR)
    (tmp_path / "mail.eml").write_bytes(b"Subject: test\n\nsee the attached text: " + EICAR + b"\n")
    (tmp_path / "clean.txt").write_text("nothing here\n")
    p = subprocess.run(
        ["clamscan", "--no-summary", "-d", str(LAB_DBS), *(str(tmp_path / n) for n in ("eicar.com", "mail.eml", "clean.txt"))],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert p.returncode == 1, p.stdout + p.stderr  # 1: something found
    out = dict(ln.rsplit(": ", 1) for ln in p.stdout.splitlines())
    assert out[str(tmp_path / "eicar.com")].startswith("Dcops.Lab.EICAR-Test-")
    assert out[str(tmp_path / "mail.eml")] == "Dcops.Lab.EICAR-Test-Signature.UNOFFICIAL FOUND"
    assert out[str(tmp_path / "clean.txt")] == "OK"


def test_the_units_start_condition_matches_the_lab_signatures(tmp_path: Path) -> None:
    """The drop-ins' ConditionPathExistsGlob (a glob with braces, as Debian's own) matches the
    lab's databases and freshclam's, and nothing in an empty folder."""
    r = RoleRender("malware", "dc-mail", extra={"malware_signature_dir": str(tmp_path)})
    glob = r.value("malware__signature_glob")
    assert f"ConditionPathExistsGlob=\nConditionPathExistsGlob={glob}\n" in r.value("malware__unit_dropin")

    def expands() -> list[str]:
        return subprocess.run(
            ["bash", "-O", "nullglob", "-c", f"echo {glob}"], capture_output=True, text=True, check=True
        ).stdout.split()

    assert expands() == []
    shutil.copy(LAB_DBS / "dcops-lab-eicar.hdb", tmp_path)
    (tmp_path / "daily.cld").write_text("")
    assert sorted(Path(p).name for p in expands()) == ["daily.cld", "dcops-lab-eicar.hdb"]


def _validator(tmp_path: Path, r: RoleRender) -> str:
    v = tmp_path / "dcops-clamav-validate"
    v.write_text(r.render("dcops-clamav-validate.j2"))
    v.chmod(0o755)
    return str(v)


def test_clamav_configs_pass_clamconf_and_a_bad_one_is_refused(tmp_path: Path) -> None:
    _need("clamconf")
    r = RoleRender("malware", "dc-mail")
    v = _validator(tmp_path, r)
    files = r.files("malware__files")
    for dest, name in (("/etc/clamav/clamd.conf", "clamd.conf"), ("/etc/clamav/freshclam.conf", "freshclam.conf")):
        f = tmp_path / name
        f.write_text(r.render(files[dest]["template"], dest))
        assert str(files[dest]["validate"]).split()[1:] == ["%s", name]
        p = subprocess.run([v, str(f), name], capture_output=True, text=True, check=False)
        assert p.returncode == 0, p.stderr
        bad = tmp_path / f"bad-{name}"
        bad.write_text(f.read_text() + "MaxThreadz 4\n")
        p = subprocess.run([v, str(bad), name], capture_output=True, text=True, check=False)
        assert p.returncode == 1 and "Unknown option MaxThreadz" in p.stderr, p.stderr
    assert subprocess.run([v, str(tmp_path / "clamd.conf"), "other.conf"], capture_output=True, check=False).returncode == 2


def _clamd(sock: Path, command: bytes, data: bytes | None = None) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(str(sock))
        s.sendall(command)
        if data is not None:
            s.sendall(struct.pack("!L", len(data)) + data + struct.pack("!L", 0))
        out = b""
        while not out.endswith(b"\0"):
            chunk = s.recv(4096)
            if not chunk:
                break
            out += chunk
    return out.rstrip(b"\0").decode()


def test_clamd_with_the_roles_config_and_the_lab_signatures_detects_eicar(tmp_path: Path) -> None:
    """clamd runs with the role's clamd.conf (its socket, folders and account moved into a
    scratch folder) and the lab's signature database, and finds EICAR in a stream, as the mail
    filter or clamdscan would send it; a clean stream is OK."""
    _need("clamd")
    try:
        grp.getgrnam("clamav")
    except KeyError:
        pytest.skip("no clamav group (clamav-base not installed)")
    db = tmp_path / "db"
    db.mkdir()
    for f in LAB_DBS.iterdir():
        shutil.copy(f, db)
    sock = tmp_path / "clamd.ctl"
    r = RoleRender(
        "malware",
        "dc-mail",
        extra={
            "malware__clamd_socket": str(sock),
            "malware_signature_dir": str(db),
            "malware_clamd_user": "",
            "malware_clamd_log_file": str(tmp_path / "clamd.log"),
        },
    )
    conf = tmp_path / "clamd.conf"
    conf.write_text(r.render("clamd.conf.j2", "/etc/clamav/clamd.conf"))
    proc = subprocess.Popen(["clamd", "--foreground", f"--config-file={conf}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not sock.exists():
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else "clamd exited"
            assert time.monotonic() < deadline, "clamd did not open its socket in 60 s"
            time.sleep(0.2)
        assert _clamd(sock, b"zPING\0") == "PONG"
        assert _clamd(sock, b"zINSTREAM\0", EICAR).startswith("stream: Dcops.Lab.EICAR-Test-")
        assert _clamd(sock, b"zINSTREAM\0", b"Subject: hello\n\nan ordinary message\n") == "stream: OK"
        version = _clamd(sock, b"zVERSION\0")
        assert version.startswith("ClamAV "), version
    finally:
        proc.terminate()
        proc.wait(timeout=30)
