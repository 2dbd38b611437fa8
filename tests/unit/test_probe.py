"""The roles' one probe-then-apply mechanism: dcops_probe (dcops.ansible_plugins.probe) and probe_apply.

The parsing and comparing parts are tested directly; the whole mechanism is run for real with
ansible-playbook on this machine (connection: local, files under a temporary folder): a first
run installs everything and runs each entry's handler, a second run finds nothing to do, and
hand changes (content, mode, a symlink in place of a file, a folder removed, a unit stopped
would be the lab's part) are put back, each notifying only its own handler.
"""

from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dcops.ansible_plugins import probe
from tests.conftest import ROOT, VENV_BIN

PLAYBOOKS = ROOT / "playbooks"


# --- the entries a role lists --------------------------------------------------------------------
def test_entries_are_checked_and_named() -> None:
    good = probe.parse_entries(
        [
            {"dest": "/etc/a", "template": "a.j2", "mode": "0600", "notify": "H"},
            {"dest": "/etc/d", "state": "directory"},
            {"dest": "/etc/off", "content": "x", "enabled": False},
        ]
    )
    assert [(e.dest, e.kind, e.mode, e.notify) for e in good] == [
        ("/etc/a", "template", 0o600, ("H",)),
        ("/etc/d", "directory", 0o755, ()),
    ]
    bad = {
        "files[0] (/etc/a): give exactly one of": [{"dest": "/etc/a", "template": "a.j2", "content": "x"}],
        "files[0] (relative): dest must be an absolute path": [{"dest": "relative", "content": "x"}],
        "unknown key(s) modee": [{"dest": "/etc/a", "content": "x", "modee": "0644"}],
        "mode '0x9' is not an octal number": [{"dest": "/etc/a", "content": "x", "mode": "0x9"}],
        "files[1] (/etc/a): /etc/a is listed twice": [{"dest": "/etc/a", "content": "x"}, {"dest": "/etc/a", "content": "y"}],
        "a folder takes no content": [{"dest": "/etc/a", "state": "directory", "content": "x"}],
    }
    for message, entries in bad.items():
        with pytest.raises(probe.ProbeError, match=None) as e:
            probe.parse_entries(entries)
        assert message in str(e.value), (message, str(e.value))


def test_remote_output_is_parsed_and_compared() -> None:
    text = "hello\n"
    sha = hashlib.sha1(text.encode()).hexdigest()
    out = "\n".join(
        [
            "@stat 640 root opendkim regular file|/etc/a",
            f"@sha1 {sha}  /etc/a",
            "@stat 777 root root symbolic link|/etc/l",
            f"@sha1 {sha}  /etc/l",
            "@stat 755 root root directory|/etc/d",
            "@unit LoadState=loaded",
            "@unit ActiveState=active",
            "@unit UnitFileState=enabled",
            "@unit ",
            "@unit LoadState=loaded",
            "@unit ActiveState=inactive",
            "@unit UnitFileState=enabled",
            "@unit ",
            "@unit LoadState=loaded",
            "@unit ActiveState=active",
            "@unit UnitFileState=disabled",
            "@unit",
            "@pkg frr installed",
            "@addr 10.0.0.1 eth0@if12",
            "openssh=9.2",
            "differs sysctl net.ipv4.ip_forward",
        ]
    )
    remote = probe.parse_output(out)
    entries = probe.parse_entries(
        [
            {"dest": "/etc/a", "content": text, "mode": "0640", "group": "opendkim"},
            {"dest": "/etc/l", "content": text, "mode": "0777"},
            {"dest": "/etc/d", "state": "directory"},
            {"dest": "/etc/gone", "content": text},
        ]
    )
    wants = [text.encode(), text.encode(), None, text.encode()]
    verdicts = [probe.is_stale(e, remote, w) for e, w in zip(entries, wants, strict=True)]
    res = probe.result(entries, verdicts, ["/s/a", "/s/l", None, "/s/g"], remote, ["a.service", "b.service"], ["c.service"],
                       ["frr", "nftables"], True)
    assert res["stale"] == ["/etc/l", "/etc/gone"]  # a symlink is never taken for the file it points to
    assert res["files"]["/etc/l"]["state"] == "link" and res["files"]["/etc/gone"]["state"] == "absent"
    assert [i["dest"] for i in res["install"]] == ["/etc/l", "/etc/gone"] and res["install"][1]["src"] == "/s/g"
    assert res["units_todo"] == ["b.service"] and res["units_unwanted"] == ["c.service"]
    assert res["packages_missing"] == ["nftables"]
    assert res["ifaddrs"] == {"10.0.0.1": "eth0"}
    assert res["lines"] == ["openssh=9.2", "differs sysctl net.ipv4.ip_forward"]
    assert res["differs"] == ["differs sysctl net.ipv4.ip_forward"] and res["todo"]
    # content, mode, owner and group each make a file stale
    for change in ({"content": "other\n"}, {"mode": "0644"}, {"owner": "nobody"}, {"group": "root"}):
        spec = {"dest": "/etc/a", "content": text, "mode": "0640", "group": "opendkim", **change}
        (e,) = probe.parse_entries([spec])
        assert probe.is_stale(e, remote, str(spec["content"]).encode())[0], change
    (e,) = probe.parse_entries([{"dest": "/etc/a", "content": text, "mode": "0640", "group": "opendkim"}])
    assert not probe.is_stale(e, remote, text.encode())[0]


def test_the_script_reads_everything_in_one_exec() -> None:
    entries = probe.parse_entries([{"dest": "/etc/a b", "content": "x"}, {"dest": "/etc/d", "state": "directory"}])
    s = probe.script(entries, ["frr.service"], ["frr"], True, "echo hi\n")
    assert s.count("stat -c") == 1 and s.count("sha1sum") == 1 and s.count("systemctl show") == 1
    assert "'/etc/a b'" in s and "sha1sum -- '/etc/a b' |" in s  # folders are not hashed; names are quoted
    assert s.rstrip().endswith("true") and "echo hi" in s
    r = subprocess.run(["bash", "-c", probe.script(entries, [], [], True, "echo differs x")], capture_output=True, text=True)
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and "differs x" in lines and any(x.startswith("@addr 127.0.0.1 ") for x in lines)


# --- the whole mechanism, for real -------------------------------------------------------------------
ROLE_TASKS = """\
- name: Probe
  dcops_probe:
    files:
      - {dest: "{{ out }}/etc", state: directory, owner: "{{ me }}", group: "{{ mygroup }}"}
      - {dest: "{{ out }}/etc/conf", template: conf.j2, owner: "{{ me }}", group: "{{ mygroup }}", mode: "0640",
         validate: "grep -q '^value=' %s", notify: [Conf changed]}
      - {dest: "{{ out }}/etc/tool", file: tool, owner: "{{ me }}", group: "{{ mygroup }}", mode: "0755", notify: [Tool changed]}
      - {dest: "{{ out }}/etc/secret", content: "{{ secret }}", owner: "{{ me }}", group: "{{ mygroup }}", mode: "0600",
         secret: true}
      - {dest: "{{ out }}/etc/leg.conf", template: leg.j2, vars: {item: {name: leg-a}}, owner: "{{ me }}", group: "{{ mygroup }}"}
    interfaces: true
    script: echo "probe sees {{ value }}"
  register: t__probe

- name: What the probe said
  ansible.builtin.copy:
    content: "{{ t__probe | to_json }}"
    dest: "{{ report }}"
    mode: "0600"
  delegate_to: localhost

- name: Install what differs
  ansible.builtin.include_role:
    name: probe_apply
  vars:
    probe_apply_result: "{{ t__probe }}"
    probe_apply_units_enabled: false
  when: t__probe.todo
"""
HANDLERS = """\
- name: Conf changed
  ansible.builtin.shell: echo conf >> {{ marks }}
  changed_when: true
- name: Tool changed
  ansible.builtin.shell: echo tool >> {{ marks }}
  changed_when: true
"""


def _project(tmp: Path) -> tuple[Path, Path, Path, Path]:
    role = tmp / "roles" / "t"
    for d in ("tasks", "templates", "files", "handlers"):
        (role / d).mkdir(parents=True)
    (role / "tasks" / "main.yml").write_text(ROLE_TASKS)
    (role / "handlers" / "main.yml").write_text(HANDLERS)
    # the template reads what the probe itself found (its register name) and its own variables
    (role / "templates" / "conf.j2").write_text(
        "# {{ ansible_managed }}\nvalue={{ value }}\nlo={{ t__probe.ifaddrs['127.0.0.1'] }}\n{% if true %}\nblock\n{% endif %}\n"
    )
    (role / "templates" / "leg.j2").write_text("leg {{ item.name }}\n")
    (role / "files" / "tool").write_text("#!/bin/sh\necho tool\n")
    out, marks, report = tmp / "out", tmp / "marks", tmp / "report.json"
    out.mkdir()
    play = tmp / "play.yml"
    play.write_text("- name: T\n  hosts: localhost\n  connection: local\n  gather_facts: false\n  roles: [t]\n")
    return play, out, marks, report


def _run(tmp: Path, play: Path, **extra: str) -> tuple[dict[str, Any], str]:
    env = dict(os.environ)
    env.update(
        ANSIBLE_ACTION_PLUGINS=str(PLAYBOOKS / "action_plugins"),
        ANSIBLE_ROLES_PATH=f"{tmp / 'roles'}:{PLAYBOOKS / 'roles'}",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCALHOST_WARNING="0",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
        ANSIBLE_CALLBACK_RESULT_FORMAT="json",
    )
    variables = {
        "out": str(tmp / "out"),
        "marks": str(tmp / "marks"),
        "report": str(tmp / "report.json"),
        "me": pwd.getpwuid(os.getuid()).pw_name,
        "mygroup": grp.getgrgid(os.getgid()).gr_name,
        "value": "one",
        "secret": "s3cret-value",
        **extra,
    }
    exe = VENV_BIN / "ansible-playbook"
    cmd = [str(exe if exe.exists() else Path(sys.executable).parent / "ansible-playbook"), str(play), "-e", json.dumps(variables)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads((tmp / "report.json").read_text()), r.stdout


def test_probe_then_apply_installs_once_and_repairs_drift(tmp_path: Path) -> None:
    play, out, marks, _ = _project(tmp_path)
    conf, tool, secret, leg = out / "etc" / "conf", out / "etc" / "tool", out / "etc" / "secret", out / "etc" / "leg.conf"

    first, log = _run(tmp_path, play)
    assert first["todo"] and len(first["install"]) == 5
    assert conf.read_text().startswith("# Ansible managed") and "value=one\nlo=lo\nblock\n" in conf.read_text()
    assert oct(conf.stat().st_mode & 0o777) == "0o640" and oct(tool.stat().st_mode & 0o777) == "0o755"
    assert secret.read_text() == "s3cret-value" and leg.read_text() == "leg leg-a\n"
    assert sorted(marks.read_text().split()) == ["conf", "tool"]
    assert "s3cret-value" not in log and "s3cret-value" not in json.dumps(first)  # secrets stay out of output and result
    assert first["lines"] == ["probe sees one"]

    second, _ = _run(tmp_path, play)
    assert not second["todo"] and second["stale"] == [] and second["install"] == []
    assert sorted(marks.read_text().split()) == ["conf", "tool"]  # no handler ran again

    # drift: a mode, a content, a symlink in place of a file; and a new value in the inventory
    tool.chmod(0o777)
    secret.write_text("changed by hand")
    leg.unlink()
    leg.symlink_to(tool)
    third, _ = _run(tmp_path, play, value="two")
    assert third["stale"] == [str(conf), str(tool), str(secret), str(leg)]
    assert "value=two" in conf.read_text() and oct(tool.stat().st_mode & 0o777) == "0o755"
    assert secret.read_text() == "s3cret-value" and not leg.is_symlink() and leg.read_text() == "leg leg-a\n"
    assert sorted(marks.read_text().split()) == ["conf", "conf", "tool", "tool"]

    # a file its validate command refuses is not installed, and the run fails naming it
    (tmp_path / "roles" / "t" / "templates" / "conf.j2").write_text("no value line\n")
    env_play = play
    with pytest.raises(AssertionError) as e:
        _run(tmp_path, env_play)
    assert "failed" in str(e.value) and "value=two" in conf.read_text()
