"""dcops: infrastructure-as-code and operations toolkit of a provincial e-government data centre."""

from pathlib import Path

from dcops.paths import lab_dir

#: The repository (or installed tree) root: where inventory/, playbooks/, monitors/ live.
ROOT = Path(__file__).resolve().parents[2]
#: The embedded default province: the lab.
DEFAULT_INVENTORY = ROOT / "inventory" / "lab"


__all__ = ["DEFAULT_INVENTORY", "ROOT", "lab_dir"]
