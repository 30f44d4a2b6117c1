"""The redline HTML: only escaped text in allowed tags, both texts recoverable, moves, layouts, summaries, the CLI."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from addendum.compare.sections import compare
from addendum.policy.resolve import normalise
from addendum.render.redline import Preparation, VersionInfo, redline_html, redline_text, shown_text
from tests_support import MOVED_AND_EDITED_NEW, MOVED_AND_EDITED_OLD, hostile_text, policy_of, resolved, section

ALLOWED = {"html", "head", "meta", "title", "style", "body", "div", "span", "header", "p", "h1", "h2", "h3", "h4", "h5",
           "h6", "dl", "dt", "dd", "section", "main", "table", "colgroup", "col", "thead", "tbody", "tr", "th", "td", "a",
           "br", "ul", "li", "ins", "del", "strong", "em", "code"}
OLD = VersionInfo("terms@2018-05-19", date(2018, 5, 19))
NEW = VersionInfo("terms@2024-06-01", date(2024, 6, 1))
PREPARED = Preparation(datetime(2024, 5, 1, 9, 30, tzinfo=timezone(timedelta(hours=2))), "Ann Lawyer <ann@example.org>",
                       "Addendum 1.0")


def without_preparation(html: str) -> str:
    """A redline without the line that says when it was prepared (two runs differ there)."""
    return re.sub(r'<dd class="prepared">.*?</dd>', "", html)


class Redline(HTMLParser):
    """Every tag, and per section anchor the text of its paragraphs as the old and as the new version read."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.stack: list[str] = []
        self.section = ""
        self.paragraphs: dict[str, list[dict[str, str]]] = {}
        self.in_text = False
        self.invisible = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "br" and self.in_text:
            self.handle_data("\n")
        if tag in ("br", "meta", "col"):
            return
        self.stack.append(tag)
        if (attributes.get("id") or "").startswith("change-"):
            self.section = attributes["id"] or ""
        if tag == "p" and "text" in (attributes.get("class") or "").split():
            self.in_text = True
            self.paragraphs.setdefault(self.section, []).append({"old": "", "new": ""})
        if tag == "span" and attributes.get("class") == "invisible" and self.in_text:
            self.invisible = chr(int((attributes.get("title") or "").split()[0][2:], 16))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("br", "meta", "col"):
            return
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()
        if tag == "p":
            self.in_text = False
        if tag == "span":
            self.invisible = ""

    def handle_data(self, data: str) -> None:
        if not self.in_text:
            return
        text = self.invisible or data
        paragraph = self.paragraphs[self.section][-1]
        if "ins" not in self.stack:
            paragraph["old"] += text
        if "del" not in self.stack:
            paragraph["new"] += text

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def parse(html: str) -> Redline:
    parser = Redline()
    parser.feed(html)
    parser.close()
    assert not parser.stack, parser.stack
    return parser


def paragraphs_as(parser: Redline, anchor: str, side: str) -> str:
    return "\n\n".join(p[side] for p in parser.paragraphs.get(anchor, []))


def collapsed(text: str) -> str:
    return re.sub(r"\n{2,}", "\n\n", text)


@settings(max_examples=150, deadline=None)
@given(hostile_text, hostile_text, hostile_text, st.sampled_from(["inline", "side-by-side"]))
def test_redline_html_holds_only_allowed_tags_and_both_texts(heading: str, old_text: str, new_text: str, layout: str) -> None:
    old = policy_of(section("a", heading, old_text), section("b", "Kept", "Same."))
    new = policy_of(section("a", heading + " x", new_text), section("b", "Kept", "Same."))
    html = redline_html(compare(old, new), OLD, NEW, layout=layout)  # type: ignore[arg-type]
    parser = parse(html)
    assert {tag for tag, _ in parser.tags} <= ALLOWED
    assert all(not name.startswith("on") for _, attributes in parser.tags for name in attributes)
    assert "\u202e" not in html and "\x1b" not in html and "<script" not in html.lower()
    # Each side shows its text as the page renders its Markdown, however the diff cut it into runs.
    expected_old, expected_new = shown_text(normalise(old_text).strip("\n")), shown_text(normalise(new_text).strip("\n"))
    if layout == "inline":
        assert collapsed(paragraphs_as(parser, "change-a", "old")) == collapsed(expected_old)
        assert collapsed(paragraphs_as(parser, "change-a", "new")) == collapsed(expected_new)


def test_the_page_has_a_strict_content_security_policy_and_no_scripts() -> None:
    html = redline_html(compare(resolved(MOVED_AND_EDITED_OLD), resolved(MOVED_AND_EDITED_NEW)), OLD, NEW)
    csp = next(a for tag, a in parse(html).tags if tag == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    assert (csp["content"] or "").startswith("default-src 'none';")
    assert "script" not in html.lower()


def test_a_moved_and_edited_section_is_shown_as_moved_and_modified_with_where_it_came_from() -> None:
    html = redline_html(compare(resolved(MOVED_AND_EDITED_OLD), resolved(MOVED_AND_EDITED_NEW)), OLD, NEW,
                        prepared=PREPARED)
    parser = parse(html)
    invoices = next(a for tag, a in parser.tags if a.get("id") == "change-invoices")
    assert (invoices["class"] or "").split() == ["section-heading", "level-3", "moved", "modified"]
    assert "moved from §collection.invoices (section 3 of the old version) after “Newsletter”" in html
    assert parser.paragraphs["change-invoices"] == [{"old": "We share invoice details with Moneybird.",
                                                     "new": "We share invoice details with Moneybird and our accountant."}]
    assert '<a href="#change-invoices">' in html
    assert '<p class="text changed">' in html and "<ins class=\"change\"> and our accountant</ins>" in html
    for fact in ("19 May 2018", "1 June 2024", "1 May 2024, 09:30:00 +0200", "terms@2018-05-19", "terms@2024-06-01",
                 "1 of 4 sections changed.", "Ann Lawyer", "Sign-off"):
        assert fact in html


def test_side_by_side_puts_deletions_left_and_insertions_right() -> None:
    changeset = compare(policy_of(section("a", "Alpha", "We keep data for one year.")),
                        policy_of(section("a", "Alpha", "We keep data for two years.")))
    html = redline_html(changeset, OLD, NEW, layout="side-by-side")
    old_cell = "".join(cell.split("</td>")[0] for cell in html.split('<td class="old-side">')[1:])
    new_cell = "".join(cell.split("</td>")[0] for cell in html.split('<td class="new-side">')[1:])
    assert "<del" in old_cell and "<ins" not in old_cell and "one year" in old_cell
    assert "<ins" in new_cell and "<del" not in new_cell and "two years" in new_cell


def test_changes_only_leaves_out_unchanged_sections_but_keeps_headings() -> None:
    changeset = compare(resolved(MOVED_AND_EDITED_OLD), resolved(MOVED_AND_EDITED_NEW))
    html = redline_html(changeset, OLD, NEW, changes_only=True)
    assert 'id="change-invoices"' in html and 'id="change-sharing"' not in html
    assert "Only the changed sections are shown." in html
    assert 'id="change-sharing"' in redline_html(changeset, OLD, NEW)


def test_invisible_characters_are_shown_by_their_code_point() -> None:
    changeset = compare(policy_of(section("a", "Alpha", "Pay to account 123.")),
                        policy_of(section("a", "Alpha", "Pay to account \u202e321\u202c.")))
    html = redline_html(changeset, OLD, NEW)
    assert '<span class="invisible" title="U+202E RIGHT-TO-LEFT OVERRIDE">U+202E</span>' in html
    assert "\u202e" not in html
    assert "⟨U+202E⟩" in redline_text([changeset], "a", "b")


def test_the_summary_shows_materiality_only_when_a_later_stage_filled_it() -> None:
    changeset = compare(resolved(MOVED_AND_EDITED_OLD), resolved(MOVED_AND_EDITED_NEW))
    plain = redline_html(changeset, OLD, NEW)
    assert "Class" not in plain
    classified = replace(changeset, classification="material", reasons=("a processor was added",),
                         sections=tuple(replace(c, classification="material", reasons=("names a new recipient",))
                                        if c.changed else c for c in changeset.sections))
    html = redline_html(classified, OLD, NEW)
    assert "<th scope=\"col\">Class</th>" in html
    assert "names a new recipient" in html and 'class-material' in html


def test_a_dutch_redline_speaks_dutch_and_formats_dates_the_belgian_way() -> None:
    old, new = resolved(MOVED_AND_EDITED_OLD), resolved(MOVED_AND_EDITED_NEW)
    dutch = compare(replace(old, language="nl", locale="nl_BE"), replace(new, language="nl", locale="nl_BE"))
    html = redline_html(dutch, OLD, NEW, prepared=PREPARED)
    for text in ("19 mei 2018", "1 juni 2024", "1 mei 2024, 09:30:00 +0200", "Overzicht van de wijzigingen", "verplaatst", "Pagina",
                 '<html lang="nl">'):
        assert text in html


def test_the_terminal_diff_marks_words_and_neutralises_escape_sequences() -> None:
    changeset = compare(policy_of(section("a", "Alpha", "Colour me plain.")),
                        policy_of(section("a", "Alpha", "Colour me \x1b[31mred.")))
    plain = redline_text([changeset], "v1", "v2")
    assert "\x1b" not in plain and "{+⟨U+001B⟩[31mred+}" in plain
    coloured = redline_text([changeset], "v1", "v2", color=True)
    assert "\x1b[4;32m⟨U+001B⟩[31mred\x1b[0m" in coloured and "\x1b[31m" not in coloured.replace("\x1b[9;31m", "")
    assert plain.endswith("1 of 1 site/language text changed: 1 modified\n")


def test_redline_command_writes_html_with_anchors_for_the_changelog(run, published_terms: Callable[[int], Path]) -> None:
    root = published_terms(2)
    out = root / "out" / "r.html"
    result = run("--repo", root, "redline", "terms", "terms@2024-01-01", "terms@2024-02-01", "--site", "main", "--lang", "en",
                 "-o", out)
    assert result.stderr == f"wrote {out}\n"
    html = out.read_text(encoding="utf-8")
    assert 'id="change-scope"' in html and "<ins class=\"change\"> Revision 2.</ins>" in html
    assert "terms@2024-01-01, in force from 1 January 2024" in html
    side = root / "side.html"
    run("--repo", root, "redline", "terms", "2024-01-01", "latest", "--site", "shop", "--lang", "nl", "--layout", "side-by-side",
        "--changes-only", "-o", side)
    text = side.read_text(encoding="utf-8")
    assert 'class="side-by-side"' in text and 'id="change-contact"' not in text and "1 januari 2024" in text


def test_redline_command_errors_are_clean(run, published_terms: Callable[[int], Path]) -> None:
    root = published_terms(1)
    result = run("--repo", root, "redline", "terms", "terms@2024-01-01", "worktree", "--site", "nowhere", "--lang", "en",
                 "-o", root / "r.html", expect=2)
    assert result.stderr.startswith("error: policy terms has no site 'nowhere'")
    assert not (root / "r.html").exists()


def test_redline_takes_the_default_site_and_language_when_none_is_given(run, published_terms: Callable[[int], Path]) -> None:
    root = published_terms(2)
    implicit, explicit = root / "implicit.html", root / "explicit.html"
    run("--repo", root, "redline", "terms", "terms@2024-01-01", "latest", "-o", implicit)
    run("--repo", root, "redline", "terms", "terms@2024-01-01", "latest", "--site", "main", "--lang", "en", "-o", explicit)
    assert without_preparation(implicit.read_text(encoding="utf-8")) == without_preparation(explicit.read_text(encoding="utf-8"))
    nl = root / "nl.html"
    run("--repo", root, "redline", "terms", "terms@2024-01-01", "latest", "--lang", "nl", "-o", nl)
    assert "Deze voorwaarden gelden voor Main." in nl.read_text(encoding="utf-8")


def test_the_readme_redline_of_the_shipped_policy_needs_no_site_or_language(run, shipped: Path, tmp_path: Path) -> None:
    import io

    import pypdf

    out = tmp_path / "r.pdf"
    assert run("--repo", shipped, "redline", "privacy", "privacy@2018-05-19", "latest", "--format", "pdf", "--prepared-by", "Ann Lawyer",
               "-o", out).stderr \
        == f"wrote {out}\n"
    document = pypdf.PdfReader(io.BytesIO(out.read_bytes()))
    text = " ".join(page.extract_text() for page in document.pages)
    assert document.trailer["/Root"]["/Lang"] == "en"
    assert "Site Selentic (selentic)\nLanguage English (en)\nFrom privacy@2018-05-19" in text
