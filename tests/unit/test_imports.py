"""Every module of dcops imports on its own, and the import graph of src/dcops has no cycle.

The graph is read from the source (``ast``), not from a run: module-level and function-level
imports alike (a function-level import is still a dependency, only a later one), relative
imports resolved. An import statement depends on the modules it names:

- ``import P.M`` (with or without ``as``) names ``P.M``;
- ``from P import N`` names ``P`` (``N`` is looked up in ``P``'s namespace, which ``P``'s
  ``__init__`` fills) and also ``P.N`` when ``N`` is a submodule.

So a package whose ``__init__`` imports its submodules stays acyclic only if those submodules
import each other by full path (``from dcops.lab.state import ...``, ``import dcops.lab.state as
state``), never through the package (``from dcops.lab import state``). Imports under
``if TYPE_CHECKING:`` are left out: they never run.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import dcops

PACKAGE_DIR = Path(dcops.__file__).resolve().parent


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int


def modules(package_dir: Path = PACKAGE_DIR) -> dict[str, Path]:
    """Dotted name -> file of every module of the package (packages by their ``__init__``)."""
    out = {}
    for f in sorted(package_dir.rglob("*.py")):
        parts = [package_dir.name, *f.relative_to(package_dir).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = f
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            todo.extend(node.orelse)  # the body never runs
            continue
        todo.extend(ast.iter_child_nodes(node))
    return found


def import_graph(package_dir: Path = PACKAGE_DIR) -> dict[str, list[Edge]]:
    """Each module's imports of other modules of the package (see the module's docstring)."""
    mods = modules(package_dir)
    graph: dict[str, list[Edge]] = {m: [] for m in mods}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            named: list[str] = []
            if isinstance(node, ast.Import):
                named = [a.name for a in node.names]
            else:
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                named = [base] + [f"{base}.{a.name}" for a in node.names]
            for target in dict.fromkeys(named):
                if target in mods and target != name:
                    graph[name].append(Edge(name, target, node.lineno))
    return graph


def cycles(graph: dict[str, list[Edge]]) -> list[list[str]]:
    """The strongly connected components of more than one module (each holds at least one cycle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted({e.target for e in graph[root]})))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted({e.target for e in graph[w]}))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    x = stack.pop()
                    on_stack.discard(x)
                    comp.append(x)
                    if x == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return sorted(found)


def shortest_cycle(graph: dict[str, list[Edge]], start: str, within: set[str]) -> list[Edge]:
    """A shortest cycle through ``start`` inside ``within``, as its edges."""
    prev: dict[str, Edge] = {}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        for e in graph[v]:
            if e.target not in within:
                continue
            if e.target == start:
                path = [e]
                while path[0].source != start:
                    path.insert(0, prev[path[0].source])
                return path
            if e.target not in prev:
                prev[e.target] = e
                queue.append(e.target)
    raise AssertionError(f"{start} is on no cycle inside {sorted(within)}")


def describe(graph: dict[str, list[Edge]], component: list[str], files: dict[str, Path]) -> str:
    """The cycle as ``a -> b -> a``, then every import inside the component (file:line), the ones to cut."""
    members = set(component)
    base = files[min(files, key=len)].parent.parent
    path = shortest_cycle(graph, component[0], members)
    lines = [" -> ".join([e.source for e in path] + [path[0].source])]
    for e in sorted((e for m in component for e in graph[m] if e.target in members), key=lambda e: (e.source, e.line)):
        rel = files[e.source].relative_to(base)
        lines.append(f"    {rel}:{e.line}: {e.source} imports {e.target}")
    return "\n".join(lines)


def test_the_import_graph_of_dcops_has_no_cycle() -> None:
    graph = import_graph()
    # the reader sees imports at all (a parser that found none would pass vacuously)
    assert "dcops.cli.lab" in {e.target for e in graph["dcops.cli"]}
    found = cycles(graph)
    files = modules()
    assert not found, f"{len(found)} import cycle(s) in src/dcops (each with the imports inside it):\n" + "\n".join(
        describe(graph, c, files) for c in found
    )


def third_party(package_dir: Path = PACKAGE_DIR) -> list[str]:
    """The modules outside the standard library that the package imports at module level."""
    found = set()
    for path in modules(package_dir).values():
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            named = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and not node.level and node.module:
                named = [node.module]
            found |= {n for n in named if n.split(".")[0] not in (*sys.stdlib_module_names, package_dir.name)}
    return sorted(found - {"__future__"})


#: Runs in a fresh interpreter that has imported no dcops module: loads the third-party libraries
#: once (their import order is not dcops' to test, and they would cost most of the time), then
#: forks once per module (a few at a time); the child imports that module alone and reports.
#: Prints {module: traceback or null} as JSON.
DRIVER = r"""
import json, os, sys, traceback
names, preload = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for name in preload:
    __import__(name)
results, running = {}, {}
def reap():
    pid, status = os.wait()
    name, rfd = running.pop(pid)
    with os.fdopen(rfd) as f:
        err = f.read()
    results[name] = err or (None if status == 0 else f"exit status {status}")
for name in names:
    while len(running) >= max(2, os.cpu_count() or 2):
        reap()
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(rfd)
        code = 0
        try:
            __import__(name)
        except BaseException:
            os.write(wfd, traceback.format_exc().encode()[-4000:])
            code = 1
        os._exit(code)
    os.close(wfd)
    running[pid] = (name, rfd)
while running:
    reap()
print(json.dumps(results))
"""


def test_every_module_imports_on_its_own() -> None:
    names = sorted(modules())
    p = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(names), json.dumps(third_party())],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert p.returncode == 0, p.stderr
    results: dict[str, str | None] = json.loads(p.stdout.strip().splitlines()[-1])
    assert sorted(results) == names
    failed = {n: err for n, err in results.items() if err}
    assert not failed, f"{len(failed)} module(s) fail to import on their own:\n" + "\n".join(
        f"--- {n}:\n{err.strip().splitlines()[-1]}" for n, err in sorted(failed.items())
    )


def _package(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root / "pkg"


def test_the_graph_reader_resolves_relative_and_submodule_imports(tmp_path: Path) -> None:
    pkg = _package(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.a import f\n",
            "pkg/a.py": "from . import b\n",  # names pkg and pkg.b
            "pkg/b.py": "def g():\n    from .sub.c import h\n",  # function level, relative
            "pkg/sub/__init__.py": "",
            "pkg/sub/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\nimport pkg.sub\n",
        },
    )
    graph = import_graph(pkg)
    assert {m: sorted(e.target for e in es) for m, es in graph.items()} == {
        "pkg": ["pkg.a"],
        "pkg.a": ["pkg", "pkg.b"],
        "pkg.b": ["pkg.sub.c"],
        "pkg.sub": [],
        "pkg.sub.c": ["pkg.sub"],
    }
    assert cycles(graph) == [["pkg", "pkg.a"]]
    assert describe(graph, ["pkg", "pkg.a"], modules(pkg)).splitlines()[0] == "pkg -> pkg.a -> pkg"
