"""`addendum check`: every rule has a failing fixture whose message is asserted verbatim, and exit codes 0/1/2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests_support import MINIMAL_EN, MINIMAL_NL, MINIMAL_POLICY_TOML


def check_output(run, root: Path, expect: int, *args: str) -> str:
    return run("--repo", root, "check", "terms", *args, expect=expect).stdout


def test_clean_policy_exits_0(run, make_repo) -> None:
    out = check_output(run, make_repo(), 0)
    assert out == "terms: 0 error(s), 0 warning(s)\n"


RULES = [
    pytest.param(
        {"en.md": MINIMAL_EN + "\n## Extra {#extra}\n\nMore.\n"}, 0,
        "warning: policies/terms/en.md:11: extra: no Dutch (nl) text; readers in nl see the en text, marked as such\n"
        "  translate it into policies/terms/nl.md with the same id {#extra}",
        id="missing-translation"),
    pytest.param(
        {"nl.md": MINIMAL_NL + "\n## Alleen NL {#only-nl}\n\nTekst.\n"}, 0,
        "warning: policies/terms/nl.md:11: only-nl: not in the default language (en)\n"
        "  add it to policies/terms/en.md, or check the id for a typo",
        id="missing-in-default"),
    pytest.param(
        {"nl.md": MINIMAL_NL.replace("## Contact {#contact}", "### Contact {#contact}")}, 0,
        "warning: policies/terms/nl.md:7: contact: placed at scope.contact (level 3) but at contact (level 2) in policies/terms/en.md\n"
        "  give the section the same heading level and parent in every language",
        id="structure-mismatch"),
    pytest.param(
        {"sites/shop/en.md": "## Nope {#nope}\n\nText.\n"}, 1,
        "error: policies/terms/sites/shop/en.md:1: nope: site shop overrides a section that the policy does not have\n"
        "  use the id of an existing section (contact, preamble, scope, …)",
        id="unknown-override"),
    pytest.param(
        {"sites/shop/en.md": "## Scope {#scope}\n\nShop scope.\n"}, 0,
        "warning: policies/terms/sites/shop/en.md:1: scope: site shop overrides this section in en but not in nl; "
        "nl readers of shop see the en override\n  add the section to policies/terms/sites/shop/nl.md",
        id="override-missing-language"),
    pytest.param(
        {"en.md": MINIMAL_EN.replace("{{ site.contact.email }}", "{{ site.contact.phone }}")}, 1,
        "error: policies/terms/en.md:9: contact: placeholder {{ site.contact.phone }} is not defined for site main\n"
        "  define it under [sites.main] in policy.toml, or list it in that site's pending",
        id="undefined-placeholder"),
    pytest.param(
        {"policy.toml": MINIMAL_POLICY_TOML.replace('name = "Shop"', 'name = "Shop"\npending = ["contact.phone"]')}, 0,
        "warning: policies/terms/policy.toml:19: site shop does not provide contact.phone yet; the text shows a visible placeholder there\n"
        "  set contact.phone under [sites.shop] and remove it from pending",
        id="pending-variable"),
    pytest.param(
        {"en.md": MINIMAL_EN.replace("These terms", "These\u202e terms")}, 1,
        "error: policies/terms/en.md:5: scope: invisible character U+202E at column 6\n"
        "  delete it: bidi controls and zero-width characters can hide text from a reviewer",
        id="invisible-character"),
    pytest.param(
        {"en.md": MINIMAL_EN.replace("Write to", "Write to jan.peeters@gmail.com or")}, 1,
        "error: policies/terms/en.md:9: contact: e-mail address jan.peeters@gmail.com is not a declared contact\n"
        "  personal data must not enter git: use a placeholder such as {{ site.contact.email }} and declare the address in policy.toml",
        id="undeclared-email"),
    pytest.param(
        {"nl.md": MINIMAL_NL.replace("Schrijf naar", "Het is belangrijk om regelmatig deze pagina te bekijken. Schrijf naar")}, 0,
        "warning: policies/terms/nl.md:9: contact: asks readers to check the page regularly ('regelmatig deze pagina'); "
        "a notice of change must be active, not left to the reader (WP260 rev.01 ¶29)\n"
        "  say instead how readers will be told of material changes (e.g. by e-mail before they take effect)",
        id="regular-review"),
    pytest.param(
        {"policy.toml": MINIMAL_POLICY_TOML + '\n[tags]\nretention = ["retention"]\n'}, 1,
        "error: policies/terms/policy.toml:24: retention: tags name section 'retention', which no language has\n"
        "  use an existing section id, or remove the line",
        id="unknown-tagged-section"),
]


@pytest.mark.parametrize(("files", "exit_code", "message"), RULES)
def test_rule(run, make_repo, files: dict[str, str], exit_code: int, message: str) -> None:
    out = check_output(run, make_repo(files), exit_code)
    assert message in out


@pytest.mark.parametrize(("files", "message"), [
    pytest.param({"en.md": MINIMAL_EN + "\n## Again {#scope}\n\nDup.\n"},
                 "error: policies/terms/en.md:11: scope: section id 'scope' is used twice (first at line 3)\n"
                 "  give each section its own id; the same id in another language file is its translation", id="duplicate-id"),
    pytest.param({"en.md": "## Who We Are\n\nText.\n"},
                 "error: policies/terms/en.md:1: heading 'Who We Are' has no id\n"
                 "  end the heading with a stable id, e.g. '## Who We Are {#who-we-are}'", id="missing-id"),
    pytest.param({"nl.md": "## Gegevens delen {#gegevens delen}\n"},
                 "error: policies/terms/nl.md:1: gegevens delen: section id 'gegevens delen' is not a valid id\n"
                 "  ids are lowercase letters, digits and hyphens, e.g. {#sharing}", id="invalid-id"),
    pytest.param({"en.md": "Scope\n=====\n"},
                 "error: policies/terms/en.md:1: underlined (setext) headings are not supported\n"
                 "  write the heading as '## Heading {#id}'", id="setext"),
    pytest.param({"policy.toml": MINIMAL_POLICY_TOML.replace('default_site = "main"', 'default_site = main')},
                 "error: policies/terms/policy.toml:4: invalid TOML: Invalid value (at line 4, column 16)\n"
                 "  fix the syntax at that line (strings need quotes, tables [brackets])", id="toml-syntax"),
    pytest.param({"policy.toml": MINIMAL_POLICY_TOML.replace('default_site = "main"', 'default_site = "nowhere"')},
                 "error: policies/terms/policy.toml:4: default_site 'nowhere' is not one of the sites\n"
                 "  use one of ['main', 'shop']", id="unknown-default-site"),
    pytest.param({"nl.md": None},
                 "error: policies/terms/policy.toml:3: languages lists 'nl' but policies/terms/nl.md does not exist\n"
                 "  create nl.md or remove 'nl' from languages", id="missing-language-file"),
])
def test_an_unloadable_policy_is_reported_like_any_problem_exit_1(run, make_repo, files: dict[str, str], message: str) -> None:
    result = run("--repo", make_repo(files), "check", "terms", expect=1)
    assert message in result.stdout
    assert result.stdout.endswith("; its files cannot be loaded: the other rules run once these are fixed\n")
    assert result.stderr == ""


def test_load_errors_are_in_the_json_report_with_file_line_and_severity(run, make_repo) -> None:
    root = make_repo({"en.md": "## Who We Are\n\nText.\n", "nl.md": None})
    document = json.loads(run("--repo", root, "check", "terms", "--json", expect=1).stdout)
    report = document["terms"]
    assert (report["loaded"], report["errors"], report["warnings"]) == (False, 2, 0)
    assert [(p["severity"], p["file"], p["line"]) for p in report["problems"]] == [
        ("error", "policies/terms/policy.toml", 3), ("error", "policies/terms/en.md", 1)]
    assert json.loads(run("--repo", make_repo(), "check", "terms", "--json").stdout)["terms"]["loaded"] is True


def test_every_policy_is_checked_when_one_cannot_be_loaded(run, make_repo) -> None:
    root = make_repo({"policy.toml": MINIMAL_POLICY_TOML.replace('default_site = "main"', "default_site = main")})
    make_repo(policy_id="cookies", files={"policy.toml": MINIMAL_POLICY_TOML.replace('id = "terms"', 'id = "cookies"')})
    out = run("--repo", root, "check", expect=1).stdout
    assert "cookies: 0 error(s), 0 warning(s)\n" in out
    assert "terms: 1 error(s), 0 warning(s); its files cannot be loaded" in out


def test_an_unknown_policy_is_the_only_exit_2_and_prints_no_report(run, make_repo) -> None:
    result = run("--repo", make_repo(), "check", "terms", "nope", "--json", expect=2)
    assert result.stdout == ""
    assert result.stderr.startswith("error: no policy 'nope' in policies/ — known policies: terms\n")


def test_other_commands_refuse_an_unloadable_policy_and_point_at_check(run, make_repo) -> None:
    root = make_repo({"en.md": "## Who We Are\n\nText.\n"})
    stderr = run("--repo", root, "render", "terms", expect=2).stderr
    assert stderr == ("error: policies/terms/en.md:1: heading 'Who We Are' has no id\n"
                      "  end the heading with a stable id, e.g. '## Who We Are {#who-we-are}'\n"
                      "1 error(s); run `addendum check POLICY` for every problem\n")


def test_every_toml_schema_error_is_reported_at_once(run, make_repo) -> None:
    broken = MINIMAL_POLICY_TOML.replace('default_site = "main"', 'default_site = "x"\nnotice_days = "thirty"\ncolour = 1')
    stdout = run("--repo", make_repo({"policy.toml": broken}), "check", "terms", expect=1).stdout
    assert "default_site 'x' is not one of the sites" in stdout
    assert "'notice_days' must be int, got 'thirty'" in stdout
    assert "unknown key 'colour'" in stdout


def test_strict_turns_warnings_into_exit_1(run, make_repo) -> None:
    root = make_repo({"en.md": MINIMAL_EN + "\n## Extra {#extra}\n\nMore.\n"})
    check_output(run, root, 0)
    check_output(run, root, 1, "--strict")


def test_json_output_is_one_document(run, make_repo) -> None:
    root = make_repo({"en.md": MINIMAL_EN.replace("Write to", "Write to a@b.org or")})
    document = json.loads(check_output(run, root, 1, "--json"))
    assert document["terms"]["errors"] == 1
    problem = document["terms"]["problems"][0]
    assert (problem["file"], problem["line"], problem["section"], problem["rule"]) == ("policies/terms/en.md", 9, "contact", "undeclared-email")


def test_no_repository_is_exit_2(run, tmp_path: Path) -> None:
    result = run("--repo", tmp_path, "check", expect=2)
    assert f"error: {tmp_path.resolve()} is not a policy repository: it has no addendum.toml" in result.stderr


def test_unknown_policy_is_exit_2(run, make_repo) -> None:
    result = run("--repo", make_repo(), "check", "nope", expect=2)
    assert result.stderr == ("error: no policy 'nope' in policies/ — known policies: terms\n"
                             "  check the spelling, or create policies/nope/policy.toml (see docs/format.md)\n")


def test_debug_shows_the_traceback(run, make_repo) -> None:
    result = run("--repo", make_repo(), "--debug", "check", "nope", expect=1)
    assert result.exc_info is not None and result.exc_info[0].__name__ == "UsageError"


def test_shipped_policy_warns_about_what_the_source_lacks(run, shipped: Path) -> None:
    out = run("--repo", shipped, "check", "privacy").stdout
    assert "warning: policies/privacy/en.md:3: collection: no Dutch (nl) text" in out
    assert "warning: policies/privacy/policy.toml:30: site cavallo does not provide contact.email yet" in out
    assert "warning: policies/privacy/policy.toml:35: site equihealth does not provide contact.address yet" in out
    assert "policies/privacy/nl.md:69: changes: asks readers to check the page regularly ('regelmatig deze pagina')" in out
    assert "privacy: 0 error(s)" in out


def test_a_placeholder_that_fails_when_evaluated_is_a_problem_not_a_crash(run, make_repo) -> None:
    out = check_output(run, make_repo({"en.md": MINIMAL_EN.replace("{{ site.contact.email }}", "{{ 1 / 0 }}")}), 1)
    assert "error: policies/terms/en.md:9: contact: placeholder {{ 1 / 0 }} cannot be filled: division by zero" in out


@pytest.mark.parametrize(("toml", "message"), [
    pytest.param(MINIMAL_POLICY_TOML.replace('name = "Shop"', 'name = "Shop"\npending = ["contact.email"]'),
                 "site shop: contact.email is both set and listed as pending", id="pending-and-set"),
    pytest.param(MINIMAL_POLICY_TOML.replace('name = "Shop"', 'name = "Shop"\npending = ["name.first"]'),
                 "site shop: pending 'name.first', but name is a value, not a table", id="pending-under-a-value"),
    pytest.param(MINIMAL_POLICY_TOML + '\n[locales]\nnl = "nl-XX-foo"\n',
                 "'locales.nl': 'nl-XX-foo' is not a locale Babel knows", id="unknown-locale"),
    pytest.param(MINIMAL_POLICY_TOML + '\n[check]\nregular_review_phrases = { en = "the" }\n',
                 "'check.regular_review_phrases.en' must be a list of phrases, got 'the'", id="phrases-not-a-list"),
    pytest.param(MINIMAL_POLICY_TOML.replace('en = "Terms"', 'en = "Terms\\nBcc: x@example.org"'),
                 "'title.en' contains a line break or control character", id="title-with-line-break"),
])
def test_policy_toml_values_of_the_wrong_shape_are_refused(run, make_repo, toml: str, message: str) -> None:
    assert message in run("--repo", make_repo({"policy.toml": toml}), "check", "terms", expect=1).stdout
