"""`addendum serve`: every route through Starlette's TestClient (hostile input too), and a real uvicorn on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from addendum.config import open_repo
from addendum.notify.message import unsubscribe_link
from addendum.notify.state import open_state
from addendum.notify.subscribers import list_subscribers
from addendum.notify.tokens import unsubscribe_token
from addendum.operations import public as public_api
from addendum.web.app import ServerConfig, build_app
from addendum.web.auth import SESSION_COOKIE, Auth
from conftest import PROJECT
from tests_support import POLICY_DIR, Served, assert_no_english, git_in

LOGIN = "test-login-token"


def client_for(root: Path, *, public_only: bool = False, auth: Auth | None = None) -> TestClient:
    app = build_app(ServerConfig(open_repo(root), public_only=public_only, watch=False), auth or Auth(login_token=LOGIN))
    return TestClient(app, base_url="http://127.0.0.1", follow_redirects=False)


def logged_in(client: TestClient) -> str:
    """Log in with the one-time link; the session's CSRF token, as the pages' forms carry it."""
    answer = client.get(f"/login?token={LOGIN}")
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    page = client.get("/")
    assert page.status_code == 200
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found
    return found[1]


@pytest.fixture
def terms(published_terms: Callable[[int], Path]) -> Path:
    return published_terms(2)


# ---------------------------------------------------------------------------------------------------------------
# The API


def test_the_api_lists_policies_versions_and_the_version_in_force(shipped_archive: Path) -> None:
    with client_for(shipped_archive, public_only=True) as client:
        policies = client.get("/api/policies")
        assert policies.status_code == 200 and policies.headers["content-type"] == "application/json"
        assert policies.json()["policies"] == [{"id": "privacy", "latest_version": "privacy@2020-09-01", "effective": "2020-09-01",
                                                "sites": ["cavallo", "equihealth", "selentic"], "languages": ["en", "nl"],
                                                "versions": "/api/policies/privacy/versions"}]
        versions = client.get("/api/policies/privacy/versions").json()["versions"]
        assert [v["id"] for v in versions] == ["privacy@2020-09-01", "privacy@2018-05-19"]
        ledger = tomllib.loads((shipped_archive / "history/privacy/ledger.toml").read_text(encoding="utf-8"))["version"]

        answer = client.get("/api/policies/privacy/at/2020-08-15", params={"site": "equihealth", "lang": "nl"})
        assert answer.status_code == 200
        body = answer.json()
        assert (body["policy"], body["date"], body["site"], body["language"]) == ("privacy", "2020-08-15", "equihealth", "nl")
        assert body["in_force"]["id"] == "privacy@2018-05-19"
        assert body["in_force"]["content_hash"] == ledger[0]["hashes"]["equihealth/nl"]
        assert body["upcoming"]["id"] == "privacy@2020-09-01" and body["upcoming"]["published"] == "2020-07-31"
        page = body["in_force"]["archive"]["page"]
        assert page["href"] == "/history/privacy/2018-05-19/equihealth/nl/index.html"
        assert page["url"] == "https://example.org/privacy/history/privacy/2018-05-19/equihealth/nl/index.html"
        assert "redline" not in body["in_force"]["archive"]  # the first version has none
        assert client.get(page["href"]).status_code == 200
        later = client.get("/api/policies/privacy/at/2021-01-01").json()
        assert later["in_force"]["id"] == "privacy@2020-09-01" and later["upcoming"] is None
        assert (later["site"], later["language"]) == ("selentic", "en")  # the policy's defaults
        assert set(later["in_force"]["archive"]) == {"page", "pdf", "json", "redline", "redline_pdf"}


def test_api_answers_carry_an_etag_and_caching_headers(shipped: Path) -> None:
    with client_for(shipped, public_only=True) as client:
        first = client.get("/api/policies/privacy/at/2019-01-01")
        assert first.headers["cache-control"] == "public, max-age=300"
        etag = first.headers["etag"]
        assert re.fullmatch(r'"[0-9a-f]{32}"', etag)
        again = client.get("/api/policies/privacy/at/2019-01-01", headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
        other = client.get("/api/policies/privacy/at/2021-01-01", headers={"If-None-Match": etag})
        assert other.status_code == 200 and other.headers["etag"] != etag


def test_a_new_version_changes_the_answer_at_once(terms: Path) -> None:
    from conftest import publish_terms

    with client_for(terms, public_only=True) as client:
        assert client.get("/api/policies/terms/at/2030-01-01").json()["in_force"]["id"] == "terms@2024-02-01"
        publish_terms(terms, 3)
        assert client.get("/api/policies/terms/at/2030-01-01").json()["in_force"]["id"] == "terms@2024-03-01"


def test_archived_files_written_or_removed_change_the_links_at_once(shipped: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = shipped / "history" / "privacy" / "2020-09-01" / "selentic" / "en"
    folder.mkdir(parents=True)

    def links() -> set[str]:
        answer = client.get("/api/policies/privacy/at/2021-01-01", params={"site": "selentic", "lang": "en"})
        return set(answer.json()["in_force"]["archive"])

    def still() -> None:  # past the file system clock's tick, so that the next change gives the folder new times
        time.sleep(0.05)

    with client_for(shipped, public_only=True) as client:
        # A folder changed a moment ago is looked at afresh on every answer.
        assert links() == set()
        (folder / "index.html").write_text("<!doctype html>", encoding="utf-8")
        assert links() == {"page"}
        # One that has been still is kept between answers, until a file is written or removed there.
        monkeypatch.setattr(public_api, "RACY_NS", 0)
        still()
        assert links() == {"page"} and links() == {"page"}
        (folder / "policy.pdf").write_bytes(b"%PDF-1.7")
        assert links() == {"page", "pdf"}
        still()
        assert links() == {"page", "pdf"}
        (folder / "index.html").unlink()
        assert links() == {"pdf"}
        still()
        os.replace(folder / "policy.pdf", folder / "policy.json")
        assert links() == {"json"}


@pytest.mark.parametrize(("path", "status", "error"), [
    ("/api/policies/nope/versions", 404, "no policy 'nope'"),
    ("/api/policies/Bad_Id/versions", 400, "is not a valid id"),
    ("/api/policies/privacy/at/2010-01-01", 404, "no version of privacy was in force on 2010-01-01"),
    ("/api/policies/privacy/at/2019-02-30", 400, "not a real calendar date"),
    ("/api/policies/privacy/at/yesterday", 400, "is not a date"),
    ("/api/policies/privacy/at/2019-01-01?site=mars", 404, "has no text for site 'mars'"),
    ("/api/policies/privacy/at/2019-01-01?lang=../../etc", 400, "not a language code"),
    ("/api/policies/privacy/at/2019-01-01?site=..%2F..", 400, "is not a valid id"),
    ("/api/policies/..%2F..%2Fetc/versions", 404, "Not Found"),
])
def test_the_api_refuses_bad_input_with_a_json_error(shipped: Path, path: str, status: int, error: str) -> None:
    with client_for(shipped, public_only=True) as client:
        answer = client.get(path)
        assert answer.status_code == status, answer.text
        assert error in answer.json()["error"]


def test_the_openapi_description_lists_exactly_the_public_routes() -> None:
    spec = json.loads((PROJECT / "docs" / "openapi.json").read_text(encoding="utf-8"))
    app = build_app(ServerConfig(open_repo(PROJECT), public_only=True, watch=False))
    served: dict[str, set[str]] = {}
    for route in app.routes:
        if isinstance(route, Route):
            served.setdefault(route.path, set()).update(m.lower() for m in (route.methods or ()) if m != "HEAD")
        elif isinstance(route, Mount):
            served.setdefault(route.path + "/{path}", set()).add("get")
    described = {path: {m for m in item if m in ("get", "post", "put", "patch", "delete")} for path, item in spec["paths"].items()}
    assert described == served
    for path, item in spec["paths"].items():
        for parameter in re.findall(r"\{(\w+)\}", path):
            for method in described[path]:
                names = {p["name"] for p in item[method].get("parameters", []) if p["in"] == "path"}
                assert parameter in names, f"{method} {path}: path parameter {parameter} undocumented"
    api_md = (PROJECT / "docs" / "api.md").read_text(encoding="utf-8")
    for path in served:
        assert path.split("{")[0].rstrip("/") in api_md, path
    with TestClient(app) as client:
        assert client.get("/api/openapi.json").json() == spec


# ---------------------------------------------------------------------------------------------------------------
# The archive as static files


def test_the_archive_is_served_with_its_content_types(shipped_archive: Path) -> None:
    with client_for(shipped_archive, public_only=True) as client:
        for path, kind in [("/history/privacy/feed-en.atom", "application/atom+xml"),
                           ("/history/privacy/2020-09-01/selentic/nl/policy.pdf", "application/pdf"),
                           ("/history/privacy/2020-09-01/selentic/nl/policy.json", "application/json"),
                           ("/history/privacy/2020-09-01/selentic/nl/index.html", "text/html; charset=utf-8"),
                           ("/history/privacy/changelog-nl.md", "text/markdown; charset=utf-8"),
                           ("/history/privacy/ledger.toml", "application/toml")]:
            answer = client.get(path)
            assert answer.status_code == 200, path
            assert answer.headers["content-type"] == kind, path
            assert answer.content == (shipped_archive / path.removeprefix("/")).read_bytes()
            assert answer.headers["x-content-type-options"] == "nosniff"
        assert client.get("/history/privacy/").text == (shipped_archive / "history/privacy/index.html").read_text(encoding="utf-8")


def test_the_archive_serves_nothing_outside_history(shipped: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("password", encoding="utf-8")
    (shipped / "history" / "privacy" / "leak.txt").symlink_to(secret)
    with client_for(shipped, public_only=True) as client:
        for path in ["/history/%2e%2e/addendum.toml", "/history/..%2Faddendum.toml", "/history/privacy/leak.txt",
                     "/history//etc/passwd", "/history/privacy/%2e%2e/%2e%2e/addendum.toml"]:
            answer = client.get(path)
            assert answer.status_code == 404, path
            assert "password" not in answer.text and "unsubscribe_url" not in answer.text


# ---------------------------------------------------------------------------------------------------------------
# One-click unsubscribe


def subscriber_token(root: Path, email: str = "ann@example.org") -> tuple[str, str]:
    """(the token of a subscriber's links, their uid)."""
    with open_state(open_repo(root)) as state:
        person = next(s for s in list_subscribers(state) if s.email == email)
        return unsubscribe_token(state.keyring, person.uid), person.uid


def unsubscribed(root: Path, email: str = "ann@example.org") -> bool:
    with open_state(open_repo(root)) as state:
        return next(s for s in list_subscribers(state) if s.email == email).unsubscribed_at is not None


@pytest.fixture
def subscribed(run: Callable[..., object], notify_repo: Path) -> Path:
    run("--repo", notify_repo, "subscribers", "add", "ann@example.org", "--name", "Ann", "--lang", "nl", "--site", "selentic",
        "--audience", "subscriber")
    return notify_repo


ONE_CLICK = {"content": b"List-Unsubscribe=One-Click", "headers": {"Content-Type": "application/x-www-form-urlencoded"}}


def test_one_click_unsubscribe_is_a_post_that_answers_200_without_redirect_or_cookie(subscribed: Path) -> None:
    token, _ = subscriber_token(subscribed)
    with client_for(subscribed, public_only=True) as client:
        page = client.get(f"/unsubscribe/{token}")
        assert page.status_code == 200 and 'value="One-Click"' in page.text
        assert 'lang="nl"' in page.text  # in the subscriber's language
        assert not unsubscribed(subscribed), "a GET must never unsubscribe"
        first = client.post(f"/unsubscribe/{token}", **ONE_CLICK)  # type: ignore[arg-type]
        assert first.status_code == 200 and "set-cookie" not in first.headers and "location" not in first.headers
        assert unsubscribed(subscribed)
        again = client.post(f"/unsubscribe/{token}", **ONE_CLICK)  # type: ignore[arg-type]
        assert again.status_code == 200 and again.text == first.text
        assert first.headers["cache-control"] == "no-store"


def test_the_unsubscribe_pages_of_a_dutch_subscriber_have_no_english_word(subscribed: Path) -> None:

    token, _ = subscriber_token(subscribed)
    with client_for(subscribed, public_only=True) as client:
        confirm = client.get(f"/unsubscribe/{token}")
        assert "Uitschrijven voor wijzigingsberichten?" in confirm.text
        assert_no_english(confirm.text, "nl", "the unsubscribe confirmation page")
        done = client.post(f"/unsubscribe/{token}", **ONE_CLICK)  # type: ignore[arg-type]
        assert "U bent uitgeschreven" in done.text
        assert_no_english(done.text, "nl", "the unsubscribed page")


def test_the_query_form_of_the_link_works_too(subscribed: Path) -> None:
    token, _ = subscriber_token(subscribed)
    link = unsubscribe_link("https://example.org/unsubscribe", token)
    assert link == f"https://example.org/unsubscribe?token={token}"
    assert unsubscribe_link("https://example.org/u/{token}", token) == f"https://example.org/u/{token}"
    with client_for(subscribed, public_only=True) as client:
        page = client.get(f"/unsubscribe?token={token}")
        assert page.status_code == 200 and f'action="/unsubscribe?token={token}"' in page.text
        assert client.post(f"/unsubscribe?token={token}", **ONE_CLICK).status_code == 200  # type: ignore[arg-type]
    assert unsubscribed(subscribed)


def test_bad_tokens_and_bodies_change_nothing(run: Callable[..., object], subscribed: Path) -> None:
    token, uid = subscriber_token(subscribed)
    version, _, mac = token.split(".")
    forged = f"{version}.{uid}.{'A' if mac[0] != 'A' else 'B'}{mac[1:]}"
    with client_for(subscribed, public_only=True) as client:
        for bad, words in [(forged, "not valid"), ("1.abc.def", "malformed"), (f"9.{uid}.{mac}", "key version 9"),
                           ("%00", "malformed"), ("x" * 300, "malformed")]:
            for answer in (client.get(f"/unsubscribe/{bad}"), client.post(f"/unsubscribe/{bad}", **ONE_CLICK)):  # type: ignore[arg-type]
                assert answer.status_code == 400, (bad, answer.text)
                assert answer.headers["content-type"].startswith("text/plain") and words in answer.text
        assert client.post(f"/unsubscribe/{token}", content=b"List-Unsubscribe=Yes",
                           headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code == 400
        assert client.post(f"/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click",
                           headers={"Content-Type": "text/plain"}).status_code == 400
        assert client.post(f"/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click&" + b"x" * 4096,
                           headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code == 413
        assert client.put(f"/unsubscribe/{token}", **ONE_CLICK).status_code == 405  # type: ignore[arg-type]
        assert client.post("/unsubscribe", **ONE_CLICK).status_code == 400  # type: ignore[arg-type]
    assert not unsubscribed(subscribed)


def test_tokens_of_a_rotated_out_key_still_work(run: Callable[..., object], subscribed: Path) -> None:
    token, _ = subscriber_token(subscribed)
    with client_for(subscribed, public_only=True) as client:
        run("--repo", subscribed, "subscribers", "rotate-key")
        assert subscriber_token(subscribed)[0] != token  # new links are signed with the new key
        assert client.post(f"/unsubscribe/{token}", **ONE_CLICK).status_code == 200  # type: ignore[arg-type]
    assert unsubscribed(subscribed)


def test_a_token_of_someone_erased_answers_that_there_is_nothing_to_do(run: Callable[..., object], subscribed: Path) -> None:
    token, _ = subscriber_token(subscribed)
    run("--repo", subscribed, "subscribers", "forget", "ann@example.org", "--yes")
    with client_for(subscribed, public_only=True) as client:
        answer = client.post(f"/unsubscribe/{token}", **ONE_CLICK)  # type: ignore[arg-type]
        assert answer.status_code == 200 and "Nothing to unsubscribe" in answer.text


# ---------------------------------------------------------------------------------------------------------------
# The workspace: authentication


WORKSPACE_PAGES = ["/", "/policies/terms", "/policies/terms/draft", "/policies/terms/redline", "/policies/terms/publish",
                   "/policies/terms/changelog", "/policies/terms/archive.zip", "/events"]


def test_the_workspace_speaks_the_browser_language_it_has_words_for(terms: Path) -> None:
    with client_for(terms) as client:
        logged_in(client)
        german = client.get("/", headers={"Accept-Language": "xx, de-CH;q=0.9, fr;q=0.8"})
        assert 'lang="de"' in german.text and "<h1>Richtlinien</h1>" in german.text
        dutch = client.get("/", headers={"Accept-Language": "fr;q=0.5, nl-BE"})
        assert 'lang="nl"' in dutch.text and "<h1>Beleidsstukken</h1>" in dutch.text
        for header in ("", "xx", "de;q=0", "de;q=zero"):
            english = client.get("/", headers={"Accept-Language": header})
            assert 'lang="en"' in english.text and "<h1>Policies</h1>" in english.text


def test_the_workspace_needs_the_one_time_login(terms: Path) -> None:
    with client_for(terms) as client:
        for path in WORKSPACE_PAGES:
            answer = client.get(path)
            assert answer.status_code == 401, path
            assert "login link" in answer.text
        assert client.get("/login?token=wrong").status_code == 403
        answer = client.get(f"/login?token={LOGIN}")
        cookie = answer.headers["set-cookie"]
        assert cookie.startswith(f"{SESSION_COOKIE}=") and "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        assert client.get("/").status_code == 200
    with client_for(terms) as other:
        other.get(f"/login?token={LOGIN}")
        assert other.get("/login?token=" + LOGIN).status_code == 403, "the login link works once"


def test_a_cookie_signed_by_another_server_is_refused(terms: Path) -> None:
    with client_for(terms, auth=Auth(secret="another-secret", login_token=LOGIN)) as elsewhere:
        elsewhere.get(f"/login?token={LOGIN}")
        foreign = elsewhere.cookies[SESSION_COOKIE]
    with client_for(terms) as client:
        client.cookies.set(SESSION_COOKIE, foreign)
        assert client.get("/").status_code == 401
        client.cookies.set(SESSION_COOKIE, "garbage")
        assert client.get("/").status_code == 401


def test_every_write_needs_the_sessions_csrf_token(terms: Path) -> None:
    (terms / POLICY_DIR / "en.md").write_text((terms / POLICY_DIR / "en.md").read_text() + "\nMore.\n", encoding="utf-8")
    head = git_in(terms, "rev-parse", "HEAD")
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    with client_for(terms) as client:
        csrf = logged_in(client)
        for path, body in [("/policies/terms/commit", "message=Edit"), ("/policies/terms/publish", "action=publish&effective=2030-01-01"),
                           ("/logout", "")]:
            for extra in ("", "&csrf=wrong"):
                answer = client.post(path, content=(body + extra).encode(), headers=form)
                assert answer.status_code == 403, (path, extra)
        assert client.post("/policies/terms/commit", content=f"message=Edit&csrf={csrf}".encode() + b"x" * 300_000,
                           headers=form).status_code == 413
        assert client.get("/logout").status_code == 405
        assert client.delete("/policies/terms").status_code == 405
    assert git_in(terms, "rev-parse", "HEAD") == head


def test_the_public_server_has_no_workspace(terms: Path) -> None:
    with client_for(terms, public_only=True) as client:
        for path in [*WORKSPACE_PAGES, f"/login?token={LOGIN}"]:
            assert client.get(path).status_code == 404, path
        assert client.post("/policies/terms/commit").status_code == 404


# ---------------------------------------------------------------------------------------------------------------
# The workspace: pages and publishing


def test_the_policy_page_shows_versions_status_and_check_findings(terms: Path) -> None:
    en, toml = terms / POLICY_DIR / "en.md", terms / POLICY_DIR / "policy.toml"
    en.write_text(en.read_text(encoding="utf-8") + "\n## New {#new}\n\nSee {{ site.address }}.\n", encoding="utf-8")
    toml.write_text(toml.read_text(encoding="utf-8").replace('name = "Shop"', 'name = "Shop"\npending = ["address"]')
                    .replace('name = "Main"', 'name = "Main"\naddress = "Main Street 1"'), encoding="utf-8")
    with client_for(terms) as client:
        logged_in(client)
        page = client.get("/policies/terms")
        assert page.status_code == 200
        assert "terms@2024-02-01" in page.text and "terms@2024-01-01" in page.text
        assert "policies/terms/en.md:11: new" in page.text  # findings cite file:line
        cells = re.findall(r'<td class="cell (\w+)">', page.text)
        assert {"ok", "missing", "placeholders"} <= set(cells), cells
        en.write_text(en.read_text(encoding="utf-8") + "\nAnd {{ site.nowhere }}.\n", encoding="utf-8")
        broken = client.get("/policies/terms")
        assert broken.status_code == 200 and "placeholder {{ site.nowhere }} is not defined for site main" in broken.text
        assert "default-src 'none'" in page.headers["content-security-policy"] and "script-src 'self'" in page.headers["content-security-policy"]
        assert "<script>" not in page.text
        index = client.get("/")
        assert "Terms" in index.text and "terms@2024-02-01" in index.text


def test_the_draft_shows_the_working_tree_against_the_last_version(terms: Path) -> None:
    en = terms / POLICY_DIR / "en.md"
    en.write_text(en.read_text(encoding="utf-8").replace("Write to", "Please write to"), encoding="utf-8")
    with client_for(terms) as client:
        logged_in(client)
        draft = client.get("/policies/terms/draft")
        assert draft.status_code == 200
        assert 'value="latest" selected' in draft.text and 'value="worktree" selected' in draft.text
        assert "1 section changed" in draft.text
        frame = re.search(r'<iframe[^>]*src="([^"]+)"', draft.text)
        assert frame
        redline = client.get(frame[1].replace("&amp;", "&"))
        assert redline.status_code == 200 and "<ins" in redline.text and "Please" in redline.text
        assert "frame-ancestors 'self'" in redline.headers["content-security-policy"]
        side = client.get("/policies/terms/redline?from=terms@2024-01-01&to=terms@2024-02-01&layout=side-by-side&site=shop&lang=nl")
        assert side.status_code == 200 and "side-by-side" in side.text and "Revision 2" in side.text
        pdf = client.get("/policies/terms/redline?format=pdf")
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF") and "attachment" in pdf.headers["content-disposition"]
        for bad in ["/policies/terms/redline?format=exe", "/policies/terms/redline?layout=huge", "/policies/terms/redline?site=..%2F..",
                    "/policies/terms/draft?from=--output%3D%2Ftmp%2Fx", "/policies/..%2e/draft", "/policies/Terms/draft"]:
            assert client.get(bad).status_code in (400, 404), bad


def test_downloads_changelog_and_archive(terms: Path) -> None:
    import io
    import zipfile

    with client_for(terms) as client:
        logged_in(client)
        changelog = client.get("/policies/terms/changelog?format=md&lang=nl")
        assert changelog.status_code == 200 and changelog.headers["content-type"].startswith("text/markdown") and "Versie 2." in changelog.text
        bundle = zipfile.ZipFile(io.BytesIO(client.get("/policies/terms/archive.zip").content))
        assert "terms/ledger.toml" in bundle.namelist() and "terms/2024-02-01/source/en.md" in bundle.namelist()


def test_commit_and_publish_through_the_forms_record_what_the_cli_records(terms: Path) -> None:
    for language, sentence in (("en", "Write to"), ("nl", "Schrijf naar")):
        path = terms / POLICY_DIR / f"{language}.md"
        path.write_text(path.read_text(encoding="utf-8").replace(sentence, sentence + " us at"), encoding="utf-8")
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    with client_for(terms) as client:
        csrf = logged_in(client)
        before = client.get("/policies/terms/publish")
        assert "uncommitted changes" in before.text and "publish-button\" disabled" in before.text
        committed = client.post("/policies/terms/commit", data={"message": "Contact wording", "csrf": csrf}, headers=form)
        assert committed.status_code == 303 and "committed" in committed.headers["location"]
        assert "Contact wording" in git_in(terms, "log", "-1", "--format=%s")
        gates = client.get("/policies/terms/publish")
        assert "a summary in en (the default language) is required" in gates.text
        effective = date.today() + timedelta(days=1)  # too soon for a material change: refused before pressing
        fields = {"csrf": csrf, "effective": effective.isoformat(), "classification": "material", "summary-en": "Contact.",
                  "summary-nl": "Contact.", "reason": ""}
        check = client.post("/policies/terms/publish", data={**fields, "action": "check"}, headers=form)
        assert "days&#39; notice" in check.text and "publish-button\" disabled" in check.text
        refused = client.post("/policies/terms/publish", data={**fields, "action": "publish"}, headers=form)
        assert refused.status_code == 409 and "days&#39; notice" in refused.text
        fields["effective"] = (date.today() + timedelta(days=60)).isoformat()
        ready = client.post("/policies/terms/publish", data={**fields, "action": "check"}, headers=form)
        assert "Every gate passes" in ready.text
        done = client.post("/policies/terms/publish", data={**fields, "action": "publish"}, headers=form)
        assert done.status_code == 303, done.text
    version = f"terms@{fields['effective']}"
    ledger = tomllib.loads((terms / "history/terms/ledger.toml").read_text(encoding="utf-8"))["version"]
    assert ledger[-1]["id"] == version and ledger[-1]["classification"] == "material" and ledger[-1]["summary"] == {"en": "Contact.", "nl": "Contact."}
    assert ledger[-1]["suggested"] and ledger[-1]["author"] == "Test Editor <editor@example.org>"
    assert git_in(terms, "tag", "--list", version).strip() == version


# ---------------------------------------------------------------------------------------------------------------
# A real uvicorn on 127.0.0.1


@pytest.fixture
def serve() -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def start(root: Path, *args: str) -> Served:
        server = Served(root, *args)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def test_a_real_server_unsubscribes_by_one_click_post(subscribed: Path, serve: Callable[..., Served]) -> None:
    server = serve(subscribed, "--public")
    assert server.login_url is None and server.base.startswith("http://127.0.0.1:")
    token, _ = subscriber_token(subscribed)
    with httpx.Client(timeout=10) as http:
        assert http.get(f"{server.base}/").status_code == 404
        answer = http.post(f"{server.base}/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert answer.status_code == 200 and "set-cookie" not in answer.headers
        assert "server" not in answer.headers
    assert unsubscribed(subscribed)
    assert server.stop() == 0


def test_the_workspace_listens_on_loopback_only(terms: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "addendum", "--repo", str(terms), "serve", "--host", "0.0.0.0", "--port", "0"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "error: the workspace is served on the loopback address only, not on 0.0.0.0" in done.stderr


def test_a_real_server_tells_open_pages_when_a_policy_file_changes(terms: Path, serve: Callable[..., Served]) -> None:
    server = serve(terms)
    assert server.login_url and "/login?token=" in server.login_url
    with httpx.Client(timeout=10, follow_redirects=True) as http:
        assert http.get(server.login_url).status_code == 200
        with http.stream("GET", f"{server.base}/events") as events:
            assert events.headers["content-type"].startswith("text/event-stream")
            lines = events.iter_lines()
            assert next(lines).startswith("retry:")
            en = terms / POLICY_DIR / "en.md"
            en.write_text(en.read_text(encoding="utf-8") + "\nOne more line.\n", encoding="utf-8")
            deadline = time.monotonic() + 10
            for line in lines:
                if line.startswith("data:"):
                    assert "policies/terms/en.md" in json.loads(line.removeprefix("data:"))
                    break
                assert time.monotonic() < deadline
    assert server.stop() == 0
