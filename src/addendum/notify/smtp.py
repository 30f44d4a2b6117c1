"""SMTP: the only module that talks to a mail server. One connection, reused; every socket operation under a timeout,
and every message under a deadline of its own."""

from __future__ import annotations

import io
import ipaddress
import math
import os
import re
import smtplib
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from addendum.config import Repo
from addendum.errors import NotifyError
from addendum.notify.tokens import require_private

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

PASSWORD_ENV = "ADDENDUM_SMTP_PASSWORD"
# "skipped": the message was not sent because the caller's before_data said no (its row is no longer the caller's).
Outcome = Literal["sent", "retry", "failed", "unknown", "skipped"]
DOT_AT_LINE_START = re.compile(rb"(?m)^\.")
PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+")  # atoms and a domain: nothing to quote


def quote_address(address: str) -> str:
    """`address` as MAIL FROM and RCPT TO take it. A plain one (as stored addresses are) is just put in angle
    brackets: smtplib.quoteaddr parses every address as a header would, a cost paid twice per message."""
    if PLAIN_ADDRESS.fullmatch(address):
        return f"<{address}>"
    return smtplib.quoteaddr(address)


def dot_stuffed(data: bytes) -> bytes:
    """`data` with a dot doubled at the start of each line (RFC 5321 4.5.2); most messages have none to double."""
    if data.startswith(b".") or b"\n." in data:
        return DOT_AT_LINE_START.sub(b"..", data)
    return data


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    security: str  # starttls | tls | none
    user: str
    password: str = field(repr=False)
    timeout: float
    message_deadline: float = 120.0  # seconds one message may take in all, however slowly the server answers

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
        path = repo.path(password_file)
        if not path.is_file():
            raise NotifyError(f"the SMTP password file {path} does not exist", "create it (mode 0600) or set ADDENDUM_SMTP_PASSWORD")
        require_private(path, "SMTP password file")
        password = path.read_text(encoding="utf-8").strip()
    deadline = float(repo.setting("notify.message_deadline"))
    if not deadline > 0:
        raise NotifyError(f"notify.message_deadline must be more than 0 seconds, not {deadline:g}",
                          "set it in addendum.toml (default 120)")
    return SmtpSettings(str(repo.setting("notify.smtp.host")), int(repo.setting("notify.smtp.port")),
                        str(repo.setting("notify.smtp.security")), str(repo.setting("notify.smtp.user")), password,
                        float(repo.setting("notify.smtp.timeout")), deadline)


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


class DeadlineExceeded(TimeoutError):
    """One message took longer than notify.message_deadline, however busy the server kept the socket."""


class Deadline:
    """When the current message on a connection must be done by. Per-socket timeouts alone bound nothing: a server
    that answers one byte a second never lets a read time out."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout  # what one socket operation may take
        self.seconds = 0.0
        self.at = math.inf  # time.monotonic() at which the message must be done

    def start(self, seconds: float) -> None:
        self.seconds, self.at = seconds, time.monotonic() + seconds

    def clear(self) -> None:
        self.at = math.inf

    @property
    def description(self) -> str:
        return f"the {self.seconds:g} s deadline for one message (notify.message_deadline)"

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.at - 0.001  # a read that timed out at the deadline may wake a hair early

    def left(self) -> float:
        """The timeout of the next socket operation: the per-operation one, or less when the deadline is nearer."""
        remaining = self.at - time.monotonic()
        if remaining <= 0:
            raise DeadlineExceeded(f"{self.description} ran out")
        return min(self.timeout, remaining)

    def arm(self, sock: socket.socket) -> None:
        """Give the next operation on `sock` what is left (a system call only when that differs from its timeout)."""
        wanted = self.left()
        if sock.gettimeout() != wanted:
            sock.settimeout(wanted)


class _DeadlineReader(io.RawIOBase):
    """The socket as smtplib reads replies from it: each read waits no longer than what is left of the deadline."""

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        super().__init__()
        self._sock, self._deadline = sock, deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        self._deadline.arm(self._sock)
        return self._sock.recv_into(buffer)


class _BoundedSMTP(smtplib.SMTP):
    """smtplib.SMTP whose every read and write (greeting, login and STARTTLS included) fits in the deadline."""

    def __init__(self, deadline: Deadline, *args: Any, **kwargs: Any) -> None:
        self.deadline = deadline  # before connecting: the greeting is read under it too
        super().__init__(*args, **kwargs)

    def send(self, s: ReadableBuffer | str) -> None:
        if self.sock is not None:
            self.deadline.arm(self.sock)
        super().send(s)

    def getreply(self) -> tuple[int, bytes]:
        if self.file is None and self.sock is not None:
            # smtplib opens its reader lazily, and again after STARTTLS: this one bounds each read by the deadline.
            self.file = io.BufferedReader(_DeadlineReader(self.sock, self.deadline))
        return super().getreply()


class _BoundedSMTPSSL(_BoundedSMTP, smtplib.SMTP_SSL):
    """The same over implicit TLS (port 465)."""


class SmtpConnection:
    """One connection to the server, opened on first use and reused for every following message."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None
        self._eight_bit = False
        self._pipelining = False
        self._deadline = Deadline(settings.timeout)

    def open(self) -> None:
        s = self.settings
        connect_timeout = self._deadline.left()
        try:
            if s.security == "tls":
                smtp: smtplib.SMTP = _BoundedSMTPSSL(self._deadline, s.host, s.port, local_hostname=socket.gethostname(),
                                                     timeout=connect_timeout, context=ssl.create_default_context())
            else:
                smtp = _BoundedSMTP(self._deadline, s.host, s.port, local_hostname=socket.gethostname(), timeout=connect_timeout)
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
        self._pipelining = smtp.has_extn("pipelining")

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

    def deliver(self, sender: str, recipient: str, data: bytes, before_data: Callable[[], bool] | None = None) -> Delivery:
        """Send one message within settings.message_deadline (connecting included). A connection lost, or a deadline
        run out, while awaiting the final reply is `unknown`: it may have been delivered; before that, `retry`.

        `before_data` runs once the DATA command is written (while the server answers it), before the message itself
        goes out: the caller records there that the message is being sent. Until the final "." nothing is delivered,
        so a process killed before that record leaves nothing that may have arrived. When it returns False, the
        message is not sent: the connection is dropped (a server discards a message cut short), the outcome `skipped`."""
        self._deadline.start(self.settings.message_deadline)
        try:
            return self._deliver(sender, recipient, data, before_data or (lambda: True))
        finally:
            self._deadline.clear()

    def _envelope(self, smtp: smtplib.SMTP, sender: str, recipient: str, before_data: Callable[[], bool]) -> tuple[int, bytes, bool]:
        """MAIL FROM, RCPT TO and DATA: the reply that ended the envelope (354 to go on), and what before_data said.
        before_data runs once DATA is written, while the server answers: its time hides in the round trip."""
        options = " BODY=8BITMIME" if self._eight_bit else ""
        if not self._pipelining:
            code, message = smtp.mail(sender, ["BODY=8BITMIME"] if self._eight_bit else [])
            if code == 250:
                code, message = smtp.rcpt(recipient)
            if code not in (250, 251):
                return code, message, True
            smtp.putcmd("data")
            go = before_data()
            return (*smtp.getreply(), go)
        # RFC 2920: the three commands in one write, their replies read in order (one round trip instead of three).
        smtp.send(f"MAIL FROM:{quote_address(sender)}{options}\r\nRCPT TO:{quote_address(recipient)}\r\nDATA\r\n")
        go = before_data()
        replies = [smtp.getreply() for _ in range(3)]
        for code, message in replies[:2]:
            if code not in (250, 251):
                if replies[2][0] == 354:
                    smtp.send(".\r\n")  # a server that still said go ahead gets an empty message, refused for want of a recipient
                    smtp.getreply()
                return code, message, go
        return (*replies[2], go)

    def _deliver(self, sender: str, recipient: str, data: bytes, before_data: Callable[[], bool]) -> Delivery:
        if self._smtp is None:
            self.open()
        smtp = self._smtp
        assert smtp is not None
        stage = "envelope"
        try:
            try:
                code, message, go = self._envelope(smtp, sender, recipient, before_data)
            except BaseException:
                self._drop()  # the server may be waiting for a message: no QUIT into it, just the end of the connection
                raise
            if code != 354:
                self._reset(code)
                return classify(code, _reply(code, message))
            if not go:
                self._drop()  # the server waits for a message: cut short, it is discarded
                return Delivery("skipped", 0, "not sent: the notice is no longer this sender's to send")
            stage = "data"
            payload = dot_stuffed(data)
            smtp.send(payload + (b"" if payload.endswith(b"\r\n") else b"\r\n") + b".\r\n")
            stage = "reply"
            code, message = smtp.getreply()
        except (OSError, smtplib.SMTPException) as exc:
            self._drop()
            if self._deadline.expired:
                if stage == "reply":
                    return Delivery("unknown", 0, f"no reply within {self._deadline.description} after the message was "
                                                  "sent: it may have been delivered")
                return Delivery("retry", 0, f"{self._deadline.description} ran out before the message was complete")
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
