"""Materiality: one fixture per rule, in English and Dutch, each reason asserted verbatim."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from addendum.compare.materiality import (
    DEFAULT_MATERIAL_TAGS,
    DEFAULT_RULES,
    LEVELS,
    Classification,
    Rules,
    SectionEdit,
    classify_section,
    classify_version,
    max_level,
    rules_from_policy,
)
from addendum.config import open_repo
from addendum.errors import ConfigError
from addendum.history.versions import load_version, published_versions
from addendum.policy.model import Policy, load_policy, load_policy_files
from tests_support import MINIMAL_EN, MINIMAL_NL, MINIMAL_POLICY_TOML

PROJECT = Path(__file__).resolve().parents[1]


def classify(old: str, new: str, *, ref: str = "§x", kinds: tuple[str, ...] = ("modified",), tags: tuple[str, ...] = (),
             language: str = "en", old_heading: str = "", new_heading: str = "", rules: Rules = DEFAULT_RULES) -> Classification:
    section_id = ref.rsplit(".", 1)[-1].lstrip("§")
    change = SectionEdit(ref, section_id, frozenset(kinds), old, new, old_heading, new_heading, tags, language)
    return classify_section(change, rules)


def policy_with(materiality: str) -> Policy:
    files = {"policy.toml": MINIMAL_POLICY_TOML + "\n[materiality]\n" + materiality, "en.md": MINIMAL_EN, "nl.md": MINIMAL_NL}
    return load_policy_files("terms", files, "policies/terms")


# --- formatting -------------------------------------------------------------------------------------------

def test_typo_fix_is_formatting() -> None:
    result = classify("Some possiblities include first name and birthdate.",
                      "Some possibilities include first name and birthdate.",
                      ref="§collection.personal-information.required-information")
    assert result == Classification("formatting", (
        'formatting: §collection.personal-information.required-information fixes a typo: "possiblities" → "possibilities"',))


def test_short_word_changed_by_one_letter_is_not_a_typo() -> None:
    assert classify("We never sell your data.", "We never tell your data.").level == "editorial"


@pytest.mark.parametrize(("old", "new"), [
    pytest.param("We use Mollie, for payments", "We use Mollie for payments.", id="punctuation"),
    pytest.param("we use MOLLIE for payments.", "We use Mollie for payments.", id="case"),
    pytest.param("We use Mollie\nfor  payments.", "We use Mollie for payments.", id="whitespace"),
    pytest.param("You’re in “good” hands.", "You're in \"good\" hands.", id="quote-style"),
    pytest.param("We use *Mollie* for payments.", "We use **Mollie** for payments.", id="emphasis"),
    pytest.param("- Mollie\n- Stripe\n", "* Mollie\n* Stripe\n", id="list-markers"),
    pytest.param("See https://www.mollie.com/be/privacy.", "See <https://www.mollie.com/be/privacy>.", id="autolink"),
    pytest.param("See [https://www.mollie.com](https://www.mollie.com).", "See https://www.mollie.com.", id="link-syntax"),
])
def test_formatting_only(old: str, new: str) -> None:
    assert classify(old, new, ref="§financial.mollie") == Classification(
        "formatting", ("formatting: §financial.mollie changes only punctuation/whitespace/case/quotes/markup",))


def test_formatting_in_a_tagged_section_stays_formatting() -> None:
    result = classify("We use Mollie.", "We use Mollie!", ref="§financial.mollie", tags=("recipients", "security"))
    assert result == Classification("formatting", (
        "formatting: §financial.mollie changes only punctuation/whitespace/case/quotes/markup",
        "formatting: §financial.mollie is tagged recipients, but formatting alone is not material",
    ))


# --- editorial --------------------------------------------------------------------------------------------

def test_reworded_sentence_is_editorial() -> None:
    result = classify("We keep your data as long as it is necessary to offer our services.",
                      "We keep your data only while we need it to offer our services.", ref="§protection")
    assert result == Classification("editorial", ("editorial: §protection rewords text",))


def test_capitalised_sentence_starts_and_common_words_are_not_organisations() -> None:
    result = classify("We keep data.", "Therefore we keep data for clients around the world. Furthermore, see our "
                                       "Cookie Policy and the GDPR.")
    assert result == Classification("editorial", ("editorial: §x rewords text",))


def test_a_changed_date_is_not_evidence() -> None:
    result = classify("The privacy policy was last changed on May 19, 2018.",
                      "The privacy policy was last changed on 1 June 2020.", ref="§changes")
    assert result == Classification("editorial", ("editorial: §changes rewords text",))


def test_moved_section_is_editorial() -> None:
    result = classify("We use Mollie.", "We use Mollie.", ref="§other.mollie", kinds=("moved",), tags=("recipients",))
    assert result == Classification("editorial", ("editorial: §other.mollie is moved",))


def test_renamed_heading_is_editorial() -> None:
    result = classify("Text.", "Text.", ref="§sharing", kinds=("renamed",),
                      old_heading="With whom do we share your data?", new_heading="Who receives your data?")
    assert result == Classification("editorial", (
        'editorial: §sharing renames "With whom do we share your data?" → "Who receives your data?"',))


# --- material ---------------------------------------------------------------------------------------------

def test_new_processor_named_is_material() -> None:
    result = classify("We use Google Analytics to see how you use the website.",
                      "We use Google Analytics and Hotjar to see how you use the website.", ref="§statistics.hotjar")
    assert result == Classification("material", ('material: §statistics.hotjar adds organisation "Hotjar"',))


def test_organisation_not_in_any_list_is_recognised_by_its_capitals() -> None:
    result = classify("We count visits ourselves.", "We count visits with Acme Analytics and the help of PlausibleStats.")
    assert result == Classification("material", (
        'material: §x adds organisation "Acme Analytics"', 'material: §x adds organisation "PlausibleStats"'))


def test_changed_retention_period_is_material() -> None:
    result = classify("We keep invoices for 2 years.", "We keep invoices for 5 years.", ref="§retention")
    assert result == Classification("material", ('material: §retention changes a duration: "2 years" → "5 years"',))


def test_same_duration_in_other_words_is_not_evidence() -> None:
    assert classify("We keep logs for one year.", "Logs are kept for 1 year.").level == "editorial"


def test_removed_section_is_material_and_names_what_it_said() -> None:
    result = classify("We use Sentry to track errors. See https://sentry.io/privacy/.", "", ref="§collection.sentry",
                      kinds=("removed",))
    assert result == Classification("material", (
        "material: §collection.sentry is removed",
        'material: §collection.sentry removes organisation "Sentry"',
        'material: §collection.sentry removes URL "https://sentry.io/privacy/"',
    ))


def test_added_section_is_material() -> None:
    result = classify("", "We answer within a month.", ref="§rights.portability", kinds=("added",), tags=("rights",))
    assert result == Classification("material", (
        "material: §rights.portability is added",
        "material: §rights.portability is tagged rights",
        'material: §rights.portability adds duration "a month"',
    ))


def test_added_url_is_material() -> None:
    result = classify("Read our cookie policy.", "Read our cookie policy at https://example.org/cookies.")
    assert result == Classification("material", ('material: §x adds URL "https://example.org/cookies"',))


def test_changed_link_target_is_material_even_when_the_words_stay() -> None:
    result = classify("Read [our policy](https://example.org/a).", "Read [our policy](https://example.org/b).")
    assert result == Classification("material", (
        'material: §x changes a URL: "https://example.org/a" → "https://example.org/b"',))


def test_added_email_address_is_material() -> None:
    result = classify("Write to us.", "Write to privacy@example.org.", ref="§contact")
    assert result == Classification("material", ('material: §contact adds e-mail address "privacy@example.org"',))


def test_added_country_is_material() -> None:
    result = classify("Our advisers are located in Belgium.", "Our advisers are located in Belgium and the United States.")
    assert result == Classification("material", ('material: §x adds country "United States"',))


def test_added_data_category_is_material() -> None:
    result = classify("We ask your name.", "We ask your name and phone number.")
    assert result == Classification("material", ('material: §x adds data category "phone number"',))


def test_number_changed_by_punctuation_alone_is_material() -> None:
    result = classify("We keep logs for 2.5 years.", "We keep logs for 25 years.")
    assert result == Classification("material", ('material: §x changes a duration: "2.5 years" → "25 years"',))


def test_tagged_section_with_an_editorial_change_is_material() -> None:
    result = classify("For our payments we use Mollie to handle your payment.",
                      "Mollie handles the payments you make to us.", ref="§financial.mollie", tags=("recipients",))
    assert result == Classification("material", ("material: §financial.mollie is tagged recipients",))


def test_heading_naming_another_processor_is_material() -> None:
    result = classify("Text.", "Text.", kinds=("renamed",), old_heading="MailChimp", new_heading="Brevo")
    assert result == Classification("material", (
        'material: §x removes organisation "MailChimp"', 'material: §x adds organisation "Brevo"'))


def test_the_shipped_example_revision_is_material_because_the_privacy_shield_went() -> None:
    repo = open_repo(PROJECT)
    first, revision = (load_version(repo, v) for v in published_versions(repo, "privacy"))
    old, new = first.documents["en"].get("mailchimp"), revision.documents["en"].get("mailchimp")
    assert old is not None and new is not None
    change = SectionEdit(new.ref, new.id, frozenset({"modified"}), old.body, new.body, old.heading, new.heading,
                         revision.tags[new.id], "en")
    ref = "§collection.personal-information.mailchimp"
    assert classify_section(change, rules_from_policy(revision)) == Classification("material", (
        f"material: {ref} is tagged recipients, transfers",
        f'material: {ref} changes the transfer safeguard: "Privacy Shield" → "standard contractual clauses"',
        f'material: {ref} removes legal area "EU"',  # the European Union is an area of law, not a country
    ))  # and "the European Commission's" clauses name no recipient: no organisation is added


# --- Dutch ------------------------------------------------------------------------------------------------

def test_dutch_typo_fix_is_formatting() -> None:
    result = classify("Je kan je gegevens laten verwijderen uit onze databses.",
                      "Je kan je gegevens laten verwijderen uit onze databases.", ref="§erasure", language="nl")
    assert result == Classification("formatting", ('formatting: §erasure fixes a typo: "databses" → "databases"',))


def test_dutch_reworded_sentence_is_editorial() -> None:
    result = classify("Denk altijd goed na vooraleer je informatie deelt met andere.",
                      "Denk goed na voor je iets met anderen deelt.", ref="§public-information", language="nl")
    assert result == Classification("editorial", ("editorial: §public-information rewords text",))


def test_dutch_new_processor_is_material() -> None:
    result = classify("Voor betalingen gebruiken we Mollie.", "Voor betalingen gebruiken we Mollie en Stripe.",
                      ref="§financial.mollie", language="nl")
    assert result == Classification("material", ('material: §financial.mollie adds organisation "Stripe"',))


def test_dutch_retention_period_is_material() -> None:
    result = classify("We bewaren je gegevens 30 dagen.", "We bewaren je gegevens 90 dagen.", ref="§retention",
                      language="nl")
    assert result == Classification("material", ('material: §retention changes a duration: "30 dagen" → "90 dagen"',))


def test_dutch_age_limit_is_material() -> None:
    result = classify("Onze websites zijn niet bedoeld voor kinderen jonger dan 16 jaar.",
                      "Onze websites zijn niet bedoeld voor kinderen jonger dan 13 jaar.", ref="§children", language="nl")
    assert result == Classification("material", ('material: §children changes a duration: "16 jaar" → "13 jaar"',))


def test_dutch_data_category_is_material() -> None:
    result = classify("We vragen je e-mailadres.", "We vragen je e-mailadres en telefoonnummer.", language="nl")
    assert result == Classification("material", ('material: §x adds data category "telefoonnummer"',))


def test_dutch_legal_basis_is_material() -> None:
    result = classify("We verwerken je gegevens op basis van je toestemming.",
                      "We verwerken je gegevens op basis van ons gerechtvaardigd belang.", ref="§marketing", language="nl")
    assert result == Classification("material", (
        'material: §marketing removes "toestemming"', 'material: §marketing adds "gerechtvaardigd belang"'))


def test_dutch_country_is_material() -> None:
    result = classify("Je gegevens blijven in de EU.", "Je gegevens gaan ook naar de Verenigde Staten.", language="nl")
    assert result == Classification("material", (
        'material: §x adds country "Verenigde Staten"', 'material: §x removes legal area "EU"'))


# --- rules from policy.toml -------------------------------------------------------------------------------

def test_shipped_policy_needs_no_materiality_table() -> None:
    assert rules_from_policy(load_policy(PROJECT, "privacy")) == DEFAULT_RULES
    assert DEFAULT_RULES.material_tags == DEFAULT_MATERIAL_TAGS


def test_rules_are_read_from_the_materiality_table() -> None:
    rules = rules_from_policy(policy_with(
        'material_tags = ["recipients"]\nextra_terms = { en = ["cookie wall"], nl = ["cookiemuur"] }\n'
        'ignore_terms = ["Example BV"]\norganisations = ["bpost"]\nadded_removed_sections_material = false\n'))
    assert rules == Rules(material_tags=("recipients",), extra_terms={"en": ("cookie wall",), "nl": ("cookiemuur",)},
                          ignore_terms=("Example BV",), organisations=("bpost",), added_removed_sections_material=False)


def test_extra_term_is_material_in_its_language() -> None:
    rules = Rules(extra_terms={"en": ("cookie wall",), "nl": ("cookiemuur",)})
    assert classify("Accept cookies.", "Accept cookies or leave: a cookie wall.", rules=rules) == Classification(
        "material", ('material: §x adds "cookie wall"',))
    assert classify("Aanvaard.", "Aanvaard de cookiemuur.", language="nl", rules=rules) == Classification(
        "material", ('material: §x adds "cookiemuur"',))


def test_ignored_term_is_not_evidence() -> None:
    text = "Questions? Ask Example Labs."
    assert classify("Questions? Ask us.", text).level == "material"
    assert classify("Questions? Ask us.", text, rules=Rules(ignore_terms=("Example Labs",))) == Classification(
        "editorial", ("editorial: §x rewords text",))


def test_known_organisation_counts_even_in_lower_case_form() -> None:
    rules = Rules(organisations=("bpost",))
    assert classify("We ship your order.", "We ship your order with bpost.", rules=rules) == Classification(
        "material", ('material: §x adds organisation "bpost"',))


def test_material_tags_replace_the_defaults() -> None:
    rules = Rules(material_tags=("marketing",))
    assert classify("We use Mollie.", "Mollie is what we use.", tags=("recipients",), rules=rules).level == "editorial"
    assert classify("We mail you.", "We write to you.", tags=("marketing",), rules=rules) == Classification(
        "material", ("material: §x is tagged marketing",))


def test_added_section_can_be_editorial_by_rule() -> None:
    rules = Rules(added_removed_sections_material=False)
    assert classify("", "We are happy to help.", kinds=("added",), rules=rules) == Classification(
        "editorial", ("editorial: §x is added",))
    assert classify("", "We use Sentry.", kinds=("added",), rules=rules) == Classification(
        "material", ('material: §x adds organisation "Sentry"',))


def test_bad_materiality_keys_are_reported_by_name() -> None:
    policy = policy_with('material_tag = ["recipients"]\norganisations = "Mollie"\nextra_terms = { fr = ["mur"] }\n'
                         "added_removed_sections_material = 1\n")
    with pytest.raises(ConfigError) as caught:
        rules_from_policy(policy)
    assert caught.value.message == (
        "policies/terms/policy.toml: unknown key 'materiality.material_tag'\n"
        "  policies/terms/policy.toml: 'materiality.organisations' must be a list of non-empty strings, got 'Mollie'\n"
        "  policies/terms/policy.toml: 'materiality.added_removed_sections_material' must be true or false, got 1\n"
        "  policies/terms/policy.toml: 'materiality.extra_terms.fr': the policy has no language 'fr' (its languages: en, nl)")
    assert caught.value.hint == ("[materiality] accepts: added_removed_sections_material, extra_terms, ignore_terms, "
                                 "material_tags, organisations")


def test_materiality_must_be_a_table() -> None:
    files = {"policy.toml": 'materiality = "strict"\n' + MINIMAL_POLICY_TOML, "en.md": MINIMAL_EN, "nl.md": MINIMAL_NL}
    with pytest.raises(ConfigError, match=r"^policies/terms/policy.toml: 'materiality' must be a table, got 'strict'$"):
        rules_from_policy(load_policy_files("terms", files, "policies/terms"))


# --- levels and versions ----------------------------------------------------------------------------------

def test_levels_are_ordered() -> None:
    assert LEVELS == ("none", "formatting", "editorial", "material")
    assert max_level(["formatting", "material", "editorial"]) == "material"
    assert max_level([]) == "none"


def test_version_takes_the_highest_level_and_lists_each_reason_once() -> None:
    formatting = Classification("formatting", ("formatting: §a changes only punctuation/whitespace/case/quotes/markup",))
    editorial = Classification("editorial", ("editorial: §b rewords text",))
    material = Classification("material", ("material: §c is tagged recipients", 'material: §c adds organisation "Hotjar"'))
    version = classify_version([formatting, editorial, material, Classification("none"), editorial])
    assert version == Classification("material", (
        "material: §c is tagged recipients", 'material: §c adds organisation "Hotjar"',
        "editorial: §b rewords text", "formatting: §a changes only punctuation/whitespace/case/quotes/markup"))
    assert classify_version([]) == Classification("none")


def test_unknown_change_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown change kind"):
        SectionEdit("§x", "x", frozenset({"edited"}))


# --- properties -------------------------------------------------------------------------------------------

# Markdown-like text, with the pieces evidence is made of, and any text at all.
PIECES = [*"abcXYZ019 .,'\"’*_-[]()#:/@\n", "https://", "example.org", "Mollie", "years", "é", "e\u0301"]
markdownish = st.one_of(st.lists(st.sampled_from(PIECES)).map("".join), st.text())
tags = st.lists(st.sampled_from(DEFAULT_MATERIAL_TAGS + ("security", "marketing")), max_size=3).map(tuple)


@given(text=markdownish, heading=markdownish, section_tags=tags, kind=st.sampled_from(["modified", "unchanged"]))
def test_identical_texts_are_none(text: str, heading: str, section_tags: tuple[str, ...], kind: str) -> None:
    result = classify(text, text, kinds=(kind,), tags=section_tags, old_heading=heading, new_heading=heading)
    assert result == Classification("none")


@given(pieces=st.lists(st.tuples(markdownish, st.text(alphabet=" \t\n", max_size=3)), min_size=1), section_tags=tags)
def test_whitespace_only_edits_are_at_most_formatting(pieces: list[tuple[str, str]], section_tags: tuple[str, ...]) -> None:
    old = "".join(text for text, _ in pieces)
    new = "".join(text + space for text, space in pieces)
    result = classify(old, new, tags=section_tags)
    assert result.level in ("none", "formatting"), result.reasons


def test_countries_are_named_in_every_shipped_language_from_cldr() -> None:
    result = classify("Vos données restent en Belgique.", "Vos données sont aussi transférées aux Pays-Bas.", language="fr")
    assert result == Classification("material", (
        'material: §x removes country "Belgique"', 'material: §x adds country "Pays-Bas"'))
    german = classify("Ihre Daten bleiben in Belgien.", "Ihre Daten gehen auch in die Vereinigten Staaten.", language="de")
    assert german.reasons == ('material: §x removes country "Belgien"', 'material: §x adds country "Vereinigten Staaten"'), german


def test_a_replaced_transfer_safeguard_is_one_reason_in_the_readers_language() -> None:
    from addendum.compare.reasons import Reason
    from addendum.i18n import words

    result = classify("We rely on the Privacy Shield.", "We rely on standard contractual clauses.")
    [reason] = result.reasons
    assert isinstance(reason, Reason) and reason.code == "evidence-changed" and reason.kind == "transfer safeguard"
    assert reason == 'material: §x changes the transfer safeguard: "Privacy Shield" → "standard contractual clauses"'
    assert reason.sentence(words("nl")) == "inhoudelijk: §x wijzigt de waarborg voor doorgiften: “Privacy Shield” → “standard contractual clauses”"
    assert reason.sentence(words("fr")) == ("substantielle : §x modifie la garantie encadrant le transfert : "
                                            "« Privacy Shield » → « standard contractual clauses »")
