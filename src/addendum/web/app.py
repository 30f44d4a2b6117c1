"""The Starlette application: the public endpoints always, the workspace unless public-only; errors as clean answers."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from addendum.config import Repo, open_repo
from addendum.errors import AddendumError, ConfigError, FieldError, HistoryError, NotifyError, PolicyFormatError, UsageError
from addendum.notify.acceptances import KeyRefused, WrongSite
from addendum.operations.public import NotFound
from addendum.operations.subscriptions import InvalidToken, Subscriptions
from addendum.web import acceptances, public, workspace
from addendum.web.auth import Auth
from addendum.web.events import ChangeFeed
from addendum.web.hooks import BackgroundTick
from addendum.web.pages import COMMON_HEADERS, TooLarge, page, plain, security_headers

BODY_LIMIT = 256 * 1024  # no request to this server needs more; larger bodies are refused before they are read
REPO_ENV = "ADDENDUM_REPO"


@dataclass(frozen=True)
class ServerConfig:
    """What one server serves: a repository, public endpoints only or the workspace too, and whether it watches files."""

    repo: Repo
    public_only: bool = False
    watch: bool = True
    database_url: str | None = None
    tick: bool = True  # run the webhooks' background task (webhooks.tick_interval)


def status_of(exc: AddendumError) -> int:
    """The HTTP status of a library error: what does not exist is 404, a bad request 400, a refused write 409."""
    if isinstance(exc, workspace.NotLoggedIn | KeyRefused):
        return 401
    if isinstance(exc, workspace.Forbidden | WrongSite):
        return 403
    if isinstance(exc, TooLarge):
        return 413
    if isinstance(exc, NotFound | HistoryError):
        return 404
    if isinstance(exc, InvalidToken | UsageError | PolicyFormatError):
        return 400
    if isinstance(exc, ConfigError | NotifyError):
        return 503
    return 500


async def library_error(request: Request, exc: Exception) -> Response:
    """An AddendumError as the API's JSON, a plain message for the unsubscribe link, else the workspace's error page."""
    assert isinstance(exc, AddendumError)
    status = status_of(exc)
    message = exc.format().removeprefix("error: ")
    path = request.url.path
    if path.startswith("/api/"):
        body = {"error": exc.message, "hint": exc.hint, **({"field": exc.field} if isinstance(exc, FieldError) else {})}
        headers = {**COMMON_HEADERS, **({"WWW-Authenticate": "Bearer"} if status == 401 else {})}
        return JSONResponse(body, status_code=status, headers=headers)
    if path.startswith("/unsubscribe") or request.app.state.config.public_only:
        return plain(exc.message, status)
    return page(request, "error.html", {"message": message, "status": status,
                                         "login_needed": isinstance(exc, workspace.NotLoggedIn)}, status=status)


async def http_error(request: Request, exc: Exception) -> Response:
    """404, 405 and the like: a short plain answer with the usual headers (never a page that reveals the stack)."""
    assert isinstance(exc, HTTPException)
    headers = {**security_headers("public"), **(exc.headers or {})}
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=headers)
    return Response(f"{exc.detail}\n", status_code=exc.status_code, media_type="text/plain", headers=headers)


def build_app(config: ServerConfig, auth: Auth | None = None) -> Starlette:
    """The application for `config`: the workspace's routes exist only when it is not public-only."""
    routes = acceptances.routes() + public.routes(config.repo.history_dir)
    if not config.public_only:
        routes = workspace.routes() + routes
    subscriptions = Subscriptions(config.repo, config.database_url)
    feed = ChangeFeed(config.repo.root, [config.repo.policies_dir, config.repo.history_dir]) \
        if config.watch and not config.public_only else None

    interval = float(config.repo.setting("webhooks.tick_interval"))
    ticker = BackgroundTick(config.repo, config.database_url, interval) if interval > 0 and config.tick else None

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if feed is not None:
            await feed.start()
        if ticker is not None:
            ticker.start()
        try:
            yield
        finally:
            if ticker is not None:
                ticker.stop()
            if feed is not None:
                await feed.stop()
            subscriptions.close()

    app = Starlette(routes=routes, lifespan=lifespan, max_body_size=BODY_LIMIT,
                    exception_handlers={AddendumError: library_error, HTTPException: http_error})
    app.state.config = config
    app.state.auth = auth or Auth()
    app.state.subscriptions = subscriptions
    app.state.feed = feed
    return app


def public_app() -> Starlette:
    """For `uvicorn --factory addendum.web.app:public_app --workers N`: the public endpoints of the repository in
    ADDENDUM_REPO (default: the nearest folder with an addendum.toml), the state store from ADDENDUM_DATABASE_URL."""
    where = os.environ.get(REPO_ENV, "").strip()
    return build_app(ServerConfig(open_repo(Path(where) if where else None), public_only=True, watch=False))
