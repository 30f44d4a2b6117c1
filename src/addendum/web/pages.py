"""What every handler shares: pages from templates/web/ with their security headers, JSON with an ETag, bounded forms."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import parse_qsl

from babel import negotiate_locale
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response

from addendum.config import Repo
from addendum.errors import UsageError
from addendum.i18n import Words, shipped_languages
from addendum.templates import SOURCE_LANGUAGE, render_template, strings

FORM_LIMIT = 64 * 1024  # a publish form with summaries in a few languages fits many times over
MAX_LANGUAGE_CHOICES = 20  # of an Accept-Language header; a longer list is read no further
PageKind = Literal["workspace", "public", "document"]

# No inline script anywhere: the workspace's one script is a file of ours; styles are ours too. A redline document
# keeps the CSP of the file it is (inline styles, nothing fetched) and may only be framed by the workspace.
POLICIES: dict[PageKind, str] = {
    "workspace": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
                 "frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "public": "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; "
              "frame-ancestors 'none'",
    "document": "default-src 'none'; style-src 'self' 'unsafe-inline'; font-src 'self' data:; img-src 'self' data:; "
                "form-action 'none'; base-uri 'none'; frame-ancestors 'self'",
}
COMMON_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def security_headers(kind: PageKind, *, cache: str = "no-store") -> dict[str, str]:
    return {**COMMON_HEADERS, "Content-Security-Policy": POLICIES[kind], "Cache-Control": cache}


def repo_of(request: Request) -> Repo:
    repo: Repo = request.app.state.config.repo
    return repo


def _repository_languages(repo: Repo) -> list[str]:
    """Languages a repository has its own catalogue for (locale/<lang>/LC_MESSAGES/addendum.po)."""
    return sorted(p.parents[1].name.replace("_", "-") for p in (repo.root / "locale").glob("*/LC_MESSAGES/addendum.po"))


def accepted_language(request: Request) -> str:
    """The reader's language for a page of this server: the browser's Accept-Language choices (in order of their
    q-values) negotiated by Babel against the languages there are catalogues for (the product's and the repository's
    own); English when none matches."""
    choices = []
    for position, item in enumerate(request.headers.get("accept-language", "").split(",")[:MAX_LANGUAGE_CHOICES]):
        tag, _sep, params = item.strip().partition(";")
        try:
            weight = float(params.strip().removeprefix("q=")) if params.strip().startswith("q=") else 1.0
        except ValueError:
            continue
        tag = tag.strip().replace("_", "-")
        if tag and tag != "*" and weight > 0 and len(tag) <= 35:
            choices.append((-weight, position, tag))
    available = list(dict.fromkeys([*shipped_languages(), *_repository_languages(repo_of(request))]))
    found = negotiate_locale([tag for _weight, _at, tag in sorted(choices)], available, sep="-", aliases={})
    return found or SOURCE_LANGUAGE


def page(request: Request, name: str, context: Mapping[str, Any], *, status: int = 200, kind: PageKind = "workspace",
         language: str = SOURCE_LANGUAGE, headers: Mapping[str, str] | None = None) -> HTMLResponse:
    """templates/web/NAME (a repository's own templates/web/NAME first), in `language`, with the page's headers."""
    repo = repo_of(request)
    full = {"t": strings(language, repo.templates_dir), "language": language, **context}
    html = render_template(f"web/{name}", full, repo.templates_dir)
    return HTMLResponse(html, status_code=status, headers={**security_headers(kind), **(headers or {})})


def document(body: bytes, media_type: str, *, filename: str | None = None) -> Response:
    """A generated document (redline, changelog, archive): framed only by the workspace; a download when named."""
    headers = security_headers("document")
    if filename is not None:
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return Response(body, media_type=media_type, headers=headers)


def plain(message: str, status: int) -> PlainTextResponse:
    return PlainTextResponse(message + "\n", status_code=status, headers=security_headers("public"))


def json_answer(request: Request, data: Any, *, max_age: int) -> Response:
    """JSON with a strong ETag of its bytes: a client that sends it back in If-None-Match gets 304 and no body."""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {**COMMON_HEADERS, "ETag": etag, "Cache-Control": f"public, max-age={max_age}",
               "Access-Control-Allow-Origin": "*"}
    wanted = request.headers.get("if-none-match", "")
    if etag in (tag.strip().removeprefix("W/") for tag in wanted.split(",")) or wanted.strip() == "*":
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


async def read_form(request: Request, limit: int = FORM_LIMIT) -> dict[str, str]:
    """An application/x-www-form-urlencoded body of at most `limit` bytes, as field → value (the last one wins).
    Raises UsageError for another content type or a body that is not valid text; TooLarge past the limit."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise UsageError(f"expected a form (application/x-www-form-urlencoded), got {kind or 'no content type'!r}")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise TooLarge(f"the form is larger than {limit} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError("the form is not UTF-8 text") from None
    try:
        return dict(parse_qsl(text, keep_blank_values=True, max_num_fields=200))
    except ValueError:
        raise UsageError("the form has too many fields") from None


class TooLarge(UsageError):
    """A request body past its limit (HTTP 413)."""


def error_sentence(t: Words, status: int) -> str:
    """What an HTTP error means to a reader, in `t`'s language."""
    if status == 400:
        return t.gettext("This request could not be answered: something in it is not valid.")
    if status == 401:
        return t.gettext("This workspace needs the login link that addendum serve printed when it started. Open that "
                         "link in this browser; it works once.")
    if status == 403:
        return t.gettext("This request is not allowed.")
    if status == 404:
        return t.gettext("There is no page at this address.")
    if status == 405:
        return t.gettext("This address does not answer this kind of request.")
    if status == 409:
        return t.gettext("This could not be done now: something changed meanwhile. Reload the page and try again.")
    if status == 413:
        return t.gettext("This request is too large.")
    if status == 503:
        return t.gettext("The server is not set up to answer this yet; its output says what is missing.")
    return t.gettext("Something went wrong on the server. Try again; if it happens again, the output of addendum serve "
                     "says what failed.")
