"""Materiality on pathological text: a megabyte-long word or line is classified in well under a second."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests_support import run_script

MEGABYTE = 1_000_000
LIMIT_SECONDS = 1.0

# Each text replaces "Short text." in a modified section. A pattern that retries every start position (an e-mail
# address pattern in a long word, `{{.*?}}` on a line of openers) takes minutes on these.
CASES = {
    "one long word": "'a' * MEGABYTE",
    "one long word before an @": "'a' * MEGABYTE + '@'",
    "a line of {{ without }}": "'{{' * (MEGABYTE // 2)",
    "a line of {% without %}": "'{%' * (MEGABYTE // 2)",
}

SCRIPT = """
import json, time
from addendum.compare.materiality import SectionEdit, classify_section

def edit(new):
    return SectionEdit("§x", "x", frozenset({"modified"}), "Short text.", new)

classify_section(edit("Short text, reworded."))  # reads the word lists and builds the matchers: not timed
MEGABYTE = %d
started = time.perf_counter()
result = classify_section(edit(%s))
print(json.dumps({"seconds": time.perf_counter() - started, "level": result.level, "reasons": result.reasons}))
"""


@pytest.mark.parametrize("text", CASES.values(), ids=CASES.keys())
def test_a_megabyte_of_one_word_or_line_is_classified_in_under_a_second(tmp_path: Path, text: str) -> None:
    # In a fresh interpreter, so a pattern that backtracks for minutes hits run_script's timeout instead of
    # stalling the suite.
    result = run_script(tmp_path, SCRIPT % (MEGABYTE, text))
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["level"] == "editorial"
    assert found["reasons"] == ["editorial: §x rewords text"]
    assert found["seconds"] < LIMIT_SECONDS, found["seconds"]
