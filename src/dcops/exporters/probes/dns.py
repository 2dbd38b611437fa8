"""DNS: one query over UDP or TCP; rcode and record counts."""

from __future__ import annotations

import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype

from dcops.exporters.config import Module
from dcops.exporters.errors import ProbeFailure
from dcops.exporters.probes.context import ProbeContext
from dcops.exporters.probes.result import ProbeResult
from dcops.exporters.targets import Endpoint


async def probe(ctx: ProbeContext, address: str, ep: Endpoint, mod: Module, budget: float, res: ProbeResult) -> None:
    assert ep.port is not None
    o = mod.dns
    q = dns.message.make_query(o.query_name, o.query_type)
    try:
        if o.transport == "udp":
            r = await dns.asyncquery.udp(q, address, timeout=budget, port=ep.port, raise_on_truncation=False)
        else:
            r = await dns.asyncquery.tcp(q, address, timeout=budget, port=ep.port)
    except dns.exception.Timeout:
        raise ProbeFailure("timeout") from None
    except (OSError, EOFError) as e:
        if isinstance(e, EOFError):
            raise ProbeFailure("reset", "connection closed") from None
        raise
    except dns.exception.DNSException as e:
        raise ProbeFailure("protocol", f"not a valid DNS answer: {e}") from None
    rcode = dns.rcode.to_text(r.rcode())
    res.add("dcops_dns_rcode", "Response code of the answer (0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, ...).", r.rcode())
    res.add("probe_dns_answer_rrs", "Records in the answer section.", sum(len(s) for s in r.answer))
    res.add("probe_dns_authority_rrs", "Records in the authority section.", sum(len(s) for s in r.authority))
    res.add("probe_dns_additional_rrs", "Records in the additional section.", sum(len(s) for s in r.additional))
    if rcode not in o.valid_rcodes:
        raise ProbeFailure("status", f"rcode {rcode}")
    if sum(len(s) for s in r.answer) < o.min_answers:
        raise ProbeFailure("status", f"fewer than {o.min_answers} answers")
