"""The policy format: files survive load → write byte for byte; the model carries ids, paths and locations."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from addendum.policy.model import load_policy, load_policy_files, parse_document, read_policy_files

ids = st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True)
# Body lines start with a letter so that they never read as Markdown headings or setext underlines.
body_line = st.builds(lambda first, rest, trail: first + rest + trail,
                      st.sampled_from("abcXYZéß"), st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=30),
                      st.sampled_from(["", " ", "  ", "\t"]))
body = st.lists(st.one_of(body_line, st.just("")), max_size=5).map(lambda lines: "".join(f"{line}\n" for line in lines))
heading = st.text(st.characters(whitelist_categories=("L", "N", "Zs"), blacklist_characters="#{}"), min_size=1, max_size=20).map(str.strip).filter(bool)


@st.composite
def documents(draw: st.DrawFn) -> str:
    section_ids = draw(st.lists(ids, unique=True, max_size=6))
    text = draw(body)
    for section_id in section_ids:
        level = draw(st.integers(1, 6))
        spacing = draw(st.sampled_from([" ", "  "]))
        text += f"{'#' * level} {draw(heading)}{spacing}{{#{section_id}}}\n" + draw(body)
    return text


@settings(max_examples=300, deadline=None)
@given(documents())
def test_a_document_is_written_back_byte_for_byte(text: str) -> None:
    document, problems = parse_document(text, "en", "en.md")
    assert not problems
    assert document.text() == text


def test_the_shipped_policy_is_written_back_byte_for_byte(shipped: Path) -> None:
    folder = shipped / "policies" / "privacy"
    files = read_policy_files(folder)
    policy = load_policy_files("privacy", files, "policies/privacy")
    assert policy.files() == {name: text for name, text in files.items() if name.endswith(".md")}


def test_sections_know_their_path_level_and_location(shipped: Path) -> None:
    policy = load_policy(shipped, "privacy")
    hotjar = policy.documents["en"].get("hotjar")
    assert hotjar is not None
    assert hotjar.path == ("collection", "statistics", "hotjar")
    assert hotjar.ref == "§collection.statistics.hotjar"
    assert (hotjar.level, hotjar.heading) == (4, "Hotjar")
    assert str(hotjar.location) == "policies/privacy/en.md:19"
    sharing_nl = policy.documents["nl"].get("sharing")
    assert sharing_nl is not None and sharing_nl.heading == "Met wie delen wij uw gegevens?"
    assert set(policy.sites) == {"selentic", "cavallo", "equihealth"}
    assert "sharing" in policy.sites["cavallo"].overrides["en"].ids
    assert policy.tags["mailchimp"] == ("recipients", "transfers", "marketing")


def test_a_heading_in_a_code_block_is_text(tmp_path: Path) -> None:
    text = "## Code {#code}\n\n```\n# not a heading\n```\n"
    document, problems = parse_document(text, "en", "en.md")
    assert not problems and document.ids == ("code",)
