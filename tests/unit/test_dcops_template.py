"""The dcops_template lookup renders what ansible.builtin.template writes, byte for byte.

The roles decide whether a host's file is stale by comparing its checksum with what
dcops_template renders on the controller: any difference from the template module would make
every run reinstall the file (no idempotence), so both are run here on the same templates
(includes, role defaults, a loop item, ansible_managed, trim_blocks) and compared.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, VENV_BIN

PLAYBOOKS = ROOT / "playbooks"

MAIN_J2 = """\
# {{ ansible_managed }}
value={{ r_value }}
{% for n in r_list %}
line {{ n }} of {{ item }}
{% endfor %}
{% include 'part.j2' %}
backslash=\\n kept
"""

TASKS = """\
- name: The template module writes one file per item
  ansible.builtin.template:
    src: main.j2
    dest: "{{ out }}/module-{{ item }}.txt"
    mode: "0644"
  loop: [leg-a, leg-b]

- name: The dcops lookup renders the same bytes as the module and as the builtin lookup
  ansible.builtin.assert:
    that:
      - "mine == lookup('ansible.builtin.file', out ~ '/module-' ~ item ~ '.txt', rstrip=false)"
      - "mine == lookup('ansible.builtin.template', 'main.j2', template_vars={'item': item})"
    quiet: true
  vars:
    mine: "{{ lookup('dcops_template', 'main.j2', template_vars={'item': item}) }}"
  loop: [leg-a, leg-b]
  when: not r_missing | bool

- name: A missing template is an error that names it
  ansible.builtin.debug:
    msg: "{{ lookup('dcops_template', 'nowhere.j2') }}"
  when: r_missing | bool
"""


def _project(tmp: Path) -> Path:
    role = tmp / "roles" / "r"
    (role / "templates").mkdir(parents=True)
    (role / "tasks").mkdir()
    (role / "defaults").mkdir()
    (role / "templates" / "main.j2").write_text(MAIN_J2)
    (role / "templates" / "part.j2").write_text("included part for {{ item }}\n")
    (role / "tasks" / "main.yml").write_text(TASKS)
    (role / "defaults" / "main.yml").write_text('r_value: "héllo"\nr_list: [1, 2]\nr_missing: false\n')
    play = tmp / "play.yml"
    play.write_text("- name: T\n  hosts: localhost\n  connection: local\n  gather_facts: false\n  roles: [r]\n")
    return play


def _run(tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    play = _project(tmp)
    env = dict(os.environ)
    env.update(
        ANSIBLE_LOOKUP_PLUGINS=str(PLAYBOOKS / "lookup_plugins"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCALHOST_WARNING="0",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
    )
    exe = VENV_BIN / "ansible-playbook"
    cmd = [str(exe if exe.exists() else Path(sys.executable).parent / "ansible-playbook"), str(play)]
    return subprocess.run([*cmd, "-e", f"out={tmp}", *extra], cwd=tmp, env=env, capture_output=True, text=True, timeout=300)


def test_lookup_renders_what_the_template_module_writes(tmp_path: Path) -> None:
    r = _run(tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    text = (tmp_path / "module-leg-b.txt").read_text()
    # the comparison above is only worth something if the template exercised every feature
    assert "value=héllo" in text and "line 2 of leg-b" in text and "included part for leg-b" in text
    assert "\\n kept" in text and "{%" not in text


def test_missing_template_names_the_file(tmp_path: Path) -> None:
    r = _run(tmp_path, "-e", "r_missing=true")
    assert r.returncode != 0
    assert "nowhere.j2" in r.stdout + r.stderr
