"""SSH posture through paramiko's transport negotiation: what the server offers, and password auth."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any

import paramiko  # type: ignore[import-untyped]

#: Algorithms considered weak (SHA-1, CBC, RC4, 3DES, MD5, DSA, 1024-bit groups). Data, not code paths.
WEAK: dict[str, frozenset[str]] = {
    "kex": frozenset({
        "diffie-hellman-group1-sha1", "diffie-hellman-group14-sha1", "diffie-hellman-group-exchange-sha1",
        "gss-group1-sha1-toWM5Slw5Ew8Mqkay+al2g==", "rsa1024-sha1",
    }),
    "hostkey": frozenset({"ssh-dss", "ssh-rsa", "ssh-dss-cert-v01@openssh.com", "ssh-rsa-cert-v01@openssh.com"}),
    "cipher": frozenset({
        "3des-cbc", "aes128-cbc", "aes192-cbc", "aes256-cbc", "blowfish-cbc", "cast128-cbc", "arcfour",
        "arcfour128", "arcfour256", "rijndael-cbc@lysator.liu.se", "none",
    }),
    "mac": frozenset({
        "hmac-md5", "hmac-md5-96", "hmac-md5-etm@openssh.com", "hmac-md5-96-etm@openssh.com", "hmac-sha1",
        "hmac-sha1-96", "hmac-sha1-etm@openssh.com", "hmac-sha1-96-etm@openssh.com", "umac-64@openssh.com",
        "umac-64-etm@openssh.com", "hmac-ripemd160", "none",
    }),
}


@dataclass
class SshPosture:
    offered: dict[str, list[str]] = field(default_factory=dict)  # kind → algorithms the server offers
    auth_methods: list[str] = field(default_factory=list)
    banner: str = ""

    def weak(self) -> dict[str, list[str]]:
        return {k: sorted(a for a in self.offered.get(k, []) if a in WEAK[k]) for k in WEAK}


class _RecordingTransport(paramiko.Transport):  # type: ignore[misc]
    """Keeps the server's KEXINIT lists (the first one parsed in client mode is the server's)."""

    server_offer: dict[str, list[str]] | None = None

    def _really_parse_kex_init(self, m: Any, ignore_first_byte: bool = False) -> dict[str, Any]:
        parsed: dict[str, Any] = super()._really_parse_kex_init(m, ignore_first_byte)
        if self.server_offer is None:
            self.server_offer = {
                "kex": [a for a in parsed["kex_algo_list"] if not a.startswith(("ext-info", "kex-strict"))],
                "hostkey": list(parsed["server_key_algo_list"]),
                "cipher": sorted(set(parsed["client_encrypt_algo_list"]) | set(parsed["server_encrypt_algo_list"])),
                "mac": sorted(set(parsed["client_mac_algo_list"]) | set(parsed["server_mac_algo_list"])),
            }
        return parsed


def probe(address: str, port: int, timeout: float) -> SshPosture:
    """Blocking (run it in a thread). Raises OSError/paramiko.SSHException when the server cannot be read."""
    sock = socket.create_connection((address, port), timeout=timeout)
    t = _RecordingTransport(sock)
    t.banner_timeout = timeout
    t.auth_timeout = timeout
    out = SshPosture()
    try:
        try:
            t.start_client(timeout=timeout)
        except paramiko.SSHException:
            if t.server_offer is None:
                raise
            out.offered = t.server_offer  # offered only algorithms paramiko refuses: still a finding
            return out
        out.offered = t.server_offer or {}
        out.banner = t.remote_version or ""
        try:
            t.auth_none("dcops-posture-probe")
        except paramiko.BadAuthenticationType as e:
            out.auth_methods = sorted(e.allowed_types)
        except paramiko.SSHException:
            pass
        return out
    finally:
        t.close()
        sock.close()
