"""The comparison: word-level segments that rebuild both texts, section matching (moves, renames, splits,
merges), formatting-only changes, no degradation on large rewrites, the JSON form and `addendum diff`."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from addendum.compare import words as diff_module
from addendum.compare.model import ChangeSet, SectionChange, rebuild
from addendum.compare.sections import compare
from addendum.compare.words import PARAGRAPH_PREPASS_TOKENS, formatting_key, tokens, word_diff
from addendum.errors import UsageError
from addendum.policy.resolve import ResolvedPolicy, normalise
from tests_support import (
    MOVED_AND_EDITED_NEW,
    MOVED_AND_EDITED_OLD,
    hostile_text,
    policy_of,
    resolved,
    run_script,
    section,
)


def boundaries(segments: tuple, side: str) -> set[int]:
    skip = "insert" if side == "old" else "delete"
    offsets, position = set(), 0
    for segment in segments:
        if segment.op != skip:
            position += len(segment.text)
            offsets.add(position)
    return offsets


def token_boundaries(text: str) -> set[int]:
    offsets, position = {0}, 0
    for token in tokens(text):
        position += len(token)
        offsets.add(position)
    return offsets


# --- words -------------------------------------------------------------------------------------------------

@settings(max_examples=400, deadline=None)
@given(hostile_text, hostile_text)
def test_segments_rebuild_both_texts_and_never_split_a_token(old: str, new: str) -> None:
    segments = word_diff(old, new)
    assert rebuild(segments, "old") == normalise(old)
    assert rebuild(segments, "new") == normalise(new)
    assert boundaries(segments, "old") <= token_boundaries(normalise(old))
    assert boundaries(segments, "new") <= token_boundaries(normalise(new))
    assert all(s.text for s in segments)


@settings(max_examples=150, deadline=None)
@given(hostile_text, hostile_text)
def test_the_reference_engine_rebuilds_both_texts_too(old: str, new: str) -> None:
    segments = word_diff(old, new, engine="python")
    assert (rebuild(segments, "old"), rebuild(segments, "new")) == (normalise(old), normalise(new))


@contextmanager
def always_spaced() -> Iterator[None]:
    """Every text compared word-with-its-spaces, the path heavily edited long texts take."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(diff_module, "SPACED_FROM_TOKENS", 0)
        patch.setattr(diff_module, "SPACED_FROM_WORK", 0)
        yield


@settings(max_examples=300, deadline=None)
@given(hostile_text, hostile_text)
def test_words_compared_with_their_spaces_rebuild_both_texts_and_never_split_a_token(old: str, new: str) -> None:
    with always_spaced():
        segments = word_diff(old, new)
    assert (rebuild(segments, "old"), rebuild(segments, "new")) == (normalise(old), normalise(new))
    assert boundaries(segments, "old") <= token_boundaries(normalise(old))
    assert boundaries(segments, "new") <= token_boundaries(normalise(new))


@pytest.mark.parametrize("spaced", [False, True], ids=["tokens", "words with spaces"])
@pytest.mark.parametrize(("old", "new", "expected"), [
    ("We share your data with them.", "We sell your info with them.",
     [("equal", "We "), ("delete", "share"), ("insert", "sell"), ("equal", " your "), ("delete", "data"), ("insert", "info"),
      ("equal", " with them.")]),
    ("We keep it for five years, then delete it.", "We keep it for five years\nthen delete it.",
     [("equal", "We keep it for five years"), ("delete", ", "), ("insert", "\n"), ("equal", "then delete it.")]),
    ("The shop.", "The shop. Revision 2.", [("equal", "The shop."), ("insert", " Revision 2.")]),
])
def test_hunks_read_the_same_whichever_way_the_engine_compared(spaced: bool, old: str, new: str, expected: list[tuple[str, str]]) -> None:
    with always_spaced() if spaced else nullcontext():
        assert [(s.op, s.text) for s in word_diff(old, new)] == expected


def test_tokens_keep_words_whole_with_their_marks_apostrophes_and_modifiers() -> None:
    assert tokens("you’re e-mail cafe\u0301 3.5 👍🏽!") == ["you’re", " ", "e-mail", " ", "cafe\u0301", " ", "3.5", " ", "👍🏽", "!"]
    assert "".join(tokens("a\r\nb\u202ec")) == "a\r\nb\u202ec"


def test_a_replaced_word_is_one_hunk_and_hunks_align_to_spaces() -> None:
    segments = word_diff("The quick brown fox.", "The quick red fox.")
    assert [(s.op, s.text) for s in segments] == [("equal", "The quick "), ("delete", "brown"), ("insert", "red"), ("equal", " fox.")]
    inserted = word_diff("It is important.", "It is very important.")
    assert [(s.op, s.text) for s in inserted] == [("equal", "It is "), ("insert", "very "), ("equal", "important.")]


def test_normalisation_makes_line_ends_and_composed_characters_no_change() -> None:
    assert all(s.op == "equal" for s in word_diff("café\r\nline", "cafe\u0301\nline"))


@pytest.mark.parametrize(("old", "new", "formatting"), [
    ("We don't sell it.", "We don’t sell it.", True),
    ("We do not sell it", "We do not sell it.", True),
    ("we do not sell it.", "We do not  sell\nit.", True),
    ("A fee of 3.5 euro.", "A fee of 35 euro.", False),
    ("A fee of 3.5 euro.", "A fee of 3,5 euro.", False),
    ("We do not sell it.", "We do sell it.", False),
    ("We do not sell it.", "We do not sell\u202e it.", False),
    ("We sell nothing.", "We sell nothing\u200b.", False),
])
def test_changes_of_whitespace_punctuation_quotes_or_case_are_marked_formatting(old: str, new: str, formatting: bool) -> None:
    edits = [s for s in word_diff(old, new) if s.op != "equal"]
    assert edits
    assert all(s.formatting == formatting for s in edits)


def test_formatting_key_keeps_what_changes_meaning() -> None:
    assert formatting_key("“Hello”, World!") == formatting_key('"hello" world')
    assert formatting_key("3.5") != formatting_key("35")
    assert formatting_key("a\u202eb") != formatting_key("ab")


def prose(rng: random.Random, words: int) -> str:
    vocabulary = [f"w{n}" for n in range(4000)]
    sentences = []
    for _ in range(words // 12):
        sentences.append(" ".join(rng.choice(vocabulary) for _ in range(12)).capitalize() + ".")
    return "\n\n".join(" ".join(sentences[i:i + 5]) for i in range(0, len(sentences), 5))


def test_a_heavily_rewritten_large_text_keeps_what_it_kept() -> None:
    """A deadline would turn this into "delete everything, insert everything": the diff must find the words
    that stayed (about half) and mark nothing else as unchanged."""
    rng = random.Random(7)
    old = prose(rng, 12_000)
    words = old.split(" ")
    kept = [w if rng.random() < 0.5 else f"new{rng.randrange(10_000)}" for w in words]
    new = " ".join(kept)
    segments = word_diff(old, new)
    assert (rebuild(segments, "old"), rebuild(segments, "new")) == (old, new)
    unchanged_words = sum(len(s.text.split()) for s in segments if s.op == "equal")
    assert unchanged_words > 0.3 * len(words)
    assert len([s for s in segments if s.op == "delete"]) > 1000


def test_a_long_text_is_compared_line_by_line_first_and_still_exactly() -> None:
    rng = random.Random(3)
    old = prose(rng, 3 * PARAGRAPH_PREPASS_TOKENS)
    new = old.replace("W1 ", "W1 added words ", 3).replace("w7.", "w7!")
    assert len(tokens(old)) > 2 * PARAGRAPH_PREPASS_TOKENS
    segments = word_diff(old, new)
    assert (rebuild(segments, "old"), rebuild(segments, "new")) == (old, new)
    changed = "".join(s.text for s in segments if s.op != "equal")
    assert len(changed) < 200
    assert all(not re.search(r"\w", s.text) for s in segments if s.op == "delete")


# --- sections --------------------------------------------------------------------------------------------------


def moved_and_edited() -> ChangeSet:
    return compare(resolved(MOVED_AND_EDITED_OLD), resolved(MOVED_AND_EDITED_NEW))


def kinds(changeset: ChangeSet) -> dict[str, tuple[str, ...]]:
    return {c.id: c.ordered_kinds for c in changeset.sections}


def test_a_moved_and_edited_section_is_moved_and_modified_and_nothing_else_moves() -> None:
    changeset = moved_and_edited()
    assert kinds(changeset) == {"collection": ("unchanged",), "invoices": ("moved", "modified"),
                                "newsletter": ("unchanged",), "sharing": ("unchanged",)}
    invoices = changeset.find("invoices")
    assert invoices is not None and invoices.old is not None and invoices.new is not None
    assert (invoices.old.position, invoices.new.position) == (3, 2)
    assert [(s.op, s.text) for s in invoices.text if s.op != "equal"] == [("insert", " and our accountant")]
    assert invoices.ref == "§collection.invoices" and invoices.anchor == "change-invoices"
    assert (invoices.new.file, invoices.new.line) == ("policies/terms/en.md", 3)


def test_the_json_form_says_moved_and_modified_and_round_trips() -> None:
    document = json.loads(json.dumps(moved_and_edited().as_json()))
    invoices = next(s for s in document["sections"] if s["id"] == "invoices")
    assert invoices["kinds"] == ["moved", "modified"]
    assert invoices["old"]["position"] == 3 and invoices["new"]["position"] == 2
    assert invoices["words_inserted"] == 3 and invoices["words_deleted"] == 0
    assert invoices["classification"] is None and invoices["reasons"] == []
    assert "".join(s["text"] for s in invoices["text"] if s["op"] != "delete") == \
        "We share invoice details with Moneybird and our accountant."
    assert document["counts"]["moved"] == 1 and document["classification"] is None
    unchanged = next(s for s in document["sections"] if s["id"] == "sharing")
    assert "text" not in unchanged


def test_a_section_moved_to_another_parent_carries_its_subsections_without_flagging_them() -> None:
    old = resolved("## A {#a}\n\n### A1 {#a1}\n\nOne.\n\n#### A1x {#a1x}\n\nDeep.\n\n## B {#b}\n\nTwo.\n")
    new = resolved("## A {#a}\n\n## B {#b}\n\nTwo.\n\n### A1 {#a1}\n\nOne.\n\n#### A1x {#a1x}\n\nDeep.\n")
    assert kinds(compare(old, new)) == {"a": ("unchanged",), "b": ("unchanged",), "a1": ("moved",), "a1x": ("unchanged",)}


def test_added_removed_and_renamed_sections_keep_their_places() -> None:
    old = policy_of(section("a", "Alpha", "One."), section("b", "Beta", "Two."), section("c", "Gamma", "Three."))
    new = policy_of(section("a", "Alpha!", "One."), section("d", "Delta", "Four, a new text."), section("c", "Gamma", "Three."))
    changeset = compare(old, new)
    assert [(c.id, c.ordered_kinds) for c in changeset.sections] == [
        ("a", ("renamed",)), ("b", ("removed",)), ("d", ("added",)), ("c", ("unchanged",))]
    renamed = changeset.sections[0]
    assert renamed.formatting and [s.text for s in renamed.heading if s.op == "insert"] == ["!"]
    assert rebuild(changeset.sections[1].text, "old") == "Two."  # a removed section stays where it was
    assert changeset.counts() == {"added": 1, "removed": 1, "moved": 0, "renamed": 1, "modified": 0, "unchanged": 1}


def test_sections_whose_ids_come_from_headings_are_matched_by_content() -> None:
    """An imported history derives ids from headings: a renamed and moved section gets a new id."""
    body = "We keep invoices for seven years, as the tax law requires, and delete them afterwards."
    old = policy_of(section("retention-of-invoices", "Retention of invoices", body), section("contact", "Contact", "Write to us."),
                    section("rights", "Rights", "You may object."))
    new = policy_of(section("contact", "Contact", "Write to us."), section("rights", "Rights", "You may object."),
                    section("how-long-we-keep-invoices", "How long we keep invoices", body.replace("seven", "ten")))
    changeset = compare(old, new)
    change = changeset.find("how-long-we-keep-invoices")
    assert change is not None and change.old is not None
    assert change.ordered_kinds == ("moved", "renamed", "modified")
    assert change.matched_by == "similarity" and change.old.id == "retention-of-invoices"
    assert [c.id for c in changeset.sections] == ["contact", "rights", "how-long-we-keep-invoices"]


def test_unrelated_sections_under_new_ids_are_not_paired() -> None:
    old = policy_of(section("mollie", "Mollie", "For payments we use Mollie, a payment provider from the Netherlands."))
    new = policy_of(section("analytics", "Analytics", "We count visits with a self-hosted statistics tool."))
    assert kinds(compare(old, new)) == {"analytics": ("added",), "mollie": ("removed",)}


SPLIT_TEXT = ("We keep account data while your account exists. We keep invoices for seven years because the tax "
              "law requires it. We keep support e-mails for two years and then delete them.")


def test_a_split_section_names_its_source_and_a_merged_one_its_target() -> None:
    first, second = "We keep account data while your account exists.", SPLIT_TEXT.split(". ", 1)[1]
    whole = policy_of(section("retention", "Retention", SPLIT_TEXT), section("contact", "Contact", "Write to us."))
    split = policy_of(section("retention", "Retention", first), section("invoices", "Invoices and e-mails", second),
                      section("contact", "Contact", "Write to us."))
    forward = compare(whole, split)
    added = forward.find("invoices")
    assert added is not None and added.ordered_kinds == ("added",) and added.split_from == "§retention"
    backward = compare(split, whole)
    removed = backward.find("invoices")
    assert removed is not None and removed.ordered_kinds == ("removed",) and removed.merged_into == "§retention"


def test_text_moved_between_sections_is_marked_on_both_ends() -> None:
    paragraph = "Your data is stored on servers in the European Union and never leaves it."
    old = policy_of(section("storage", "Storage", f"We use a host.\n\n{paragraph}"), section("security", "Security", "We encrypt."))
    new = policy_of(section("storage", "Storage", "We use a host."), section("security", "Security", f"We encrypt.\n\n{paragraph}"))
    changeset = compare(old, new)
    storage, security = changeset.find("storage"), changeset.find("security")
    assert storage is not None and security is not None
    assert [s.moved for s in storage.text if s.op == "delete"] == ["§security"]
    assert [s.moved for s in security.text if s.op == "insert"] == ["§storage"]


def test_a_title_change_alone_is_a_change() -> None:
    old = policy_of(section("a", "Alpha", "One."))
    changeset = compare(old, policy_of(section("a", "Alpha", "One."), title="Terms of use"))
    assert changeset.has_changes and not changeset.changes


def test_comparing_different_sites_is_refused() -> None:
    old = policy_of(section("a", "Alpha", "One."))
    other = ResolvedPolicy("terms", "Terms", "shop", "Shop", "en", "en_GB", old.sections)
    with pytest.raises(UsageError, match="cannot compare terms/main/en with terms/shop/en") as raised:
        compare(old, other)
    assert "same site and language" in raised.value.hint


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcdef"), hostile_text, hostile_text), min_size=1, max_size=6, unique_by=lambda x: x[0]),
       st.lists(st.tuples(st.sampled_from("abcdefg"), hostile_text, hostile_text), min_size=1, max_size=6, unique_by=lambda x: x[0]))
def test_every_section_of_both_versions_is_rebuilt_exactly(old_items: list, new_items: list) -> None:
    old = policy_of(*(section(i, h, t) for i, h, t in old_items))
    new = policy_of(*(section(i, h, t) for i, h, t in new_items))
    changeset = compare(old, new)
    json.dumps(changeset.as_json())
    rebuilt_old = {c.old.id: (rebuild(c.heading, "old"), rebuild(c.text, "old")) for c in changeset.sections if c.old}
    rebuilt_new = {c.new.id: (rebuild(c.heading, "new"), rebuild(c.text, "new")) for c in changeset.sections if c.new}
    assert rebuilt_old == {i: (normalise(h), normalise(t).strip("\n")) for i, h, t in old_items}
    assert rebuilt_new == {i: (normalise(h), normalise(t).strip("\n")) for i, h, t in new_items}
    assert all(isinstance(c, SectionChange) for c in changeset.sections)


# --- addendum diff ---------------------------------------------------------------------------------------------

def edit(root: Path, language: str, old: str, new: str) -> None:
    path = root / "policies" / "terms" / f"{language}.md"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_diff_exits_0_on_a_clean_tree_and_1_naming_the_edited_section(run, published_terms: Callable[[int], Path]) -> None:
    root = published_terms(1)
    assert run("--repo", root, "diff", "terms").stdout == "no changes\n"
    edit(root, "en", "Write to", "Please write to")
    result = run("--repo", root, "diff", "terms", "--no-color", expect=1)
    assert result.stdout == (
        "terms main/en: terms@2024-01-01 → working tree\n"
        "  §contact (modified)  policies/terms/en.md:7\n"
        "    [-Write-]{+Please write+} to privacy@example.org.\n"
        "terms shop/en: terms@2024-01-01 → working tree\n"
        "  §contact (modified)  policies/terms/en.md:7\n"
        "    [-Write-]{+Please write+} to shop@example.org.\n"
        "2 of 4 site/language texts changed: 2 modified\n"
    )


def test_diff_names_sites_languages_and_versions_and_speaks_json(run, published_terms: Callable[[int], Path]) -> None:
    root = published_terms(2)
    result = run("--repo", root, "diff", "terms", "terms@2024-01-01", "terms@2024-02-01", "--site", "shop", "--lang", "nl",
                 "--json", expect=1)
    document = json.loads(result.stdout)
    assert document["from"] == {"label": "terms@2024-01-01", "version": "terms@2024-01-01", "effective": "2024-01-01"}
    assert document["compared"] == ["shop/nl"]
    (changeset,) = document["changesets"]
    scope = next(s for s in changeset["sections"] if s["id"] == "scope")
    assert scope["kinds"] == ["modified"]
    assert [s["text"] for s in scope["text"] if s["op"] == "insert"] == [" Revision 2."]
    assert run("--repo", root, "diff", "terms", "2024-01-15", "2024-02-01", "--color", expect=1).stdout.count("\x1b[4;32m") == 4


def test_diff_of_a_policy_never_published_needs_a_from(run, make_repo: Callable[..., Path]) -> None:
    root = make_repo()
    result = run("--repo", root, "diff", "terms", expect=2)
    assert "terms has no published version to compare the working tree with" in result.stderr


def test_diff_refuses_a_revision_that_looks_like_an_option(run, published_terms: Callable[[int], Path], tmp_path: Path) -> None:
    root = published_terms(1)
    result = run("--repo", root, "diff", "terms", "--", f"--output={tmp_path / 'pwned'}", expect=2)
    assert result.stderr.startswith("error: ") and "--output" in result.stderr
    assert not (tmp_path / "pwned").exists()


FORKED_COMPARES = """
import multiprocessing, random
from addendum.compare.sections import compare
from addendum.compare.words import PARALLEL_CHARACTERS
from addendum.policy.model import Location
from addendum.policy.resolve import ResolvedPolicy, ResolvedSection

rng = random.Random(5)
def text():
    return " ".join(rng.choice(["data", "we", "keep", "share", "your", "rights", "consent", "years"]) for _ in range(300))
def version(texts):
    return ResolvedPolicy("terms", "Terms", "main", "Main", "en", "en_GB", tuple(
        ResolvedSection(f"s{n}", f"Section {n}", 2, (f"s{n}",), t, "en", False, False, Location("en.md", n))
        for n, t in enumerate(texts)))
old, new = version([text() for _ in range(20)]), version([text() for _ in range(20)])
assert sum(len(s.text) for s in old.sections + new.sections) >= PARALLEL_CHARACTERS

def job(_):
    return len(compare(old, new).changes)

if __name__ == "__main__":
    expected = job(0)  # the parent's thread pool exists before the fork
    with multiprocessing.get_context("fork").Pool(2) as pool:
        assert pool.map(job, range(2)) == [expected, expected]
"""


def test_heavily_edited_policies_compare_in_forked_processes_too(tmp_path: Path) -> None:
    """The archive forks workers after the parent compared versions: a child must not wait on the parent's threads."""
    done = run_script(tmp_path, FORKED_COMPARES)
    assert done.returncode == 0, done.stderr


def test_diff_compares_every_site_and_language_unless_narrowed_and_its_help_says_so(run, published_terms: Callable[[int], Path]) -> None:
    root = published_terms(2)
    document = json.loads(run("--repo", root, "diff", "terms", "terms@2024-01-01", "latest", "--json", expect=1).stdout)
    assert document["compared"] == ["main/en", "main/nl", "shop/en", "shop/nl"]
    narrowed = json.loads(run("--repo", root, "diff", "terms", "terms@2024-01-01", "latest", "--lang", "nl", "--json", expect=1).stdout)
    assert narrowed["compared"] == ["main/nl", "shop/nl"]
    help_text = " ".join(run("diff", "--help").stdout.split())
    assert "Every site × language is compared unless --site/--lang narrow it" in help_text
    assert "--site SITE Only this site (default: every site either side has)." in help_text
    assert "--lang LANG Only this language (default: every language either side has)." in help_text
