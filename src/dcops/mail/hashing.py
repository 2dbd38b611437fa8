"""Password hashes that Dovecot 2.3 reads, and the random initial passwords they hash.

Two schemes, each written with Dovecot's scheme prefix so the passwd-file needs no
``default_pass_scheme``:

- ``SHA512-CRYPT`` (the default): ``{SHA512-CRYPT}$6$<salt>$...``, computed by the system's
  libcrypt (libxcrypt on Debian, the very library Dovecot verifies with) through ``crypt_rn``,
  which is thread-safe; 3,319 hashes take seconds.
- ``BLF-CRYPT``: ``{BLF-CRYPT}$2b$<cost>$...`` with PyCA's ``bcrypt``; stronger per guess and
  much slower to compute (cost 10 is about 0.1-0.5 s a hash on this class of machine).

Plaintext passwords exist only in memory and in the handover file the caller writes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import secrets
import string
from collections.abc import Callable
from enum import StrEnum
from functools import cache

#: Characters of a generated password: no look-alikes (0/O, 1/l/I) so it can be read aloud.
PASSWORD_ALPHABET = "".join(c for c in string.ascii_letters + string.digits if c not in "0O1lI")
PASSWORD_LENGTH = 16
_SALT_ALPHABET = "./" + string.digits + string.ascii_uppercase + string.ascii_lowercase
#: libxcrypt's ``struct crypt_data`` is 32768 bytes; a larger buffer is harmless.
_CRYPT_DATA_SIZE = 65536


class Scheme(StrEnum):
    SHA512_CRYPT = "SHA512-CRYPT"
    BLF_CRYPT = "BLF-CRYPT"


class HashError(Exception):
    """A hash could not be computed (no libcrypt, or it refused the setting)."""


def new_password(length: int = PASSWORD_LENGTH) -> str:
    """A random password (about 5.9 bits a character: 16 characters are over 90 bits)."""
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(length))


@cache
def _libcrypt() -> Callable[[bytes, bytes], bytes]:
    name = ctypes.util.find_library("crypt") or "libcrypt.so.1"
    try:
        lib = ctypes.CDLL(name)
        fn = lib.crypt_rn
    except (OSError, AttributeError) as e:
        raise HashError(
            f"SHA512-CRYPT needs libxcrypt's crypt_rn ({name}): {e}; install libcrypt1 or use --scheme BLF-CRYPT"
        ) from e
    fn.restype = ctypes.c_char_p
    fn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]

    def crypt(phrase: bytes, setting: bytes) -> bytes:
        buf = ctypes.create_string_buffer(_CRYPT_DATA_SIZE)  # one per call: thread-safe
        out = fn(phrase, setting, buf, _CRYPT_DATA_SIZE)
        if not out or out.startswith(b"*"):
            raise HashError(f"libcrypt refused the setting {setting[:20]!r}")
        return bytes(out)

    return crypt


def hash_password(password: str, scheme: Scheme = Scheme.SHA512_CRYPT, *, rounds: int = 5000, cost: int = 10) -> str:
    """``password`` hashed for Dovecot, with its ``{SCHEME}`` prefix."""
    phrase = password.encode("utf-8")
    if scheme is Scheme.SHA512_CRYPT:
        salt = "".join(secrets.choice(_SALT_ALPHABET) for _ in range(16))
        setting = f"$6${salt}" if rounds == 5000 else f"$6$rounds={rounds}${salt}"
        return "{SHA512-CRYPT}" + _libcrypt()(phrase, setting.encode()).decode("ascii")
    import bcrypt

    return "{BLF-CRYPT}" + bcrypt.hashpw(phrase, bcrypt.gensalt(cost)).decode("ascii")


def verify_password(password: str, hashed: str) -> bool:
    """True when ``password`` matches a hash written by :func:`hash_password`."""
    scheme, sep, rest = hashed[1:].partition("}")
    if not hashed.startswith("{") or not sep:
        return False
    phrase = password.encode("utf-8")
    if scheme == Scheme.SHA512_CRYPT:
        settings = rest.rsplit("$", 1)[0]
        return secrets.compare_digest(_libcrypt()(phrase, settings.encode()), rest.encode())
    if scheme == Scheme.BLF_CRYPT:
        import bcrypt

        return bool(bcrypt.checkpw(phrase, rest.encode()))
    return False
