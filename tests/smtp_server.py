"""A real SMTP server for tests: aiosmtpd on 127.0.0.1, with scripted replies, dropped connections, failed logins and
replies dripped one byte at a time."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def free_port() -> int:
    """An ephemeral port on 127.0.0.1 (aiosmtpd's Controller checks readiness by connecting, so it needs a number)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


DROP = "drop"  # a scripted reply that closes the connection once the message is in, without answering


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        parsed: EmailMessage = BytesParser(policy=policy.default).parsebytes(self.data)  # type: ignore[assignment]
        return parsed


@dataclass
class ScriptedHandler:
    """Accepts every message unless told otherwise: `script[address]` lists the replies its next DATA commands get."""

    script: dict[str, list[str]] = field(default_factory=dict)
    always: str = ""  # a reply given to every DATA command, e.g. "550 5.7.1 rejected"
    received: list[Received] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    on_accept: Callable[[Received, int], None] | None = None
    # recipient -> seconds between the bytes of the reply to its next message (after the message is in), or of the
    # go-ahead (354) to its next DATA command (before the message is sent); each used once
    drip_reply: dict[str, float] = field(default_factory=dict)
    drip_go_ahead: dict[str, float] = field(default_factory=dict)
    data_started: list[str] = field(default_factory=list)  # the recipient of every DATA command, as it arrives
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        recipient = envelope.rcpt_tos[0]
        with self.lock:
            server.drip = self.drip_reply.pop(recipient, 0.0)
            queued = self.script.get(recipient)
            reply = queued.pop(0) if queued else self.always
            if reply and reply != DROP:
                self.refused.append((recipient, reply))
                return reply
            item = Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content or envelope.content))
            self.received.append(item)
            count = len(self.received)
        if reply == DROP:
            server.transport.close()
            return "250 OK"
        if self.on_accept is not None:
            self.on_accept(item, count)
        return "250 2.0.0 OK queued"

    def by_recipient(self) -> dict[str, list[Received]]:
        out: dict[str, list[Received]] = {}
        for item in list(self.received):
            for recipient in item.recipients:
                out.setdefault(recipient, []).append(item)
        return out


class DrippingSMTP(SMTP):
    """aiosmtpd's server, except that a reply the handler marked goes out one byte at a time."""

    drip = 0.0  # seconds between the bytes of the next reply

    async def smtp_DATA(self, arg: str) -> None:
        handler = self.event_handler
        if self.envelope.rcpt_tos and isinstance(handler, ScriptedHandler):
            with handler.lock:
                self.drip = handler.drip_go_ahead.pop(self.envelope.rcpt_tos[0], 0.0)
                handler.data_started.append(self.envelope.rcpt_tos[0])
        await super().smtp_DATA(arg)

    async def push(self, status: Any) -> None:
        delay, self.drip = self.drip, 0.0
        if not delay:
            await super().push(status)
            return
        for byte in (status.encode("ascii") if isinstance(status, str) else status) + b"\r\n":
            if self._writer.transport.is_closing():
                return  # the client gave up waiting
            self._writer.write(bytes([byte]))
            await self._writer.drain()
            await asyncio.sleep(delay)


class DrippingController(Controller):
    def factory(self) -> SMTP:
        return DrippingSMTP(self.handler, **self.SMTP_kwargs)


class SmtpServer:
    """A running server: `port`, `handler`; `credentials` turns on AUTH and refuses any other login with 535."""

    def __init__(self, handler: ScriptedHandler | None = None, credentials: tuple[str, str] | None = None) -> None:
        self.handler = handler or ScriptedHandler()
        self.credentials = credentials
        kwargs: dict[str, Any] = {}
        if credentials is not None:
            kwargs.update(authenticator=self._authenticate, auth_require_tls=False, auth_required=True)
        self.port = free_port()
        self.controller = DrippingController(self.handler, hostname="127.0.0.1", port=self.port, **kwargs)

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login.decode(), data.password.decode()) == self.credentials
        return AuthResult(success=ok, handled=False)

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
