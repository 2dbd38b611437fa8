"""The dcops policy pack (`pulumi preview --policy-pack stacks/policy`).

The facts come from the inventory named by DCOPS_INVENTORY (default: ../../inventory/yenbai,
relative to this folder); the validate functions are in dcops.stacks.policies. Constructing
PolicyPack starts the analyzer server and never returns: tests never import this file.
"""

import os
from pathlib import Path

from pulumi_policy import EnforcementLevel, PolicyPack

from dcops.inventory import load
from dcops.stacks.policies import facts_of, stack_policies

inventory = Path(os.environ.get("DCOPS_INVENTORY", Path(__file__).resolve().parent / "../../inventory/yenbai"))

PolicyPack(
    name="dcops-datacentre",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=stack_policies(facts_of(load(inventory).inventory)),
)
