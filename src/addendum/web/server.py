"""Running the application under uvicorn: the socket bound first (so the printed URLs carry the real port), then served."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass

from addendum.errors import UsageError
from addendum.web.app import ServerConfig, build_app
from addendum.web.auth import Auth

PUBLIC_ENDPOINTS = ("POST /unsubscribe/{token}", "GET /unsubscribe/{token}", "GET /api/policies", "GET /api/policies/{id}/versions",
                    "GET /api/policies/{id}/at/{date}?site=&lang=", "GET /api/openapi.json",
                    "POST /api/acceptances", "GET /api/acceptances/{user}?policy=&site=",
                    "GET /api/needs-acceptance/{user}?policy=&site=&lang=", "GET /history/")
SHUTDOWN_SECONDS = 2  # open event streams are closed after this, so that Ctrl+C stops the server at once


@dataclass(frozen=True)
class Listening:
    """Where the server answers: its base URL, the workspace's one-time login URL (None when public-only)."""

    base_url: str
    login_url: str | None
    endpoints: tuple[str, ...]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                         "choose another --port (0 picks a free one), or stop what listens there") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(config: ServerConfig, host: str, port: int, ready: Callable[[Listening], None]) -> None:
    """Serve until interrupted; `ready` is told the URLs once the socket listens. The workspace listens on a loopback
    address only: on any other host, only the public endpoints may be served (--public)."""
    import uvicorn  # only a server needs it: `addendum --help` stays fast

    if not config.public_only and not _is_loopback(host):
        raise UsageError(f"the workspace is served on the loopback address only, not on {host}",
                         "serve it on 127.0.0.1 (and reach it through an SSH tunnel), or serve --public endpoints only")
    auth = Auth()
    sock = bind(host, port)
    bound = sock.getsockname()[1]
    shown_host = f"[{host}]" if ":" in host else host
    base = f"http://{shown_host}:{bound}"
    app = build_app(config, auth)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                                           timeout_graceful_shutdown=SHUTDOWN_SECONDS, server_header=False))
    ready(Listening(base, None if config.public_only else base + auth.login_path(),
                    tuple(f"{e.split(' ', 1)[0]} {base}{e.split(' ', 1)[1]}" for e in PUBLIC_ENDPOINTS)))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # Ctrl+C is how a server is stopped: uvicorn has shut down cleanly and re-raised it, not a failure
    finally:
        sock.close()
