"""Who a site's change notices come from in each language: the site's sender_name, else [notify] from_name."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from addendum.config import for_language
from addendum.policy.model import Policy


@dataclass(frozen=True)
class SenderName:
    """The From name of one site's notices in one language, where it was set, and whether it fell back to the
    default language's name (or the controller's) because a per-language table has none for this language."""

    name: str
    source: str  # "site" ([sites.X] sender_name), "notify" ([notify] from_name) or "controller"
    fell_back: bool


def sender_name(policy: Policy, site_id: str, language: str, from_name: Any) -> SenderName:
    """The name readers of `site_id` in `language` see in the From header. A plain name serves every language; a
    table of language = name gives its own entry, else the default language's (a fallback `check` warns of)."""
    site = policy.sites.get(site_id)
    site_value = site.variables.get("sender_name") if site is not None else None
    default = policy.default_language
    tables = False
    for source, value in (("site", site_value), ("notify", from_name)):
        if not value:
            continue
        found, fallback = for_language(dict(value) if isinstance(value, Mapping) else value, language, default)
        tables = tables or isinstance(value, Mapping)
        if found and not fallback:
            return SenderName(str(found), source, False)
    # No name for this language: the default language's, else the controller's (a fallback only where names were
    # given per language; with none set at all, the controller's name is the intended one).
    for source, value in (("site", site_value), ("notify", from_name)):
        if isinstance(value, Mapping) and value.get(default):
            return SenderName(str(value[default]), source, True)
    return SenderName(policy.controller.name, "controller", tables)
