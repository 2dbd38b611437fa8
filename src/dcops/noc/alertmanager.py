"""Alertmanager's configuration rendered from the inventory (``dcops noc alertmanager``).

- Routes by severity, then by tier (the data centre's alerts repeat sooner; a commune's
  warnings go to the mailbox only, they page nobody); the synthetic
  inhibitors (severity ``none``) go nowhere; ``Watchdog`` goes to the dead-man's switch.
- Grouping by root cause: critical alerts group by ``alertname`` and ``site``, so a site cut
  off is one notification (the sites behind it are inhibited, not grouped into it); warnings
  group by ``area`` so a district's or a hub's small troubles arrive together.
- Receivers: the NOC mailbox through the province's own mail server (the inventory's ``mail``
  service, the mailbox ``noc@`` of an agency at the data centre) and a webhook; both send
  resolved notifications. Vietnamese and English bodies come from monitors/alertmanager/dcops.tmpl.
- Inhibit rules: the parent-set inhibitor mutes the site alerts with the same ``parents``;
  a site unreachable mutes every other alert of that site; critical mutes warning of the same
  alert and site.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import yaml

from dcops.inventory.model import Inventory, ServiceType, Tier
from dcops.noc import PRODUCTION, Intervals
from dcops.render.maildns import mail_host

NOC_USER = "noc"


class AlertmanagerConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Receivers:
    webhook_url: str = ""
    deadman_url: str = ""
    email: str = ""  # the NOC mailbox (empty: from the inventory)
    smarthost: str = ""  # HOST:PORT (empty: the inventory's mail service, submission port)
    templates_dir: str = "/etc/prometheus/alertmanager-templates"
    #: file with the NOC mailbox's password on the Alertmanager host: Alertmanager logs in (SMTP
    #: AUTH after STARTTLS on the submission port) as the NOC mailbox and sends from it — the
    #: province's server refuses its own domains from clients that have not logged in.
    auth_password_file: str = ""


def noc_mailbox(inv: Inventory) -> str | None:
    """``noc@`` of the agency at the data centre (the first, by domain), if the inventory has it."""
    dc = {s.name for s in inv.sites if s.tier is Tier.DATACENTRE}
    site_of = {a.name: a.site for a in inv.agencies}
    for m in inv.mailboxes():
        if m.user == NOC_USER and site_of.get(m.agency) in dc:
            return m.address
    return None


def mail_smarthost(inv: Inventory, *, submission: bool = True) -> str | None:
    """The mail service's address and port: its ``submission`` port (587), else ``smtp``."""
    for svc in inv.services:
        if svc.type is ServiceType.MAIL and not svc.external:
            addr = inv.service_address(svc)
            ports = {p.name: p.port for p in svc.ports}
            port = ports.get("submission") if submission else None
            port = port or ports.get("smtp")
            if addr is not None and port is not None:
                return f"{addr}:{port}"
    return None


def _m(**kv: str) -> list[str]:
    return [f'{k}="{v}"' for k, v in kv.items()]


def render(inv: Inventory, rx: Receivers = Receivers(), iv: Intervals = PRODUCTION) -> dict[str, Any]:
    email = rx.email or noc_mailbox(inv) or ""
    auth = bool(rx.auth_password_file)
    smarthost = rx.smarthost or mail_smarthost(inv, submission=auth) or ""
    if email and not smarthost:
        raise AlertmanagerConfigError(
            f"inventory {inv.source}: the NOC mailbox {email} needs a mail server "
            "(services.yml: a service of type mail with port 25, or --smarthost)"
        )
    domain = inv.province.domain
    noc: dict[str, Any] = {"name": "noc"}
    mail_only: dict[str, Any] = {"name": "noc-mail"}
    if email:
        cfg: dict[str, Any] = {
            "to": email,
            "from": f"Alertmanager {inv.province.code} <{email if auth else 'alertmanager@' + domain}>",
            "smarthost": smarthost,
            "hello": f"alertmanager.{domain}",
            "send_resolved": True,
            "headers": {"Subject": '{{ template "dcops.subject" . }}'},
            "html": '{{ template "dcops.html" . }}',
            "text": '{{ template "dcops.text" . }}',
        }
        if auth:
            cfg |= {"require_tls": True, "auth_username": email, "auth_password_file": rx.auth_password_file,
                    "tls_config": {"server_name": mail_host(inv).name}}
        else:
            cfg["require_tls"] = False
        noc["email_configs"] = [cfg]
        mail_only["email_configs"] = [copy.deepcopy(cfg)]
    if rx.webhook_url:
        noc["webhook_configs"] = [{"url": rx.webhook_url, "send_resolved": True, "max_alerts": 50}]
    deadman: dict[str, Any] = {"name": "deadman"}
    if rx.deadman_url:
        deadman["webhook_configs"] = [{"url": rx.deadman_url, "send_resolved": False}]
    tiers = sorted({s.tier.value for s in inv.sites})
    gi, gw = f"{iv.group_interval}s", f"{iv.group_wait}s"

    def tier_routes(dc_repeat: str, quiet: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
        """One route per tier of the inventory: the data centre repeats sooner; the ``quiet``
        tiers go to the mailbox only (no webhook paging)."""
        return [
            {"matchers": _m(tier=t), "receiver": "noc-mail" if t in quiet else "noc",
             **({"repeat_interval": dc_repeat} if t == Tier.DATACENTRE.value else {})}
            for t in tiers
        ]

    route = {
        "receiver": "noc",
        "group_by": ["alertname", "site"],
        "group_wait": gw,
        "group_interval": gi,
        "repeat_interval": f"{iv.repeat_interval}s",
        "routes": [
            {"matchers": _m(alertname="Watchdog"), "receiver": "deadman",
             "group_wait": "0s", "group_interval": "1m", "repeat_interval": "1m"},
            {"matchers": _m(severity="none"), "receiver": "blackhole"},
            {"matchers": _m(severity="critical"), "receiver": "noc", "repeat_interval": "1h",
             "routes": tier_routes("30m")},
            {"matchers": _m(severity="warning"), "receiver": "noc", "group_by": ["area", "alertname"],
             "group_wait": "30s", "group_interval": "5m", "repeat_interval": "4h",
             "routes": tier_routes("2h", frozenset({Tier.COMMUNE.value}))},
            {"matchers": _m(severity="info"), "receiver": "noc-mail", "group_by": ["alertname"],
             "group_wait": "5m", "group_interval": "30m", "repeat_interval": "24h"},
        ],
    }
    inhibit = [
        {"source_matchers": _m(alertname="DcopsUpstreamDown"),
         "target_matchers": _m(alertname="DcopsSiteUnreachable"), "equal": ["parents"]},
        {"source_matchers": _m(alertname="DcopsSiteUnreachable"),
         "target_matchers": ['alertname!~"DcopsSiteUnreachable|DcopsUpstreamDown|Watchdog"', 'site=~".+"'],
         "equal": ["site"]},
        {"source_matchers": _m(severity="critical"), "target_matchers": _m(severity="warning"),
         "equal": ["alertname", "site"]},
    ]
    return {
        "route": route,
        "inhibit_rules": inhibit,
        "receivers": [noc, mail_only, deadman, {"name": "blackhole"}],
        "templates": [f"{rx.templates_dir}/*.tmpl"],
    }


def dump(config: dict[str, Any]) -> str:
    head = "# Rendered by dcops from the inventory (dcops noc alertmanager); checked with amtool check-config.\n"
    return head + yaml.safe_dump(config, sort_keys=False, allow_unicode=True, width=1000)
