"""The one module that makes HTTP requests: a webhook POST with timeouts, a total deadline, no redirects and a size cap."""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from addendum import __version__
from addendum.errors import UsageError

RETRIED_STATUSES = (408, 429)  # a 4xx that says "later", not "never"
EVIDENCE_CHARS = 300  # of a receiver's answer, kept as the attempt's reply
MAX_RETRY_AFTER = 86_400.0


@dataclass(frozen=True)
class HttpLimits:
    """How long a request may take (each socket operation, and in all) and how much of an answer is read."""

    timeout: float = 10.0
    deadline: float = 30.0
    response_bytes: int = 65_536


@dataclass(frozen=True)
class Answer:
    """What one POST came to: delivered (2xx), retry (5xx, 408, 429, timeout, connection error) or failed (any other
    answer); the status when one came, a short reply for the record, and a Retry-After the receiver asked for."""

    outcome: str
    status: int | None
    reply: str
    retry_after: float | None = None


def require_webhook_url(url: str) -> str:
    """An http(s) URL with a host and no credentials in it, else a UsageError that says so."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UsageError(f"{url!r} is not an http(s) URL", "give the receiver's address, e.g. https://hooks.example.org/addendum")
    if parts.username or parts.password:
        raise UsageError(f"{parts.scheme}://…@{parts.hostname}: the URL carries credentials",
                         "receivers authenticate deliveries by their signature; remove user:password@ from the URL")
    if len(url) > 2000:
        raise UsageError("the URL is longer than 2,000 characters")
    return url


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    with contextlib.suppress(ValueError, TypeError, OverflowError):
        if value.strip().isdigit():
            return min(float(value.strip()), MAX_RETRY_AFTER)
        return min(max(0.0, parsedate_to_datetime(value).timestamp() - time.time()), MAX_RETRY_AFTER)
    return None


def post(url: str, body: bytes, headers: dict[str, str], limits: HttpLimits) -> Answer:
    """POST `body` to `url` once. Redirects are answers, never followed; the connection is closed when `limits.deadline`
    runs out, however slowly the receiver trickles; at most `limits.response_bytes` of the answer are read."""
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(parts.hostname or "", parts.port, timeout=limits.timeout,
                                                 context=ssl.create_default_context())
    else:
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=limits.timeout)
    expired = threading.Event()

    def cut() -> None:
        expired.set()
        sock = connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    watchdog = threading.Timer(limits.deadline, cut)
    watchdog.daemon = True
    watchdog.start()
    try:
        connection.request("POST", target, body=body, headers={
            "Content-Type": "application/json", "User-Agent": f"addendum/{__version__}", "Connection": "close", **headers})
        response = connection.getresponse()
        content = response.read(limits.response_bytes)
        status = response.status
        retry_after = _retry_after(response.getheader("Retry-After"))
        location = response.getheader("Location", "")
    except (OSError, http.client.HTTPException) as exc:
        if expired.is_set():
            return Answer("retry", None, f"no answer within {limits.deadline:g} s")
        if isinstance(exc, TimeoutError | socket.timeout):
            return Answer("retry", None, f"timed out after {limits.timeout:g} s without a byte")
        return Answer("retry", None, f"{exc.__class__.__name__}: {exc}"[:EVIDENCE_CHARS])
    finally:
        watchdog.cancel()
        connection.close()
    text = content.decode("utf-8", "replace").strip().replace("\n", " ")[:EVIDENCE_CHARS]
    reply = f"{status} {text}".strip()
    if 200 <= status < 300:
        return Answer("delivered", status, reply)
    if 300 <= status < 400:
        return Answer("failed", status, f"{status} redirect to {location[:200] or '?'} not followed: register the final URL")
    if status >= 500 or status in RETRIED_STATUSES:
        return Answer("retry", status, reply, retry_after)
    return Answer("failed", status, reply)
