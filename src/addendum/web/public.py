"""The public endpoints: RFC 8058 one-click unsubscribe, the version-in-force API, and the archive as static files."""

from __future__ import annotations

import os
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from addendum.errors import UsageError
from addendum.ids import parse_date
from addendum.operations import public as api
from addendum.operations.reference import docs_dir
from addendum.operations.subscriptions import Subscriptions, token_subscriber, unsubscribe_one_click
from addendum.templates import SOURCE_LANGUAGE, assets_dir
from addendum.web.pages import json_answer, page, read_form, repo_of, security_headers

ONE_CLICK = ("List-Unsubscribe", "One-Click")
UNSUBSCRIBE_BODY_LIMIT = 1024  # RFC 8058's body is 26 bytes
API_MAX_AGE = 300  # an answer changes only when a version is published, or when an announced one takes effect
OPENAPI_FILE = "openapi.json"
# Content types of the archive's files that Python's table lacks or guesses for another purpose.
ARCHIVE_TYPES = {".atom": "application/atom+xml", ".md": "text/markdown; charset=utf-8", ".toml": "application/toml",
                 ".json": "application/json", ".html": "text/html; charset=utf-8", ".pdf": "application/pdf",
                 ".css": "text/css; charset=utf-8"}


def _subscriptions(request: Request) -> Subscriptions:
    subscriptions: Subscriptions = request.app.state.subscriptions
    return subscriptions


def _token(request: Request) -> str:
    token = request.path_params.get("token") or request.query_params.get("token") or ""
    if not token:
        raise UsageError("the unsubscribe link has no token", "use the link exactly as it appears in the notice")
    return str(token)


def unsubscribe_page(request: Request) -> Response:
    """GET: a confirmation page with one button; never unsubscribes by itself (link scanners prefetch GETs)."""
    holder = token_subscriber(_subscriptions(request), _token(request))
    language = holder.language if holder is not None else SOURCE_LANGUAGE
    return page(request, "unsubscribe.html", {"state": "confirm" if holder else "unknown", "action": request.url.path,
                                              "token": _token(request) if "token" in request.query_params else ""},
                kind="public", language=language)


async def unsubscribe_post(request: Request) -> Response:
    """POST with List-Unsubscribe=One-Click: unsubscribes; 200, no redirect, no cookie; the same answer a second time."""
    form = await read_form(request, UNSUBSCRIBE_BODY_LIMIT)
    if form.get(ONE_CLICK[0]) != ONE_CLICK[1]:
        raise UsageError("the body must be List-Unsubscribe=One-Click (RFC 8058)")
    result = await run_in_threadpool(unsubscribe_one_click, _subscriptions(request), _token(request))
    language = result.language if result is not None else SOURCE_LANGUAGE
    return page(request, "unsubscribe.html", {"state": "done" if result else "unknown", "action": "", "token": ""},
                kind="public", language=language)


async def api_policies(request: Request) -> Response:
    return json_answer(request, api.policy_list(repo_of(request)), max_age=API_MAX_AGE)


async def api_versions(request: Request) -> Response:
    return json_answer(request, api.version_list(repo_of(request), request.path_params["policy_id"]), max_age=API_MAX_AGE)


async def api_at(request: Request) -> Response:
    day = parse_date(request.path_params["day"])
    answer = api.version_at(repo_of(request), request.path_params["policy_id"], day,
                            request.query_params.get("site") or None, request.query_params.get("lang") or None)
    return json_answer(request, answer, max_age=API_MAX_AGE)


async def openapi(request: Request) -> Response:
    return FileResponse(docs_dir() / OPENAPI_FILE, media_type="application/json", headers=security_headers("public", cache="public, max-age=3600"))


class ArchiveFiles(StaticFiles):
    """history/ as it is on disk (links leading out of it are not followed), each file with its own content type."""

    def file_response(self, full_path: Any, stat_result: os.stat_result, scope: Scope, status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        suffix = os.path.splitext(str(full_path))[1].lower()
        if suffix in ARCHIVE_TYPES and response.status_code != 304:
            response.headers["content-type"] = ARCHIVE_TYPES[suffix]
        response.headers.update(security_headers("document", cache="public, max-age=300"))
        response.headers["Content-Security-Policy"] = response.headers["Content-Security-Policy"].replace(
            "frame-ancestors 'self'", "frame-ancestors 'none'")
        return response


def routes(history_dir: os.PathLike[str] | str) -> list[BaseRoute]:
    return [
        Route("/unsubscribe/{token}", unsubscribe_page, methods=["GET"]),
        Route("/unsubscribe/{token}", unsubscribe_post, methods=["POST"]),
        Route("/unsubscribe", unsubscribe_page, methods=["GET"]),
        Route("/unsubscribe", unsubscribe_post, methods=["POST"]),
        Route("/api/policies", api_policies, methods=["GET"]),
        Route("/api/policies/{policy_id}/versions", api_versions, methods=["GET"]),
        Route("/api/policies/{policy_id}/at/{day}", api_at, methods=["GET"]),
        Route("/api/openapi.json", openapi, methods=["GET"]),
        Mount("/history", ArchiveFiles(directory=history_dir, html=True, check_dir=False), name="history"),
        Mount("/assets", StaticFiles(directory=assets_dir()), name="assets"),
    ]
