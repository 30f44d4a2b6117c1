"""What kind of document a policy is, and what its notices may promise readers: rights, options, the authority.

policy.toml declares `kind` (privacy, terms, cookies, subprocessors or other; privacy when absent). Only a
document about personal data (privacy, cookies, subprocessors) names data-protection rights and the authority
to complain to; terms speak of the reader's options instead. Rights are data, not a promise the product makes:

    [rights]
    apply = ["access", "rectification", "erasure", "restriction", "portability", "withdraw-consent", "object"]
    object_to = ["legitimate-interests", "direct-marketing"]   # GDPR Art. 21: the processing one may object to

    [options]                                                  # kind = "terms"
    apply = ["object", "terminate", "continued-use"]           # continued-use: the terms say it means acceptance

The supervisory authority is [supervisory_authority] (name and url per language), else the one of
[controller] country in authorities.toml.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from addendum.errors import Problem
from addendum.policy.model import Policy

KINDS = ("privacy", "terms", "cookies", "subprocessors", "other")
PERSONAL_DATA_KINDS = frozenset({"privacy", "cookies", "subprocessors"})
RIGHTS = ("access", "rectification", "erasure", "restriction", "portability", "withdraw-consent", "object")
# Without [rights]: what GDPR Arts. 15-18 give every data subject, and the withdrawal of a consent (Art. 7(3)).
# Objection (Art. 21) and portability (Art. 20) depend on the legal basis, so a policy must state them.
DEFAULT_RIGHTS = ("access", "rectification", "erasure", "restriction", "withdraw-consent")
OBJECTION_BASES = ("legitimate-interests", "public-task", "direct-marketing")
OPTIONS = ("object", "terminate", "continued-use")
AUTHORITIES = Path(__file__).resolve().parent / "authorities.toml"


@dataclass(frozen=True)
class Authority:
    name: str
    url: str


@dataclass(frozen=True)
class Promises:
    """What a notice of this policy tells readers they may do."""

    kind: str
    rights: tuple[str, ...]
    object_to: tuple[str, ...]
    options: tuple[str, ...]

    @property
    def personal_data(self) -> bool:
        return self.kind in PERSONAL_DATA_KINDS


def _list(table: Any, key: str) -> list[Any]:
    value = table.get(key, []) if isinstance(table, Mapping) else []
    return value if isinstance(value, list) else []


def promises(policy: Policy) -> Promises:
    """The kind, rights and options of a policy (check reports what is not valid; here it is left out)."""
    kind = str(policy.settings.get("kind") or "privacy")
    rights_table = policy.settings.get("rights")
    rights = [r for r in _list(rights_table, "apply") if r in RIGHTS] if isinstance(rights_table, Mapping) else list(DEFAULT_RIGHTS)
    object_to = [b for b in _list(rights_table, "object_to") if b in OBJECTION_BASES]
    if not object_to and "object" in rights:
        rights.remove("object")
    options = [o for o in _list(policy.settings.get("options"), "apply") if o in OPTIONS]
    personal = kind in PERSONAL_DATA_KINDS
    return Promises(kind, tuple(rights) if personal else (), tuple(object_to) if personal else (), tuple(options) if kind == "terms" else ())


@cache
def authorities() -> Mapping[str, Mapping[str, Any]]:
    with AUTHORITIES.open("rb") as file:
        return tomllib.load(file)


def _per_language(value: Any, language: str) -> str:
    if isinstance(value, Mapping):
        found = value.get(language) or value.get("en") or next(iter(value.values()), "")
        return str(found or "")
    return str(value or "")


def supervisory_authority(policy: Policy, language: str) -> Authority | None:
    """Where a reader in `language` may complain: [supervisory_authority], else the controller's country's authority."""
    table = policy.settings.get("supervisory_authority") or authorities().get(policy.controller.country.upper())
    if not isinstance(table, Mapping):
        return None
    name, url = _per_language(table.get("name"), language), _per_language(table.get("url"), language)
    return Authority(name, url) if name and url else None


def former_authority_names(policy: Policy) -> tuple[tuple[str, str], ...]:
    """(former name, year of renaming) of the controller's country's authority."""
    known = authorities().get(policy.controller.country.upper(), {})
    return tuple((str(name), str(known.get("renamed", ""))) for name in known.get("former", []))


def problems(policy: Policy) -> Iterator[Problem]:
    """Every kind, rights, options and authority setting of policy.toml that is not valid."""
    file, lines = policy.config_file, policy.config_lines

    def error(key: str, message: str, hint: str) -> Problem:
        return Problem("error", file, lines.get(key.split(".")[-1], 1), message, hint, rule="policy-kind")

    kind = policy.settings.get("kind", "privacy")
    if kind not in KINDS:
        yield error("kind", f"kind {kind!r} is not a kind of document", f"use one of {', '.join(KINDS)}")
    rights = policy.settings.get("rights")
    if rights is not None:
        if not isinstance(rights, Mapping) or set(rights) - {"apply", "object_to"}:
            yield error("rights", "[rights] takes apply (a list of rights) and object_to (the bases one may object to)",
                        f"rights: {', '.join(RIGHTS)}; object_to: {', '.join(OBJECTION_BASES)}")
        else:
            for right in _list(rights, "apply"):
                if right not in RIGHTS:
                    yield error("rights", f"rights.apply names {right!r}, which is not a right notices know", f"use {', '.join(RIGHTS)}")
            for basis in _list(rights, "object_to"):
                if basis not in OBJECTION_BASES:
                    yield error("rights", f"rights.object_to names {basis!r}", f"use {', '.join(OBJECTION_BASES)}")
            if "object" in _list(rights, "apply") and not _list(rights, "object_to"):
                yield error("rights", "rights.apply lists object but object_to names no processing one may object to",
                            "GDPR Art. 21 applies to processing based on Art. 6(1)(e) or (f) and to direct marketing: "
                            'e.g. object_to = ["legitimate-interests", "direct-marketing"]')
        if kind not in PERSONAL_DATA_KINDS:
            yield Problem("warning", file, lines.get("rights", 1), f"[rights] is ignored: a {kind} document is not about personal data",
                          "remove it, or declare kind = \"privacy\"", rule="policy-kind")
    options = policy.settings.get("options")
    if options is not None:
        for option in _list(options, "apply"):
            if option not in OPTIONS:
                yield error("options", f"options.apply names {option!r}", f"use {', '.join(OPTIONS)}")
        if kind != "terms":
            yield Problem("warning", file, lines.get("options", 1), f"[options] is ignored: notices speak of options for terms, not for {kind}",
                          "remove it, or declare kind = \"terms\"", rule="policy-kind")
    table = policy.settings.get("supervisory_authority")
    if isinstance(table, Mapping):
        for language in policy.languages:
            authority = supervisory_authority(policy, language)
            if authority is None or urlsplit(authority.url).scheme != "https":
                yield error("supervisory_authority", f"[supervisory_authority] needs a name and an https url for {language}",
                            "readers must be told where to complain (GDPR Art. 13(2)(d))")
    country = policy.controller.country
    if country and (len(country) != 2 or not country.isalpha()):
        yield error("controller.country", f"controller.country {country!r} is not a two-letter country code", 'e.g. country = "BE"')
