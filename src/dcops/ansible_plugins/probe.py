"""The dcops_probe action: one SSH exec reads what a role manages; the controller decides what differs.

Every dcops role starts with one probe per host and installs only what the probe found
different, so an idempotent re-run costs a few tasks per host instead of dozens. This module is
that one mechanism (the ``dcops_probe`` action in ``playbooks/action_plugins/`` is a thin wrapper):

- **Input** (the task's arguments): the role's own list of what it installs and runs::

      files:      # each entry exactly one of template / file / content / controller_file / state: directory
        - {dest: /etc/ssh/sshd_config, template: sshd_config.j2, mode: "0600",
           validate: /usr/sbin/sshd -t -f %s, notify: [Reload sshd]}
        - {dest: /usr/local/sbin/tool, file: tool, mode: "0755"}             # the role's files/
        - {dest: /etc/x/key, content: "{{ key }}", mode: "0600", secret: true}
        - {dest: /etc/x/zone, controller_file: /cache/x.zone}                 # any file on the controller
        - {dest: /etc/systemd/system/x.d, state: directory, mode: "0755"}
        - {dest: /etc/wg/a.conf, template: wg.conf.j2, vars: {item: leg}}      # extra template variables
      units: [frr.service]            # must be enabled and active
      unwanted_units: [nginx.service] # where loaded: must be disabled and stopped
      packages: [frr]                 # Debian packages that must be installed
      interfaces: true                # read the interface of every IPv4 address
      script: |                       # role-specific checks, same exec (bash); print lines,
        ...                           # 'differs <what>' for anything to fix (lines must not start with '@')

  Common keys of an entry: ``owner``/``group`` (root), ``mode`` (0644; 0755 for a folder),
  ``validate`` (as the copy module's, run before a file is installed), ``notify`` (handler
  names), ``secret`` (installed with no_log), ``enabled`` (false: the entry is ignored).

- **Remote side**: one ``bash`` script through the connection (no Python module is sent or
  started): ``stat`` and ``sha1sum`` of every destination in one call each, one ``systemctl
  show`` for every unit, one ``dpkg-query``, ``ip -4 -o addr``, then the role's script.

- **Controller side**: templates are rendered exactly as the template module writes them
  (:mod:`dcops.ansible_plugins.templating`), with the probe's own result visible to them under
  the task's ``register`` name (a firewall template can use the interface names just read);
  content is compared by SHA-1, mode, owner and group. What differs is written once, to a
  private folder of Ansible's local temporary directory, for the copy module to install:
  templates are rendered once per run and what is installed is exactly what was compared.

- **Result** (register it)::

      files: {DEST: {stale: bool, state: file|directory|link|absent}}
      stale: [DEST, ...]              # in the role's order
      install: [{dest, src, state, mode, owner, group, validate, notify, secret}, ...]
      units: {NAME: {load, active, enabled}}
      units_todo: [...]               # wanted but not active and enabled
      units_unwanted: [...]           # unwanted but enabled or active
      packages_missing: [...]
      ifaddrs: {ADDRESS: IFNAME}      # with interfaces: true
      lines: [...]                    # what the role's script printed
      differs: [...]                  # its 'differs ...' lines
      todo: bool                      # anything at all to do on this host

  The role then includes ``probe_apply`` (``playbooks/roles/probe_apply``) with the result,
  on hosts where ``todo`` is true, to install exactly that; secrets never enter the result
  (only the path of the rendered file does).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: The kinds of source an entry can have (exactly one per entry, or ``state: directory``).
SOURCES = ("template", "file", "content", "controller_file")
ENTRY_KEYS = frozenset({*SOURCES, "dest", "state", "mode", "owner", "group", "validate", "notify", "secret", "enabled", "vars"})
UNIT_PROPS = ("LoadState", "ActiveState", "UnitFileState")


class ProbeError(Exception):
    """A probe that cannot be run or understood; the message says what to fix in the role."""


@dataclass(frozen=True)
class Entry:
    """One file or folder a role installs (see the module's docstring)."""

    dest: str
    kind: str  # template | file | content | controller_file | directory
    source: str = ""  # template/file name, content, or controller path
    mode: int = 0o644
    owner: str = "root"
    group: str = "root"
    validate: str | None = None
    notify: tuple[str, ...] = ()
    secret: bool = False
    vars: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_dir(self) -> bool:
        return self.kind == "directory"


def _mode(value: Any, where: str, default: int) -> int:
    if value is None or value == "":
        return default
    text = str(value)
    try:
        return int(text, 8)
    except ValueError:
        raise ProbeError(f"{where}: mode {text!r} is not an octal number (quote it: \"0644\")") from None


def parse_entries(raw: Any) -> list[Entry]:
    """The ``files`` argument as entries, every mistake named (entry index and destination)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ProbeError(f"files must be a list of entries, got {type(raw).__name__}")
    out: list[Entry] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        where = f"files[{i}]"
        if not isinstance(item, Mapping):
            raise ProbeError(f"{where}: expected a mapping with dest and a source, got {type(item).__name__}")
        dest = str(item.get("dest") or "")
        where = f"files[{i}] ({dest or 'no dest'})"
        unknown = sorted(set(item) - ENTRY_KEYS)
        if unknown:
            raise ProbeError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(ENTRY_KEYS))}")
        if not dest.startswith("/"):
            raise ProbeError(f"{where}: dest must be an absolute path")
        if item.get("enabled", True) in (False, "false", "False", 0):
            continue
        if dest in seen:
            raise ProbeError(f"{where}: {dest} is listed twice")
        seen.add(dest)
        sources = [k for k in SOURCES if item.get(k) is not None]
        state = str(item.get("state") or "file")
        if state not in ("file", "directory"):
            raise ProbeError(f"{where}: state must be file or directory, got {state!r}")
        if state == "directory":
            if sources:
                raise ProbeError(f"{where}: a folder takes no {sources[0]}")
            kind, source = "directory", ""
        elif len(sources) != 1:
            raise ProbeError(f"{where}: give exactly one of {', '.join(SOURCES)} (got {', '.join(sources) or 'none'})")
        else:
            kind, source = sources[0], str(item[sources[0]])
        notify = item.get("notify") or ()
        if isinstance(notify, str):
            notify = (notify,)
        extra = item.get("vars") or {}
        if not isinstance(extra, Mapping):
            raise ProbeError(f"{where}: vars must be a mapping")
        out.append(
            Entry(
                dest=dest,
                kind=kind,
                source=source,
                mode=_mode(item.get("mode"), where, 0o755 if kind == "directory" else 0o644),
                owner=str(item.get("owner") or "root"),
                group=str(item.get("group") or "root"),
                validate=str(item["validate"]) if item.get("validate") else None,
                notify=tuple(str(n) for n in notify),
                secret=bool(item.get("secret", False)),
                vars=dict(extra),
            )
        )
    return out


def _names(raw: Any, what: str) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, str) or not isinstance(raw, Iterable):
        raise ProbeError(f"{what} must be a list of names")
    return [str(x) for x in raw]


def script(entries: list[Entry], units: list[str], packages: list[str], interfaces: bool, extra: str) -> str:
    """The bash script the host runs: structured lines start with '@', the role's own lines follow."""
    q = shlex.quote
    parts = ["exec 2>/dev/null"]  # a missing file or unit is an answer, not an error
    if entries:
        paths = " ".join(q(e.dest) for e in entries)
        parts.append(f"stat -c '@stat %a %U %G %F|%n' -- {paths}")
        files = " ".join(q(e.dest) for e in entries if not e.is_dir)
        if files:
            parts.append(f"sha1sum -- {files} | sed 's/^/@sha1 /'")
    if units:
        props = ",".join(UNIT_PROPS)
        parts.append(f"systemctl show -p {props} -- {' '.join(q(u) for u in units)} | sed 's/^/@unit /'")
        parts.append("echo '@unit'")
    if packages:
        parts.append("dpkg-query -W -f='@pkg ${Package} ${db:Status-Status}\\n' -- " + " ".join(q(p) for p in packages))
    if interfaces:
        parts.append("ip -4 -o addr show | awk '{split($4, a, \"/\"); print \"@addr\", a[1], $2}'")
    if extra.strip():
        parts.append("exec 2>&1")
        parts.append(extra.rstrip("\n"))
    parts.append("true")
    return "\n".join(parts) + "\n"


@dataclass
class Remote:
    """What the host said, parsed."""

    stat: dict[str, tuple[str, str, str, str]] = field(default_factory=dict)  # dest -> (mode, owner, group, type)
    sha1: dict[str, str] = field(default_factory=dict)
    units: list[dict[str, str]] = field(default_factory=list)
    packages: dict[str, str] = field(default_factory=dict)
    ifaddrs: dict[str, str] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    @property
    def differs(self) -> list[str]:
        """The role script's ``differs <what>`` lines."""
        return [line for line in self.lines if line.startswith("differs ")]


def parse_output(stdout: str) -> Remote:
    r = Remote()
    block: dict[str, str] = {}
    for line in stdout.splitlines():
        line = line.rstrip("\r")
        if line.startswith("@stat "):
            head, _, name = line[6:].partition("|")
            bits = head.split(" ", 3)
            if len(bits) == 4:
                r.stat[name] = (bits[0], bits[1], bits[2], bits[3])
        elif line.startswith("@sha1 "):
            digest, _, name = line[6:].partition("  ")
            r.sha1[name] = digest.lstrip("\\")
        elif line.startswith("@unit"):
            body = line[5:].strip()
            if not body:
                if block:
                    r.units.append(block)
                block = {}
            else:
                key, _, value = body.partition("=")
                block[key] = value
        elif line.startswith("@pkg "):
            bits = line[5:].split()
            if len(bits) == 2:
                r.packages[bits[0]] = bits[1]
        elif line.startswith("@addr "):
            bits = line[6:].split()
            if len(bits) == 2:
                r.ifaddrs.setdefault(bits[0], bits[1].split("@")[0])
        else:
            r.lines.append(line)
    return r


def _state(kind: str) -> str:
    if kind.startswith("regular"):
        return "file"
    if kind == "directory":
        return "directory"
    if kind == "symbolic link":
        return "link"
    return "other"


def is_stale(e: Entry, remote: Remote, want: bytes | None) -> tuple[bool, str]:
    """(stale, remote state) of one entry given the bytes it should hold (None for a folder)."""
    st = remote.stat.get(e.dest)
    if st is None:
        return True, "absent"
    mode, owner, group, kind = st
    state = _state(kind)
    if (state == "directory") != e.is_dir or state not in ("file", "directory"):
        return True, state
    if int(mode, 8) != e.mode or owner != e.owner or group != e.group:
        return True, state
    if want is not None and remote.sha1.get(e.dest) != hashlib.sha1(want).hexdigest():
        return True, state
    return False, state


def result(
    entries: list[Entry],
    verdicts: list[tuple[bool, str]],
    srcs: list[str | None],
    remote: Remote,
    units: list[str],
    unwanted: list[str],
    packages: list[str],
    interfaces: bool,
) -> dict[str, Any]:
    """The registered result (see the module's docstring): ``verdicts[i]`` is entry i's
    :func:`is_stale`, ``srcs[i]`` what to install it from."""
    files: dict[str, dict[str, Any]] = {}
    stale: list[str] = []
    install: list[dict[str, Any]] = []
    for e, (bad, state), src in zip(entries, verdicts, srcs, strict=True):
        files[e.dest] = {"stale": bad, "state": state}
        if bad:
            stale.append(e.dest)
            install.append(
                {
                    "dest": e.dest,
                    "src": src,
                    "state": "directory" if e.is_dir else "file",
                    "mode": f"{e.mode:04o}",
                    "owner": e.owner,
                    "group": e.group,
                    "validate": e.validate,
                    "notify": list(e.notify),
                    "secret": e.secret,
                }
            )
    names = units + unwanted
    if names and len(remote.units) != len(names):
        raise ProbeError(f"systemctl show answered for {len(remote.units)} of {len(names)} units: is systemd running?")
    states = {
        n: {"load": b.get("LoadState", ""), "active": b.get("ActiveState", ""), "enabled": b.get("UnitFileState", "")}
        for n, b in zip(names, remote.units, strict=False)
    }
    todo_units = [u for u in units if not (states[u]["active"] == "active" and states[u]["enabled"] == "enabled")]
    unwanted_on = [
        u
        for u in unwanted
        if states[u]["load"] == "loaded" and (states[u]["enabled"] == "enabled" or states[u]["active"] in ("active", "reloading"))
    ]
    missing = [p for p in packages if remote.packages.get(p) != "installed"]
    differs = remote.differs
    out: dict[str, Any] = {
        "changed": False,
        "files": files,
        "stale": stale,
        "install": install,
        "units": states,
        "units_todo": todo_units,
        "units_unwanted": unwanted_on,
        "packages_missing": missing,
        "lines": remote.lines,
        "differs": differs,
        "todo": bool(stale or todo_units or unwanted_on or missing or differs),
    }
    if interfaces:
        out["ifaddrs"] = remote.ifaddrs
    return out


def write_private(directory: str, data: bytes, name: str) -> str:
    """``data`` in a 0600 file of ``directory`` (a private folder of Ansible's local temporary directory)."""
    fd, path = tempfile.mkstemp(dir=directory, prefix=os.path.basename(name) + ".")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def run_action(action: Any, task_vars: dict[str, Any]) -> dict[str, Any]:
    """The body of the action plugin's ``run`` (``action`` is the ActionBase instance)."""
    from ansible import constants as C

    from dcops.ansible_plugins.templating import render_template

    args = action._task.args
    entries = parse_entries(args.get("files"))
    units = _names(args.get("units"), "units")
    unwanted = _names(args.get("unwanted_units"), "unwanted_units")
    packages = _names(args.get("packages"), "packages")
    interfaces = bool(args.get("interfaces", False))
    extra = str(args.get("script") or "")
    with_tty_off(action)
    sh = script(entries, units + unwanted, packages, interfaces, extra)
    res = action._low_level_execute_command(sh, executable="/bin/bash")
    if res.get("rc", 0) != 0:
        said = (res.get("stderr") or res.get("stdout") or "")[:2000]
        raise ProbeError(f"the probe failed on the host (rc {res.get('rc')}): {said}")
    remote = parse_output(str(res.get("stdout", "")))
    # What the templates may read of the probe: everything but the files' verdicts, under the
    # task's register name.
    partial = {"lines": remote.lines, "ifaddrs": remote.ifaddrs, "differs": remote.differs}
    variables = dict(task_vars)
    register = action._task.register  # a name; ansible-core 2.21 keeps a {name: expression} mapping
    for name in [register] if isinstance(register, str) else list(register or {}):
        variables[str(name)] = partial
    verdicts: list[tuple[bool, str]] = []
    srcs: list[str | None] = []
    private: str | None = None
    for e in entries:
        src: str | None = None
        if e.kind == "directory":
            want = None
        elif e.kind == "template":
            found = action._find_needle("templates", e.source)
            want = render_template(
                action._templar, action._loader, variables, found, name=e.source, dest=e.dest, extra=e.vars
            ).encode()
        elif e.kind == "file":
            src = action._find_needle("files", e.source)
            with open(src, "rb") as f:
                want = f.read()
        elif e.kind == "controller_file":
            src = e.source
            try:
                with open(src, "rb") as f:
                    want = f.read()
            except OSError as err:
                raise ProbeError(f"{e.dest}: cannot read {src} on the controller: {err.strerror}") from None
        else:
            want = e.source.encode()
        verdict = is_stale(e, remote, want)
        if verdict[0] and want is not None and src is None:  # rendered or given content: written once, for the copy
            if private is None:
                private = tempfile.mkdtemp(prefix="dcops-probe-", dir=C.DEFAULT_LOCAL_TMP)
            src = write_private(private, want, e.dest)
        verdicts.append(verdict)
        srcs.append(src)
    return result(entries, verdicts, srcs, remote, units, unwanted, packages, interfaces)


def with_tty_off(action: Any) -> None:
    """No pseudo-terminal for the probe (it would mix stderr into stdout and add carriage returns)."""
    with contextlib.suppress(Exception):  # connections without the option (local) need nothing
        action._connection.set_option("use_tty", False)
