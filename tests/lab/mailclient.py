"""SMTP and IMAP client the lab tests run ON a lab host: ``python3 - CMD ARGS... < mailclient.py``.

Standard library only (the lab hosts have python3 and nothing else of Python); every command
prints one JSON object on stdout. TLS is verified against the host's trust store, where the
mail role installed the internal CA, and against the server's name.

Commands:
  send HOST PORT TLS USER PASSWORD FROM TO SUBJECT [SIZE]   TLS: starttls | ssl | plain; USER "-": no AUTH
  auth-plain-first HOST PORT USER PASSWORD                 AUTH PLAIN before STARTTLS (must be refused)
  imap-fetch HOST USER PASSWORD SUBJECT WAIT [KEY]         poll INBOX for SUBJECT (or KEY, e.g. TEXT), return the raw message
  imap-login HOST USER PASSWORD                            one login attempt
  imap-count HOST USER PASSWORD SUBJECT                    messages whose subject contains SUBJECT (*: all)
"""

from __future__ import annotations

import base64
import email.utils
import imaplib
import json
import smtplib
import ssl
import sys
import time
from typing import Any


def out(**kw: Any) -> None:
    print(json.dumps(kw))


def smtp(host: str, port: int, tls: str) -> smtplib.SMTP:
    ctx = ssl.create_default_context()
    if tls == "ssl":
        s: smtplib.SMTP = smtplib.SMTP_SSL(host, port, context=ctx, timeout=30)
        s.ehlo()
        return s
    s = smtplib.SMTP(host, port, timeout=30)
    s.ehlo()
    if tls == "starttls":
        s.starttls(context=ctx)
        s.ehlo()
    return s


def message(frm: str, to: str, subject: str, size: int) -> bytes:
    line = "x" * 76 + "\r\n"
    body = line * (size // len(line) + 1) if size else "Kính gửi: message from the lab\r\n"
    head = (
        f"From: {frm}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {email.utils.formatdate()}\r\n"
        f"Message-ID: <{subject}@lab.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
    )
    return (head + body).encode()


def send(host: str, port: str, tls: str, user: str, password: str, frm: str, to: str, subject: str, size: str = "0") -> None:
    try:
        s = smtp(host, int(port), tls)
        if user != "-":
            s.login(user, password)
        s.sendmail(frm, [to], message(frm, to, subject, int(size)))
        s.quit()
        out(ok=True, code=250)
    except smtplib.SMTPRecipientsRefused as e:
        code, msg = next(iter(e.recipients.values()))
        out(ok=False, stage="rcpt", code=code, error=msg.decode(errors="replace"))
    except smtplib.SMTPSenderRefused as e:
        out(ok=False, stage="mail", code=e.smtp_code, error=e.smtp_error.decode(errors="replace"))
    except smtplib.SMTPDataError as e:
        out(ok=False, stage="data", code=e.smtp_code, error=e.smtp_error.decode(errors="replace"))
    except smtplib.SMTPAuthenticationError as e:
        out(ok=False, stage="auth", code=e.smtp_code, error=e.smtp_error.decode(errors="replace"))
    except smtplib.SMTPResponseException as e:
        out(ok=False, stage="other", code=e.smtp_code, error=e.smtp_error.decode(errors="replace"))
    except (OSError, smtplib.SMTPException) as e:
        out(ok=False, stage="connect", code=None, error=repr(e))


def auth_plain_first(host: str, port: str, user: str, password: str) -> None:
    s = smtplib.SMTP(host, int(port), timeout=30)
    s.ehlo()
    features = sorted(s.esmtp_features)
    token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    code, msg = s.docmd("AUTH", "PLAIN " + token)
    s.close()
    out(features=features, code=code, error=msg.decode(errors="replace"))


def imap(host: str, user: str, password: str) -> imaplib.IMAP4_SSL:
    m = imaplib.IMAP4_SSL(host, 993, ssl_context=ssl.create_default_context(), timeout=30)
    m.login(user, password)
    return m


def imap_fetch(host: str, user: str, password: str, subject: str, wait: str, key: str = "SUBJECT") -> None:
    deadline = time.monotonic() + float(wait)
    m = imap(host, user, password)
    while True:
        m.select("INBOX")
        _, data = m.search(None, key, f'"{subject}"')
        ids = data[0].split()
        if ids:
            _, parts = m.fetch(ids[-1], "(RFC822)")
            raw = next(p[1] for p in parts if isinstance(p, tuple))
            m.logout()
            out(found=True, raw=base64.b64encode(raw).decode())
            return
        if time.monotonic() > deadline:
            m.logout()
            out(found=False)
            return
        time.sleep(0.5)


def imap_login(host: str, user: str, password: str) -> None:
    try:
        imap(host, user, password).logout()
        out(ok=True)
    except imaplib.IMAP4.error as e:
        out(ok=False, error=str(e))
    except OSError as e:
        out(ok=False, error=repr(e), connect=False)


def imap_count(host: str, user: str, password: str, prefix: str) -> None:
    m = imap(host, user, password)
    m.select("INBOX", readonly=True)
    _, data = m.search(None, "ALL") if prefix == "*" else m.search(None, "SUBJECT", f'"{prefix}"')
    m.logout()
    out(count=len(data[0].split()))


if __name__ == "__main__":
    commands = {"send": send, "auth-plain-first": auth_plain_first, "imap-fetch": imap_fetch,
                "imap-login": imap_login, "imap-count": imap_count}
    commands[sys.argv[1]](*sys.argv[2:])
