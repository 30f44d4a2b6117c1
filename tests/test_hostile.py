"""Hostile input: sizes that used to hang the parser, placeholders that build huge values, and TOML that used to
end in a traceback. Every command runs in its own process under a time guard, so that a hang fails the test."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import given, settings
from hypothesis import strategies as st

from addendum.config import SCHEMA, open_repo
from addendum.errors import AddendumError
from addendum.policy.check import EMAIL, check_policy
from addendum.policy.markup import CLOSING_HASHES, HEADING_ID
from addendum.policy.model import load_policy_files
from addendum.policy.resolve import placeholders_in, resolve
from tests_support import MINIMAL_EN, MINIMAL_NL, MINIMAL_POLICY_TOML, run_script

# Each of these answered in well under 2 s on the development machine; the guard only catches a hang.
TIME_GUARD = 30


def addendum(root: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run the real CLI in its own process; a run past TIME_GUARD fails the test instead of stalling the suite."""
    start = time.monotonic()
    try:
        result = subprocess.run([sys.executable, "-m", "addendum", "--repo", str(root), *args], capture_output=True,
                                text=True, timeout=TIME_GUARD, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"addendum {' '.join(args)} ran past {TIME_GUARD} s")
    return result, time.monotonic() - start


def limits(**values: int) -> str:
    return "[limits]\n" + "".join(f"{key} = {value}\n" for key, value in values.items())


def with_config(root: Path, text: str) -> Path:
    (root / "addendum.toml").write_text(text, encoding="utf-8")
    return root


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stdout + result.stderr, result.stderr


def refused(result: subprocess.CompletedProcess[str], where: str, key: str) -> None:
    """Exit 2 with one error naming the file and line, the limit, and how to raise it."""
    no_traceback(result)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith(f"error: {where}"), result.stderr
    assert f"(limits.{key})" in result.stderr and f"raise it with [limits] {key} = … in addendum.toml" in result.stderr


# ---------------------------------------------------------------------------------------------------------
# 1. Sizes

def heading(chars: int) -> str:
    return "\n## " + "word " * (chars // 5) + "{#long}\n\nText.\n"


def sections(count: int) -> str:
    return "".join(f"\n## Section {n} {{#s{n}}}\n\nText {n}.\n" for n in range(count))


@pytest.mark.parametrize("command", ["check", "render"])
def test_a_heading_of_100000_characters_is_refused_at_its_line(make_repo, command: str) -> None:
    root = make_repo({"en.md": MINIMAL_EN + heading(100_000)})
    result, _ = addendum(root, command, "terms")
    refused(result, "policies/terms/en.md:11: a heading line of 100,010 characters; at most 500", "heading_chars")


def test_a_heading_of_a_million_characters_is_refused_by_the_file_size(make_repo) -> None:
    root = make_repo({"en.md": MINIMAL_EN + heading(1_000_000)})
    result, _ = addendum(root, "check", "terms")
    refused(result, "policies/terms/en.md: 1,000,148 bytes; a policy file is at most 1,000,000", "file_bytes")


def test_with_the_limits_raised_a_heading_of_a_million_characters_is_read_in_linear_time(make_repo) -> None:
    root = with_config(make_repo({"en.md": MINIMAL_EN + heading(1_000_000)}), limits(file_bytes=10_000_000, heading_chars=2_000_000))
    result, _ = addendum(root, "check", "terms")
    no_traceback(result)
    assert result.returncode == 0 and "warning: policies/terms/en.md:11: long: no Dutch (nl) text" in result.stdout
    # Headings without an id, spelled to make the id pattern retry every position (it used to take minutes).
    hostile = "\n## a" + " " * 500_000 + "b\n\n## " + "{#" * 200_000 + "\n\n## " + "{#a} " * 100_000 + "x\n"
    (root / "policies" / "terms" / "en.md").write_text(MINIMAL_EN + hostile, encoding="utf-8")
    result, _ = addendum(root, "check", "terms")
    no_traceback(result)
    assert result.returncode == 1 and result.stdout.count("has no id") == 3
    assert "error: policies/terms/en.md:11: heading 'a                                                           …' has no id" in result.stdout


@pytest.mark.parametrize("command", ["check", "render"])
def test_a_ten_megabyte_word_is_refused_by_the_file_size(make_repo, command: str) -> None:
    root = make_repo({"en.md": MINIMAL_EN + "\n" + "a" * 10_000_000 + "\n"})
    result, _ = addendum(root, command, "terms")
    refused(result, "policies/terms/en.md: 10,000,131 bytes; a policy file is at most 1,000,000", "file_bytes")


@pytest.mark.parametrize("size", [30_000, 600_000])
def test_a_long_word_is_checked_in_linear_time(make_repo, size: int) -> None:
    # The e-mail pattern of `check` retried every position of the word to its end: 30 KB took 10 s.
    root = make_repo({"en.md": MINIMAL_EN + "\nWrite to " + "a" * size + " or " + "b." * (size // 4) + "@x\n"})
    result, _ = addendum(root, "check", "terms")
    no_traceback(result)
    assert result.returncode == 0 and result.stdout.endswith("terms: 0 error(s), 0 warning(s)\n"), result.stdout


def test_a_ten_megabyte_word_is_checked_and_rendered_once_the_limit_is_raised(make_repo) -> None:
    root = with_config(make_repo({"en.md": MINIMAL_EN + "\n" + "a" * 10_000_000 + "@example\n"}), limits(file_bytes=20_000_000))
    result, _ = addendum(root, "check", "terms")
    no_traceback(result)
    assert result.returncode == 0, result.stdout
    rendered, _ = addendum(root, "render", "terms", "--format", "text")
    assert rendered.returncode == 0 and len(rendered.stdout) > 10_000_000


@pytest.mark.parametrize("command", ["check", "render"])
def test_more_sections_than_the_limit_are_refused_at_the_first_one_too_many(make_repo, command: str) -> None:
    root = make_repo({"en.md": MINIMAL_EN + sections(5_000)})
    result, _ = addendum(root, command, "terms")
    # The two sections of MINIMAL_EN, then 1,998 more: the 2,001st heading is the one refused.
    refused(result, "policies/terms/en.md:8003: more than 2,000 headings in one file", "sections")


def test_fifty_thousand_sections_are_refused_before_markdown_is_parsed(make_repo) -> None:
    root = with_config(make_repo({"en.md": MINIMAL_EN + sections(50_000)}), limits(file_bytes=10_000_000))
    result, _ = addendum(root, "check", "terms")
    refused(result, "policies/terms/en.md:8003: more than 2,000 headings", "sections")


def test_with_the_limits_raised_twenty_thousand_sections_are_checked_in_linear_time(make_repo) -> None:
    # Every rule looked each section up by scanning the document: 20,000 sections took over 150 s.
    root = with_config(make_repo({"en.md": MINIMAL_EN + sections(20_000)}), limits(sections=100_000))
    result, _ = addendum(root, "check", "terms")
    no_traceback(result)
    assert result.returncode == 0 and result.stdout.endswith("terms: 0 error(s), 20000 warning(s)\n")


def test_the_limits_are_read_from_addendum_toml_and_checked_there(make_repo) -> None:
    root = make_repo({"en.md": MINIMAL_EN + heading(600)})
    result, _ = addendum(root, "check", "terms")
    refused(result, "policies/terms/en.md:11: a heading line of 610 characters; at most 500", "heading_chars")
    assert addendum(with_config(root, limits(heading_chars=1000)), "check", "terms")[0].returncode == 0
    result, _ = addendum(with_config(root, limits(heading_chars=0)), "check", "terms")
    assert result.returncode == 2 and result.stderr.startswith(
        "error: addendum.toml: config value 'limits.heading_chars': expected at least 1 and at most 2,147,483,648, got 0")


@pytest.mark.parametrize("command", ["check", "render"])
def test_a_placeholder_that_builds_a_hundred_million_characters_is_an_error_at_its_line(make_repo, command: str) -> None:
    root = make_repo({"en.md": MINIMAL_EN.replace("{{ site.contact.email }}", "{{ 'a' * 100000000 }}")})
    result, _ = addendum(root, command, "terms")
    no_traceback(result)
    assert result.returncode == (1 if command == "check" else 2)
    assert ("error: policies/terms/en.md:9: contact: placeholder {{ 'a' * 100000000 }} cannot be filled: '*' would make a value "
            "of 100,000,000 characters or more; the limit is 100,000 (limits.placeholder_chars)\n"
            "  fill it with less, or raise it with [limits] placeholder_chars = … in addendum.toml") in result.stdout + result.stderr


# Each expression, filled by the policy sandbox in a process of its own: (expression, what it gives or raises).
SANDBOX_CASES = [
    ("{{ site.name }}: {{ site.contact.email|upper }}", "Main: PRIVACY@EXAMPLE.ORG"),
    ("{% for x in ['a', 'b'] %}{{ loop.index }}{{ x }} {% endfor %}", "1a 2b "),
    ("{% if site.name == 'Main' %}yes{% endif %} {{ 'ab' * 3 }} {{ 2 ** 10 }} {{ '%s-%d' % ('a', 3) }} {{ site.name ~ '!' }}",
     "yes ababab 1024 a-3 Main!"),
    ("{{ 'a' * 100000000 }}", "PlaceholderLimit: '*' would make a value of 100,000,000 characters or more"),
    ("{{ [site.name] * 100000000 }}", "PlaceholderLimit: '*' would make a value of 700,000,000 characters or more"),
    ("{{ 'a'.ljust(100000000) }}", "PlaceholderLimit: ljust() would make a value of 100,000,000"),
    ("{{ 'a'.center(100000000) }}", "PlaceholderLimit: center() would make a value of 100,000,000"),
    ("{{ 'a'.zfill(100000000) }}", "PlaceholderLimit: zfill() would make a value of 100,000,000"),
    ("{{ 'a'.replace('a', 'a' * 99999) * 2 }}", "PlaceholderLimit: '*' would make a value of 199,998"),
    ("{{ '{:>100000000}'.format('a') }}", "SecurityError: access to attribute 'format' of 'str' object is unsafe."),
    ("{{ ','.join(range(100000)|map('string')) }}", "PlaceholderLimit: join() would make a value of 100,004"),
    ("{{ range(100000)|join(',') }}", "PlaceholderLimit: the join filter would make a value of 100,003"),
    ("{{ 'a'|center(100000000) }}", "PlaceholderLimit: the center filter would make a value of 100,000,000"),
    ("{{ '%100000000s'|format('a') }}", "PlaceholderLimit: the format filter would make a value of 100,000,021"),
    ("{{ '%100000000s' % 'a' }}", "PlaceholderLimit: '%' would make a value of 100,000,012"),
    ("{{ '%*s' % (100000000, 'a') }}", "PlaceholderLimit: a '*' width in a % format"),
    ("{{ 2 ** 100000000 }}", "PlaceholderLimit: an integer of more than 4,214 digits"),
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "PlaceholderLimit: more than 1,000,000 steps"),
    ("{% for i in range(100000) %}{{ site.name }} and more text{% endfor %}",
     "PlaceholderLimit: the section's placeholders make it more than 100,000 characters longer"),
    ("{% set a = 'a' * 60000 %}{% set a = a ~ a %}", "PlaceholderLimit: '~' would make a text of 120,000"),
    ("{% set a %}{{ site.name }}{% endset %}", "PlaceholderRefused: {% set … %}…{% endset %} cannot be used in policy text"),
    ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "PlaceholderRefused: {% macro %} cannot be used in policy text"),
    ("{{ lipsum(100000) }}", "UndefinedError: 'lipsum' is undefined"),
    ("{{ (1).to_bytes(1000000000, 'big') }}", "SecurityError: access to attribute 'to_bytes' of 'int' object is unsafe."),
]
SANDBOX_SCRIPT = """\
import json, sys
from addendum.policy.resolve import PlaceholderError, context_for, fill_placeholders
from addendum.policy.model import load_policy_files
sys.path.insert(0, {tests!r})
from tests_support import MINIMAL_EN, MINIMAL_NL, MINIMAL_POLICY_TOML
policy = load_policy_files("terms", {{"policy.toml": MINIMAL_POLICY_TOML, "en.md": MINIMAL_EN, "nl.md": MINIMAL_NL}}, "p")
context = context_for(policy, "main", "en")
answers = {{}}
for expression in {expressions!r}:
    try:
        answers[expression] = fill_placeholders(expression, context)
    except PlaceholderError as error:
        answers[expression] = f"{{type(error.cause).__name__}}: {{error.cause}}"
print(json.dumps(answers))
"""


@pytest.fixture(scope="module")
def sandbox_answers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    script = SANDBOX_SCRIPT.format(tests=str(Path(__file__).parent), expressions=[e for e, _ in SANDBOX_CASES])
    result = run_script(tmp_path_factory.mktemp("sandbox"), script)
    assert result.returncode == 0, result.stderr
    answers: dict[str, str] = json.loads(result.stdout)
    return answers


@pytest.mark.parametrize(("expression", "answer"), SANDBOX_CASES, ids=[e[:40] for e, _ in SANDBOX_CASES])
def test_the_sandbox_bounds_what_a_placeholder_may_build(sandbox_answers: dict[str, str], expression: str, answer: str) -> None:
    assert sandbox_answers[expression].startswith(answer)


# Every pattern of policy/ and ids.py, on lines made to make a backtracking engine retry every position.
LONG_LINES_SCRIPT = """\
import time
from addendum.ids import DATE_PATTERN, ID_PATTERN, LANGUAGE_PATTERN, VERSION_PATTERN
from addendum.policy.check import EMAIL
from addendum.policy.markup import CLOSING_HASHES, HEADING_ID, INVISIBLE, SOURCE_LINE
from addendum.policy.resolve import placeholders_in
n = 1_000_000
lines = ["a" * n, "a" + " " * n + "b", "{#" * (n // 2), "{#}" * (n // 3) + "x", "{#a} " * (n // 5), " #" * (n // 2) + "x",
         "a@" * (n // 2), "a@" + "a." * (n // 2) + "!", "{{" * (n // 2), "{%" * (n // 2) + "}}", "\\r" * n, "0" * n + "@",
         "a-" * (n // 2) + "@" + "1" * n]
start = time.perf_counter()
for line in lines:
    HEADING_ID.match(line)
    CLOSING_HASHES.sub("", line)
    EMAIL.findall(line)
    INVISIBLE.findall(line)
    SOURCE_LINE.findall(line)
    placeholders_in(line)
    for pattern in (ID_PATTERN, LANGUAGE_PATTERN, VERSION_PATTERN, DATE_PATTERN):
        pattern.fullmatch(line)
        pattern.search(line)
print(round(time.perf_counter() - start, 2))
"""


def test_no_pattern_backtracks_on_a_long_line(tmp_path: Path) -> None:
    result = run_script(tmp_path, LONG_LINES_SCRIPT)  # 60 s timeout; the patterns take about a second in all
    assert result.returncode == 0, result.stderr
    assert float(result.stdout) < 20


OLD_HEADING_ID = re.compile(r"^(?P<heading>.*?)[ \t]*\{#(?P<id>[^}]*)\}[ \t]*$")
OLD_CLOSING_HASHES = re.compile(r"[ \t]+#+[ \t]*$")
OLD_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
OLD_PLACEHOLDER = re.compile(r"\{\{.*?\}\}|\{%.*?%\}")
tricky = st.lists(st.sampled_from(["{", "}", "#", "{#", " ", "\t", "a", "b-", "@", ".", "co", "%", "{{", "}}", "{%", "%}", "\n"]),
                  max_size=16).map("".join)


@settings(max_examples=1000, deadline=None)
@given(tricky)
def test_the_linear_patterns_find_what_the_backtracking_ones_found(text: str) -> None:
    old, new = OLD_HEADING_ID.match(text), HEADING_ID.match(text)
    assert (old and old.groupdict()) == (new and new.groupdict())
    assert OLD_CLOSING_HASHES.sub("", text) == CLOSING_HASHES.sub("", text)
    assert OLD_EMAIL.findall(text) == EMAIL.findall(text)
    for line in text.split("\n"):  # placeholders are found line by line
        assert OLD_PLACEHOLDER.findall(line) == placeholders_in(line)


# ---------------------------------------------------------------------------------------------------------
# 2. TOML of any shape

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)  # a file read as UTF-8 has no surrogates
POLICY_KEYS = ["id", "default_language", "languages", "default_site", "notice_days", "title", "controller", "sites",
               "tags", "check", "locales", "materiality", "supervisory_authority", "en", "nl", "name", "email", "address",
               "contact", "pending", "main", "shop", "regular_review_phrases", "scope", "contact.email"]
CONFIG_KEYS = sorted({part for option in SCHEMA for part in option.key.split(".")})
keys = st.sampled_from(POLICY_KEYS + CONFIG_KEYS) | text
scalars = (text | st.sampled_from(["en", "nl", "main", "terms", "privacy@example.org", "{{ site.name }}", "nl_BE", "none"])
           | st.integers(-2**63, 2**63 - 1) | st.integers(min_value=-2**70, max_value=2**70) | st.floats() | st.booleans()
           | st.datetimes() | st.dates() | st.times())
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4), max_leaves=16)
documents = st.dictionaries(keys, values, max_size=6)


@st.composite
def changed(draw: st.DrawFn, start: str) -> dict[str, Any]:
    """A valid document with a few values replaced or added at any depth: what reaches the schema's inner checks."""
    document: dict[str, Any] = tomllib.loads(start)
    for _ in range(draw(st.integers(1, 3))):
        table = document
        while table and draw(st.booleans()):
            key = draw(st.sampled_from(sorted(table)))
            if not isinstance(table[key], dict):
                break
            table = table[key]
        table[draw(st.sampled_from(sorted(table) or ["x"]) | keys)] = draw(values)
    return document


def load_terms(policy_toml: str) -> None:
    """Load, check and resolve a policy with this policy.toml: only our own errors may come out."""
    try:
        policy = load_policy_files("terms", {"policy.toml": policy_toml, "en.md": MINIMAL_EN, "nl.md": MINIMAL_NL}, "policies/terms")
        check_policy(policy)
        for site in policy.sites:
            for language in policy.languages:
                resolve(policy, site, language)
    except AddendumError:
        pass


@settings(max_examples=1000, deadline=None)
@given(documents | changed(MINIMAL_POLICY_TOML))
def test_any_toml_document_as_policy_toml_gives_a_policy_or_our_error(document: dict[str, Any]) -> None:
    load_terms(tomli_w.dumps(document))


def spliced(start: str) -> st.SearchStrategy[str]:
    return st.builds(lambda insert, at, cut: start[:at] + insert + start[at + cut:], text, st.integers(0, len(start)), st.integers(0, 8))


@settings(max_examples=1000, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=200) | spliced(MINIMAL_POLICY_TOML))
def test_any_text_as_policy_toml_gives_a_policy_or_our_error(policy_toml: str) -> None:
    load_terms(policy_toml)


CONFIG_DOCUMENT = tomli_w.dumps({"archive": {"jobs": 2}, "limits": {"sections": 100}, "notify": {"smtp": {"port": 587}}})


def open_config(root: Path, config: str) -> None:
    (root / "addendum.toml").write_text(config, encoding="utf-8")
    with contextlib.suppress(AddendumError):
        assert open_repo(root).limits.sections >= 1


# One folder for every example: a fixture per example would be rebuilt a thousand times.
CONFIG_ROOT = Path(tempfile.mkdtemp(prefix="addendum-config-fuzz-"))


@settings(max_examples=1000, deadline=None)
@given(documents | changed(CONFIG_DOCUMENT))
def test_any_toml_document_as_addendum_toml_gives_settings_or_our_error(document: dict[str, Any]) -> None:
    open_config(CONFIG_ROOT, tomli_w.dumps(document))


@settings(max_examples=1000, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=200) | spliced(CONFIG_DOCUMENT))
def test_any_text_as_addendum_toml_gives_settings_or_our_error(config: str) -> None:
    open_config(CONFIG_ROOT, config)


DEEP = "x = " + "[" * 10_000 + "]" * 10_000 + "\n"
HUGE_INTEGER = "notice_days = " + "9" * 5_000 + "\n"
POLICY_TOML_CASES: dict[str, tuple[Callable[[str], str], str]] = {
    "nested arrays": (lambda toml: toml + "\n[check]\n" + DEEP, "policies/terms/policy.toml:24: values nested more than 16 levels deep"),
    "nested tables": (lambda toml: toml.replace('name = "Shop"', 'name = "Shop"\n' + "a" + ".a" * 40 + " = 1"),
                      "policies/terms/policy.toml:1: 'sites.shop.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a' is nested more than 16 levels deep"),
    "5,000 digits": (lambda toml: HUGE_INTEGER + toml, "policies/terms/policy.toml:1: an integer with thousands of digits; TOML integers are 64-bit"),
    "a hex integer past 64 bits": (lambda toml: "notice_days = 0x" + "f" * 5_000 + "\n" + toml,
                                   "policies/terms/policy.toml:1: 'notice_days' is an integer of about 6021 digits, outside the 64-bit range"),
    "notice_days of a lifetime": (lambda toml: "notice_days = 9223372036854775807\n" + toml,
                                  "policies/terms/policy.toml:1: notice_days is 9223372036854775807; at most 3650 (ten years)"),
}


@pytest.mark.parametrize("case", POLICY_TOML_CASES)
def test_policy_toml_that_used_to_raise_a_traceback_is_a_user_error(make_repo, case: str) -> None:
    change, message = POLICY_TOML_CASES[case]
    root = make_repo({"policy.toml": change(MINIMAL_POLICY_TOML)})
    result, _ = addendum(root, "render", "terms")
    no_traceback(result)
    assert result.returncode == 2 and result.stderr.startswith(f"error: {message}"), result.stderr
    checked, _ = addendum(root, "check", "terms")
    no_traceback(checked)
    assert checked.returncode == 1 and f"error: {message}" in checked.stdout


@pytest.mark.parametrize(("config", "message"), [
    (DEEP, "addendum.toml:1: values nested more than 16 levels deep"),
    ("[archive]\njobs = " + "9" * 5_000 + "\n", "addendum.toml:2: an integer with thousands of digits; TOML integers are 64-bit"),
    ("[notify.smtp]\nport = 0x" + "f" * 100 + "\n", "addendum.toml: 'notify.smtp.port' is an integer of about 121 digits"),
    ("[notify]\nrate_per_second = nan\n", "addendum.toml: config value 'notify.rate_per_second': expected a finite number, got nan"),
], ids=["nested", "5,000 digits", "hex", "nan"])
def test_addendum_toml_that_used_to_raise_a_traceback_is_a_user_error(make_repo, config: str, message: str) -> None:
    result, _ = addendum(with_config(make_repo(), config), "check", "terms")
    no_traceback(result)
    assert result.returncode == 2 and result.stderr.startswith(f"error: {message}"), result.stderr
