"""The editor's workspace: policies, versions, status, check findings, the draft redline, downloads and publishing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from addendum.errors import AddendumError, UsageError
from addendum.ids import parse_date
from addendum.operations.changes import make_redline
from addendum.operations.publishing import (
    PublishRequest,
    commit_changes,
    default_request,
    preview_publication,
    publish_request,
)
from addendum.operations.workspace import archive_zip, draft_view, editor_identity, policy_cards, policy_overview
from addendum.render.changelog import atom_feed, changelog_document
from addendum.render.redline import LAYOUTS, Layout
from addendum.web.auth import CSRF_FIELD, SESSION_COOKIE, Auth, Session, cookie_settings, csrf_matches
from addendum.web.events import ChangeFeed
from addendum.web.pages import accepted_language, document, page, read_form, repo_of, security_headers

REDLINE_TYPES = {"html": "text/html; charset=utf-8", "pdf": "application/pdf",
                 "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document"}
CHANGELOG_TYPES = {"md": "text/markdown; charset=utf-8", "html": "text/html; charset=utf-8", "atom": "application/atom+xml"}
COMPARE_FIELDS = ("from", "to", "site", "lang", "layout")


class NotLoggedIn(UsageError):
    """A workspace page asked for without a valid session (HTTP 401)."""


class Forbidden(UsageError):
    """A write without the session's CSRF token (HTTP 403)."""


def _auth(request: Request) -> Auth:
    auth: Auth = request.app.state.auth
    return auth


def _session(request: Request) -> Session:
    session = _auth(request).session(request)
    if session is None:
        raise NotLoggedIn("this workspace needs the login link that `addendum serve` printed when it started",
                          "open that link in this browser; it works once (restart addendum serve for a new one)")
    return session


async def _form(request: Request) -> tuple[Session, dict[str, str]]:
    """The session and the posted form, refused without the session's CSRF token: no write without it."""
    session = _session(request)
    form = await read_form(request)
    if not csrf_matches(session, form.get(CSRF_FIELD)):
        raise Forbidden("the form lacks this session's CSRF token", "reload the page and submit the form again")
    return session, form


def _editor_page(request: Request, session: Session, name: str, context: Mapping[str, Any], status: int = 200) -> Response:
    return page(request, name, {"csrf": session.csrf, "events": request.app.state.feed is not None, **context}, status=status,
                language=accepted_language(request))


def _compare_query(values: Mapping[str, str], **changes: str) -> str:
    merged = {key: values[key] for key in COMPARE_FIELDS if values.get(key)}
    merged.update({key: value for key, value in changes.items() if value})
    return urlencode(merged)


def login(request: Request) -> Response:
    """The one-time login link: a session cookie (HttpOnly, SameSite=Strict) and on to the policies."""
    cookie = _auth(request).redeem(request.query_params.get("token", ""))
    if cookie is None:
        return page(request, "login.html", {}, status=403, language=accepted_language(request))
    response = RedirectResponse("/", status_code=303, headers=security_headers("workspace"))
    response.set_cookie(SESSION_COOKIE, cookie, **cookie_settings(request))
    return response


async def logout(request: Request) -> Response:
    await _form(request)
    response = RedirectResponse("/", status_code=303, headers=security_headers("workspace"))
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


def index(request: Request) -> Response:
    session = _session(request)
    return _editor_page(request, session, "index.html", {"cards": policy_cards(repo_of(request))})


def policy(request: Request) -> Response:
    session = _session(request)
    overview = policy_overview(repo_of(request), request.path_params["policy_id"])
    return _editor_page(request, session, "policy.html", {"overview": overview, "notice": request.query_params.get("done", "")})


def _layout(request: Request) -> Layout:
    layout = request.query_params.get("layout") or "inline"
    if layout not in LAYOUTS:
        raise UsageError(f"layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    return layout


def draft(request: Request) -> Response:
    """The working tree (or TO) against the last published version (or FROM): class, reasons, and the redline."""
    session = _session(request)
    query = request.query_params
    view = draft_view(repo_of(request), request.path_params["policy_id"], query.get("from") or None, query.get("to") or None,
                      query.get("site") or None, query.get("lang") or None)
    values = {"from": view.from_ref, "to": view.to_ref, "site": view.site_id, "lang": view.language, "layout": _layout(request)}
    return _editor_page(request, session, "draft.html", {
        "view": view, "layout": values["layout"], "layouts": LAYOUTS,
        "redline_query": _compare_query(values), "pdf_query": _compare_query(values, format="pdf"),
        "docx_query": _compare_query(values, format="docx")})


def redline(request: Request) -> Response:
    """The redline document itself (framed by the draft page), or as a PDF or .docx download."""
    _session(request)
    query = request.query_params
    fmt = query.get("format") or "html"
    if fmt not in REDLINE_TYPES:
        raise UsageError(f"format {fmt!r} is not one of {', '.join(REDLINE_TYPES)}")
    policy_id = request.path_params["policy_id"]
    repo = repo_of(request)
    if not hasattr(request.app.state, "editor"):
        request.app.state.editor = editor_identity(repo)
    body = make_redline(repo, policy_id, query.get("from") or "latest", query.get("to") or None,
                        query.get("site") or None, query.get("lang") or None, fmt=fmt, layout=_layout(request),  # type: ignore[arg-type]
                        prepared_by=request.app.state.editor)
    name = None if fmt == "html" else f"redline-{policy_id}.{fmt}"
    return document(body, REDLINE_TYPES[fmt], filename=name)


def changelog(request: Request) -> Response:
    _session(request)
    policy_id, fmt = request.path_params["policy_id"], request.query_params.get("format") or "md"
    language = request.query_params.get("lang") or None
    if fmt not in CHANGELOG_TYPES:
        raise UsageError(f"format {fmt!r} is not one of {', '.join(CHANGELOG_TYPES)}")
    repo = repo_of(request)
    if fmt == "atom":
        data = atom_feed(repo, policy_id, language)
    else:
        data = changelog_document(repo, policy_id, language, "html" if fmt == "html" else "md").encode("utf-8")
    return document(data, CHANGELOG_TYPES[fmt], filename=f"changelog-{policy_id}-{language or 'default'}.{fmt}")


def archive(request: Request) -> Response:
    _session(request)
    policy_id = request.path_params["policy_id"]
    return document(archive_zip(repo_of(request), policy_id), "application/zip", filename=f"archive-{policy_id}.zip")


def _publish_request(values: Mapping[str, str]) -> PublishRequest:
    """The form's fields as the CLI's options: summary-LANG fields become the summaries."""
    summaries = {key.removeprefix("summary-"): text for key, text in values.items() if key.startswith("summary-")}
    return PublishRequest(
        effective=parse_date(values["effective"], "effective date") if values.get("effective") else None,
        classification=values.get("classification") or None, summaries=summaries, reason=values.get("reason", ""),
        published=parse_date(values["published"], "published date") if values.get("published") else None,
        urgent=values.get("urgent") == "on", allow_stale=values.get("allow_stale") == "on")


def _publish_page(request: Request, session: Session, publish: PublishRequest, error: AddendumError | None = None) -> Response:
    repo, policy_id = repo_of(request), request.path_params["policy_id"]
    preview = preview_publication(repo, policy_id, publish)
    return _editor_page(request, session, "publish.html", {
        "policy_id": policy_id, "form": publish, "preview": preview,
        "error": error.format().removeprefix("error: ") if error else ""}, status=409 if error else 200)


def publish_form(request: Request) -> Response:
    """The form with the suggested class and earliest date, and every gate that would refuse them."""
    session = _session(request)
    return _publish_page(request, session, default_request(repo_of(request), request.path_params["policy_id"]))


async def publish_submit(request: Request) -> Response:
    """"Check": the form again with every gate that would refuse these values. "Publish": publish as `addendum publish`
    does; on a refusal, the form again with every reason."""
    session, form = await _form(request)
    publish = _publish_request(form)
    policy_id = request.path_params["policy_id"]
    if form.get("action") != "publish":
        return await run_in_threadpool(_publish_page, request, session, publish)
    try:
        version, _decision = await run_in_threadpool(publish_request, repo_of(request), policy_id, publish)
    except AddendumError as exc:
        return await run_in_threadpool(_publish_page, request, session, publish, exc)
    return RedirectResponse(f"/policies/{policy_id}?{urlencode({'done': f'published {version.id}'})}", status_code=303)


async def commit_submit(request: Request) -> Response:
    """Commit the policy's folder alone, after the check, as `addendum commit` does."""
    _session_, form = await _form(request)
    policy_id = request.path_params["policy_id"]
    message = form.get("message", "").strip()
    if not message:
        raise UsageError("a commit needs a message", "say what changed and why")
    result = await run_in_threadpool(commit_changes, repo_of(request), policy_id, message)
    return RedirectResponse(f"/policies/{policy_id}?{urlencode({'done': f'committed {result.commit[:10]}'})}", status_code=303)


async def events(request: Request) -> Response:
    """Server-sent events: `change` whenever a file under policies/ or history/ changes."""
    _session(request)
    feed: ChangeFeed | None = request.app.state.feed
    if feed is None:
        raise UsageError("live refresh is off on this server", "reload the page to see changes")
    return StreamingResponse(feed.stream(), media_type="text/event-stream",
                             headers={**security_headers("workspace"), "X-Accel-Buffering": "no"})


def routes() -> list[BaseRoute]:
    return [
        Route("/login", login, methods=["GET"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/", index, methods=["GET"]),
        Route("/events", events, methods=["GET"]),
        Route("/policies/{policy_id}", policy, methods=["GET"]),
        Route("/policies/{policy_id}/draft", draft, methods=["GET"]),
        Route("/policies/{policy_id}/redline", redline, methods=["GET"]),
        Route("/policies/{policy_id}/changelog", changelog, methods=["GET"]),
        Route("/policies/{policy_id}/archive.zip", archive, methods=["GET"]),
        Route("/policies/{policy_id}/publish", publish_form, methods=["GET"]),
        Route("/policies/{policy_id}/publish", publish_submit, methods=["POST"]),
        Route("/policies/{policy_id}/commit", commit_submit, methods=["POST"]),
    ]
