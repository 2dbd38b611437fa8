"""The province inventory: one source of truth for every tool dcops drives."""

from dcops.inventory.errors import InventoryError, Problem
from dcops.inventory.loader import Loaded, load, load_inventory
from dcops.inventory.model import Inventory, Tier

__all__ = ["Inventory", "InventoryError", "Loaded", "Problem", "Tier", "load", "load_inventory"]
