"""The dcops_template lookup renders what ansible.builtin.template writes, byte for byte.

The roles decide whether a host's file is stale by comparing its checksum with what
dcops_template renders on the controller: any difference from the template module would make
every run reinstall the file (no idempotence), so both are run here on the same templates
(includes, role defaults, a loop item, ansible_managed, trim_blocks) and compared.

Other ansible-core releases: install each in a virtualenv of its own (ansible-core alone is
enough; this checkout's dcops is put on PYTHONPATH) and list them, separated by ``:``, in
``DCOPS_TEST_ANSIBLE_CORE_VENVS``; the same playbook then runs with each of them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dcops.ansible_plugins import templating
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


def _run(tmp: Path, *extra: str, venv: Path | None = None) -> subprocess.CompletedProcess[str]:
    play = _project(tmp)
    env = dict(os.environ)
    env.update(
        ANSIBLE_LOOKUP_PLUGINS=str(PLAYBOOKS / "lookup_plugins"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCALHOST_WARNING="0",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
    )
    if venv is None:
        exe = VENV_BIN / "ansible-playbook"
        cmd = [str(exe if exe.exists() else Path(sys.executable).parent / "ansible-playbook"), str(play)]
    else:  # another ansible-core: its own Python, this checkout's dcops
        cmd = [str(venv / "bin" / "python"), str(venv / "bin" / "ansible-playbook"), str(play)]
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH", "")) if p)
        env.pop("VIRTUAL_ENV", None)
        env["DCOPS_ANSIBLE_CORE_TRY"] = templating.minor_release(_core_version(venv))
    return subprocess.run([*cmd, "-e", f"out={tmp}", *extra], cwd=tmp, env=env, capture_output=True, text=True, timeout=300)


def _core_version(venv: Path) -> str:
    code = "import ansible.release; print(ansible.release.__version__)"
    r = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"{venv}: no ansible-core there: {r.stderr}"
    return r.stdout.strip()


def _check_rendered(tmp: Path) -> None:
    text = (tmp / "module-leg-b.txt").read_text()
    # the comparison in the playbook is only worth something if the template exercised every feature
    assert "value=héllo" in text and "line 2 of leg-b" in text and "included part for leg-b" in text
    assert "\\n kept" in text and "{%" not in text


def test_lookup_renders_what_the_template_module_writes(tmp_path: Path) -> None:
    r = _run(tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    _check_rendered(tmp_path)


def test_missing_template_names_the_file(tmp_path: Path) -> None:
    r = _run(tmp_path, "-e", "r_missing=true")
    assert r.returncode != 0
    assert "nowhere.j2" in r.stdout + r.stderr


VENVS = [Path(p) for p in re.split(r"[:\s]+", os.environ.get("DCOPS_TEST_ANSIBLE_CORE_VENVS", "")) if p]


@pytest.mark.parametrize("venv", VENVS or [None], ids=[v.name for v in VENVS] or ["none"])
def test_other_ansible_core_renders_byte_for_byte(tmp_path: Path, venv: Path | None) -> None:
    if venv is None:
        pytest.skip("DCOPS_TEST_ANSIBLE_CORE_VENVS lists no virtualenv with another ansible-core (e.g. /tmp/ac221:/tmp/ac220)")
    version = _core_version(venv)
    r = _run(tmp_path / "ok", venv=venv)
    assert r.returncode == 0, f"ansible-core {version} ({venv}) renders differently:\n{r.stdout}{r.stderr}"
    _check_rendered(tmp_path / "ok")
    missing = _run(tmp_path / "missing", "-e", "r_missing=true", venv=venv)
    assert missing.returncode != 0 and "nowhere.j2" in missing.stdout + missing.stderr, f"ansible-core {version}"
    minor = templating.minor_release(version)
    if minor not in templating.TESTED:
        pytest.skip(f"ansible-core {version} renders byte for byte: add {minor!r} to templating.TESTED")


def test_check_version_accepts_only_the_tested_releases(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DCOPS_ANSIBLE_CORE_TRY", raising=False)
    assert templating.TESTED[0] == "2.19"  # the release pyproject pins
    for v in ("2.19.14", "2.19.0rc1", "2.20.10", "2.21.5", "2.21"):
        templating.check_version(v)
    for v in ("2.18.19", "2.22.0b1", "2.190.1", "3.0.0"):
        with pytest.raises(templating.TemplatingError) as e:
            templating.check_version(v)
        assert f"this is ansible-core {v}" in str(e.value) and "2.19, 2.20, 2.21" in str(e.value)
    with pytest.raises(templating.TemplatingError, match="is not an ansible-core release"):
        templating.check_version("devel")
    templating.check_version()  # the installed release
    assert templating.minor_release(templating.ansible_core_version()) in templating.TESTED
    monkeypatch.setenv("DCOPS_ANSIBLE_CORE_TRY", "2.22")
    templating.check_version("2.22.0b1")  # a release being tried by the test above
    with pytest.raises(templating.TemplatingError):
        templating.check_version("2.23.0")
