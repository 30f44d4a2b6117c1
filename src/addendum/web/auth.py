"""Who may use the workspace: a one-time login URL printed at start, then a signed session cookie and a CSRF token."""

from __future__ import annotations

import hmac
import secrets
import threading
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request

SESSION_COOKIE = "addendum_session"
SESSION_SECONDS = 12 * 60 * 60  # a working day; then the editor asks the server for a new login URL by restarting it
CSRF_FIELD = "csrf"


@dataclass(frozen=True)
class Session:
    """A logged-in editor's session: the CSRF token every form of theirs must carry."""

    csrf: str


class Auth:
    """Signs sessions with a secret of this server's own (sessions end when it stops) and redeems the login token once."""

    def __init__(self, secret: str | None = None, login_token: str | None = None) -> None:
        self._serializer = URLSafeTimedSerializer(secret or secrets.token_urlsafe(32), salt="addendum-workspace-session")
        self.login_token = login_token or secrets.token_urlsafe(32)
        self._redeemed = False
        self._lock = threading.Lock()

    def login_path(self) -> str:
        return f"/login?token={self.login_token}"

    def redeem(self, token: str) -> str | None:
        """A new session cookie value for the right token, the first time only; None otherwise."""
        with self._lock:
            if self._redeemed or not hmac.compare_digest(token.encode(), self.login_token.encode()):
                return None
            self._redeemed = True
        return self._serializer.dumps({CSRF_FIELD: secrets.token_urlsafe(32)})

    def session(self, request: Request) -> Session | None:
        """The request's session, when its cookie was signed by this server and is not too old."""
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            return None
        try:
            data: Any = self._serializer.loads(cookie, max_age=SESSION_SECONDS)
        except BadSignature:
            return None
        if not isinstance(data, dict) or not isinstance(data.get(CSRF_FIELD), str):
            return None
        return Session(data[CSRF_FIELD])


def csrf_matches(session: Session, submitted: str | None) -> bool:
    return bool(submitted) and hmac.compare_digest(session.csrf.encode(), str(submitted).encode())


def cookie_settings(request: Request) -> dict[str, Any]:
    """HttpOnly, SameSite=Strict, for the whole site; Secure whenever the request came over HTTPS."""
    return {"httponly": True, "samesite": "strict", "path": "/", "max_age": SESSION_SECONDS,
            "secure": request.url.scheme == "https"}
