"""Rendering a resolved policy as HTML, Markdown or plain text through the templates."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any, Literal

from markupsafe import Markup

from addendum.policy.markup import to_html, to_plain
from addendum.policy.resolve import ResolvedPolicy
from addendum.templates import assets_dir, render_template, strings

Format = Literal["html", "md", "text"]
TEMPLATE_FOR = {"html": "policy.html", "md": "policy.md", "text": "policy.txt"}


def stylesheet(name: str = "policy.css") -> Markup:
    """One of our own stylesheets, marked safe so that autoescaping leaves its quotes alone inside <style>."""
    return Markup((assets_dir() / name).read_text(encoding="utf-8"))


def section_context(resolved: ResolvedPolicy) -> list[dict[str, Any]]:
    """Sections for templates; `html` is markdown-it output (it escapes all text) marked safe for autoescaping."""
    top = min((s.level for s in resolved.sections if s.level), default=1)
    return [
        {
            "id": s.id,
            "ref": s.ref,
            "heading": s.heading,
            "level": s.level,
            "heading_level": min(s.level - top + 2, 6) if s.level else 0,
            "text": s.text,
            "html": Markup(to_html(s.text)),
            "plain": to_plain(s.text),
            "fallback_language": s.language if s.fallback else "",
        }
        for s in resolved.sections
    ]


def policy_context(resolved: ResolvedPolicy, last_changed: date | None, repo_templates: Path | None = None,
                   fonts_css: str = "", earlier_versions: Sequence[date] = ()) -> dict[str, Any]:
    return {
        "title": resolved.title,
        "language": resolved.language,
        "locale": resolved.locale,
        "site": {"id": resolved.site, "name": resolved.site_name},
        "sections": section_context(resolved),
        "last_changed": last_changed,
        "earlier_versions": list(earlier_versions),
        "t": strings(resolved.language, repo_templates),
        "css": stylesheet(),
        "fonts_css": fonts_css,
    }


def render_policy(resolved: ResolvedPolicy, fmt: Format, last_changed: date | None,
                  repo_templates: Path | None = None, earlier_versions: Sequence[date] = ()) -> str:
    """The page for one site and language; `earlier_versions` are the effective dates of previous versions, newest first."""
    context = policy_context(resolved, last_changed, repo_templates, earlier_versions=earlier_versions)
    name = TEMPLATE_FOR[fmt]
    specific = name.replace("policy.", f"policy-{resolved.policy_id}.")
    return render_template([specific, name], context, repo_templates)
