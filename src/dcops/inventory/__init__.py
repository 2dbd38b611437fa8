"""The province inventory: one source of truth for every tool dcops drives."""

from dcops.inventory.errors import InventoryError, Problem
from dcops.inventory.loader import load, load_inventory
from dcops.inventory.model import Inventory, Tier
from dcops.inventory.origin import Loaded

__all__ = ["Inventory", "InventoryError", "Loaded", "Problem", "Tier", "load", "load_inventory"]
