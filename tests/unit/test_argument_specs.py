"""Every role's meta/argument_specs.yml is what its documented defaults/main.yml makes, and Ansible
validates with it.

The format and the generator: src/dcops/ansible_plugins/argspecs.py. The one parametrized test
below runs over every role of playbooks/roles; the generator's own rules are tested after it on
a role made in a temporary folder.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from dcops.ansible_plugins import argspecs
from tests.conftest import LAB, ROOT, VENV_BIN

PLAYBOOKS = ROOT / "playbooks"
ROLES_DIR = PLAYBOOKS / "roles"
ROLES = sorted(p.name for p in ROLES_DIR.iterdir() if p.is_dir())
COMMENTED_VAR = re.compile(r"^# ?([A-Za-z_][A-Za-z0-9_]*):\s*$", re.M)

# A value of the wrong type for an option of each type (a str option takes anything).
WRONG = {"int": "not-a-number", "float": "not-a-number", "bool": "maybe", "dict": "not-a-dict", "list": {"not": "a list"}}
NOT_A_CHOICE = "not-a-choice"


def _templated(value: Any) -> bool:
    if isinstance(value, str):
        return "{{" in value or "{%" in value or "{#" in value
    if isinstance(value, dict):
        return any(_templated(k) or _templated(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_templated(v) for v in value)
    return False


def _spec(role: str) -> dict[str, Any]:
    data = yaml.safe_load((ROLES_DIR / role / "meta" / "argument_specs.yml").read_text())
    specs: dict[str, Any] = data["argument_specs"]
    return specs


def _cases(role: str) -> list[dict[str, Any]]:
    """For each entry point: the role's own defaults (every lab host), a wrong type, an invalid choice."""
    out: list[dict[str, Any]] = []
    for entry, body in _spec(role).items():
        opts = body["options"]
        out.append({"role": role, "entry": entry, "case": "good", "var": None, "value": None})
        typed = [(n, o) for n, o in opts.items() if o["type"] in WRONG and not o.get("required")]
        typed.sort(key=lambda no: list(WRONG).index(no[1]["type"]))
        if typed:
            name, opt = typed[0]
            out.append({"role": role, "entry": entry, "case": "type", "var": name, "value": WRONG[opt["type"]]})
        choice = next((n for n, o in opts.items() if "choices" in o), None)
        if choice:
            out.append({"role": role, "entry": entry, "case": "choice", "var": choice, "value": NOT_A_CHOICE})
    return out


def _key(c: dict[str, Any]) -> str:
    return f"{c['role']}/{c['entry']}/{c['case']}"


def _validation_project(tmp: Path, cases: list[dict[str, Any]]) -> Path:
    """Roles that are the real ones but for their tasks (empty), and one play that checks every case.

    The role loader reads the committed meta/argument_specs.yml and prepends its argument check to
    the (empty) entry point: what runs is exactly the check a converge starts with, nothing else."""
    for role in ROLES:
        src, dst = ROLES_DIR / role, tmp / "roles" / role
        (dst / "tasks").mkdir(parents=True)
        for part in ("defaults", "meta", "vars", "files"):
            if (src / part).is_dir():
                (dst / part).symlink_to(src / part)
        for entry in _spec(role):
            (dst / "tasks" / f"{entry}.yml").write_text("[]\n")
    (tmp / "group_vars").symlink_to(PLAYBOOKS / "group_vars")

    def check(c: dict[str, Any]) -> dict[str, Any]:
        # a refusal is recorded with Ansible's message; a case that passes records nothing
        imp: dict[str, Any] = {
            "name": f"Check {_key(c)}",
            "ansible.builtin.import_role": {"name": c["role"], "tasks_from": c["entry"]},
        }
        if c["var"]:
            imp["vars"] = {c["var"]: c["value"]}
        msg = "ansible_failed_result.msg | default('refused') | string"
        record = {"dcops_refused": "{{ dcops_refused | default({}) | combine({'" + _key(c) + "': " + msg + "}) }}"}
        return {"name": f"Case {_key(c)}", "block": [imp], "rescue": [{"name": "Refused", "ansible.builtin.set_fact": record}]}

    done = {"name": "Done", "ansible.builtin.set_fact": {"dcops_done": "{{ dcops_done | default([]) + [ansible_play_name] }}"}}
    local = {"connection": "local", "gather_facts": False}
    results = tmp / "results.json"

    def per_host(var: str, default: str) -> str:
        return f"dict(groups['all'] | zip(groups['all'] | map('extract', hostvars) | map(attribute='{var}', default={default})))"

    content = (
        "{{ {'bad_host': groups['all'][0], 'refused': "
        + per_host("dcops_refused", "{}")
        + ", 'done': "
        + per_host("dcops_done", "[]")
        + "} | to_json }}"
    )
    play = [
        {"name": "good", "hosts": "all", **local, "tasks": [*(check(c) for c in cases if c["case"] == "good"), done]},
        {"name": "bad", "hosts": "all[0]", **local, "tasks": [*(check(c) for c in cases if c["case"] != "good"), done]},
        {
            "name": "Results",
            "hosts": "localhost",
            **local,
            "tasks": [{"name": "Write them", "ansible.builtin.copy": {"dest": str(results), "mode": "0600", "content": content}}],
        },
    ]
    (tmp / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    return results


@pytest.fixture(scope="module")
def validation(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What one ansible-playbook run of every case gave: ``refused`` ({host: {case: Ansible's message}}),
    ``done`` ({host: the plays it finished}) and ``bad_host`` (where the wrong values were tried)."""
    tmp = tmp_path_factory.mktemp("argspecs")
    cases = [c for role in ROLES for c in _cases(role)]
    results = _validation_project(tmp, cases)
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(PLAYBOOKS / "ansible.cfg"),
        ANSIBLE_FILTER_PLUGINS=str(PLAYBOOKS / "filter_plugins"),
        ANSIBLE_LOOKUP_PLUGINS=str(PLAYBOOKS / "lookup_plugins"),
        ANSIBLE_CACHE_PLUGIN="memory",  # never the facts a converge cached
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCALHOST_WARNING="0",
    )
    exe = VENV_BIN / "ansible-playbook"
    cmd = [str(exe if exe.exists() else Path(sys.executable).parent / "ansible-playbook"), "-i", str(LAB), "play.yml"]
    r = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and results.is_file(), r.stdout[-6000:] + r.stderr[-3000:]
    data: dict[str, Any] = json.loads(results.read_text())
    return data


@pytest.mark.parametrize("role", ROLES)
def test_role_argument_spec(role: str, validation: dict[str, Any]) -> None:
    role_dir = ROLES_DIR / role
    defaults_text = (role_dir / "defaults" / "main.yml").read_text()
    defaults = yaml.safe_load(defaults_text) or {}
    specs = _spec(role)

    # (a) the committed spec is what the generator makes of defaults/main.yml
    assert argspecs.check_role(role_dir) == [], f"run `{argspecs.GENERATOR}` and commit the result"
    assert (role_dir / "meta" / "argument_specs.yml").read_text() == argspecs.generate(role_dir)

    # (b) every variable has a spec entry and every spec entry is a variable (or a documented required one)
    options: dict[str, dict[str, Any]] = {}
    for entry, body in specs.items():
        assert body.get("short_description"), f"{role}: entry point {entry} has no short description"
        assert (role_dir / "tasks" / f"{entry}.yml").is_file(), f"{role}: entry point {entry} has no tasks file"
        for name, opt in body["options"].items():
            assert options.setdefault(name, opt) == opt, f"{role}: {name} is specified differently in two entry points"
    assert "main" in specs
    required = {n for n, o in options.items() if o.get("required")}
    assert required <= set(COMMENTED_VAR.findall(defaults_text)), f"{role}: a required variable is not documented"
    assert set(defaults) == set(options) - required, f"{role}: defaults and spec name different variables"
    assert not required & set(defaults), f"{role}: a required variable has a default"

    for name, opt in options.items():
        # (c) prefixed with the role's name
        assert name.startswith(f"{role}_"), f"{role}: {name} is not prefixed with the role's name"
        assert opt["description"] and all(isinstance(p, str) and p for p in opt["description"]), name
        # (d) the literal default, or no default and the description says it is templated
        if name in required:
            assert "default" not in opt, name
        elif _templated(defaults[name]):
            assert "default" not in opt, f"{role}: {name} has a literal default in its spec but a templated one"
            assert any("templated" in p for p in opt["description"]), f"{role}: {name}: the description does not say so"
        elif defaults[name] is not None:
            assert "default" in opt, f"{role}: {name} has no default in its spec"
            assert opt["default"] == defaults[name] and type(opt["default"]) is type(defaults[name]), name
        if "choices" in opt and "default" in opt:
            assert all(v in opt["choices"] for v in (opt["default"] if opt["type"] == "list" else [opt["default"]])), name

    # (e) ansible-playbook validates with it: the role's own defaults pass on every lab host; a
    # wrong type and an invalid choice are refused with a message that names the variable
    hosts = validation["done"]
    assert len(hosts) >= 10 and all("good" in done for done in hosts.values()), hosts
    bad_host = validation["bad_host"]
    assert "bad" in hosts[bad_host]
    cases = _cases(role)
    assert any(c["case"] == "type" for c in cases if c["entry"] == "main"), f"{role}: no option whose type can be wrong"
    for c in cases:
        key = _key(c)
        if c["case"] == "good":
            for host, refused in validation["refused"].items():
                assert key not in refused, f"{key} on {host}: the role's own defaults are refused: {refused[key]}"
            continue
        msg = validation["refused"][bad_host].get(key)
        assert msg, f"{key}: {c['var']}={c['value']!r} was accepted"
        errors = msg.split("\n")[1:]
        assert len(errors) == 1 and c["var"] in errors[0], f"{key}: {msg}"
        assert ("must be one of" if c["case"] == "choice" else "unable to convert") in errors[0], msg


def test_every_role_is_covered() -> None:
    assert {"baseline", "firewall", "datanet", "dns", "mail", "mail_backup", "monitoring"} <= set(ROLES)
    assert [p.name for p in argspecs.role_dirs(ROLES_DIR)] == ROLES
    # at least one invalid choice is tried per role that has choices, and most roles have some
    assert sum(any(c["case"] == "choice" for c in _cases(r)) for r in ROLES) >= 4


# ---------------------------------------------------------------- the generator's rules

DEFAULTS = """\
# Role r: a test role.

# @entry main: The test role
# What it does.
#
# A second paragraph.
# @entry extra: Another entry point

# A flag.
r_flag: true
# A port,
# on two lines.
r_port: 22
# A mode.
# @spec: choices: [fast, slow]
r_mode: fast
# Names.
r_names: [a, "{{ r_other }}"]
# Numbers.
# @spec: elements: int
r_numbers: []
# Computed.
# @spec: type: bool
r_computed: "{{ r_x | default(false) or lookup('ansible.builtin.env', 'R_ENV') }}"
# Settings.
r_settings: {a: 1}

# ---------------------------------------------------------------- extra
# @entries: main, extra
# Where it goes (no default: say it).
# @spec: required: true, type: str
# r_dest:

# Shared with extra only.
# @spec: entries: [extra]
r_only_extra: 1
"""


def _role(tmp: Path, defaults: str = DEFAULTS, entries: tuple[str, ...] = ("main", "extra")) -> Path:
    role = tmp / "roles" / "r"
    (role / "defaults").mkdir(parents=True)
    (role / "tasks").mkdir()
    (role / "meta").mkdir()
    for e in entries:
        (role / "tasks" / f"{e}.yml").write_text("[]\n")
    (role / "defaults" / "main.yml").write_text(defaults)
    return role


def test_generator_builds_the_spec_from_the_comments(tmp_path: Path) -> None:
    role = _role(tmp_path)
    spec = yaml.safe_load(argspecs.generate(role))["argument_specs"]
    assert list(spec) == ["main", "extra"]
    main = spec["main"]
    assert main["short_description"] == "The test role"
    assert main["description"] == ["What it does.", "A second paragraph."]
    o = main["options"]
    assert list(o) == ["r_flag", "r_port", "r_mode", "r_names", "r_numbers", "r_computed", "r_settings", "r_dest"]
    assert o["r_flag"] == {"description": ["A flag."], "type": "bool", "default": True}
    assert o["r_port"] == {"description": ["A port, on two lines."], "type": "int", "default": 22}
    assert o["r_mode"] == {"description": ["A mode."], "type": "str", "choices": ["fast", "slow"], "default": "fast"}
    assert o["r_names"]["type"] == "list" and o["r_names"]["elements"] == "str" and "default" not in o["r_names"]
    assert o["r_names"]["description"][-1] == "Default: templated for each host in defaults/main.yml, from r_other."
    assert o["r_numbers"] == {"description": ["Numbers."], "type": "list", "elements": "int", "default": []}
    assert o["r_computed"]["type"] == "bool" and "default" not in o["r_computed"]
    assert o["r_computed"]["description"][-1].endswith("from r_x and the environment ($R_ENV).")
    assert o["r_settings"] == {"description": ["Settings."], "type": "dict", "default": {"a": 1}}
    assert o["r_dest"] == {"description": ["Where it goes (no default: say it)."], "type": "str", "required": True}
    assert list(spec["extra"]["options"]) == ["r_dest", "r_only_extra"]
    # deterministic, and a spec Ansible's own validator takes
    assert argspecs.generate(role) == argspecs.generate(role)
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    res = ArgumentSpecValidator(o).validate({"r_dest": "/x", "r_mode": "slow"})
    assert res.error_messages == []
    assert ArgumentSpecValidator(o).validate({"r_dest": "/x", "r_mode": "medium"}).error_messages


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (("# A port,\n# on two lines.\n", ""), "r_port: no comment right above it"),
        (("# @spec: choices: [fast, slow]", "# @spec: type: str, choices: [fast, slow]"), "`type: str` is what its default says"),
        (("# @spec: elements: int", "# @spec: elements: int, type: list"), "`type: list` is what its default says"),
        (("# @spec: type: bool\n", ""), "r_computed: its type cannot be inferred"),
        (("# A flag.", "# A flag ({{ r_port }})."), "r_flag: its description holds a Jinja delimiter"),
        (("# @spec: choices: [fast, slow]", "# @spec: choices: [quick, slow]"), "r_mode: its default does not pass its own spec"),
        (("# @spec: entries: [extra]", "# @spec: entries: [other]"), "entry point other is not declared"),
        (("# @spec: entries: [extra]", "# @spec: entrypoints: [extra]"), "unknown @spec key(s) entrypoints"),
        (("r_port: 22", "port: 22"), "port: not prefixed with the role's name (r_)"),
        (("# @entry main: The test role", "# @entry first: The test role"), "no `# @entry main: <short description>` line"),
        (("# @spec: type: bool\n", "# @spec: type: bool\n# more text\n"), "@spec must be the last line of the comment block"),
        (("# @spec: required: true, type: str", "# @spec: required: true"), "r_dest: its type cannot be inferred"),
        (("# Computed.\n# @spec", "# Computed.\n# @spec: required: true\n# @spec"), "a second @spec line"),
        (("# A flag.\n", "# A flag.\n# @spec: required: true, type: bool\n"), "r_flag: required, but it has a default"),
    ],
)
def test_generator_names_what_breaks_the_format(tmp_path: Path, edit: tuple[str, str], problem: str) -> None:
    assert edit[0] in DEFAULTS
    role = _role(tmp_path, DEFAULTS.replace(*edit))
    with pytest.raises(argspecs.ArgSpecError) as e:
        argspecs.generate(role)
    assert problem in str(e.value)
    assert "defaults/main.yml:" in str(e.value)  # where, with the line


def test_generator_wants_a_tasks_file_per_entry_point(tmp_path: Path) -> None:
    with pytest.raises(argspecs.ArgSpecError, match=r"entry point extra has no tasks/extra\.yml"):
        argspecs.generate(_role(tmp_path, entries=("main",)))


def test_check_mode_names_each_difference(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    role = _role(tmp_path)
    roles = ["--roles-dir", str(role.parent)]
    assert argspecs.main([*roles, "--check"]) == 1  # no spec yet
    assert "meta/argument_specs.yml: missing" in capsys.readouterr().out
    assert argspecs.main(roles) == 0
    assert argspecs.main([*roles, "--check"]) == 0
    target = role / "meta" / "argument_specs.yml"
    target.write_text(target.read_text().replace("default: 22", "default: 2222").replace("- fast\n", "- quick\n", 1))
    assert argspecs.main([*roles, "--check"]) == 1
    out = capsys.readouterr().out
    assert "argument_specs.main.options.r_port.default: is 2222, defaults/main.yml gives 22" in out
    assert "argument_specs.main.options.r_mode.choices: is [quick, slow], defaults/main.yml gives [fast, slow]" in out
    assert argspecs.main(roles) == 0
    capsys.readouterr()
    target.write_text(target.read_text().replace("# Generated", "#  Generated"))
    assert argspecs.main([*roles, "--check"]) == 1
    assert "same spec, other text" in capsys.readouterr().out
    assert argspecs.main(roles) == 0
    assert argspecs.main([*roles, "--check"]) == 0
    (role / "defaults" / "main.yml").write_text(DEFAULTS.replace("# A flag.\n", ""))
    assert argspecs.main([*roles, "--check"]) == 2
    assert "r_flag: no comment right above it" in capsys.readouterr().err


def test_the_module_runs_as_a_program() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "dcops.ansible_plugins.argspecs", "--check"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stdout + r.stderr
