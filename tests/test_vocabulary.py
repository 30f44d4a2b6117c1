"""Materiality's word lists: the shipped files load, each language has every id, and the verdicts come from them."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest
import tomli_w

from addendum.compare.materiality import VOCABULARY_DIR, VOCABULARY_TABLES, SectionEdit, classify_section, load_vocabulary
from addendum.errors import ConfigError
from tests_support import run_script

PROJECT = Path(__file__).resolve().parents[1]
SHIPPED_LANGUAGES = ("de", "en", "fr", "nl")


def edit(old: str, new: str) -> SectionEdit:
    return SectionEdit("§collection", "collection", frozenset({"modified"}), old, new)


def copy_of_vocabulary(tmp_path: Path) -> Path:
    folder = tmp_path / "vocabulary"
    shutil.copytree(VOCABULARY_DIR, folder)
    return folder


def test_the_shipped_word_lists_load_and_every_language_file_applies_by_default() -> None:
    vocabulary = load_vocabulary()
    assert vocabulary.languages == SHIPPED_LANGUAGES
    assert {"Google Analytics", "MailChimp"} <= vocabulary.organisations  # common.toml
    assert {"the", "de"} <= vocabulary.function_words  # en.toml and nl.toml
    assert {"email address", "e-mailadres"} <= vocabulary.data_categories["e-mail address"]
    assert vocabulary.number_words["2"] == {"two", "twee", "deux", "zwei"}
    dutch = load_vocabulary(("nl",))
    assert dutch.languages == ("nl",)
    assert "de" in dutch.function_words and "the" not in dutch.function_words
    assert "MailChimp" in dutch.organisations
    assert load_vocabulary(("nl", "xx")).languages == ("nl",)  # a language without a file adds nothing


@pytest.mark.parametrize("table", VOCABULARY_TABLES)
def test_every_language_file_names_the_same_ids(table: str) -> None:
    ids = {language: set(getattr(load_vocabulary((language,)), table)) for language in SHIPPED_LANGUAGES}
    assert ids["en"], table
    for language in SHIPPED_LANGUAGES:
        assert ids["en"] == ids[language], f"{table}: only in en {ids['en'] - ids[language]}, only in {language} {ids[language] - ids['en']}"


def test_each_language_names_all_twelve_months() -> None:
    for language in SHIPPED_LANGUAGES:
        months = {month.casefold() for month in load_vocabulary((language,)).months}
        assert len(months) >= 12, (language, sorted(months))


def test_the_data_files_are_in_the_package_folder_so_the_wheel_ships_them() -> None:
    package = PROJECT / "src" / "addendum"
    assert VOCABULARY_DIR.resolve().is_relative_to(package)
    assert sorted(p.name for p in VOCABULARY_DIR.glob("*.toml")) == ["common.toml", "de.toml", "en.toml", "fr.toml", "nl.toml"]


def test_a_data_category_added_to_a_data_file_makes_its_addition_material(tmp_path: Path) -> None:
    change = edit("We keep your e-mail address.", "We keep your e-mail address and your shoe size.")
    shipped = classify_section(change)
    assert shipped.level == "editorial", shipped
    folder = copy_of_vocabulary(tmp_path)
    english = tomllib.loads((folder / "en.toml").read_text(encoding="utf-8"))
    english["data_categories"]["body measurements"] = ["shoe size"]
    (folder / "en.toml").write_text(tomli_w.dumps(english), encoding="utf-8")
    edited = classify_section(change, vocabulary=load_vocabulary(directory=folder))
    assert edited.reasons == ('material: §collection adds data category "shoe size"',)


def test_an_organisation_taken_out_of_a_data_file_is_no_longer_recognised(tmp_path: Path) -> None:
    # At the start of a sentence, so only the list can make it a name, not its capital letter.
    change = edit("We send the newsletter.", "We send the newsletter. Mailchimp delivers it.")
    assert classify_section(change).reasons == ('material: §collection adds organisation "Mailchimp"',)
    folder = copy_of_vocabulary(tmp_path)
    common = tomllib.loads((folder / "common.toml").read_text(encoding="utf-8"))
    common["organisations"].remove("MailChimp")
    (folder / "common.toml").write_text(tomli_w.dumps(common), encoding="utf-8")
    edited = classify_section(change, vocabulary=load_vocabulary(directory=folder))
    assert edited.level == "editorial", edited


def test_every_mistake_in_a_data_file_is_reported_at_once_with_the_file_and_key(tmp_path: Path) -> None:
    folder = copy_of_vocabulary(tmp_path)
    (folder / "nl.toml").write_text('function_words = "de"\nverbs = []\n[data_categories]\nname = ["email address"]\n',
                                    encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_vocabulary(directory=folder)
    nl = folder / "nl.toml"
    assert caught.value.message == (
        f"{nl}: unknown key 'verbs'\n"
        f"  {nl}: 'function_words' must be a list of non-empty strings, got 'de'\n"
        f"  {nl}: 'data_categories.name' lists \"email address\", which en.toml lists under 'data_categories.e-mail address'")


def test_a_folder_without_common_word_lists_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="common.toml: no such word-list file"):
        load_vocabulary(directory=tmp_path)


def test_importing_materiality_reads_no_word_list(tmp_path: Path) -> None:
    result = run_script(tmp_path, "from addendum.compare import materiality as m\n"
                                  "print(m.load_vocabulary.cache_info().currsize)\n"
                                  "m.classify_section(m.SectionEdit('§x', 'x', frozenset({'modified'}), 'a b', 'a c'))\n"
                                  "print(m.load_vocabulary.cache_info().currsize)\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "1"]
