"""One module per protocol; each exposes ``async def probe(ctx, endpoint, module, result)``.

A prober fills ``result`` with samples as it learns things and raises
:class:`~dcops.exporters.errors.ProbeFailure` (or lets a socket error escape) when the target
fails; the runner applies the timeout and turns exceptions into reasons.
"""
