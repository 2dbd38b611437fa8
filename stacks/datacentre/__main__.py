"""The data centre on Proxmox VE: the program is dcops.stacks.program (see the README's runbook)."""

from dcops.stacks.program import main

main()
