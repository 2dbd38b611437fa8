"""dcops: infrastructure-as-code and operations toolkit of a provincial e-government data centre."""

from pathlib import Path

__version__ = "0.1.0"

#: The repository (or installed tree) root: where inventory/, playbooks/, monitors/ live.
ROOT = Path(__file__).resolve().parents[2]
#: The embedded default province: the lab.
DEFAULT_INVENTORY = ROOT / "inventory" / "lab"


def lab_dir(code: str) -> Path:
    """Where a booted lab keeps its state (SSH key, ssh_config, known_hosts, run files).

    ``DCOPS_LAB_DIR`` overrides the base folder (default: ``<repo>/.lab``).
    """
    import os

    base = Path(os.environ.get("DCOPS_LAB_DIR", ROOT / ".lab"))
    return base / code
