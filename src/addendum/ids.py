"""Strict patterns for every id that reaches a path, a git command or a URL."""

from __future__ import annotations

import re
from datetime import date

from addendum.errors import UsageError

# Bounded and anchored (\A…\Z: `$` would also accept a trailing newline), so each takes a few steps on any input;
# ASCII digits only (`\d` matches every script's digits, which have no place in a path or a tag).
ID_PATTERN = re.compile(r"\A[a-z0-9][a-z0-9-]{0,62}\Z")
LANGUAGE_PATTERN = re.compile(r"\A[a-z]{2,3}(-[A-Z]{2})?\Z")
VERSION_PATTERN = re.compile(r"\A(?P<policy>[a-z0-9][a-z0-9-]{0,62})@(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})"
                             r"(?:\.(?P<n>[2-9]|[1-9][0-9]{1,3}))?\Z")
DATE_PATTERN = re.compile(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")


def is_id(value: str) -> bool:
    return bool(ID_PATTERN.fullmatch(value))


def require_id(value: str, what: str) -> str:
    if not is_id(value):
        raise UsageError(
            f"{what} {value!r} is not a valid id",
            "ids are lowercase letters, digits and hyphens, starting with a letter or digit (e.g. privacy)",
        )
    return value


def require_language(value: str) -> str:
    if not LANGUAGE_PATTERN.fullmatch(value):
        raise UsageError(f"language {value!r} is not a language code", "use a code like en, nl or pt-BR")
    return value


def parse_date(value: str, what: str = "date") -> date:
    if not DATE_PATTERN.fullmatch(value):
        raise UsageError(f"{what} {value!r} is not a date", "write dates as YYYY-MM-DD, e.g. 2018-05-19")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{what} {value!r} is not a real calendar date", "write dates as YYYY-MM-DD, e.g. 2018-05-19") from None
