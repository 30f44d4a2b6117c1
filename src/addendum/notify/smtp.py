"""SMTP: the only module that talks to a mail server. One connection, reused; every socket operation under a timeout."""

from __future__ import annotations

import ipaddress
import os
import re
import smtplib
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from addendum.config import Repo
from addendum.errors import NotifyError
from addendum.notify.tokens import require_private

PASSWORD_ENV = "ADDENDUM_SMTP_PASSWORD"
Outcome = Literal["sent", "retry", "failed", "unknown"]
DOT_AT_LINE_START = re.compile(rb"(?m)^\.")


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    security: str  # starttls | tls | none
    user: str
    password: str = field(repr=False)
    timeout: float

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Delivery:
    """What became of one message: the outcome and the server's reply, kept as evidence."""

    outcome: Outcome
    code: int
    reply: str


class SmtpAuthError(NotifyError):
    """The server refused our credentials (535): no message can go out, so the run stops."""


class SmtpConnectError(NotifyError):
    """The server cannot be reached, or refuses to talk securely: the run stops with its state kept."""


def smtp_settings(repo: Repo) -> SmtpSettings:
    """Server settings from addendum.toml (the ADDENDUM_SMTP_* environment overrides them); the password only from
    ADDENDUM_SMTP_PASSWORD or a 0600 file, never from committed config."""
    password = os.environ.get(PASSWORD_ENV, "")
    password_file = str(repo.setting("notify.smtp.password_file"))
    if not password and password_file:
        path = Path(password_file) if Path(password_file).is_absolute() else repo.root / password_file
        if not path.is_file():
            raise NotifyError(f"the SMTP password file {path} does not exist", "create it (mode 0600) or set ADDENDUM_SMTP_PASSWORD")
        require_private(path, "SMTP password file")
        password = path.read_text(encoding="utf-8").strip()
    return SmtpSettings(str(repo.setting("notify.smtp.host")), int(repo.setting("notify.smtp.port")),
                        str(repo.setting("notify.smtp.security")), str(repo.setting("notify.smtp.user")), password,
                        float(repo.setting("notify.smtp.timeout")))


def classify(code: int, reply: str) -> Delivery:
    """RFC 5321 reply codes: 2xx delivered, 4xx (and 552, historically temporary) retried, other 5xx failed."""
    if 200 <= code < 300:
        return Delivery("sent", code, reply)
    if 400 <= code < 500 or code == 552:
        return Delivery("retry", code, reply)
    return Delivery("failed", code, reply)


def _reply(code: int, message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
    return f"{code} {' '.join(text.split())}".strip()


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class SmtpConnection:
    """One connection to the server, opened on first use and reused for every following message."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None
        self._eight_bit = False

    def open(self) -> None:
        s = self.settings
        try:
            if s.security == "tls":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, local_hostname=socket.gethostname(), timeout=s.timeout,
                                                      context=ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(s.host, s.port, local_hostname=socket.gethostname(), timeout=s.timeout)
            smtp.ehlo()
            if s.security == "starttls":
                if not smtp.has_extn("starttls"):
                    smtp.close()
                    raise SmtpConnectError(f"the SMTP server {s.where} does not offer STARTTLS",
                                           "use a server that does, or set notify.smtp.security (e.g. \"tls\" on port 465)")
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
        except (OSError, smtplib.SMTPException) as exc:
            raise SmtpConnectError(f"cannot connect to the SMTP server {s.where}: {exc}",
                                   "check notify.smtp.host/port (or ADDENDUM_SMTP_HOST/PORT) and that the server runs") from None
        if s.user:
            if not s.password:
                smtp.close()
                raise SmtpAuthError(f"no password for the SMTP user {s.user!r}",
                                    f"set {PASSWORD_ENV}, or notify.smtp.password_file to a 0600 file")
            if s.security == "none" and not _is_loopback(s.host):
                smtp.close()
                raise SmtpConnectError(f"refusing to send the SMTP password to {s.where} unencrypted",
                                       "set notify.smtp.security to starttls or tls")
            try:
                smtp.login(s.user, s.password)
            except smtplib.SMTPAuthenticationError as exc:
                smtp.close()
                raise SmtpAuthError(f"the SMTP server {s.where} refused the login of {s.user!r}: {_reply(exc.smtp_code, exc.smtp_error)}",
                                    f"check ADDENDUM_SMTP_USER and {PASSWORD_ENV}; nothing was sent, the outbox is kept") from None
            except (OSError, smtplib.SMTPException) as exc:
                smtp.close()
                raise SmtpConnectError(f"logging in to {s.where} failed: {exc}", "check the server's authentication settings") from None
        self._smtp = smtp
        self._eight_bit = smtp.has_extn("8bitmime")

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (OSError, smtplib.SMTPException):
                self._smtp.close()
            self._smtp = None

    def _drop(self) -> None:
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None

    def deliver(self, sender: str, recipient: str, data: bytes) -> Delivery:
        """Send one message; a connection lost while awaiting the final reply is `unknown`: it may have been delivered."""
        if self._smtp is None:
            self.open()
        smtp = self._smtp
        assert smtp is not None
        stage = "envelope"
        try:
            code, message = smtp.mail(sender, ["BODY=8BITMIME"] if self._eight_bit else [])
            if code == 250:
                code, message = smtp.rcpt(recipient)
            if code in (250, 251):
                code, message = smtp.docmd("DATA")
            if code != 354:
                self._reset(code)
                return classify(code, _reply(code, message))
            stage = "data"
            payload = DOT_AT_LINE_START.sub(b"..", data)
            smtp.send(payload + (b"" if payload.endswith(b"\r\n") else b"\r\n") + b".\r\n")
            stage = "reply"
            code, message = smtp.getreply()
        except (OSError, smtplib.SMTPException) as exc:
            self._drop()
            if stage == "reply":
                return Delivery("unknown", 0, f"connection lost after the message was sent, before the server replied ({exc})")
            return Delivery("retry", 0, f"connection lost before the message was complete ({exc})")
        if code == 421:
            self._drop()
        return classify(code, _reply(code, message))

    def _reset(self, code: int) -> None:
        """End a refused transaction so the connection can carry the next message."""
        if code == 421 or code < 0:
            self._drop()
            return
        try:
            assert self._smtp is not None
            self._smtp.rset()
        except (OSError, smtplib.SMTPException):
            self._drop()
