"""Pulumi stacks of the data centre: the program (:mod:`.program`), what each VM is from the
inventory (:mod:`.spec`), the offline plan (:mod:`.plan`), the policies (:mod:`.policies`) and
the drift between a real stack's outputs and the inventory (:mod:`.drift`)."""
