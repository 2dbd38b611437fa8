"""Running commands on the controller, with errors a sysadmin can act on."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence

from dcops.lab.errors import LabError

#: Debian package providing each tool the lab needs (installed by scripts/setup.sh).
TOOLS = {
    "systemd-nspawn": "systemd-container",
    "debootstrap": "debootstrap",
    "ip": "iproute2",
    "nsenter": "util-linux",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
}


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, systemd-nspawn): run it with sudo or as root")


def require_tools(*names: str) -> None:
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        pkgs = sorted({TOOLS.get(n, n) for n in missing})
        raise LabError(
            f"missing {', '.join(missing)}: install the Debian package(s) {' '.join(pkgs)} "
            "(scripts/setup.sh does it: apt-get install " + " ".join(pkgs) + ")"
        )


def run(
    args: Sequence[str],
    *,
    what: str | None = None,
    check: bool = True,
    input: str | None = None,
    timeout: float | None = 120,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing output; on failure raise :class:`LabError` naming ``what``."""
    try:
        p = subprocess.run(list(args), capture_output=True, text=True, input=input, timeout=timeout, check=False)
    except FileNotFoundError as e:
        raise LabError(f"{what or args[0]}: command not found: {args[0]}") from e
    except subprocess.TimeoutExpired as e:
        raise LabError(f"{what or ' '.join(args)}: timed out after {timeout} s") from e
    if check and p.returncode != 0:
        detail = (p.stderr or p.stdout).strip().splitlines()[-5:]
        raise LabError(f"{what or ' '.join(args)} failed (exit {p.returncode}): " + " | ".join(detail))
    return p
