"""site.yml against the full lab: converge, idempotence, check mode, then verify every host.

Needs root (the lab). Uses the session ``lab`` fixture of tests/lab/conftest.py (booted once,
always torn down). Everything is sent to lab hosts only (over the lab's management network
and from inside the lab hosts).
"""

from __future__ import annotations

import re
import subprocess
import uuid
from typing import Any

import pytest
import testinfra

from dcops import DEFAULT_INVENTORY, lab_dir
from dcops.converge import ConvergeResult
from dcops.inventory import load
from tests.lab.helpers import fail_text, wait_for

pytestmark = pytest.mark.lab

INV = load(DEFAULT_INVENTORY).inventory
CODE = INV.province.code
HOSTS = sorted(h.name for _, h in INV.hosts())
SITE_OF = {h.name: s for s, h in INV.hosts()}
COMMUNES = sorted(h for h in HOSTS if SITE_OF[h].tier.value == "commune")
HOST_ADDR = {h.name: str(h.address) for _, h in INV.hosts()}
MGMT = {h.name: str(h.management) for _, h in INV.hosts()}
SSH_CONFIG = lab_dir(CODE) / "ssh_config"


def host(name: str) -> Any:
    return testinfra.get_host(f"ssh://{name}", ssh_config=str(SSH_CONFIG), sudo=True)


# ---------------------------------------------------------------------------- converge


def test_first_converge_succeeds_on_every_host(converge_result: Any) -> None:
    r = converge_result("first")
    assert r.ok, fail_text(r)
    assert set(r.hosts) == set(HOSTS)


def test_second_run_changes_nothing(converge_result: Any) -> None:
    r = converge_result("second")
    assert r.ok, fail_text(r)
    changed = {h: s.changed for h, s in r.hosts.items() if s.changed}
    assert not changed, f"not idempotent: {changed}\n{fail_text(r)}"


def test_check_diff_reports_no_change(converge_result: Any) -> None:
    r = converge_result("check")
    assert r.ok, fail_text(r)
    changed = {h: s.changed for h, s in r.hosts.items() if s.changed}
    assert not changed, f"--check --diff would change: {changed}\n{fail_text(r)}"


# ---------------------------------------------------------------------------- baseline

SSHD_EXPECT = {
    "permitrootlogin": "no",
    "passwordauthentication": "no",
    "kbdinteractiveauthentication": "no",
    "pubkeyauthentication": "yes",
    "maxauthtries": "3",
    "logingracetime": "30",
    "clientaliveinterval": "300",
    "clientalivecountmax": "2",
    "loglevel": "VERBOSE",
    "x11forwarding": "no",
    "allowtcpforwarding": "no",
    "ciphers": "chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com,aes256-ctr,aes192-ctr,aes128-ctr",
    "macs": "hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com,umac-128-etm@openssh.com",
    "kexalgorithms": "sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org,"
    "diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,diffie-hellman-group-exchange-sha256",
    "banner": "/etc/issue.net",
}


@pytest.mark.parametrize("name", HOSTS)
def test_sshd_effective_config(converged: dict[str, ConvergeResult], name: str) -> None:
    out = host(name).check_output("/usr/sbin/sshd -T -C user=dcops,host=controller,addr=10.250.0.1")
    eff = {}
    for line in out.splitlines():
        k, _, v = line.partition(" ")
        eff.setdefault(k, v)
    wrong = {k: (eff.get(k), v) for k, v in SSHD_EXPECT.items() if eff.get(k) != v}
    assert not wrong, f"{name}: sshd -T (got, want): {wrong}"
    assert "/etc/dcops/authorized_keys" in eff.get("authorizedkeysfile", "")


@pytest.mark.parametrize("name", HOSTS)
def test_firewall_loaded_with_default_drop(converged: dict[str, ConvergeResult], name: str) -> None:
    out = host(name).check_output("nft list table inet dcops")
    assert re.search(r"hook input priority filter; policy drop;", out), out
    assert re.search(r"hook forward priority filter; policy drop;", out), out
    assert 'comment "ssh from management"' in out
    assert all("counter" in ln for ln in out.splitlines() if " accept" in ln and "policy" not in ln), out


@pytest.mark.parametrize("name", HOSTS)
def test_services_auditd_fail2ban(converged: dict[str, ConvergeResult], name: str) -> None:
    h = host(name)
    assert h.service("fail2ban").is_running
    assert h.run("fail2ban-client status sshd").rc == 0
    assert h.file("/etc/audit/rules.d/50-dcops.rules").contains("-k identity")
    if h.run("auditctl -s").rc != 0:
        pytest.skip(
            f"{name}: the kernel refuses audit control in a container's PID namespace (rules installed, auditd cannot start)"
        )
    assert h.service("auditd").is_running


@pytest.mark.parametrize("name", HOSTS)
def test_chrony_synced_to_the_data_centre(converged: dict[str, ConvergeResult], name: str) -> None:
    h = host(name)
    ntp = next(s for s in INV.services if s.name == "ntp")
    server = HOST_ADDR[ntp.hosts[0]]

    def synced() -> bool:
        out = h.run("chronyc -n tracking").stdout
        ok = "Leap status     : Normal" in out
        return ok and (name in ntp.hosts or f"({server})" in out)

    assert wait_for(synced, 90, 3), h.run("chronyc -n tracking; chronyc -n sources").stdout


def test_logs_arrive_at_the_log_host(converged: dict[str, ConvergeResult]) -> None:
    syslog = next(s for s in INV.services if s.name == "syslog")
    loghost = host(syslog.hosts[0])
    token = f"dcops-test-{uuid.uuid4().hex[:8]}"
    for name in HOSTS:
        host(name).run(f"logger -t dcops-test {token}-{name}")

    def arrived() -> list[str]:
        return [n for n in HOSTS if loghost.run(f"grep -qs {token}-{n} /var/log/remote/{n}/syslog.log").rc != 0]

    assert wait_for(lambda: not arrived(), 60, 2), f"no log line at {syslog.hosts[0]} from: {arrived()}"


# ---------------------------------------------------------------------------- data network
# OSPF, reachability of the data centre's services, the WireGuard legs and the circuit drills
# are in tests/lab/test_network.py, run on both lab provinces (three-level and two-level).


def _tcp(h: Any, addr: str, port: int, wait: int = 3) -> int:
    """0 connected, 1 refused (reached, nothing listening), 124 timed out (dropped)."""
    return int(h.run(f"timeout {wait} bash -c '</dev/tcp/{addr}/{port}' 2>/dev/null").rc)


def _reaches(h: Any, addr: str) -> bool:
    return bool(h.run(f"ping -n -q -c 1 -W 1 {addr}").rc == 0)


def test_wireguard_keys_are_kept_encrypted(converged: dict[str, ConvergeResult]) -> None:
    keys = lab_dir(CODE) / "secrets" / "wireguard-keys.vault.yml"
    assert keys.read_text().startswith("$ANSIBLE_VAULT;"), f"{keys} is not an Ansible Vault file"
    assert oct(keys.stat().st_mode & 0o777) == "0o600"
    conf = host("dc-core").check_output("cat /etc/wireguard/*.conf")
    private = next(ln.split("=", 1)[1].strip() for ln in conf.splitlines() if ln.startswith("PrivateKey"))
    for r in converged.values():
        assert r.log is not None and private not in r.log.read_text(errors="replace"), f"private key printed in {r.log}"
    leaked = subprocess.run(
        ["grep", "-rlF", private, "playbooks", "inventory", "src", "tests"],
        capture_output=True,
        text=True,
        check=False,
        cwd=str(DEFAULT_INVENTORY.parents[1]),
    )
    assert not leaked.stdout.strip(), f"private key in clear text in the repository: {leaked.stdout}"


# ---------------------------------------------------------------------------- attacks from a commune

ATTACKER = COMMUNES[0] if COMMUNES else "an-phu"
SSH_NOCHECK = "-o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=5"


def _attempt(cmd: str) -> tuple[int, str]:
    """Run an SSH attempt on the attacker (its exit code 255 must not read as testinfra's own failure)."""
    r = host(ATTACKER).run(f'{cmd} 2>&1; echo "rc=$?"')
    out = str(r.stdout)
    return int(out.rsplit("rc=", 1)[1].strip()), out


def test_password_ssh_login_refused(converged: dict[str, ConvergeResult]) -> None:
    rc, out = _attempt(
        f"ssh {SSH_NOCHECK} -o PubkeyAuthentication=no -o PreferredAuthentications=password,"
        f"keyboard-interactive dcops@{MGMT['dc-mail']} true"
    )
    assert rc != 0
    assert "Permission denied (publickey)" in out, out


def test_root_login_refused(converged: dict[str, ConvergeResult]) -> None:
    rc, out = _attempt(f"ssh {SSH_NOCHECK} root@{MGMT['dc-mail']} true")
    assert rc != 0 and "Permission denied" in out, out
    # even with the lab admin's valid key, root is refused
    p = subprocess.run(
        ["ssh", "-F", str(SSH_CONFIG), "-l", "root", "dc-mail", "true"], capture_output=True, text=True, timeout=30, check=False
    )
    assert p.returncode != 0 and "Permission denied" in p.stderr, p.stderr


def test_undeclared_port_dropped_declared_port_connects(converged: dict[str, ConvergeResult]) -> None:
    h = host(ATTACKER)
    assert _tcp(h, HOST_ADDR["dc-web"], 8080) == 124, "undeclared port 8080 at dc-web was not dropped"
    assert _tcp(h, HOST_ADDR["dc-mail"], 22) == 124, "SSH to dc-mail's data-network address from a commune was not dropped"
    syslog = next(s for s in INV.services if s.name == "syslog")
    assert _tcp(h, HOST_ADDR[syslog.hosts[0]], syslog.ports[0].port) == 0, "declared syslog port did not connect"


# ---------------------------------------------------------------------------- drift

DRIFT_HOST = "khanh-hoa"
MAIL_HOST = "dc-mail"
# What an admin or a package upgrade might do by hand, one change per role that probes before
# it installs (what the probes must notice), with the check that it was undone: on a commune
# host for what every host runs, and on the mail host for the mail role.
DRIFTS = {
    DRIFT_HOST: {
        "baseline file content": ("echo '# drift' >> /etc/issue.net", "! grep -q '# drift' /etc/issue.net"),
        "baseline file mode": (
            "chmod 0644 /etc/sudoers.d/dcops-admins",
            'test "$(stat -c %a /etc/sudoers.d/dcops-admins)" = 440',
        ),
        "baseline unused service": (
            "systemctl enable --now --quiet nginx.service",
            "! systemctl is-active --quiet nginx.service",
        ),
        "baseline running sysctl": (
            "sysctl -qw net.ipv4.conf.all.accept_redirects=1",
            'test "$(sysctl -n net.ipv4.conf.all.accept_redirects)" = 0',
        ),
        "firewall ruleset file": ("echo '# drift' >> /etc/nftables.conf", "! grep -q '# drift' /etc/nftables.conf"),
        "datanet frr.conf": ("echo '! drift' >> /etc/frr/frr.conf", "! grep -q '! drift' /etc/frr/frr.conf"),
        "monitoring collector timer": (
            "systemctl disable --now --quiet dcops-textfile-collector.timer",
            "systemctl is-active --quiet dcops-textfile-collector.timer"
            " && systemctl is-enabled --quiet dcops-textfile-collector.timer",
        ),
        "dns resolv.conf symlink": (
            "rm -f /etc/resolv.conf && ln -s /run/nowhere/resolv.conf /etc/resolv.conf",
            "test -f /etc/resolv.conf && ! test -L /etc/resolv.conf",
        ),
        "mail trusted CA removed": (
            "rm -f /usr/local/share/ca-certificates/dcops-internal-ca.crt",
            "test -s /usr/local/share/ca-certificates/dcops-internal-ca.crt",
        ),
    },
    MAIL_HOST: {
        "mail lookup table": (
            "echo '# drift' >> /etc/postfix/dcops/virtual_aliases",
            "! grep -q '# drift' /etc/postfix/dcops/virtual_aliases",
        ),
        "mail DKIM key mode": (
            "chmod 0644 /etc/opendkim/keys/*.private",
            "test -z \"$(find /etc/opendkim/keys -name '*.private' ! -perm 600)\"",
        ),
        "mail service stopped": ("systemctl stop opendkim.service", "systemctl is-active --quiet opendkim.service"),
    },
}


def test_drift_is_repaired_where_it_was_only(converged: dict[str, ConvergeResult]) -> None:
    """Re-running site.yml after hand changes puts back every one of them, on the hosts that
    drifted only (a probe that missed a drift would leave it in place)."""
    from dcops.converge import converge

    for name, drifts in DRIFTS.items():
        h = host(name)
        for what, (drift, undone) in drifts.items():
            h.run_expect([0], drift)
            assert h.run(undone).rc != 0, f"drift '{what}' did not take on {name}"
    r = converge(DEFAULT_INVENTORY, quiet=True)
    assert r.ok, fail_text(r)
    changed = {n: s.changed for n, s in r.hosts.items() if s.changed}
    assert set(changed) == set(DRIFTS), f"changed on other hosts than {sorted(DRIFTS)}: {changed}"
    left = [f"{n}: {what}" for n, drifts in DRIFTS.items() for what, (_, undone) in drifts.items() if host(n).run(undone).rc != 0]
    assert not left, f"site.yml left these drifts: {left}"
    # and the hosts still work: routing, firewall, resolver, mail
    h = host(DRIFT_HOST)
    assert _reaches(h, HOST_ADDR["dc-mail"])
    assert re.search(r"hook input priority filter; policy drop;", h.check_output("nft list table inet dcops"))
    assert host(MAIL_HOST).run("postfix status").rc == 0
