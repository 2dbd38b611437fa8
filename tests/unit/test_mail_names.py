"""Display names: what YAML cannot carry or a mail client would show garbled is refused when the CSV
(or ``dcops mail add --name``) is read, with file, line, column and reason, and nothing is written.
Also: the mail modules import neither the converge nor the CLI, and form no import cycle."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dcops.cli import app
from dcops.inventory import load
from dcops.mail.csvimport import HEADER
from dcops.mail.names import MAX_LENGTH, display_name_problem
from tests.conftest import ROOT
from tests.unit.test_mail_txn import new_world

runner = CliRunner()

BAD = [
    ("Nguy\uffffn A", 5, "U+FFFF", "YAML cannot carry it"),
    ("Nguy\ufffen A", 5, "U+FFFE", "YAML cannot carry it"),
    ("Lê \ufdd0B", 4, "U+FDD0", "noncharacter"),
    ("Lê \U0001fffeB", 4, "U+1FFFE", "noncharacter"),
    ("Trần\ufeffThị", 5, "U+FEFF ZERO WIDTH NO-BREAK SPACE", "byte-order mark inside the name"),
    ("Trần\u200bThị", 5, "U+200B ZERO WIDTH SPACE", "zero-width character"),
    ("Trần\u200dThị", 5, "U+200D ZERO WIDTH JOINER", "zero-width character"),
    ("Lê B\u202eáhp", 5, "U+202E RIGHT-TO-LEFT OVERRIDE", "reordered"),
    ("Phạm\u00adVăn", 5, "U+00AD SOFT HYPHEN", "invisible"),
    ("Phạm\x85Văn", 5, "U+0085", "line break"),
    ("Phạm\x93Văn\x94", 5, "U+0093", "C1 control"),
    ("Phạm\x7fVăn", 5, "U+007F", "YAML cannot carry it"),
    ("Phạm\x1bVăn", 5, "U+001B", "control character"),
    ("Phạm\tVăn", 5, "U+0009", "a tab"),
    ("Phạm\u2028Văn", 5, "U+2028 LINE SEPARATOR", "line break"),
    ("\u0301Anh", 1, "U+0301 COMBINING ACUTE ACCENT", "no letter before it"),
    ("Anh \u0303B", 5, "U+0303 COMBINING TILDE", "no letter before it"),
    ("Ae\u0302\u0323\u0301\u0300", 6, "U+0300", "more than 3 combining marks"),
    ("Lò \ue01aA", 4, "U+E01A", "private-use character"),
    ("Lò \u0378A", 4, "U+0378", "not a character of Unicode"),
]
IDS = ["FFFF", "FFFE", "FDD0", "1FFFE", "bom", "zwsp", "zwj", "bidi", "shy", "nel", "c1", "del", "esc", "tab", "u2028",
       "lone-mark-first", "lone-mark-after-space", "zalgo", "private-use", "unassigned"]


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the lab (``inv``), a vault password, secrets and lab folders, all in ``tmp_path``."""
    for k, v in new_world(tmp_path).env().items():
        monkeypatch.setenv(k, v)
    return tmp_path


def files(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name,pos,char,reason", BAD, ids=IDS)
def test_import_refuses_the_name_at_read_time(world: Path, name: str, pos: int, char: str, reason: str) -> None:
    f = world / "a.csv"
    f.write_text(f'{HEADER}\nso-tttt,ok,Người Tốt,\nso-tttt,bad,"{name}",\n', encoding="utf-8", newline="")
    before = files(world)
    r = runner.invoke(app, ["mail", "import", str(f), "-i", str(world / "inv"), "--handover", str(world / "h.csv"), "--json"])
    assert r.exit_code == 2, r.output
    [p] = json.loads(r.stdout)["problems"]
    assert (p["file"], p["line"], p["path"]) == (str(f), 3, "display_name"), p
    assert f"character {pos} is {char}" in p["reason"] and reason in p["reason"], p["reason"]
    assert files(world) == before, "nothing written: no accounts, no secrets, no handover file"


@pytest.mark.parametrize("name,pos,char,reason", [*BAD, ("Nguy\udcffn", 5, "U+DCFF", "not UTF-8")], ids=[*IDS, "surrogate"])
def test_add_refuses_the_name(world: Path, name: str, pos: int, char: str, reason: str) -> None:
    before = files(world)
    r = runner.invoke(app, ["mail", "add", "x@stttt.lab.test", "--name", name, "-i", str(world / "inv")])
    out = " ".join(r.output.split())
    assert r.exit_code == 2 and f"--name: display name: character {pos} is {char}" in out and reason in out, out
    assert files(world) == before


def test_too_long_and_good_names(world: Path) -> None:
    long = "Nguyễn " * 30
    why = display_name_problem(long.strip())
    assert why and f"more than {MAX_LENGTH}" in why and "has 209 characters" in why
    for good in ("Nguyễn Văn A, Phó Giám đốc Sở", "Nguye\u0302\u0303n Thi\u0323 B", "Hà\u00a0Giang", "Lò Văn O'Neil-Trần",
                 "Sùng A Páo (Mù Cang Chải)", "x" * MAX_LENGTH):
        assert display_name_problem(good) is None, good
    f = world / "a.csv"
    f.write_text(f'{HEADER}\nso-tttt,long,"{long}",\nso-tttt,nfd,"Nguye\u0302\u0303n B",\n', encoding="utf-8")
    r = runner.invoke(app, ["mail", "import", str(f), "-i", str(world / "inv"), "--json"])
    [p] = json.loads(r.stdout)["problems"]
    assert (p["line"], p["path"]) == (2, "display_name") and "more than 128" in p["reason"]
    r = runner.invoke(app, ["mail", "add", "nfd@stttt.lab.test", "--name", "Nguye\u0302\u0303n B", "-i", str(world / "inv")])
    assert r.exit_code == 0, r.output
    assert {m.display_name for m in load(world / "inv").inventory.mailboxes()} >= {"Nguye\u0302\u0303n B"}


def test_a_name_that_would_not_load_is_never_written(world: Path) -> None:
    """Past the read-time checks (a caller of Store.apply), the inventory is validated before anything is written."""
    from dcops.inventory.model import MailAccount
    from dcops.mail.accounts import AccountError, Plan, Store
    from dcops.mail.vault import Vault

    inv = world / "inv"
    store = Store(load(inv))
    before = files(world)
    bad = MailAccount(agency="so-tttt", user="bad", display_name="Nguy\uffffn")
    with pytest.raises(AccountError, match="character 5 is U\\+FFFF"):
        store.apply(Plan(add=[bad]), Vault(world / "vault-password"))
    monkeypatched = store.check
    store.check = lambda plan: []  # type: ignore[method-assign]  # as if the checks had missed it
    with pytest.raises(AccountError) as e:
        store.apply(Plan(add=[bad]), Vault(world / "vault-password"))
    store.check = monkeypatched  # type: ignore[method-assign]
    assert e.value.reasons[0] == "the inventory would not validate after the change (nothing written):"
    assert str(inv / "mail-accounts" / "so-tttt.yml") in e.value.reasons[1] and "#xffff" in e.value.reasons[1]
    assert files(world) == before


# --- the mail modules' imports -----------------------------------------------------------------------
def _imports(path: Path, module: str) -> set[str]:
    """Every dcops module ``path`` imports, at the top or inside a function."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module if node.level == 0 else ".".join([*module.split(".")[: -node.level], node.module])
            out.add(base)
            out |= {f"{base}.{a.name}" for a in node.names}
    return {m for m in out if m == "dcops" or m.startswith("dcops.")}


def test_mail_modules_import_no_converge_no_cli_and_no_cycle() -> None:
    src = ROOT / "src"
    modules = {".".join(p.relative_to(src).with_suffix("").parts).removesuffix(".__init__"): p
               for p in (src / "dcops").rglob("*.py")}
    graph = {m: {i for i in _imports(p, m) if i in modules and i != m} for m, p in modules.items()}
    mail = sorted(m for m in modules if m.startswith("dcops.mail"))
    assert "dcops.mail.txn" in mail and "dcops.mail.handover" in mail
    for m in mail:
        reach: set[str] = set()
        todo = [m]
        while todo:
            for nxt in graph[todo.pop()]:
                if nxt not in reach:
                    reach.add(nxt)
                    todo.append(nxt)
        assert not {r for r in reach if r.startswith(("dcops.converge", "dcops.cli", "dcops.lab"))}, m
        assert m not in reach, f"{m} is in an import cycle"
