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
from addendum.templates import SOURCE_LANGUAGE, strings
from addendum.web import acceptances, public, workspace
from addendum.web.auth import Auth
from addendum.web.events import ChangeFeed
from addendum.web.hooks import BackgroundTick
from addendum.web.pages import COMMON_HEADERS, TooLarge, accepted_language, error_sentence, page, plain, security_headers

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


def _explained(request: Request, status: int, message: str, *, login_needed: bool = False, csrf: bool = False) -> Response:
    """The workspace's error page in the reader's language (Accept-Language): what happened and what to do, through
    the catalogues; the library's own message (English) is shown to English readers only."""
    language = accepted_language(request)
    return page(request, "error.html", {"status": status, "message": message if language == SOURCE_LANGUAGE else "",
                                         "login_needed": login_needed, "csrf_failed": csrf, "error_sentence": error_sentence},
                status=status, language=language)


def _plain_explained(request: Request, status: int) -> Response:
    """A short answer of the public-only server in the reader's language."""
    t = strings(accepted_language(request), request.app.state.config.repo.templates_dir)
    return plain(error_sentence(t, status), status)


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
    return _explained(request, status, message, login_needed=isinstance(exc, workspace.NotLoggedIn),
                      csrf=isinstance(exc, workspace.Forbidden))


async def http_error(request: Request, exc: Exception) -> Response:
    """404, 405 and the like: the API's JSON, else a short page in the reader's language with the usual headers
    (never a page that reveals the stack)."""
    assert isinstance(exc, HTTPException)
    headers = {**security_headers("public"), **(exc.headers or {})}
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=headers)
    answer = _plain_explained(request, exc.status_code) if request.app.state.config.public_only \
        else _explained(request, exc.status_code, str(exc.detail))
    answer.headers.update(headers)
    return answer


async def server_error(request: Request, exc: Exception) -> Response:
    """An unexpected failure: a page in the reader's language that says so and reveals nothing of the stack (the
    traceback goes to the server's log)."""
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": "internal server error"}, status_code=500, headers=COMMON_HEADERS)
    if request.app.state.config.public_only:
        return _plain_explained(request, 500)
    return _explained(request, 500, "")


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
                    exception_handlers={AddendumError: library_error, HTTPException: http_error,
                                        Exception: server_error})
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
