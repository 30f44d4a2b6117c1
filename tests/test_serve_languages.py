"""The pages `addendum serve` answers before or instead of the workspace (the login page, 401/403/404/405/500 and a
refused CSRF token) speak the browser's language, negotiated against the catalogues, with no English word in them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from addendum.config import open_repo
from addendum.web.app import ServerConfig, build_app
from addendum.web.auth import Auth
from tests_support import Served, assert_no_english

LOGIN = "test-login-token"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def terms(published_terms: Callable[[int], Path]) -> Path:
    return published_terms(1)


def client_for(root: Path, *, public_only: bool = False) -> TestClient:
    app = build_app(ServerConfig(open_repo(root), public_only=public_only, watch=False), Auth(login_token=LOGIN))
    return TestClient(app, base_url="http://127.0.0.1", follow_redirects=False, raise_server_exceptions=False)


def test_a_real_server_answers_a_dutch_browser_in_dutch_before_login(terms: Path) -> None:
    server = Served(terms)
    try:
        dutch = {"Accept-Language": "nl-BE,nl;q=0.9,en;q=0.5"}
        with httpx.Client(timeout=10, headers=dutch) as http:
            login = http.get(f"{server.base}/login?token=not-the-token")
            assert login.status_code == 403 and '<html lang="nl">' in login.text
            assert "<h1>Deze inloglink werkt niet</h1>" in login.text
            assert_no_english(login.text, "nl", "the login page")
            needs_login = http.get(f"{server.base}/")
            assert needs_login.status_code == 401 and '<html lang="nl">' in needs_login.text
            assert "inloglink die addendum serve bij het starten toonde" in needs_login.text
            assert_no_english(needs_login.text, "nl", "the 401 page")
            missing = http.get(f"{server.base}/no/such/page")
            assert missing.status_code == 404 and "Op dit adres staat geen pagina." in missing.text
            assert_no_english(missing.text, "nl", "the 404 page")
        with httpx.Client(timeout=10, headers={"Accept-Language": "fr-CH, de;q=0.8"}) as http:
            french = http.get(f"{server.base}/login?token=not-the-token")
            assert '<html lang="fr">' in french.text
            assert_no_english(french.text, "fr", "the login page")
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize("language", ["nl", "fr", "de"])
def test_a_refused_csrf_token_and_a_wrong_method_are_explained_in_the_browsers_language(terms: Path, language: str) -> None:
    with client_for(terms) as client:
        assert client.get(f"/login?token={LOGIN}").status_code == 303
        refused = client.post("/policies/terms/commit", content=b"message=Edit&csrf=wrong",
                              headers={**FORM, "Accept-Language": language})
        assert refused.status_code == 403 and f'<html lang="{language}">' in refused.text
        assert_no_english(refused.text, language, "the CSRF page")
        assert "CSRF" not in refused.text
        wrong_method = client.delete("/policies/terms", headers={"Accept-Language": language})
        assert wrong_method.status_code == 405 and f'<html lang="{language}">' in wrong_method.text
        assert_no_english(wrong_method.text, language, "the 405 page")


def test_an_unexpected_failure_is_a_page_in_the_browsers_language_without_the_stack(terms: Path) -> None:
    (terms / "templates" / "web").mkdir(parents=True, exist_ok=True)
    (terms / "templates" / "web" / "index.html").write_text("{{ 1 // 0 }}\n", encoding="utf-8")
    with client_for(terms) as client:
        client.get(f"/login?token={LOGIN}")
        failed = client.get("/", headers={"Accept-Language": "de"})
        assert failed.status_code == 500 and '<html lang="de">' in failed.text
        assert "Auf dem Server ist etwas schiefgegangen." in failed.text
        assert "Traceback" not in failed.text and "ZeroDivision" not in failed.text
        assert_no_english(failed.text, "de", "the 500 page")
        english = client.get("/")
        assert english.status_code == 500 and "Something went wrong on the server." in english.text


def test_english_readers_keep_the_precise_message_and_the_public_server_answers_plainly(terms: Path) -> None:
    with client_for(terms) as client:
        english = client.get("/")
        assert english.status_code == 401 and "this workspace needs the login link" in english.text
        dutch = client.get("/", headers={"Accept-Language": "nl"})
        assert "this workspace needs the login link" not in dutch.text
    with client_for(terms, public_only=True) as public:
        missing = public.get("/policies/terms", headers={"Accept-Language": "nl"})
        assert missing.status_code == 404 and missing.text == "Op dit adres staat geen pagina.\n"
        assert missing.headers["content-type"].startswith("text/plain")
