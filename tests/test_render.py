"""`addendum render`: every site × language of the shipped policy, inert hostile text, atomic output, overrides."""

from __future__ import annotations

from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import pytest

from addendum.policy.model import load_policy
from addendum.policy.resolve import pending_marker, resolve
from addendum.render import render_policy
from tests_support import MINIMAL_EN

SITES = ["selentic", "cavallo", "equihealth"]


class Tags(HTMLParser):
    """Collects start tags with their attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags_of(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Tags()
    parser.feed(html)
    return parser.tags


@pytest.mark.parametrize("site", SITES)
@pytest.mark.parametrize("lang", ["en", "nl"])
def test_every_site_and_language_renders_a_complete_page(run, shipped: Path, site: str, lang: str) -> None:
    html = run("--repo", shipped, "render", "privacy", "--site", site, "--lang", lang).stdout
    tags = tags_of(html)
    assert ("html", {"lang": lang}) in tags
    csp = [a["content"] for t, a in tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in (csp[0] or "")
    assert not [t for t, a in tags if t in ("script", "img", "link", "iframe", "object")]
    assert any(t == "section" and a.get("id") == "sharing" for t, a in tags)
    assert "<title>" in html


def test_site_variant_of_sharing_is_the_sites_own(run, shipped: Path) -> None:
    cavallo = run("--repo", shipped, "render", "privacy", "--site", "cavallo", "--lang", "en").stdout
    assert "shared with the processors within an event" in cavallo
    assert "unless you have given your permission" not in cavallo  # equihealth's variant
    equihealth = run("--repo", shipped, "render", "privacy", "--site", "equihealth", "--lang", "en").stdout
    assert "unless you have given your permission" in equihealth


def test_dutch_selentic_has_the_contact_and_the_date(run, shipped: Path) -> None:
    html = run("--repo", shipped, "render", "privacy", "--site", "selentic", "--lang", "nl").stdout
    assert "3630 Leut" in html and "info@selentic.net" in html
    assert "19 mei 2018" in html


def test_missing_translation_falls_back_visibly(run, shipped: Path) -> None:
    html = run("--repo", shipped, "render", "privacy", "--site", "selentic", "--lang", "nl").stdout
    assert '<section id="hotjar" class="fallback" lang="en">' in html
    assert "Deze sectie is nog niet in het Nederlands beschikbaar; hieronder volgt de tekst in het Engels." in html


def test_pending_contact_is_shown_not_invented(run, shipped: Path) -> None:
    text = run("--repo", shipped, "render", "privacy", "--site", "cavallo", "--lang", "nl", "--format", "text").stdout
    assert "[nog aan te vullen: contact.email]" in text


@pytest.mark.parametrize(("language", "marker"), [("fr", "[à compléter : contact.email]"), ("de", "[noch anzugeben: contact.email]")])
def test_the_pending_marker_speaks_the_readers_language(language: str, marker: str) -> None:
    assert pending_marker(language, "contact.email") == marker
    assert pending_marker("en", "contact.email") == "[to be provided: contact.email]"


def test_last_changed_is_localised(shipped: Path) -> None:
    policy = load_policy(shipped, "privacy")
    nl = render_policy(resolve(policy, "selentic", "nl"), "html", date(2018, 5, 19))
    en = render_policy(resolve(policy, "selentic", "en"), "text", date(2018, 5, 19))
    assert "Laatst gewijzigd op 19 mei 2018" in nl
    assert "Last changed on 19 May 2018" in en


def test_markdown_format_round_trips_through_check(run, shipped: Path, tmp_path: Path) -> None:
    md = run("--repo", shipped, "render", "privacy", "--site", "selentic", "--lang", "en", "--format", "md").stdout
    assert "#### Hotjar {#hotjar}" in md and "{{" not in md


HOSTILE = """\
Intro.

## Scope {#scope}

<script>alert(1)</script> and </h2><h1>fake</h1> and [click](javascript:alert(1)) and ![x](/etc/passwd)
<img src=x onerror=alert(1)> "quotes" & ampersands

## Contact {#contact}

Write to {{ site.contact.email }}.
"""


def test_hostile_text_comes_out_inert(run, make_repo) -> None:
    root = make_repo({"en.md": HOSTILE, "nl.md": HOSTILE})
    html = run("--repo", root, "render", "terms", "--site", "main", "--lang", "en").stdout
    tags = [t for t, _ in tags_of(html)]
    assert "script" not in tags and "img" not in tags and "h1" in tags and tags.count("h1") == 1
    assert not [a for t, a in tags_of(html) if t == "a" and "javascript" in (a.get("href") or "")]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;/h2&gt;&lt;h1&gt;fake&lt;/h1&gt;" in html


def test_output_file_is_written_whole_and_refused_on_errors(run, make_repo, tmp_path: Path) -> None:
    root = make_repo()
    target = tmp_path / "out" / "terms.html"
    run("--repo", root, "render", "terms", "-o", target)
    first = target.read_bytes()
    assert first.startswith(b"<!DOCTYPE html>") and first.rstrip().endswith(b"</html>")
    broken = make_repo({"en.md": MINIMAL_EN.replace("{{ site.contact.email }}", "{{ site.nope }}")})
    result = run("--repo", broken, "render", "terms", "-o", target, expect=2)
    assert "error: policies/terms/en.md:9: contact: placeholder {{ site.nope }} is not defined for site main" in result.stderr
    assert target.read_bytes() == first
    assert [p.name for p in target.parent.iterdir()] == ["terms.html"]


def test_unknown_site_and_language_are_user_errors(run, make_repo) -> None:
    root = make_repo()
    assert "error: policy terms has no site 'mars'" in run("--repo", root, "render", "terms", "--site", "mars", expect=2).stderr
    assert "error: policy terms has no language 'fr'" in run("--repo", root, "render", "terms", "--lang", "fr", expect=2).stderr


def test_repository_template_overrides_and_extends_the_builtin(run, make_repo) -> None:
    root = make_repo()
    (root / "templates").mkdir()
    (root / "templates" / "policy.html").write_text(
        '{% extends "default:policy.html" %}{% block banner %}<p class="brand">ACME legal</p>{% endblock %}', encoding="utf-8")
    html = run("--repo", root, "render", "terms").stdout
    assert '<p class="brand">ACME legal</p>' in html and "<h1>Terms</h1>" in html


def test_a_policy_specific_template_wins_over_the_generic_one(run, make_repo) -> None:
    root = make_repo()
    (root / "templates").mkdir()
    (root / "templates" / "policy-terms.txt").write_text("only {{ title }}\n", encoding="utf-8")
    assert run("--repo", root, "render", "terms", "--format", "text").stdout == "only Terms\n"


def test_an_unwritable_output_path_is_a_user_error(run, make_repo, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run("--repo", make_repo(), "render", "terms", "-o", blocker / "out.html", expect=2)
    assert f"error: cannot write {blocker / 'out.html'}: File exists\n  choose a folder that exists" in result.stderr
