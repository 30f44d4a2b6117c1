"""Start-up stays light: `addendum --help` imports none of the heavy libraries, English needs no catalogue."""

from __future__ import annotations

import subprocess
import sys

from babel.messages.pofile import read_po

from addendum.i18n import LOCALE_DIR, SOURCE_LANGUAGE, catalogue_path
from conftest import PROJECT

HEAVY = ("weasyprint", "sqlalchemy", "git", "fontTools", "feedgen", "starlette", "uvicorn", "docx", "lxml")


def imported_by(*args: str) -> set[str]:
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "addendum", *args], cwd=PROJECT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return {line.split("|")[-1].strip().split(".")[0] for line in done.stderr.splitlines() if line.startswith("import time:")}


def test_help_imports_none_of_the_heavy_libraries() -> None:
    assert not imported_by("--help") & set(HEAVY)


def test_check_imports_none_of_the_heavy_libraries() -> None:
    assert not imported_by("check", "privacy") & set(HEAVY)


def test_the_english_catalogue_only_mirrors_the_message_ids() -> None:
    """English is read from the message ids themselves, so its catalogue must say nothing else."""
    with catalogue_path(LOCALE_DIR, SOURCE_LANGUAGE).open("rb") as file:
        catalogue = read_po(file)
    rewordings = [message.id for message in catalogue if message.id and message.string and message.string != message.id]
    assert rewordings == []
