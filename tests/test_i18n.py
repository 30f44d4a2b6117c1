"""The product's own words: gettext catalogues complete in every shipped language, and no English in other outputs."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from email import message_from_bytes, policy
from email.message import Message
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir

from addendum import i18n
from conftest import PROJECT
from tests_support import FIELD, assert_no_english, catalogue, git_in, message_key

LANGUAGES = ("nl", "fr", "de")



def extracted() -> set[tuple[str | None, str]]:
    """What `pybabel extract -F babel.cfg` finds in the Python code and the templates."""
    from babel.messages.frontend import parse_mapping_cfg

    with open(PROJECT / "babel.cfg", encoding="utf-8") as config:
        method_map, options_map = parse_mapping_cfg(config)
    found = set()
    for _file, _line, message, _comments, context in extract_from_dir(str(PROJECT), method_map, options_map):
        found.add(message_key(message, context))
    return found



def test_the_shipped_catalogues_are_english_dutch_french_and_german() -> None:
    assert i18n.shipped_languages() == ("de", "en", "fr", "nl")


@pytest.mark.parametrize("language", ["en", *LANGUAGES])
def test_every_extracted_message_is_in_the_shipped_catalogue_and_no_other(language: str) -> None:
    shipped = set(catalogue(language))
    found = extracted()
    assert found - shipped == set(), "run `make messages` and translate the new messages"
    assert shipped - found == set(), "these messages are no longer used: run `make messages`"


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_message_is_translated_with_the_same_fields(language: str) -> None:
    for key, message in catalogue(language).items():
        strings = message.string if isinstance(message.string, tuple) else (message.string,)  # type: ignore[attr-defined]
        ids = message.id if isinstance(message.id, tuple) else (message.id,)  # type: ignore[attr-defined]
        assert all(strings) and not message.fuzzy, f"{language}: {key} is not translated"  # type: ignore[attr-defined]
        wanted = set(FIELD.findall(ids[-1])) | set(FIELD.findall(ids[0]))
        for string in strings:
            assert set(FIELD.findall(string)) <= wanted | {"%(num)d"}, f"{language}: {key} uses fields the text does not give"
            assert set(FIELD.findall(string)) >= set(FIELD.findall(ids[0])) - {"%(num)d"}, f"{language}: {key} drops a field"



TERMS = {
    "en": ("Terms of use", "Introduction text.", "Scope", "These terms apply to {{ site.name }}.", "Contact", "Write to {{ site.contact.email }}."),
    "nl": ("Gebruiksvoorwaarden", "Inleidende tekst.", "Toepassing", "Deze voorwaarden gelden voor {{ site.name }}.", "Contact", "Schrijf naar {{ site.contact.email }}."),
    "fr": ("Conditions d'utilisation", "Texte d'introduction.", "Champ d'application", "Les présentes conditions régissent {{ site.name }}.",
           "Nous joindre", "Écrivez-nous à {{ site.contact.email }}."),
    "de": ("Nutzungsbedingungen", "Einleitender Absatz.", "Geltungsbereich", "Diese Bedingungen gelten für {{ site.name }}.",
           "Kontakt", "Schreiben Sie an {{ site.contact.email }}."),
}
REVISED = {"en": "They also cover the mobile app.", "nl": "Ze gelden ook voor de mobiele app.",
           "fr": "Elles couvrent aussi l'application mobile.", "de": "Sie gelten auch für die mobile App."}


def terms_policy(languages: tuple[str, ...]) -> dict[str, str]:
    """A terms policy in `languages` with two sites."""
    toml = ['id = "terms"', 'kind = "terms"', f'default_language = "{languages[0]}"', f"languages = {list(languages)!r}".replace("'", '"'),
            'default_site = "main"', "", "[title]"]
    toml += [f'{lang} = "{TERMS.get(lang, TERMS["en"])[0]}"' for lang in languages]
    toml += ["", "[controller]", 'name = "Acme SAS"', 'address = "1 rue de la Paix, 75002 Paris"', 'email = "legal@example.org"',
             'country = "FR"', "", "[options]", 'apply = ["object", "terminate", "continued-use"]', "", "[sites.main]", 'name = "Acme"', 'contact = { email = "legal@example.org" }', "",
             "[sites.shop]", 'name = "Acme Shop"', 'contact = { email = "shop@example.org" }', ""]
    files = {"policy.toml": "\n".join(toml)}
    for lang in languages:
        _title, intro, scope, scope_text, contact, contact_text = TERMS.get(lang, TERMS["en"])
        files[f"{lang}.md"] = f"{intro}\n\n## {scope} {{#scope}}\n\n{scope_text}\n\n## {contact} {{#contact}}\n\n{contact_text}\n"
    return files


@pytest.fixture
def terms_repo(make_repo: Callable[..., Path], run: Callable[..., object], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """A git repository with a terms policy in the given languages, published twice (the second revises §scope)."""
    for name, value in {"GIT_AUTHOR_NAME": "Test Editor", "GIT_AUTHOR_EMAIL": "editor@example.org",
                        "GIT_COMMITTER_NAME": "Test Editor", "GIT_COMMITTER_EMAIL": "editor@example.org"}.items():
        monkeypatch.setenv(name, value)

    def build(languages: tuple[str, ...]) -> Path:
        root = make_repo({"en.md": None, "nl.md": None, **terms_policy(languages)})
        (root / "addendum.toml").write_text('[archive]\nbase_url = "https://example.org/legal/history/"\n\n'
                                            '[notify]\nfrom_address = "legal@example.org"\nunsubscribe_url = "https://example.org/unsubscribe"\n',
                                            encoding="utf-8")
        (root / ".gitignore").write_text(".addendum/\n", encoding="utf-8")
        git_in(root, "init", "-q")
        git_in(root, "add", "-A")
        git_in(root, "commit", "-q", "-m", "Terms")
        summaries = [a for lang in languages[1:] for a in (f"--summary-{lang}", f"1 ({lang}).")]  # no English word in another language's summary
        run("--repo", root, "publish", "terms", "--effective", "2026-01-01", "--published", "2025-12-01",
            "--summary", "Version 1.", *summaries, "--material")
        for lang in languages:
            path = root / "policies" / "terms" / f"{lang}.md"
            scope_text = TERMS.get(lang, TERMS["en"])[3]
            path.write_text(path.read_text(encoding="utf-8").replace(scope_text, f"{scope_text} {REVISED.get(lang, REVISED['en'])}"), encoding="utf-8")
        git_in(root, "commit", "-q", "-am", "Revise the scope")
        summaries = [a for lang in languages[1:] for a in (f"--summary-{lang}", f"2 ({lang}).")]
        run("--repo", root, "publish", "terms", "--effective", "2026-12-31", "--published", "2026-11-30",
            "--summary", "Version 2.", *summaries, "--material")
        return root

    return build


def notices(run: Callable[..., object], root: Path, languages: tuple[str, ...], tmp_path: Path) -> Iterator[tuple[str, Message]]:
    """Every notice of the second version as previewed .eml files, one subscriber per site and language."""
    rows = ["email,name,language,sites,audience,consent_source"]
    rows += [f"{lang}-{site}@example.org,Alice Martin,{lang},{site},subscriber,test" for lang in languages for site in ("main", "shop")]
    (tmp_path / "subscribers.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    run("--repo", root, "subscribers", "import", tmp_path / "subscribers.csv")
    preview = tmp_path / "preview"
    run("--repo", root, "notify", "terms", "terms@2026-12-31", "--preview", preview)
    for path in sorted(preview.glob("*.eml")):
        yield path.name, message_from_bytes(path.read_bytes(), policy=policy.default)


def text_of(message: Message) -> str:
    parts = [str(message["Subject"])]
    for part in message.walk():
        if part.get_content_maintype() == "text":
            parts.append(part.get_payload(decode=True).decode("utf-8"))  # type: ignore[union-attr]
    return "\n".join(parts)


@pytest.mark.slow
def test_every_output_in_every_shipped_language_has_no_english_product_word(run, terms_repo, tmp_path: Path) -> None:
    languages = ("en", "nl", "fr", "de")
    root = terms_repo(languages)
    for lang in LANGUAGES:
        for fmt in ("html", "md", "text"):
            for site in ("main", "shop"):
                rendered = run("--repo", root, "render", "terms", "--site", site, "--lang", lang, "--format", fmt).stdout
                assert_no_english(rendered, lang, f"render --format {fmt}")
        redline = tmp_path / f"redline-{lang}.html"
        run("--repo", root, "redline", "terms", "terms@2026-01-01", "terms@2026-12-31", "--lang", lang, "-o", redline)
        assert_no_english(redline.read_text(encoding="utf-8"), lang, "redline")
        for fmt in ("md", "html"):
            assert_no_english(run("--repo", root, "changelog", "terms", "--lang", lang, "--format", fmt).stdout, lang, f"changelog {fmt}")
    run("--repo", root, "archive")
    history = root / "history" / "terms"
    for lang in LANGUAGES:
        for page in [history / f"index-{lang}.html", history / f"changelog-{lang}.html", *history.glob(f"*/*/{lang}/*.html")]:
            if page.is_file():
                assert_no_english(page.read_text(encoding="utf-8"), lang, str(page.relative_to(root)))
    seen = set()
    for name, message in notices(run, root, languages, tmp_path):
        language = str(message["Content-Language"])
        seen.add(language)
        if language != "en":
            assert_no_english(text_of(message), language, name)
    assert seen == set(languages)


def test_language_and_country_names_come_from_cldr() -> None:
    assert [i18n.own_name(code) for code in ("en", "nl", "fr", "de")] == ["English", "Nederlands", "Français", "Deutsch"]
    assert i18n.words("nl").language_name("en") == "Engels"
    assert i18n.words("fr").country_name("BE") == "Belgique"
    assert i18n.words("de").country_name("NL") == "Niederlande"


def test_plural_forms_follow_the_language() -> None:
    nl, fr = i18n.words("nl"), i18n.words("fr")
    assert nl.ngettext("%(num)d word deleted", "%(num)d words deleted", 1) == "1 woord geschrapt"
    assert nl.ngettext("%(num)d word deleted", "%(num)d words deleted", 2) == "2 woorden geschrapt"
    assert fr.ngettext("%(num)d word deleted", "%(num)d words deleted", 0) == "0 mot supprimé"  # French counts 0 as one
    assert fr.ngettext("%(num)d word deleted", "%(num)d words deleted", 2) == "2 mots supprimés"


def _po(language: str, messages: dict[str, str]) -> str:
    entries = "".join(f'\nmsgid "{msgid}"\nmsgstr "{msgstr}"\n' for msgid, msgstr in messages.items())
    return f'msgid ""\nmsgstr ""\n"Language: {language}\\n"\n"Content-Type: text/plain; charset=UTF-8\\n"\n{entries}'


def test_a_language_without_catalogue_renders_english_words_and_check_warns_once_per_file(run, make_repo) -> None:
    toml = terms_policy(("en", "pl"))["policy.toml"].replace('languages = ["en", "pl"]', 'languages = ["en", "pl"]')
    root = make_repo({"nl.md": None, "policy.toml": toml, "pl.md": "Wstęp.\n\n## Zakres {#scope}\n\nTe warunki.\n\n## Kontakt {#contact}\n\nNapisz.\n",
                      "en.md": terms_policy(("en",))["en.md"]})
    checked = run("--repo", root, "check", "terms", expect=None)
    warnings = [line for line in checked.stdout.splitlines() if "no catalogue" in line]
    assert len(warnings) == 1, checked.stdout
    assert warnings[0].startswith("warning: policies/terms/pl.md:1:") and "Polish (pl)" in warnings[0]
    assert "locale/pl/LC_MESSAGES/addendum.po" in checked.stdout
    page = run("--repo", root, "render", "terms", "--lang", "pl", "--format", "text").stdout
    assert "Draft: this text has not been published" in page  # English product words, not a blank or an error


def test_a_repository_catalogue_adds_a_language_and_rewords_a_built_in_one(run, make_repo) -> None:
    root = make_repo({"nl.md": None, "policy.toml": terms_policy(("en", "pl"))["policy.toml"],
                      "pl.md": "Wstęp.\n\n## Zakres {#scope}\n\nTe warunki.\n\n## Kontakt {#contact}\n\nNapisz.\n",
                      "en.md": terms_policy(("en",))["en.md"]})
    assert "Draft: this text" in run("--repo", root, "render", "terms", "--lang", "pl", "--format", "text").stdout
    polish = root / "locale" / "pl" / "LC_MESSAGES" / "addendum.po"
    polish.parent.mkdir(parents=True)
    polish.write_text(_po("pl", {"Draft: this text has not been published": "Projekt: ten tekst nie został opublikowany"}), encoding="utf-8")
    assert "Projekt: ten tekst nie został opublikowany" in run("--repo", root, "render", "terms", "--lang", "pl", "--format", "text").stdout
    assert "no catalogue" not in run("--repo", root, "check", "terms", expect=None).stdout
    english = root / "locale" / "en" / "LC_MESSAGES" / "addendum.po"
    english.parent.mkdir(parents=True)
    english.write_text(_po("en", {"Draft: this text has not been published": "Draft: not yet in force"}), encoding="utf-8")
    assert "Draft: not yet in force" in run("--repo", root, "render", "terms", "--lang", "en", "--format", "text").stdout


def test_a_broken_repository_catalogue_is_an_error_naming_the_file(run, make_repo) -> None:
    root = make_repo()
    dutch = root / "locale" / "nl" / "LC_MESSAGES" / "addendum.po"
    dutch.parent.mkdir(parents=True)
    dutch.write_text('msgid "Draft: this text has not been published"\nmsgstr "Ontwerp"\nnot a keyword\n', encoding="utf-8")
    failed = run("--repo", root, "render", "terms", "--lang", "nl", expect=2)
    assert "locale/nl/LC_MESSAGES/addendum.po: not a valid gettext catalogue" in failed.stderr
    dutch.write_text(_po("nl", {"Last changed on %(date)s": "Gewijzigd op %(datum)s"}), encoding="utf-8")
    failed = run("--repo", root, "render", "terms", "--lang", "nl", expect=2)
    assert "the translation of 'Last changed on %(date)s' cannot be filled" in failed.stderr


def test_a_french_terms_notice_speaks_of_options_not_personal_data(run, terms_repo, tmp_path: Path) -> None:
    root = terms_repo(("fr", "en"))
    assert run("--repo", root, "check", "terms").stdout == "terms: 0 error(s), 0 warning(s)\n"
    found = {name: message for name, message in notices(run, root, ("fr", "en"), tmp_path)}
    french = [m for name, m in found.items() if "-fr-" in name]
    assert len(french) == 2  # one per site
    assert sorted(str(m["Subject"]).split(" : ")[0] for m in french) == ["Acme", "Acme Shop"]  # the site, not "Acme SAS"
    for message in french:
        text = " ".join(text_of(message).split())
        assert str(message["Subject"]).endswith(" : modifications de notre document « Conditions d'utilisation » à partir du 31 décembre 2026")
        assert "Bonjour Alice Martin," in text
        assert "VOS POSSIBILITÉS" in text and "avant le 31 décembre 2026 en écrivant à" in text
        assert "données à caractère personnel" not in text and "personal data" not in text and "réclamation" not in text
        assert "Paris, France" in text
        assert_no_english(text_of(message), "fr", "French terms notice")
    english = " ".join(text_of(next(m for name, m in found.items() if "-en-" in name)).split())
    assert "YOUR OPTIONS" in english and "personal data" not in english and "YOUR RIGHTS" not in english


def test_the_shipped_dutch_notice_names_the_authority_and_country_in_dutch(run, shipped: Path, tmp_path: Path) -> None:
    git_in(shipped, "init", "-q")
    (tmp_path / "subscribers.csv").write_text("email,name,language,sites,audience,consent_source\n"
                                              "an@example.org,An Peeters,nl,selentic,subscriber,test\n", encoding="utf-8")
    run("--repo", shipped, "subscribers", "import", tmp_path / "subscribers.csv")
    run("--repo", shipped, "notify", "privacy", "privacy@2020-09-01", "--preview", tmp_path / "preview")
    [path] = (tmp_path / "preview").glob("*.eml")
    text = text_of(message_from_bytes(path.read_bytes(), policy=policy.default))
    flat = " ".join(text.split())
    assert "Sint-Pietersstraat 139, 3630 Leut, België" in flat and "Belgium" not in flat
    assert "de Gegevensbeschermingsautoriteit: https://www.gegevensbeschermingsautoriteit.be" in flat
    assert "U kunt zich op elk moment verzetten tegen de verwerking van uw persoonsgegevens voor direct marketing" in flat
    assert "MailChimp wijzigt de waarborg voor doorgiften: “Privacy Shield” → “standard contractual clauses”" in flat
    assert_no_english(text, "nl", "the shipped Dutch notice")


def test_check_warns_that_the_shipped_text_names_the_renamed_privacy_commission(run, shipped: Path) -> None:
    out = run("--repo", shipped, "check", "privacy").stdout
    assert "warning: policies/privacy/en.md:121: complaint: names the Privacy Commission, which was renamed in 2018" in out
    assert "warning: policies/privacy/nl.md:57: complaint: names the Privacycommissie, which was renamed in 2018" in out


def test_kind_rights_and_options_are_checked(run, make_repo) -> None:
    toml = terms_policy(("en",))["policy.toml"].replace('kind = "terms"', 'kind = "contract"')
    toml += '\n[rights]\napply = ["access", "object", "fly"]\n'
    out = run("--repo", make_repo({"nl.md": None, "policy.toml": toml, "en.md": terms_policy(("en",))["en.md"]}), "check", "terms", expect=1).stdout
    assert "kind 'contract' is not a kind of document" in out
    assert "rights.apply names 'fly'" in out
    assert "rights.apply lists object but object_to names no processing one may object to" in out


def without_untranslated(html: str) -> str:
    """A page without the policy's own sections that are not translated (marked lang="en", shown as such)."""
    return re.sub(r'<(section|div|tr)\b[^>]*\blang="en"[^>]*>.*?</\1>', " ", html, flags=re.DOTALL)


def test_the_shipped_dutch_redline_changelog_and_archive_page_have_no_english_product_word(run, shipped: Path, tmp_path: Path) -> None:
    redline = tmp_path / "redline.html"
    run("--repo", shipped, "redline", "privacy", "privacy@2018-05-19", "latest", "--lang", "nl", "--prepared-by", "Ann", "-o", redline)
    page = redline.read_text(encoding="utf-8")
    assert "wijzigt de waarborg voor doorgiften: “Privacy Shield” → “standard contractual clauses”" in page
    # The reasons quote the policy's own words: the Dutch text of §mailchimp is not translated yet (it is marked).
    assert_no_english(without_untranslated(page).replace("“Privacy Shield” → “standard contractual clauses”", ""), "nl", "Dutch redline")
    for fmt in ("md", "html"):
        changelog = run("--repo", shipped, "changelog", "privacy", "--lang", "nl", "--format", fmt).stdout
        # The editor's reasons are the ledger's own words (recorded in English), not the product's.
        changelog = re.sub(r"Reden van de redacteur(</dt><dd>|: )[^\n]*", " ", changelog)
        assert_no_english(changelog.replace("“Privacy Shield” → “standard contractual clauses”", ""), "nl", f"Dutch changelog ({fmt})")
    run("--repo", shipped, "archive", "privacy")
    archived = (shipped / "history/privacy/2020-09-01/selentic/nl/index.html").read_text(encoding="utf-8")
    assert_no_english(without_untranslated(archived), "nl", "Dutch archive page")
    assert_no_english((shipped / "history/privacy/index-nl.html").read_text(encoding="utf-8"), "nl", "Dutch archive index")
