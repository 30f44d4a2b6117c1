"""The .docx redline, proved with real office software: LibreOffice's Accept All gives the new text and Reject All the
old one, section by section, and pandoc reads the same two texts; the package passes our own validator."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from addendum.compare.model import ChangeSet
from addendum.compare.sections import compare
from addendum.config import open_repo
from addendum.render.redline import VersionInfo
from addendum.render.word.ooxml import SHOWN_BY_CODE, shown
from addendum.render.word.redline import redline_docx
from addendum.render.word.validate import validate_package
from office import Body, Job, Office, body_of, pandoc_body, soffice
from tests_support import MOVED_AND_EDITED_NEW, MOVED_AND_EDITED_OLD, hostile_text, policy_of, resolved, section

OLD = VersionInfo("terms@2018-05-19", date(2018, 5, 19))
NEW = VersionInfo("terms@2024-06-01", date(2024, 6, 1))
W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"

needs_office = pytest.mark.skipif(soffice() is None, reason="LibreOffice is not installed: run scripts/check-system")


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Office]:
    """One throw-away LibreOffice profile for the module; the machine-wide lock keeps to one soffice at a time."""
    yield Office(tmp_path_factory.mktemp("office"))


def side_text(changeset: ChangeSet, side: str) -> tuple[tuple[int, str, str], ...]:
    """What a reader of one side sees, written as the redline writes it: invisible characters by code point,
    paragraphs split at blank lines (empty ones dropped)."""
    sides = [getattr(c, side) for c in changeset.sections if getattr(c, side) is not None]
    sides.sort(key=lambda s: s.position)
    out = []
    for s in sides:
        text = SHOWN_BY_CODE.sub(lambda m: shown(m.group()), s.text)
        paragraphs = [p for p in re.split(r"\n{2,}", text) if p]
        out.append((s.level, SHOWN_BY_CODE.sub(lambda m: shown(m.group()), s.heading) if s.level else "", "\n\n".join(paragraphs)))
    return tuple(o for o in out if o[0] or o[2])


def words_only(sections: tuple[tuple[int, str, str], ...]) -> tuple[tuple[str, str], ...]:
    """What pandoc can be held to: its words. It leaves an empty heading where a heading's text was deleted, joins
    a paragraph whose mark was deleted with the next one keeping the first one's style (so a heading may change its
    level), and makes one space of any run of spaces, or none, where a paragraph break is deleted; so each section's
    heading and text with all whitespace left out: the same characters in the same order."""
    merged: list[tuple[str, str]] = []
    for _, heading, text in sections:
        heading, text = "".join(heading.split()), "".join(text.split())
        if not heading and merged:  # text under a heading pandoc left empty belongs to the section before it
            merged[-1] = (merged[-1][0], merged[-1][1] + text)
        elif heading or text:
            merged.append((heading, text))
    return tuple(merged)


def prove(office: Office, folder: Path, docx: bytes, changeset: ChangeSet, name: str = "redline") -> None:
    prove_all(office, folder, [(name, docx, changeset)])


def prove_all(office: Office, folder: Path, cases: list[tuple[str, bytes, ChangeSet]], *, pandoc: bool = True) -> None:
    """Validate each package; Accept All / Reject All in LibreOffice (one start for all); the same with pandoc."""
    jobs = []
    for name, docx, _ in cases:
        assert validate_package(docx) == [], name
        source = folder / f"{name}.docx"
        source.write_bytes(docx)
        jobs += [Job(mode, source, folder / f"{name}-{mode}.docx") for mode in ("accept", "reject", "open")]
    outcomes = office.run(jobs)
    assert all(o.ok for o in outcomes), outcomes
    for name, _, changeset in cases:
        source = folder / f"{name}.docx"
        compare_bodies(body_of(folder / f"{name}-accept.docx"), side_text(changeset, "new"), f"{name} accepted")
        compare_bodies(body_of(folder / f"{name}-reject.docx"), side_text(changeset, "old"), f"{name} rejected")
        # Opened without repair (RepairPackage off) and saved with its tracked changes still there.
        assert (body_of(folder / f"{name}-open.docx").revisions > 0) == (body_of(source).revisions > 0)
        if pandoc:
            assert words_only(pandoc_body(source, "accept").sections) == words_only(side_text(changeset, "new")), name
            assert words_only(pandoc_body(source, "reject").sections) == words_only(side_text(changeset, "old")), name


def compare_bodies(body: Body, expected: tuple[tuple[int, str, str], ...], label: str) -> None:
    assert body.revisions == 0, label
    got = tuple(s for s in body.sections if s[0] or s[2])
    assert got == expected, label


@needs_office
def test_the_shipped_redline_accepts_to_2020_and_rejects_to_2018(run, shipped: Path, office: Office, tmp_path: Path) -> None:
    out = tmp_path / "r.docx"
    run("--repo", shipped, "redline", "privacy", "privacy@2018-05-19", "latest", "--format", "docx", "-o", out)
    from addendum.compare.classify import classified_changes
    from addendum.history.versions import snapshot

    repo = open_repo(shipped)
    old, new = snapshot(repo, "privacy", "privacy@2018-05-19"), snapshot(repo, "privacy", "latest")
    changeset = classified_changes(old.policy, new.policy, "selentic", "en")
    prove(office, tmp_path, out.read_bytes(), changeset)


@needs_office
def test_moved_and_edited_whole_section_insertion_and_deletion(office: Office, tmp_path: Path) -> None:
    old = resolved(MOVED_AND_EDITED_OLD + "\n## Gone {#gone}\n\nThis section goes away.\n\nWith two paragraphs.\n")
    new = resolved("Preamble arrives.\n\n" + MOVED_AND_EDITED_NEW + "\n## Fresh {#fresh}\n\nA new section.\n\nLine one\nline two.\n")
    changeset = compare(old, new)
    assert any(c.has("moved") for c in changeset.sections)
    docx = redline_docx(changeset, OLD, NEW, author="Jane Doe <jane@example.org>", revision_date=date(2024, 5, 1))
    prove(office, tmp_path, docx, changeset)


@needs_office
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(st.tuples(hostile_text, hostile_text, hostile_text, hostile_text, st.booleans()), min_size=8, max_size=8))
def test_hypothesis_generated_edits_accept_and_reject_exactly(office: Office, tmp_path_factory: pytest.TempPathFactory,
                                                              texts: list[tuple[str, str, str, str, bool]]) -> None:
    """Generated texts (XML specials, `]]>`, controls, bidi, long words, line breaks) moved, edited, added and removed;
    eight redlines proved in one soffice start per example."""
    cases = []
    for index, (a, b, c, d, move) in enumerate(texts):
        old = policy_of(section("one", "One", a), section("two", "Two", b + "\n\n" + c), section("three", "Three", "fixed"),
                        section("gone", "Gone", d))
        new_sections = [section("one", "One", c + "\n" + a), section("two", "Two", d), section("new", "New", b)]
        new = policy_of(*([section("three", "Three", "fixed"), *new_sections] if move else [*new_sections, section("three", "Three", "x")]))
        changeset = compare(old, new)
        cases.append((f"generated-{index}", redline_docx(changeset, OLD, NEW, author="A <a@example.org>", revision_date=date(2024, 5, 1)),
                      changeset))
    # pandoc 2.17 is held to the fixed fixtures only: where an edited paragraph is followed by whole deleted
    # paragraphs, it drops that paragraph's inserted words when accepting (LibreOffice keeps them, as Word does).
    prove_all(office, tmp_path_factory.mktemp("generated"), cases, pandoc=False)


def test_every_revision_has_a_unique_id_an_author_and_the_publication_date() -> None:
    changeset = compare(resolved(MOVED_AND_EDITED_OLD), resolved(MOVED_AND_EDITED_NEW))
    docx = redline_docx(changeset, OLD, NEW, author="Jane Doe <jane@example.org>", revision_date=date(2024, 5, 1))
    with zipfile.ZipFile(__import__("io").BytesIO(docx)) as package:
        root = etree.fromstring(package.read("word/document.xml"))
    revisions = [e for tag in ("ins", "del") for e in root.iter(f"{W}{tag}")]
    assert revisions
    assert {e.get(f"{W}author") for e in revisions} == {"Jane Doe <jane@example.org>"}
    assert {e.get(f"{W}date") for e in revisions} == {"2024-05-01T00:00:00Z"}
    ids = [e.get(f"{W}id") for e in root.iter() if e.get(f"{W}id") is not None and not e.tag.endswith("End")]
    assert len(ids) == len(set(ids))
    assert root.findall(f".//{W}del//{W}t") == []
    assert {b.get(f"{W}name") for b in root.iter(f"{W}bookmarkStart")} >= {"s_collection", "s_invoices", "s_newsletter", "s_sharing"}
    langs = {e.get(f"{W}val") for e in root.iter(f"{W}lang")}
    assert langs == {"en-GB"}


def test_the_dutch_redline_speaks_dutch(run, shipped: Path, tmp_path: Path) -> None:
    out = tmp_path / "nl.docx"
    run("--repo", shipped, "redline", "privacy", "privacy@2018-05-19", "latest", "--lang", "nl", "--format", "docx", "-o", out)
    xml = zipfile.ZipFile(out).read("word/document.xml").decode()
    assert "Samenvatting" in xml or "wijzigingen" in xml
    assert 'w:val="nl-BE"' in xml
    assert validate_package(out.read_bytes()) == []


@needs_office
def test_a_whole_inserted_or_deleted_paragraph_before_one_that_begins_with_the_same_change(office: Office, tmp_path: Path) -> None:
    """LibreOffice makes one revision of two insertions (deletions) that meet: the block's marks must not leave an
    untracked paragraph mark between them, or Reject All (Accept All) joins the heading before with the text after."""
    cases = []
    for name, old_one, new_one, old_two, new_two in (
            ("inserted", "a c", "a\n\nb\na c", "Two", "Two"),
            ("deleted", "a\n\nb\na c", "a c", "Two", "Two"),
            ("inserted-before-heading", "p", "p\n\nnew para", "Two", "Now Two"),
            ("deleted-before-heading", "p\n\nold para", "p", "Then Two", "Two")):
        old = policy_of(section("one", "One", old_one), section("two", old_two, "fixed"))
        new = policy_of(section("one", "One", new_one), section("two", new_two, "fixed"))
        changeset = compare(old, new)
        cases.append((name, redline_docx(changeset, OLD, NEW, author="A <a@example.org>", revision_date=date(2024, 5, 1)), changeset))
    prove_all(office, tmp_path, cases)
