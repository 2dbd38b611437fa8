"""One module per protocol; each exposes ``async def probe(ctx, address, ep, mod, budget, res)``.

A prober fills ``res`` with samples as it learns things and raises
:class:`~dcops.exporters.errors.ProbeFailure` (or lets a socket error escape) when the target
fails; the runner applies the timeout and turns exceptions into reasons. The probers by name:
:data:`dcops.exporters.probes.dispatch.PROBERS`.
"""
