#!/usr/bin/env bash
# Install what dcops needs on a fresh Debian 12 machine: Debian packages (apt-get) and a
# Python virtual environment in .venv with dcops and its test tools. Idempotent: a second
# run installs nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "dcops setup: run as root (apt-get installs packages, and the lab needs root): log in as root, then bash $0" >&2
    exit 1
  fi
}

missing=()
while read -r pkg; do
  case "$pkg" in ''|'#'*) continue ;; esac
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done < scripts/debian-packages.txt
if [ ${#missing[@]} -gt 0 ]; then
  need_root
  echo "dcops setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # ClamAV's daemons must not start on install (freshclam would download signatures from the
  # internet; the tests bring their own): a policy-rc.d denying them, unless the machine has one.
  policy=
  if [[ " ${missing[*]} " == *" clamav"* ]] && [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '%s\n' '#!/bin/sh' '# dcops setup (temporary): ClamAV daemons do not start on install' \
      'for a in "$@"; do case "$a" in clamav-*) exit 101 ;; esac; done' 'exit 0' > "$policy"
    chmod 0755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ -n "$policy" ]; then rm -f "$policy"; trap - EXIT; fi
  # Debian starts packaged daemons on install; dcops starts its own, on loopback or in the lab.
  for svc in prometheus prometheus-alertmanager prometheus-blackbox-exporter prometheus-node-exporter unbound; do
    if pgrep -x "$svc" >/dev/null 2>&1 && [ -x "/etc/init.d/$svc" ]; then "/etc/init.d/$svc" stop >/dev/null 2>&1 || true; fi
  done
  # unbound would answer on 127.0.0.1:53 at every boot; the dns tests start their own on a free port
  if [[ " ${missing[*]} " == *" unbound "* ]] && command -v systemctl >/dev/null; then systemctl disable unbound >/dev/null 2>&1 || true; fi
  # nor at boot: ClamAV's daemons and AIDE's daily check of this machine
  if [[ " ${missing[*]} " == *" clamav"* || " ${missing[*]} " == *" aide"* ]] && command -v systemctl >/dev/null; then
    systemctl disable clamav-freshclam.service clamav-daemon.service clamav-daemon.socket dailyaidecheck.timer >/dev/null 2>&1 || true
  fi
fi

py=${PYTHON:-python3}
stamp=.venv/.dcops-installed
want=$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "dcops setup: creating .venv and installing dcops with its test tools"
  log=$(mktemp)
  if ! { "$py" -m venv .venv && .venv/bin/pip install -q --upgrade pip && .venv/bin/pip install -q -e "$repo[dev]"; } >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "dcops setup: installing the Python environment failed (full log: $log)" >&2
    exit 1
  fi
  rm -f "$log"
  echo "$want" > "$stamp"
fi
