"""A wheelhouse of dcops and what its exporters need, to install on a host without network.

The lab's hosts have no route to a package index, so the monitoring role installs dcops from
wheels built on the controller::

    python -m dcops.wheelhouse DEST          # or build(Path(DEST))
    # on the host: pip install --no-index --no-deps DEST/*.whl

The wheelhouse holds the dcops wheel (built from this tree, ``--no-deps``) and binary wheels of
the exporters' runtime closure (:data:`EXPORTER_REQUIREMENTS` and what they require), pinned to
the versions installed on the controller, which runs the same Debian and Python as the hosts.
Ansible, Pulumi and the test tools are not included: the exporters do not import them.

A rebuild with unchanged sources gives byte-identical wheels (``SOURCE_DATE_EPOCH`` is fixed),
so copying the wheelhouse to a host changes nothing when nothing changed; ``SHA256SUMS`` lists
every wheel, and a host compares it with what it installed last.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from dcops import ROOT

#: What ``dcops exporter connectivity|security`` imports (the CLI included).
EXPORTER_REQUIREMENTS: tuple[str, ...] = (
    "pydantic",
    "pyyaml",
    "prometheus-client",
    "dnspython",
    "paramiko",
    "cryptography",
    "typer",
    "rich",
)
#: Files of the source tree a wheel build needs.
SOURCE_PARTS: tuple[str, ...] = ("pyproject.toml", "README.md", "src")
#: Zip timestamps of the dcops wheel (1980-01-01 + 1 day, the zip epoch).
SOURCE_DATE_EPOCH = "315619200"
SUMS = "SHA256SUMS"
#: Digest of the sources the dcops wheel in a wheelhouse was built from (skip rebuilding it).
SOURCE_STAMP = ".dcops-source.sha256"


class WheelhouseError(Exception):
    """A wheelhouse that could not be built (pip failed, a requirement is not installed)."""


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _req_name(req: str) -> tuple[str, str]:
    """Name and marker of a ``Requires-Dist`` line (``name[extra] (>=1); marker``)."""
    spec, _, marker = req.partition(";")
    m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
    if m is None:
        raise WheelhouseError(f"cannot read requirement {req!r}")
    return m.group(1), marker.strip()


def _marker_applies(marker: str) -> bool:
    """Requirements under an ``extra`` marker are left out; others are kept when their platform markers hold."""
    if not marker:
        return True
    if "extra" in marker:
        return False
    try:
        from packaging.markers import Marker
    except ImportError:  # pragma: no cover - pip vendors packaging
        from pip._vendor.packaging.markers import Marker  # type: ignore[assignment]
    return bool(Marker(marker).evaluate())


def closure(requirements: tuple[str, ...] = EXPORTER_REQUIREMENTS) -> dict[str, str]:
    """Distribution name → installed version, for ``requirements`` and everything they require."""
    out: dict[str, str] = {}
    todo = list(requirements)
    while todo:
        name = todo.pop()
        key = _canon(name)
        if key in out:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            raise WheelhouseError(f"{name} is not installed in {sys.prefix}: install dcops' dependencies first") from None
        out[key] = dist.version
        for req in dist.requires or []:
            dep, marker = _req_name(req)
            if _marker_applies(marker):
                todo.append(dep)
    return dict(sorted(out.items()))


def _pip(*args: str, env: dict[str, str] | None = None) -> None:
    p = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, check=False, env=env)
    if p.returncode != 0:
        raise WheelhouseError(f"pip {' '.join(args[:2])} failed (exit {p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build(dest: Path, requirements: tuple[str, ...] = EXPORTER_REQUIREMENTS, source: Path = ROOT) -> list[Path]:
    """Fill ``dest`` with the dcops wheel and the pinned closure of ``requirements``; return the wheels.

    Wheels of other versions left in ``dest`` by an earlier build are removed; dependency wheels
    already there are not downloaded again.
    """
    dest.mkdir(parents=True, exist_ok=True)
    pins = closure(requirements)
    pins.pop("dcops", None)
    digest = source_digest(source)
    stamp_file = dest / SOURCE_STAMP
    previous = sorted(dest.glob("dcops-*.whl"))
    if len(previous) == 1 and stamp_file.is_file() and stamp_file.read_text(encoding="utf-8").strip() == digest:
        target = previous[0]  # built from the same sources: nothing to do
    else:
        target = _build_dcops(source, dest)
        stamp_file.write_text(digest + "\n", encoding="utf-8")
    wanted = {f"{n}=={v}" for n, v in pins.items()}
    have = {_wheel_pin(p) for p in dest.glob("*.whl")}
    missing = sorted(w for w in wanted if _canon_pin(w) not in have)
    if missing:
        _pip("download", "--no-deps", "--only-binary=:all:", "--quiet", "--dest", str(dest), *missing)
    keep_pins = {_canon_pin(w) for w in wanted} | {_wheel_pin(target)}
    wheels = []
    for p in sorted(dest.glob("*.whl")):
        if _wheel_pin(p) in keep_pins:
            wheels.append(p)
        else:
            p.unlink()
    (dest / SUMS).write_text("".join(f"{_sha256(p)}  {p.name}\n" for p in wheels), encoding="utf-8")
    return wheels


def source_digest(source: Path = ROOT) -> str:
    """SHA-256 over the paths and contents of the files a wheel is built from."""
    h = hashlib.sha256()
    for part in SOURCE_PARTS:
        root = source / part
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for f in files:
            rel = f.relative_to(source)
            if "__pycache__" in rel.parts or f.suffix == ".pyc" or any(x.endswith(".egg-info") for x in rel.parts):
                continue
            h.update(str(rel).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def _build_dcops(source: Path, dest: Path) -> Path:
    """Build the dcops wheel (``--no-deps``) from a copy of ``source`` with fixed timestamps; put it in ``dest``."""
    with tempfile.TemporaryDirectory(prefix="dcops-wheel-") as tmp:
        tree = Path(tmp) / "src-tree"
        tree.mkdir()
        for part in SOURCE_PARTS:
            src = source / part
            if src.is_dir():
                shutil.copytree(src, tree / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
            else:
                shutil.copy2(src, tree / part)
        # the same timestamps on every build: an unchanged tree gives an identical wheel
        stamp = int(SOURCE_DATE_EPOCH)
        for p in tree.rglob("*"):
            os.utime(p, (stamp, stamp))
        out = Path(tmp) / "out"
        env = {**os.environ, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH}
        _pip("wheel", "--no-deps", "--quiet", "--wheel-dir", str(out), str(tree), env=env)
        built = sorted(out.glob("dcops-*.whl"))
        if len(built) != 1:
            raise WheelhouseError(f"expected one dcops wheel, pip built {[b.name for b in built]}")
        for old in dest.glob("dcops-*.whl"):
            if old.name != built[0].name:
                old.unlink()
        target = dest / built[0].name
        if not target.exists() or _sha256(target) != _sha256(built[0]):
            shutil.copyfile(built[0], target)
        return target


def _canon_pin(pin: str) -> str:
    name, _, version = pin.partition("==")
    return f"{_canon(name)}=={version}"


def _wheel_pin(path: Path) -> str:
    """``name==version`` of a wheel file (name-version-....whl)."""
    name, version = path.name.split("-")[:2]
    return f"{_canon(name)}=={version}"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m dcops.wheelhouse DEST", file=sys.stderr)
        return 2
    try:
        wheels = build(Path(args[0]))
    except WheelhouseError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{len(wheels)} wheels in {args[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
