"""Prometheus exporters of dcops: connectivity (blackbox-style probes) and security posture.

Modules are small and named for what they do: :mod:`.config` (modules and exporter settings),
:mod:`.probejobs` (which file_sd targets get which module: the sweep's and Prometheus' one
table), :mod:`.targets` (what the inventory asks to probe), :mod:`.probes` (one module per
protocol, dispatched by name through :mod:`.probes.dispatch`), :mod:`.runner` (timeouts, bounded
concurrency, deadlines), :mod:`.exposition` (results to metrics), :mod:`.httpserver` (a small
asyncio HTTP server), :mod:`.connectivity` and :mod:`.security` (the two exporters),
:mod:`.smokeping` (the continuous ICMP prober), :mod:`.promconfig` and :mod:`.controller` (what
the controller renders for Prometheus and for the exporters' config).
No module keeps global state: everything lives in the objects an exporter creates.
"""
