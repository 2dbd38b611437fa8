"""dcops: infrastructure-as-code and operations toolkit of a provincial e-government data centre."""

from pathlib import Path

__version__ = "0.1.0"

#: The repository (or installed tree) root: where inventory/, playbooks/, monitors/ live.
ROOT = Path(__file__).resolve().parents[2]
#: The embedded default province: the lab.
DEFAULT_INVENTORY = ROOT / "inventory" / "lab"


def lab_dir(code: str) -> Path:
    """Where a booted lab keeps its state (SSH key, ssh_config, known_hosts, run files).

    ``DCOPS_LAB_DIR`` overrides the base folder (default: ``/var/lib/dcops/lab``, beside the
    image cache; the lab runs as root).
    """
    import os

    base = Path(os.environ.get("DCOPS_LAB_DIR", "/var/lib/dcops/lab"))
    return base / code
