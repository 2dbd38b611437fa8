"""The check types: each one's parameters (a pydantic model) and its evaluation on a host's facts.

A check in a catalogue names its ``type`` and gives ``params``; the catalogue loader validates
the params with the type's model (:data:`TYPES`), then :func:`evaluate_check` runs the type's
function on the facts the collector returned. Every function returns an :class:`Outcome`: a
status and the evidence (where the value came from and what it was), never a secret: the
collector sends no password hash and no key in the first place.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Status = Literal["pass", "fail", "error", "notapplicable", "manual", "waived"]
Op = Literal["eq", "ne", "ge", "le", "ge_or_zero", "in", "contains", "subset"]
NUMERIC_OPS = frozenset({"ge", "le", "ge_or_zero"})
LIST_OPS = frozenset({"in", "subset"})
#: What a threshold variable must be for a parameter: a number, a list, or any scalar.
VarKind = Literal["number", "list", "scalar"]


@dataclass(frozen=True)
class Evidence:
    """Where a value was read (a command or a file) and what was seen."""

    source: str
    value: str

    def as_dict(self) -> dict[str, str]:
        return {"source": self.source, "value": self.value}


@dataclass
class Outcome:
    status: Status
    message: str
    evidence: list[Evidence] = field(default_factory=list)


@dataclass(frozen=True)
class HostContext:
    """What the inventory says about an audited host (the checks compare the facts with it)."""

    name: str
    site: str
    tier: str
    roles: tuple[str, ...]
    router: bool
    management: str
    management_network: str
    admins: tuple[str, ...]
    #: Listening ports the inventory declares for this host: ("tcp", 22), ("udp", 123), ...
    ports: frozenset[tuple[str, int]] = frozenset()
    #: Port ranges (proto, first, last) declared for this host (RTP media, WireGuard legs).
    port_ranges: tuple[tuple[str, int, int], ...] = ()
    #: The first time (unix seconds) each pending update ``package=version`` was seen (earlier runs).
    pending_first_seen: dict[str, float] = field(default_factory=dict, hash=False, compare=False)
    now: float = 0.0


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def var_name(self) -> str | None:
        return getattr(self, "var", None)

    def var_kind(self) -> VarKind:
        return "list"


class Compare(Params):
    op: Op
    value: Any = None
    var: str | None = None
    #: A lower bound that always applies (e.g. an interval must be above 0).
    min: float | None = None
    #: A missing value is "not applicable" rather than an error.
    optional: bool = False

    @model_validator(mode="after")
    def _one_of_value_var(self) -> Compare:
        if (self.value is None) == (self.var is None):
            raise ValueError("give exactly one of value (a literal) and var (a threshold variable)")
        if self.value is not None:
            if self.op in NUMERIC_OPS and (isinstance(self.value, bool) or not isinstance(self.value, int | float)):
                raise ValueError(f"op {self.op} compares numbers: value must be a number, not {self.value!r}")
            if self.op in LIST_OPS and not isinstance(self.value, list):
                raise ValueError(f"op {self.op} needs a list value, not {self.value!r}")
        return self

    def var_kind(self) -> VarKind:
        if self.op in NUMERIC_OPS:
            return "number"
        return "list" if self.op in LIST_OPS else "scalar"


class FactP(Compare):
    path: str


class SshdP(Compare):
    key: str


class SysctlP(Compare):
    key: str


class ServiceP(Params):
    units: list[str] | None = None
    var: str | None = None
    state: Literal["active", "inactive"]

    @model_validator(mode="after")
    def _units(self) -> ServiceP:
        if (self.units is None) == (self.var is None):
            raise ValueError("give exactly one of units and var")
        return self


class PackagesAbsentP(Params):
    names: list[str] | None = None
    var: str | None = None

    @model_validator(mode="after")
    def _names(self) -> PackagesAbsentP:
        if (self.names is None) == (self.var is None):
            raise ValueError("give exactly one of names and var")
        return self


class PackagePresentP(Params):
    names: list[str]


class ShadowP(Params):
    rule: Literal["no_empty", "system_locked", "strong_hash"]
    var: str | None = None

    @model_validator(mode="after")
    def _var(self) -> ShadowP:
        if (self.rule == "strong_hash") != (self.var is not None):
            raise ValueError("rule strong_hash takes var (the allowed schemes); the other rules take none")
        return self


class AccountsP(Params):
    rule: Literal["uid0_only_root", "system_nologin", "declared_only"]


class ListeningP(Params):
    rule: Literal["declared", "ssh_management_only"]


class FirewallP(Params):
    hook: Literal["input", "forward"]
    rule: Literal["present", "policy_drop", "ssh_management"]
    optional: bool = False


class AgeP(Params):
    path: str
    var: str

    def var_kind(self) -> VarKind:
        return "number"


class VarOnlyP(Params):
    var: str

    def var_kind(self) -> VarKind:
        return "number"


class FileModeP(Params):
    path: str
    #: The most permissive mode allowed, as octal text ("0640").
    max_mode: str = Field(pattern=r"^0?[0-7]{3,4}$")
    owner: str | None = None
    optional: bool = False

    @property
    def mode(self) -> int:
        return int(self.max_mode, 8)


class NoParams(Params):
    pass


# --- helpers ---------------------------------------------------------------------------------
class _Missing(Exception):
    def __init__(self, message: str, section_error: bool = False) -> None:
        super().__init__(message)
        self.section_error = section_error


def lookup(facts: dict[str, Any], path: str) -> Any:
    """The fact at ``a.b.c``; :class:`_Missing` if absent or if its section failed to collect."""
    node: Any = facts
    parts = path.split(".")
    for i, part in enumerate(parts):
        if isinstance(node, dict) and "_error" in node:
            raise _Missing(f"{'.'.join(parts[:i]) or 'facts'}: {node['_error']}", section_error=True)
        if not isinstance(node, dict) or part not in node:
            raise _Missing(f"fact {path} not collected")
        node = node[part]
    return node


def source_of(facts: dict[str, Any], path: str) -> str:
    section = path.split(".", 1)[0]
    src = facts.get("_sources", {}).get(section)
    return str(src) if src else section


def _num(v: Any) -> float | None:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v.strip())
        except ValueError:
            return None
    return None


def _norm(v: Any) -> str:
    return str(v).strip().lower()


def _items(v: Any) -> list[str]:
    if isinstance(v, list):
        return [str(x) for x in v]
    if isinstance(v, str):
        return [x for x in v.replace(" ", ",").split(",") if x]
    return [str(v)]


def _show(v: Any) -> str:
    if isinstance(v, list):
        return ", ".join(str(x) for x in v) if v else "(none)"
    if v is None:
        return "(not set)"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def compare(op: str, actual: Any, expected: Any, minimum: float | None = None) -> tuple[bool, str]:
    """Whether ``actual`` satisfies ``op expected``; and the reason in words when it does not."""
    if op in NUMERIC_OPS:
        a, e = _num(actual), _num(expected)
        if a is None or e is None:
            return False, f"{_show(actual)} is not a number"
        if minimum is not None and a < minimum and not (op == "ge_or_zero" and a == 0):
            return False, f"{_show(actual)} is below {minimum:g}"
        if op == "ge":
            return a >= e, f"{_show(actual)} < {_show(expected)}"
        if op == "le":
            return a <= e, f"{_show(actual)} > {_show(expected)}"
        return a == 0 or a >= e, f"{_show(actual)} is neither 0 (no limit) nor ≥ {_show(expected)}"
    if op in ("eq", "ne"):
        if isinstance(expected, bool) or isinstance(actual, bool):
            same = actual is expected or (isinstance(actual, str) and _norm(actual) == _norm(_show(expected)))
        elif isinstance(expected, int | float) and _num(actual) is not None:
            same = _num(actual) == float(expected)
        else:
            same = _norm(actual) == _norm(expected)
        if op == "eq":
            return same, f"{_show(actual)} ≠ {_show(expected)}"
        return not same, f"{_show(actual)} = {_show(expected)}"
    if op == "in":
        ok = actual is not None and _norm(actual) in {_norm(x) for x in expected}
        return ok, f"{_show(actual)} not in {{{_show(expected)}}}"
    if op == "contains":
        items = {_norm(x) for x in _items(actual)} if actual is not None else set()
        return _norm(expected) in items, f"{_show(expected)} not in {_show(actual)}"
    # subset
    allowed = {_norm(x) for x in expected}
    extra = [x for x in _items(actual) if _norm(x) not in allowed] if actual is not None else ["(not set)"]
    return not extra, f"not allowed: {', '.join(extra)}"


Values = dict[str, Any]


def _expected(p: Compare, values: Values) -> Any:
    return values[p.var] if p.var is not None else p.value


def _compare_at(facts: dict[str, Any], path: str, label: str, p: Compare, values: Values) -> Outcome:
    try:
        actual = lookup(facts, path)
    except _Missing as e:
        if p.optional and not e.section_error:
            return Outcome("notapplicable", f"{label}: not present on this host")
        return Outcome("error", str(e))
    expected = _expected(p, values)
    ok, why = compare(p.op, actual, expected, p.min)
    ev = [Evidence(source_of(facts, path), f"{label} = {_show(actual)}")]
    want = f"{p.op} {_show(expected)}" + (f" (and ≥ {p.min:g})" if p.min is not None else "")
    return Outcome("pass" if ok else "fail", f"{label} {want}" if ok else f"{label}: {why} (wanted {want})", ev)


def ev_fact(p: FactP, facts: dict[str, Any], ctx: HostContext, values: Values) -> Outcome:
    return _compare_at(facts, p.path, p.path, p, values)


def ev_sshd(p: SshdP, facts: dict[str, Any], ctx: HostContext, values: Values) -> Outcome:
    return _compare_at(facts, f"sshd.{p.key}", p.key, p, values)


def ev_sysctl(p: SysctlP, facts: dict[str, Any], ctx: HostContext, values: Values) -> Outcome:
    try:
        section = lookup(facts, "sysctl")
    except _Missing as e:
        return Outcome("error", str(e))
    if p.key not in section:
        if p.optional:
            return Outcome("notapplicable", f"{p.key}: not present on this kernel")
        return Outcome("error", f"sysctl {p.key} not readable")
    ok, why = compare(p.op, section[p.key], _expected(p, values), p.min)
    ev = [Evidence(f"/proc/sys/{p.key.replace('.', '/')}", f"{p.key} = {section[p.key]}")]
    return Outcome("pass" if ok else "fail", f"{p.key} {p.op} {_show(_expected(p, values))}" if ok else f"{p.key}: {why}", ev)


def ev_service(p: ServiceP, facts: dict[str, Any], ctx: HostContext, values: Values) -> Outcome:
    try:
        active = set(lookup(facts, "services.active"))
    except _Missing as e:
        return Outcome("error", str(e))
    units = list(values[p.var]) if p.var is not None else list(p.units or [])
    running = [u for u in units if u in active]
    src = source_of(facts, "services")
    if p.state == "active":
        ok = bool(running)
        return Outcome(
            "pass" if ok else "fail",
            f"{', '.join(running)} active" if ok else f"{' / '.join(units)} not active",
            [Evidence(src, f"active: {_show(running) if running else 'none of ' + ', '.join(units)}")],
        )
    return Outcome(
        "fail" if running else "pass",
        f"running but should not: {', '.join(running)}" if running else "none of the listed services runs",
        [Evidence(src, f"active of the listed: {_show(running)}")],
    )


def _installed(facts: dict[str, Any]) -> dict[str, str]:
    pk = lookup(facts, "packages.installed")
    return dict(pk) if isinstance(pk, dict) else {}


def ev_packages_absent(p: PackagesAbsentP, facts: dict[str, Any], ctx: HostContext, values: Values) -> Outcome:
    try:
        inst = _installed(facts)
    except _Missing as e:
        return Outcome("error", str(e))
    names = list(values[p.var]) if p.var is not None else list(p.names or [])
    found = [f"{n} {inst[n]}" for n in names if n in inst]
    src = source_of(facts, "packages")
    if found:
        return Outcome("fail", f"installed: {', '.join(found)}", [Evidence(src, f"installed: {', '.join(found)}")])
    return Outcome("pass", "none installed", [Evidence(src, f"none of {len(names)} listed packages installed")])


def ev_package_present(p: PackagePresentP, facts: dict[str, Any], ctx: HostContext, values: Values) -> Outcome:
    try:
        inst = _installed(facts)
    except _Missing as e:
        return Outcome("error", str(e))
    found = [f"{n} {inst[n]}" for n in p.names if n in inst]
    src = source_of(facts, "packages")
    if found:
        return Outcome("pass", f"installed: {', '.join(found)}", [Evidence(src, f"installed: {', '.join(found)}")])
    return Outcome("fail", f"none of {', '.join(p.names)} installed", [Evidence(src, f"not installed: {', '.join(p.names)}")])


def _accounts(facts: dict[str, Any]) -> list[dict[str, Any]]:
    acc = lookup(facts, "accounts")
    return list(acc.get("users", [])) if isinstance(acc, dict) else []


_NOLOGIN = ("/usr/sbin/nologin", "/sbin/nologin", "/bin/false", "/usr/bin/false")
#: System accounts Debian gives a real shell on purpose.
_SHELL_OK = {"root", "sync", "shutdown", "halt"}


def ev_shadow(p: ShadowP, facts: dict[str, Any], ctx: HostContext, values: Values) -> Outcome:
    try:
        users = _accounts(facts)
    except _Missing as e:
        return Outcome("error", str(e))
    src = source_of(facts, "accounts")
    if p.rule == "no_empty":
        bad = [u["name"] for u in users if u.get("password") == "empty"]
        what = "accounts with an empty password"
    elif p.rule == "system_locked":
        bad = [u["name"] for u in users if u.get("uid", 0) < 1000 and u["name"] != "root" and u.get("password") == "hash"]
        what = "system accounts with a usable password"
    else:
        allowed = {str(x) for x in values[str(p.var)]}
        bad = [
            f"{u['name']} (${u.get('scheme')}$)"
            for u in users
            if u.get("password") == "hash" and str(u.get("scheme")) not in allowed
        ]
        what = "weak password hashes"
    counts: dict[str, int] = {}
    for u in users:
        counts[str(u.get("password"))] = counts.get(str(u.get("password")), 0) + 1
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
    ev = [Evidence(src, f"password status of {len(users)} accounts ({summary})" + (f"; {what}: {', '.join(bad)}" if bad else ""))]
    return Outcome("fail" if bad else "pass", f"{what}: {', '.join(bad)}" if bad else f"no {what}", ev)


def ev_accounts(p: AccountsP, facts: dict[str, Any], ctx: HostContext, values: Values) -> Outcome:
    try:
        users = _accounts(facts)
    except _Missing as e:
        return Outcome("error", str(e))
    src = source_of(facts, "accounts")
    if p.rule == "uid0_only_root":
        bad = [u["name"] for u in users if u.get("uid") == 0 and u["name"] != "root"]
        what = "UID 0 accounts other than root"
    elif p.rule == "system_nologin":
        bad = [
            f"{u['name']} ({u.get('shell')})"
            for u in users
            if u.get("uid", 0) < 1000 and u["name"] not in _SHELL_OK and u.get("shell") not in _NOLOGIN
        ]
        what = "system accounts with a login shell"
    else:
        declared = set(ctx.admins)
        bad = [
            u["name"]
            for u in users
            if u.get("uid", 0) >= 1000
            and u["name"] != "nobody"
            and u["name"] not in declared
            and (u.get("password") == "hash" or u.get("keys") or u.get("shell") not in _NOLOGIN)
        ]
        what = "login accounts not declared as admins"
    ev = [Evidence(src, f"{what}: {', '.join(bad) if bad else 'none'}")]
    return Outcome("fail" if bad else "pass", f"{what}: {', '.join(bad)}" if bad else f"no {what}", ev)


def _public(sock: dict[str, Any]) -> bool:
    addr = str(sock.get("address", "")).strip("[]").split("%")[0]
    try:
        return not ipaddress.ip_address(addr).is_loopback
    except ValueError:
        return True  # "*" and friends: every address


def _declared(ctx: HostContext, proto: str, port: int) -> bool:
    if (proto, port) in ctx.ports:
        return True
    return any(pr == proto and lo <= port <= hi for pr, lo, hi in ctx.port_ranges)


def _sock(s: dict[str, Any]) -> str:
    proc = f" ({s['process']})" if s.get("process") else ""
    return f"{s.get('proto')} {s.get('address')}:{s.get('port')}{proc}"


def ev_listening(p: ListeningP, facts: dict[str, Any], ctx: HostContext, values: Values) -> Outcome:
    try:
        socks = [s for s in lookup(facts, "sockets.listening") if _public(s)]
    except _Missing as e:
        return Outcome("error", str(e))
    src = source_of(facts, "sockets")
    if p.rule == "declared":
        extra = {f"{x}" for x in values.get("extra_allowed_ports", [])}
        bad = [
            s for s in socks if not _declared(ctx, str(s["proto"]), int(s["port"])) and f"{s['proto']}/{s['port']}" not in extra
        ]
        ev = [Evidence(src, f"listening beyond loopback: {', '.join(sorted({_sock(s) for s in socks})) or 'nothing'}")]
        if bad:
            return Outcome("fail", f"not declared in the inventory: {', '.join(sorted({_sock(s) for s in bad}))}", ev)
        return Outcome("pass", f"{len(socks)} listening sockets, all declared", ev)
    net = ipaddress.ip_network(ctx.management_network)
    ssh = [s for s in socks if s.get("proto") == "tcp" and int(s["port"]) == 22]
    outside = []
    for s in ssh:
        addr = str(s.get("address", "")).strip("[]")
        try:
            if ipaddress.ip_address(addr) not in net:
                outside.append(s)
        except ValueError:
            outside.append(s)
    ev = [Evidence(src, f"sshd sockets: {', '.join(_sock(s) for s in ssh) or 'none'}")]
    if not outside:
        return Outcome("pass", f"sshd bound to the management network {net} only", ev)
    # bound everywhere: the firewall may still restrict it
    fw = facts.get("firewall", {})
    srcs = fw.get("ssh_sources") if isinstance(fw, dict) else None
    if srcs and all(_within(x, net) for x in srcs):
        ev.append(Evidence(source_of(facts, "firewall"), f"port 22 accepted from: {', '.join(srcs)}"))
        return Outcome("pass", f"sshd bound to all addresses, the firewall accepts it from {net} only", ev)
    return Outcome("fail", f"sshd reachable outside {net}: {', '.join(_sock(s) for s in outside)}", ev)


def _within(prefix: str, net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    try:
        n = ipaddress.ip_network(prefix, strict=False)
    except ValueError:
        return False
    return n.version == net.version and n.subnet_of(net)  # type: ignore[arg-type]


def ev_firewall(p: FirewallP, facts: dict[str, Any], ctx: HostContext, values: Values) -> Outcome:
    try:
        fw = lookup(facts, "firewall")
    except _Missing as e:
        return Outcome("error", str(e))
    src = source_of(facts, "firewall")
    chains = [c for c in fw.get("chains", []) if c.get("hook") == p.hook]
    ev = [
        Evidence(
            src,
            f"{p.hook} chains: "
            + (", ".join(f"{c['family']} {c['table']} {c['name']} policy {c.get('policy')}" for c in chains) or "none"),
        )
    ]
    if p.rule == "present":
        return Outcome(
            "pass" if chains else "fail", f"{len(chains)} {p.hook} chain(s)" if chains else f"no {p.hook} chain loaded", ev
        )
    if p.rule == "policy_drop":
        if not chains:
            if p.optional:
                return Outcome("notapplicable", f"no {p.hook} chain (nothing to forward)", ev)
            return Outcome("fail", f"no {p.hook} chain loaded: everything is accepted", ev)
        filt = [c for c in chains if c.get("type", "filter") == "filter"]
        ok = bool(filt) and any(c.get("policy") == "drop" for c in filt)
        return Outcome(
            "pass" if ok else "fail", f"{p.hook} policy drop" if ok else f"no {p.hook} filter chain with policy drop", ev
        )
    srcs = fw.get("ssh_sources")
    net = ipaddress.ip_network(ctx.management_network)
    ev.append(Evidence(src, f"port 22 accepted from: {_show(srcs)}"))
    if srcs is None:
        return Outcome("fail", "no rule accepts port 22 from a named source (any source, or none)", ev)
    bad = [x for x in srcs if not _within(x, net)]
    return Outcome(
        "fail" if bad else "pass", f"SSH accepted from outside {net}: {', '.join(bad)}" if bad else f"SSH from {net} only", ev
    )


def ev_age(p: AgeP, facts: dict[str, Any], ctx: HostContext, values: Values) -> Outcome:
    try:
        age = lookup(facts, p.path)
    except _Missing as e:
        return Outcome("error", str(e))
    ev = [Evidence(source_of(facts, p.path), f"{p.path} = {_show(age)}")]
    if age is None:
        return Outcome("fail", f"{p.path}: never (no timestamp found)", ev)
    ok = float(age) <= float(values[p.var])
    return Outcome("pass" if ok else "fail", f"{p.path} {float(age):.1f} {'≤' if ok else '>'} {values[p.var]}", ev)


def ev_updates(p: VarOnlyP, facts: dict[str, Any], ctx: HostContext, values: Values) -> Outcome:
    try:
        pending = list(lookup(facts, "updates.pending"))
    except _Missing as e:
        return Outcome("error", str(e))
    sec = [u for u in pending if u.get("security")]
    limit = float(values[p.var])
    late = []
    for u in sec:
        key = f"{u['package']}={u['version']}"
        first = ctx.pending_first_seen.get(key, ctx.now)
        days = (ctx.now - first) / 86400
        if days > limit:
            late.append(f"{key} ({days:.0f} days)")
    ev = [
        Evidence(
            source_of(facts, "updates"),
            f"{len(pending)} pending, {len(sec)} security: "
            + (", ".join(f"{u['package']} {u['version']}" for u in sec[:20]) or "none"),
        )
    ]
    if late:
        return Outcome("fail", f"security updates pending more than {limit:g} days: {', '.join(late)}", ev)
    return Outcome("pass", f"{len(sec)} security updates pending, none older than {limit:g} days (first seen by dcops audit)", ev)


def ev_ssh_idle(p: VarOnlyP, facts: dict[str, Any], ctx: HostContext, values: Values) -> Outcome:
    try:
        iv = _num(lookup(facts, "sshd.clientaliveinterval"))
        cm = _num(lookup(facts, "sshd.clientalivecountmax"))
    except _Missing as e:
        return Outcome("error", str(e))
    ev = [Evidence(source_of(facts, "sshd"), f"clientaliveinterval = {_show(iv)}, clientalivecountmax = {_show(cm)}")]
    if not iv or cm is None:
        return Outcome("fail", "no idle timeout (ClientAliveInterval 0)", ev)
    total = iv * max(cm, 1)
    limit = float(values[p.var])
    ok = total <= limit
    return Outcome("pass" if ok else "fail", f"idle sessions closed after {total:g} s ({'≤' if ok else '>'} {limit:g} s)", ev)


def ev_ssh_allow_users(p: NoParams, facts: dict[str, Any], ctx: HostContext, values: Values) -> Outcome:
    try:
        users = _items(lookup(facts, "sshd.allowusers")) if "allowusers" in lookup(facts, "sshd") else []
        groups = _items(lookup(facts, "sshd").get("allowgroups", ""))
    except _Missing as e:
        return Outcome("error", str(e))
    ev = [Evidence(source_of(facts, "sshd"), f"allowusers = {_show(users)}; allowgroups = {_show(groups)}")]
    if not users and not groups:
        return Outcome("fail", "no AllowUsers/AllowGroups: every account may log in over SSH", ev)
    extra = [u for u in users if u.split("@", 1)[0] not in ctx.admins]
    if extra:
        return Outcome("fail", f"allowed but not declared admins: {', '.join(extra)}", ev)
    return Outcome("pass", "SSH limited to the declared admins", ev)


def ev_file_mode(p: FileModeP, facts: dict[str, Any], ctx: HostContext, values: Values) -> Outcome:
    try:
        files = lookup(facts, "files")
    except _Missing as e:
        return Outcome("error", str(e))
    st = files.get(p.path)
    if st is None:
        return Outcome("notapplicable" if p.optional else "fail", f"{p.path} does not exist")
    mode = int(st["mode"])
    ev = [Evidence(f"stat {p.path}", f"mode {mode:04o}, owner {st.get('owner')}, group {st.get('group')}")]
    extra_bits = mode & ~p.mode & 0o7777
    bad = []
    if extra_bits:
        bad.append(f"mode {mode:04o} exceeds {p.mode:04o}")
    if p.owner is not None and st.get("owner") != p.owner:
        bad.append(f"owner {st.get('owner')} is not {p.owner}")
    return Outcome("fail" if bad else "pass", "; ".join(bad) if bad else f"mode {mode:04o} ≤ {p.mode:04o}", ev)


Evaluator = Callable[[Any, dict[str, Any], HostContext, Values], Outcome]

#: Every check type: its parameters and its evaluation. A catalogue naming another is refused.
TYPES: dict[str, tuple[type[Params], Evaluator]] = {
    "fact": (FactP, ev_fact),
    "sshd": (SshdP, ev_sshd),
    "sysctl": (SysctlP, ev_sysctl),
    "service": (ServiceP, ev_service),
    "packages_absent": (PackagesAbsentP, ev_packages_absent),
    "package_present": (PackagePresentP, ev_package_present),
    "shadow": (ShadowP, ev_shadow),
    "accounts": (AccountsP, ev_accounts),
    "listening": (ListeningP, ev_listening),
    "firewall": (FirewallP, ev_firewall),
    "age": (AgeP, ev_age),
    "updates": (VarOnlyP, ev_updates),
    "ssh_idle": (VarOnlyP, ev_ssh_idle),
    "ssh_allow_users": (NoParams, ev_ssh_allow_users),
    "file_mode": (FileModeP, ev_file_mode),
}


def run_type(kind: str, params: Params, facts: dict[str, Any], ctx: HostContext, values: Values) -> Outcome:
    """Evaluate one check; an unexpected exception is an error result, never a crash of the run."""
    _, fn = TYPES[kind]
    try:
        return fn(params, facts, ctx, values)
    except Exception as e:  # a fact of an unexpected shape: this check's error, the others go on
        return Outcome("error", f"cannot evaluate: {type(e).__name__}: {e}")
