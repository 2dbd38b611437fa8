"""The province's DNS: the zone `dcops dns zone` renders, and the dns role's unbound config.

- the zone passes named-checkzone and holds MX/SPF/DKIM/DMARC of every agency and the A
  records of every host and internal service; its serial follows its content;
- the role's templates, rendered by ansible-playbook with the lab's hostvars of dc-core,
  pass unbound-checkconf, and an unbound started on 127.0.0.1 (a process this test starts and
  stops) answers MX/TXT/A queries for the province domain from that zone. Only the
  province domain is queried: the resolver never needs to send a packet anywhere.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dcops.cli import app
from dcops.cli.mail import check_zone
from dcops.inventory import load_inventory
from dcops.mail import dkim
from dcops.mail.vault import Vault
from dcops.render.dns import DnsError, access_networks, address_records, nameservers, province_zone, serial_of
from dcops.render.maildns import txt
from tests.conftest import GOLDEN, LAB, ROOT, VENV_BIN, YENBAI

KEYS = {d: dkim.DkimPublic(d, "s1", k) for d, k in json.loads((GOLDEN / "maildns" / "dkim-public-keys.json").read_text()).items()}
ROLE = ROOT / "playbooks" / "roles" / "dns"
runner = CliRunner()


def _needs(tool: str) -> str:
    path = shutil.which(tool) or (f"/usr/sbin/{tool}" if Path(f"/usr/sbin/{tool}").exists() else None)
    if path is None:
        pytest.skip(f"{tool} missing: scripts/setup.sh installs it (scripts/debian-packages.txt)")
    return path


def _records(text: str) -> list[str]:
    """The zone's lines with the strings of multi-line TXT records joined (DKIM keys)."""
    return text.replace('"\n        "', "").splitlines()


@pytest.mark.parametrize("path", [LAB, YENBAI], ids=["lab", "yenbai"])
def test_zone_passes_named_checkzone_and_has_every_record(path: Path) -> None:
    _needs("named-checkzone")
    inv = load_inventory(path)
    z = province_zone(inv, KEYS)
    assert z.origin == inv.province.domain and z.missing_dkim == ()
    assert check_zone(z.origin, z.text) == "OK"
    lines = _records(z.text)
    text = "\n".join(lines)
    for a in inv.agencies:
        assert f"$ORIGIN {a.domain}." in text
        block = text[text.index(f"$ORIGIN {a.domain}.") :].split("$ORIGIN", 2)[1]
        assert "IN MX    10 mail." in block, a.domain
        assert '"v=spf1 ip4:' in block, a.domain
        assert "s1._domainkey" in block and KEYS[a.domain].public_key in block.replace('"', ""), a.domain
        assert f'"v=DMARC1; p=quarantine; sp=quarantine; adkim=s; aspf=s; rua=mailto:postmaster@{a.domain}"' in block
    for _site, h in inv.hosts():
        assert f"{h.name:<24} 3600 IN A     {h.address}" in lines, h.name
    for s in inv.services:
        addr = inv.service_address(s)
        if not s.external and addr is not None:
            assert f"{s.name:<24} 3600 IN A     {addr}" in lines, s.name
    dns_addr = inv.service_address(next(s for s in inv.services if s.type == "dns"))
    assert f"ns1 IN A {dns_addr}" in lines, "ns1 is the DNS service, not the mail host"


def test_lab_zone_names() -> None:
    inv = load_inventory(LAB)
    records, warnings = address_records(inv)
    assert records["dc-core"] == "10.251.0.1" and records["dns"] == "10.251.0.1"
    assert records["portal"] == records["dichvucong"] == records["qlvb"] == "10.251.0.4"  # URL host names
    assert "ns1" not in records and "mail" not in records  # written once, by assembled_zone and mail-host.zone
    assert warnings == []
    assert access_networks(inv) == ["10.250.0.0/24", "10.251.0.0/16", "10.252.0.0/24", "10.253.0.0/24"]
    assert nameservers(inv) == ["10.251.0.1"]
    assert nameservers(load_inventory(YENBAI)) == ["10.21.0.11", "10.21.0.12"]


def test_external_names_in_the_province_domain_are_reported() -> None:
    _, warnings = address_records(load_inventory(YENBAI))
    assert any(w.startswith("yenbai.gov.vn (service portal, external)") for w in warnings)


def test_serial_follows_the_content() -> None:
    inv = load_inventory(LAB)
    a, b = province_zone(inv, KEYS), province_zone(load_inventory(LAB), dict(KEYS))
    assert a.text == b.text and a.serial == b.serial, "same inventory and keys, same bytes"
    assert f"( {a.serial} 3600 900 1209600 300 )" in a.text and 1 <= a.serial < 2**31
    other = "stttt.lab.test"
    changed = province_zone(inv, {**KEYS, other: dkim.DkimPublic(other, "s2", KEYS[other].public_key)})
    assert changed.serial != a.serial, "a changed DKIM record changes the serial"
    assert province_zone(inv, KEYS, dmarc_policy="reject").serial != a.serial
    assert serial_of("x") == serial_of("x") != serial_of("y")


def test_serial_changes_when_a_host_moves(tmp_path: Path) -> None:
    inv_dir = tmp_path / "lab"
    shutil.copytree(LAB, inv_dir)
    sites = inv_dir / "sites.yml"
    sites.write_text(sites.read_text().replace("address: 10.251.0.4", "address: 10.251.0.5"))
    moved = province_zone(load_inventory(inv_dir), KEYS)
    assert "dc-web                   3600 IN A     10.251.0.5" in moved.text
    assert moved.serial != province_zone(load_inventory(LAB), KEYS).serial


def test_a_name_claimed_twice_is_an_error(tmp_path: Path) -> None:
    inv_dir = tmp_path / "lab"
    shutil.copytree(LAB, inv_dir)
    for f in ("sites.yml", "services.yml", "platform.yml"):
        p = inv_dir / f
        p.write_text(p.read_text().replace("dc-web", "mail"))
    with pytest.raises(DnsError, match=r"mail\.lab\.test: host mail has address 10\.251\.0\.4, but the mail service"):
        province_zone(load_inventory(inv_dir), KEYS)


def test_missing_dkim_keys_render_without_dkim() -> None:
    inv = load_inventory(LAB)
    z = province_zone(inv, {})
    assert z.missing_dkim == tuple(sorted(a.domain for a in inv.agencies))
    assert "_domainkey" not in z.text and "; no DKIM key yet" in z.text
    if shutil.which("named-checkzone"):
        assert check_zone(z.origin, z.text) == "OK"


# ---------------------------------------------------------------------------- the CLI


def test_cli_zone_with_dkim_keys_made_in_a_tmp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _needs("named-checkzone")
    monkeypatch.setenv("DCOPS_SECRETS_DIR", str(tmp_path / "secrets"))
    pw = tmp_path / "pw"
    pw.write_text("x\n")
    pw.chmod(0o600)
    lab = tmp_path / "lab"
    shutil.copytree(LAB, lab)  # the key transaction keeps its journal in the inventory folder
    inv = load_inventory(lab)
    dkim.ensure_keys(inv, Vault(pw))
    out = tmp_path / "cache" / "province.zone"
    r = runner.invoke(app, ["dns", "zone", "-i", str(lab), "--out", str(out), "--check", "--require-dkim", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["written"] is True and data["missing_dkim"] == [] and data["named_checkzone"] == "OK"
    text = out.read_text()
    for domain, key in dkim.public_keys(inv).items():
        assert txt(key.record()).split('"')[1] in text, domain
    assert out.stat().st_mode & 0o777 == 0o644 and not [p for p in out.parent.iterdir() if p != out], "no temporary file left"
    mtime = out.stat().st_mtime_ns
    r = runner.invoke(app, ["dns", "zone", "-i", str(lab), "--out", str(out), "--json"])
    assert json.loads(r.stdout)["written"] is False and out.stat().st_mtime_ns == mtime, "unchanged: not rewritten"
    assert json.loads(r.stdout)["serial"] == data["serial"]


def test_cli_refuses_while_a_mail_change_is_unfinished(tmp_path: Path) -> None:
    """The zone holds the DKIM keys: while a `dcops mail` change is past its commit point and not finished, no zone."""
    from dcops.mail import txn

    lab = tmp_path / "lab"
    shutil.copytree(LAB, lab)
    (lab / txn.PENDING).write_text("# interrupted\n")
    for cmd in (["dns", "zone"], ["dns", "networks"]):
        r = runner.invoke(app, [*cmd, "-i", str(lab)])
        assert r.exit_code == 1 and "dcops mail recover -i" in " ".join(r.stderr.split()), r.output


def test_cli_zone_without_dkim_keys_warns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DCOPS_SECRETS_DIR", str(tmp_path / "none"))
    r = runner.invoke(app, ["dns", "zone", "-i", str(LAB)])
    assert r.exit_code == 0, r.output
    assert "$ORIGIN lab.test." in r.stdout and "without a DKIM key" in r.stderr
    r = runner.invoke(app, ["dns", "zone", "-i", str(LAB), "--require-dkim"])
    assert r.exit_code == 1 and "have no DKIM key" in r.stderr


def test_cli_errors_on_a_bad_inventory_path(tmp_path: Path) -> None:
    for cmd in (["dns", "zone"], ["dns", "networks"]):
        r = runner.invoke(app, [*cmd, "-i", str(tmp_path / "nope")])
        assert r.exit_code == 2, r.output
        assert "not a directory" in r.stderr and "Traceback" not in r.output
    r = runner.invoke(app, ["dns", "zone", "--help"])
    assert r.exit_code == 0 and "--out" in r.stdout


def test_cli_networks() -> None:
    r = runner.invoke(app, ["dns", "networks", "-i", str(YENBAI), "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["domain"] == "yenbai.gov.vn" and data["nameservers"] == ["10.21.0.11", "10.21.0.12"]
    assert "10.20.0.0/22" in data["networks"]


# ---------------------------------------------------------------------------- the role's unbound config

RENDER_PLAY = """
- name: Render the dns role's templates with a host's variables
  hosts: dc-core
  gather_facts: false
  vars_files:
    - {role}/defaults/main.yml
    - {role}/vars/main.yml
  tasks:
    - name: As on the host (defaults)
      ansible.builtin.template:
        src: "{role}/templates/{{{{ item }}}}.j2"
        dest: "{out}/host-{{{{ item }}}}"
        mode: "0644"
      loop: [unbound.conf, resolv.conf, dcops-unbound-checkzone]
      delegate_to: localhost
    - name: A real province's (DNSSEC validation, forwarders); checked, never started
      ansible.builtin.template:
        src: "{role}/templates/unbound.conf.j2"
        dest: "{out}/dnssec-unbound.conf"
        mode: "0644"
      vars:
        dns_dnssec_validation: true
        dns_trust_anchor_file: "{out}/root.key"
        dns_forwarders: [192.0.2.53, 198.51.100.53]
      delegate_to: localhost
    - name: On loopback (the unbound this test starts); forwarding to an unusable loopback port, so that
        a name outside the zone fails locally instead of being looked up on the internet
      ansible.builtin.template:
        src: "{role}/templates/unbound.conf.j2"
        dest: "{out}/loopback-unbound.conf"
        mode: "0644"
      vars:
        dns_listen_addresses: [127.0.0.1]
        dns_port: {port}
        dns_unbound_user: ""
        dns_remote_control: false
        dns_dnssec_validation: false
        dns_forwarders: [127.0.0.1@9]
      delegate_to: localhost
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """The role's templates rendered by ansible-playbook for dc-core of the lab, and the zone beside them."""
    out = tmp_path_factory.mktemp("dns-role")
    inv = load_inventory(LAB)
    z = province_zone(inv, KEYS)
    (out / "zones").mkdir()
    (out / "zones" / f"{z.origin}.zone").write_text(z.text)
    if Path("/usr/share/dns/root.key").exists():
        shutil.copy("/usr/share/dns/root.key", out / "root.key")
    port = _free_port()
    play = out / "render.yml"
    play.write_text(RENDER_PLAY.format(role=ROLE, out=out, port=port))
    extra = {"dns__zone": {"origin": z.origin}, "dns__access_networks": access_networks(inv), "dns_zone_dir": str(out / "zones")}
    (out / "extra.json").write_text(json.dumps(extra))
    exe = VENV_BIN / "ansible-playbook"
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "playbooks" / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    r = subprocess.run(
        [
            str(exe if exe.exists() else Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            str(LAB),
            str(play),
            "-e",
            f"@{out / 'extra.json'}",
        ],
        cwd=ROOT / "playbooks",
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.returncode == 0, f"ansible-playbook failed:\n{r.stdout}\n{r.stderr}"
    return out, port


def test_role_templates_for_dc_core(rendered: tuple[Path, int]) -> None:
    out, _port = rendered
    conf = (out / "host-unbound.conf").read_text()
    assert "interface: 127.0.0.1\n    interface: 10.251.0.1\n" in conf
    assert "access-control: 0.0.0.0/0 refuse" in conf and "access-control: 10.251.0.0/16 allow" in conf
    assert 'name: "lab.test."' in conf and "for-downstream: yes" in conf and "for-upstream: yes" in conf
    assert 'local-zone: "lab.test." transparent' in conf, "or unbound's built-in test. zone answers NXDOMAIN"
    assert "forward-zone" not in conf, "no forwarders in the lab"
    assert 'module-config: "iterator"' in conf, "no DNSSEC validation in a lab province"
    resolv = (out / "host-resolv.conf").read_text()
    assert "search lab.test\nnameserver 10.251.0.1\noptions timeout:2 attempts:2\n" in resolv


def test_role_config_passes_unbound_checkconf(rendered: tuple[Path, int]) -> None:
    tool = _needs("unbound-checkconf")
    out, _port = rendered
    for name in ("host-unbound.conf", "dnssec-unbound.conf", "loopback-unbound.conf"):
        if name.startswith("dnssec") and not (out / "root.key").exists():
            continue  # checkconf wants the trust anchor file (dns-root-data)
        r = subprocess.run([tool, str(out / name)], capture_output=True, text=True, check=False)
        assert r.returncode == 0, f"{name}: {r.stdout}{r.stderr}"
    # the zone checker the role installs: unbound parses the zone file, and refuses a broken one
    checker = out / "host-dcops-unbound-checkzone"
    checker.chmod(0o755)
    good = subprocess.run([str(checker), "lab.test", str(out / "zones" / "lab.test.zone")], capture_output=True, text=True)
    assert good.returncode == 0, good.stderr
    bad = out / "bad.zone"
    bad.write_text((out / "zones" / "lab.test.zone").read_text() + "broken IN A 10.251.0.999\n")
    r = subprocess.run([str(checker), "lab.test", str(bad)], capture_output=True, text=True)
    assert r.returncode != 0 and "ip4 addr expected" in r.stderr


def test_unbound_on_loopback_answers_from_the_zone(rendered: tuple[Path, int]) -> None:
    """A real unbound with the role's config (on 127.0.0.1) serves the province domain."""
    exe = _needs("unbound")
    out, port = rendered
    pytest.importorskip("dns")
    import dns.exception
    import dns.message
    import dns.query
    import dns.rcode

    proc = subprocess.Popen(
        [exe, "-d", "-p", "-c", str(out / "loopback-unbound.conf")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:

        def ask(name: str, rdtype: str) -> tuple[str, list[str]]:
            r = dns.query.udp(dns.message.make_query(name, rdtype), "127.0.0.1", port=port, timeout=2)
            return dns.rcode.to_text(r.rcode()), [rd.to_text() for rrset in r.answer for rd in rrset]

        deadline = time.monotonic() + 10
        while True:
            try:
                ask("lab.test.", "SOA")
                break
            except (dns.exception.Timeout, ConnectionRefusedError):
                assert proc.poll() is None, f"unbound exited: {proc.stdout.read() if proc.stdout else ''!r}"
                assert time.monotonic() < deadline, "unbound did not answer within 10 s"
                time.sleep(0.2)
        serial = province_zone(load_inventory(LAB), KEYS).serial
        rcode, soa = ask("lab.test.", "SOA")
        assert rcode == "NOERROR" and soa[0].split()[2] == str(serial)
        assert ask("stttt.lab.test.", "MX") == ("NOERROR", ["10 mail.lab.test."])
        rcode, spf = ask("stttt.lab.test.", "TXT")
        assert spf == ['"v=spf1 ip4:10.251.0.2 mx -all"']
        rcode, dkim_txt = ask("s1._domainkey.stttt.lab.test.", "TXT")
        assert "".join(dkim_txt).replace('" "', "").strip('"') == KEYS["stttt.lab.test"].record()
        assert ask("_dmarc.stttt.lab.test.", "TXT")[1][0].startswith('"v=DMARC1; p=quarantine')
        assert ask("dc-core.lab.test.", "A") == ("NOERROR", ["10.251.0.1"])
        assert ask("ns1.lab.test.", "A") == ("NOERROR", ["10.251.0.1"])
        assert ask("mail.lab.test.", "A") == ("NOERROR", ["10.251.0.2"])
        assert ask("nope.lab.test.", "A")[0] == "NXDOMAIN"
        assert ask("portal.lab.test.", "A") == ("NOERROR", ["10.251.0.4"])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_every_dns_role_variable_is_prefixed_and_in_its_argument_spec() -> None:
    import yaml

    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    options = {**specs["main"]["options"], **specs["client"]["options"]}
    assert set(defaults) == set(options), "defaults/main.yml and meta/argument_specs.yml list the same variables"
    for name in defaults:
        assert name.startswith("dns_") and not name.startswith("dns__"), name
        assert options[name].get("description"), f"{name} has no description"
