"""Strict patterns for every id that reaches a path, a git command or a URL."""

from __future__ import annotations

import re
from datetime import date

from addendum.errors import UsageError

ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
LANGUAGE_PATTERN = re.compile(r"^[a-z]{2,3}(-[A-Z]{2})?$")
VERSION_PATTERN = re.compile(r"^(?P<policy>[a-z0-9][a-z0-9-]{0,62})@(?P<date>\d{4}-\d{2}-\d{2})(?:\.(?P<n>[2-9]|[1-9][0-9]{1,3}))?$")
DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")


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
