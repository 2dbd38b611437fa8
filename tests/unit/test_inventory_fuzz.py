"""A seeded fuzz of ``dcops inventory check`` over a few hundred corrupted copies of inventory/lab.

Each case applies one to three mutations to the lab's files: byte flips, truncations, inserted
or deleted lines, YAML 1.1 scalars and wrong types put in place of values, alias bombs, huge
values, deep nesting. Whatever comes out, the promise holds: exit code 0 or 2, no traceback,
and every problem line names a file of the inventory. A sample of the cases runs the real
command in a subprocess under a timeout and an address-space limit.

``DCOPS_FUZZ_CASES`` (default 300) and ``DCOPS_FUZZ_SEED`` change the run; a failing case
prints its seed and mutations, so it can be replayed.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dcops.cli import app
from tests.unit.test_inventory_hostile import LAB, assert_refused, bomb, run_cli

CASES = int(os.environ.get("DCOPS_FUZZ_CASES", "300"))
SEED = int(os.environ.get("DCOPS_FUZZ_SEED", "20250701"))
FILES = sorted(p.name for p in LAB.glob("*.yml"))
runner = CliRunner()

#: Values put in place of a YAML value: YAML 1.1 words, wrong types, references to nothing.
VALUES = [
    "off", "yes", "no", "on", "0777", "1:30", "167772161", "0x10", "0o17", "-1", "1e400", ".nan", "2020-01-01",
    "~", "''", "[]", "{}", "[1, a]", "{k: v}", "*nope", "&x [*x]", "!!timestamp x", "!!binary a", "!!int q",
    "!!python/object:os.system x", "'" + "x" * 5000 + "'", "0x" + "f" * 300, "[" * 80 + "]" * 80, "- a", ": x",
    "\"\\u0000\"", "\t", "10.0.0.1", "10.0.0.0/8", "site:nowhere", "STTTT.lab.test.", "true", "null",
]


@dataclass
class Case:
    seed: int
    ops: list[str]
    texts: dict[str, bytes]

    def write(self, d: Path) -> None:
        shutil.copytree(LAB, d)
        for name, data in self.texts.items():
            (d / name).write_bytes(data)


def _value_lines(text: str) -> list[int]:
    return [i for i, line in enumerate(text.splitlines()) if ": " in line and not line.lstrip().startswith("#")]


def make_case(seed: int) -> Case:
    rnd = random.Random(seed)
    texts = {name: (LAB / name).read_bytes() for name in FILES}
    ops: list[str] = []
    for _ in range(rnd.randint(1, 3)):
        name = rnd.choice(FILES)
        data = texts[name]
        op = rnd.choice(["flip", "truncate", "value", "value", "bomb", "delete-line", "duplicate-line", "insert"])
        if op == "flip" and data:
            at = rnd.randrange(len(data))
            data = data[:at] + bytes([rnd.randrange(256)]) + data[at + 1 :]
            ops.append(f"{name}: byte {at} flipped")
        elif op == "truncate":
            at = rnd.randrange(len(data) + 1)
            data = data[:at]
            ops.append(f"{name}: truncated at {at}")
        elif op in ("value", "bomb"):
            text = data.decode("utf-8", "replace")
            lines = text.splitlines(keepends=True)
            candidates = _value_lines(text)
            if candidates:
                k = rnd.choice(candidates)
                key, _, _ = lines[k].partition(": ")
                value = bomb(rnd.randint(3, 9), rnd.randint(2, 9)) if op == "bomb" else rnd.choice(VALUES)
                lines[k] = f"{key}: {value}\n"
                ops.append(f"{name}: line {k + 1} value -> {value[:40]!r}")
                data = "".join(lines).encode("utf-8")
        elif op in ("delete-line", "duplicate-line", "insert"):
            lines = data.split(b"\n")
            k = rnd.randrange(len(lines))
            if op == "delete-line":
                del lines[k]
            elif op == "duplicate-line":
                lines.insert(k, lines[k])
            else:
                junk = [b"  colour: blue", b"\t- x", b"---", b"%YAML 1.1", b"? [a]", b"<<: *nope", b"- &a *a"]
                lines.insert(k, rnd.choice(junk))
            ops.append(f"{name}: {op} at line {k + 1}")
            data = b"\n".join(lines)
        texts[name] = data
    return Case(seed, ops, texts)


def check_outcome(d: Path, code: int, stdout: str, stderr: str, as_json: bool, case: Case) -> None:
    where = f"seed {case.seed}: {case.ops}"
    assert code in (0, 2), f"{where}: exit {code}\n{stderr[-2000:]}"
    assert "Traceback" not in stderr and "Traceback" not in stdout, f"{where}:\n{stderr[-3000:]}"
    if code == 0:
        return
    if as_json:
        data = json.loads(stdout)
        assert data["ok"] is False and data["problems"], where
        for p in data["problems"]:
            assert p["file"].startswith(str(d)), f"{where}: {p}"
            assert p["reason"].strip() and "\n" not in p["reason"], f"{where}: {p}"
            assert p["line"] is None or p["line"] >= 1, f"{where}: {p}"
    else:
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert lines[0].startswith(f"inventory {d}: "), f"{where}:\n{stderr}"
        for line in lines[1:]:
            assert line.startswith(f"  {d}"), f"{where}: a problem line that names no file:\n{line}"


def test_the_fuzz_reaches_every_kind_of_mutation() -> None:
    ops = " ".join(op for seed in range(SEED, SEED + CASES) for op in make_case(seed).ops)
    for kind in ("flipped", "truncated", "value ->", "'[&a0", "delete-line", "duplicate-line", "insert"):
        assert kind in ops, kind


@pytest.mark.parametrize("chunk", range(6))
def test_corrupted_lab_inventories_keep_the_promise(tmp_path: Path, chunk: int) -> None:
    seeds = range(SEED + chunk, SEED + CASES, 6)
    outcomes = {0: 0, 2: 0}
    for seed in seeds:
        case = make_case(seed)
        d = tmp_path / f"case-{seed}"
        case.write(d)
        as_json = seed % 3 == 0
        r = runner.invoke(app, ["inventory", "check", str(d), *(["--json"] if as_json else [])])
        if r.exception is not None and not isinstance(r.exception, SystemExit):
            raise AssertionError(f"seed {seed}: {case.ops}") from r.exception
        check_outcome(d, r.exit_code, r.stdout, r.stderr, as_json, case)
        outcomes[r.exit_code] += 1
        shutil.rmtree(d)
    assert outcomes[2], "no case was refused: the mutations do not bite"


@pytest.mark.parametrize("k", range(4))
def test_corrupted_lab_inventories_in_a_subprocess(tmp_path: Path, k: int) -> None:
    """The real command, under the time and memory bound; one bomb and three random cases."""
    if k == 0:
        case = Case(0, ["services.yml: a bomb"], {"services.yml": (LAB / "services.yml").read_bytes().replace(
            b"from: [service:docmgmt]", f"from: {bomb()}".encode())})
    else:
        case = make_case(SEED + 7919 * k)
    d = tmp_path / "case"
    case.write(d)
    r = run_cli("inventory", "check", str(d))
    if k == 0:
        assert_refused(r, d, "this alias copies")
    check_outcome(d, r.returncode, r.stdout, r.stderr, False, case)
