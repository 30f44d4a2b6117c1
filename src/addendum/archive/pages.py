"""The archived files of one view (version × site × language) and a policy's listings, rendered as bytes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from markupsafe import Markup

from addendum import paths
from addendum.archive.manifest import JSON_FORMAT, PDF_VARIANT, View, languages_of, plan_views
from addendum.compare.classify import classified_changes
from addendum.config import Repo
from addendum.errors import HistoryError
from addendum.history.ledger import PublishedVersion
from addendum.history.versions import in_force_periods, load_version
from addendum.i18n import own_name
from addendum.policy.model import Location, Policy
from addendum.policy.resolve import ResolvedPolicy, ResolvedSection, canonical_text, content_hash, resolve, shown_markers
from addendum.render import policy_context, stylesheet
from addendum.render.changelog import atom_feed, changelog_document
from addendum.render.fonts import with_fonts
from addendum.render.pdf import html_to_pdf
from addendum.render.redline import VersionInfo, redline_html
from addendum.templates import render_template, strings


def archive_css() -> Markup:
    """The policy stylesheet and the archive's, trusted CSS from the assets folder (autoescaping would break quotes)."""
    return Markup(stylesheet() + "\n" + stylesheet("archive.css"))


_versions_loaded: dict[tuple[Path, str], Policy] = {}


def forget_loaded_versions() -> None:
    """Drop the versions loaded so far: each run reads (and hash-checks) the sources afresh."""
    _versions_loaded.clear()


def _policy_of(repo: Repo, version: PublishedVersion) -> Policy:
    """A published version's policy, loaded once per process (a worker renders many views of one version)."""
    key = (repo.root, version.id)
    if key not in _versions_loaded:
        if len(_versions_loaded) > 16:
            _versions_loaded.clear()
        _versions_loaded[key] = load_version(repo, version)
    return _versions_loaded[key]


def _resolved(repo: Repo, version: PublishedVersion, site_id: str, language: str) -> ResolvedPolicy:
    resolved = resolve(_policy_of(repo, version), site_id, language)
    recorded = version.hashes.get(f"{site_id}/{language}")
    if resolved.content_hash() != recorded:
        raise HistoryError(f"{version.id}: the text for {site_id}/{language} does not match the ledger's content hash {recorded}",
                           "the version's sources under history/ were changed; restore them from git")
    return resolved


def resolved_view(repo: Repo, view: View) -> ResolvedPolicy:
    """A view's text, from its version's archived sources, checked against the ledger's content hash."""
    return _resolved(repo, view.version, view.site_id, view.language)


def language_name(code: str, repo: Repo) -> str:
    """A language's name in that language, from CLDR (a reader looks for "Nederlands", not "Dutch"), or its code."""
    return own_name(code)


def _version_context(repo: Repo, view: View, resolved: ResolvedPolicy, print_copy: bool) -> dict[str, Any]:
    policy = _policy_of(repo, view.version)
    context = policy_context(resolved, view.last_changed, repo.templates_dir)
    here = view.path(paths.VERSION_PAGE)
    slug, lang, site = view.version.slug, view.language, view.site_id
    index = paths.policy_index(view.policy_id, lang)
    previous = None
    if view.previous is not None:
        previous = {"id": view.previous.id, "effective": view.previous.effective,
                    "href": paths.link(here, paths.version_page(view.policy_id, view.previous.slug, site, lang))}
    languages = [{"code": code, "label": language_name(code, repo), "current": code == lang,
                  "href": paths.link(here, paths.version_page(view.policy_id, slug, site, code))}
                 for code in sorted({k.partition("/")[2] for k in view.siblings if k.startswith(site + "/")})]
    sites = [{"label": policy.sites[s].name if s in policy.sites else s, "current": s == site,
              "href": paths.link(here, paths.version_page(view.policy_id, slug, s, lang))}
             for s in sorted({k.partition("/")[0] for k in view.siblings if k.endswith("/" + lang)})]
    context.update(
        css=archive_css(),
        print_copy=print_copy,
        archive={
            "version": {"id": view.version.id, "slug": slug, "effective": view.version.effective,
                        "published": view.version.published, "classification": view.version.classification,
                        "summary": view.version.summaries.get(lang) or view.version.summaries.get(policy.default_language, "")},
            "content_hash": view.version.hashes[view.key],
            # On every page of the PDF: which record this is, down to its text (the hash's first 12 hex digits).
            "page_header": " · ".join((view.policy_id, resolved.site_name, lang, view.version.id,
                                       view.version.hashes[view.key].partition(":")[2][:12])),
            "previous": previous,
            "redline_href": paths.REDLINE_PAGE if view.previous is not None else "",
            "pdf_href": paths.VERSION_PDF,
            "json_href": paths.VERSION_JSON,
            "index_href": paths.link(here, index),
            "changelog_href": paths.link(here, paths.changelog(view.policy_id, lang)),
            "languages": languages,
            "sites": sites,
        },
    )
    return context


def version_page(repo: Repo, view: View, resolved: ResolvedPolicy, print_copy: bool = False) -> str:
    """The archived page of one view: the policy as published, under a banner naming the version."""
    context = _version_context(repo, view, resolved, print_copy)
    names = [f"archive-version-{view.policy_id}.html", "archive-version.html"]
    if print_copy:  # the PDF engine embeds the bundled fonts itself
        return render_template(names, context, repo.templates_dir)
    return with_fonts(lambda fonts: render_template(names, {**context, "fonts_css": fonts}, repo.templates_dir))


def version_json(view: View, resolved: ResolvedPolicy) -> bytes:
    """The resolved sections of one view, machine-readable; their canonical text hashes to the ledger's hash."""
    document = {
        "format": JSON_FORMAT,
        "policy": view.policy_id, "version": view.version.id, "commit": view.version.commit,
        "effective": view.version.effective.isoformat(), "published": view.version.published.isoformat(),
        "classification": view.version.classification,
        "site": {"id": resolved.site, "name": resolved.site_name}, "language": resolved.language, "locale": resolved.locale,
        "title": resolved.title, "content_hash": view.version.hashes[view.key],
        "sections": [{"id": s.id, "path": list(s.path), "level": s.level, "heading": s.heading, "text": s.text,
                      "language": s.language, "fallback": s.fallback, "site_override": s.site_override,
                      "source": {"file": s.location.file, "line": s.location.line}}
                     for s in resolved.sections],
    }
    return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def archived_text_hash(document: dict[str, Any]) -> str:
    """The content hash of the text an archived policy.json holds: the ledger's hash, unless the JSON was changed."""
    sections = tuple(ResolvedSection(s["id"], s["heading"], s["level"], tuple(s["path"]), s["text"], s["language"], s["fallback"],
                                     s["site_override"], Location(s["source"]["file"], s["source"]["line"]))
                     for s in document["sections"])
    return content_hash(canonical_text(sections))


def _pdf_identifier(view: View, name: str) -> bytes:
    """The PDF's fixed identifier, from the version's own data, so that a rebuild gives the same bytes. An archived
    PDF carries no date: none would be true of every rebuild (the manifest records when each file was built)."""
    return hashlib.sha256(f"{view.version.id}/{view.site_id}/{view.language}/{name}".encode()).digest()[:16]


def render_view(repo: Repo, view: View, names: Sequence[str]) -> dict[str, bytes]:
    """The requested files of one view, as bytes."""
    resolved = resolved_view(repo, view)
    out: dict[str, bytes] = {}
    if paths.VERSION_PAGE in names:
        out[paths.VERSION_PAGE] = version_page(repo, view, resolved).encode("utf-8")
    if paths.VERSION_PDF in names:
        t = strings(view.language, repo.templates_dir)
        out[paths.VERSION_PDF] = html_to_pdf(version_page(repo, view, resolved, print_copy=True),
                                             title=f"{resolved.title} — {resolved.site_name} — {view.version.id}",
                                             language=view.language, pdf_variant=PDF_VARIANT,
                                             identifier=_pdf_identifier(view, paths.VERSION_PDF),
                                             attachments=[(paths.VERSION_JSON, version_json(view, resolved),
                                                           t.gettext("The sections of this version, machine-readable"))])
    if paths.VERSION_JSON in names:
        out[paths.VERSION_JSON] = version_json(view, resolved)
    if view.previous is not None and {paths.REDLINE_PAGE, paths.REDLINE_PDF} & set(names):
        changeset = classified_changes(_policy_of(repo, view.previous), _policy_of(repo, view.version), view.site_id, view.language)
        # No preparation: an archived redline is a rendering of two published versions and states no date of its own.
        html = redline_html(changeset, VersionInfo.of(view.previous, view.previous.hashes[view.key]),
                            VersionInfo.of(view.version, view.version.hashes[view.key]), layout="inline",
                            changes_only=False, repo_templates=repo.templates_dir)
        if paths.REDLINE_PAGE in names:
            out[paths.REDLINE_PAGE] = html.encode("utf-8")
        if paths.REDLINE_PDF in names:
            out[paths.REDLINE_PDF] = html_to_pdf(html, title=f"{resolved.title} — {resolved.site_name} — {view.previous.id} → {view.version.id}",
                                                 language=view.language, pdf_variant=PDF_VARIANT,
                                                 identifier=_pdf_identifier(view, paths.REDLINE_PDF))
    return out


def _incomplete(repo: Repo, view: View, page_href: str) -> dict[str, Any] | None:
    """What of a view's text still shows a pending value's "[to be provided: …]" marker, the same finding publish
    warns of: how many values, and the sections (linked) that show them; none when the text is complete."""
    found = shown_markers(_policy_of(repo, view.version), view.site_id, view.language)
    if not found:
        return None
    values = {marker for _, shown in found for marker in shown}
    return {"count": len(values), "sections": [{"ref": section.ref, "href": f"{page_href}#{section.id}"} for section, _ in found]}


def index_page(repo: Repo, policy_id: str, versions: Sequence[PublishedVersion], language: str) -> str:
    """The list of a policy's versions in one language, newest first, linking every site's files."""
    latest = load_version(repo, versions[-1])
    here = paths.policy_index(policy_id, language)
    t = strings(language, repo.templates_dir)
    views: dict[str, list[View]] = {}
    for view in plan_views(versions):
        if view.language == language:
            views.setdefault(view.version.id, []).append(view)
    rows = []
    periods = {period.version.id: period for period in in_force_periods(versions)}
    for version in reversed(versions):
        period = periods[version.id]
        files = [{
            "site_name": latest.sites[view.site_id].name if view.site_id in latest.sites else view.site_id,
            "page_href": (page_href := paths.link(here, view.path(paths.VERSION_PAGE))),
            "incomplete": _incomplete(repo, view, page_href),
            "pdf_href": paths.link(here, view.path(paths.VERSION_PDF)),
            "json_href": paths.link(here, view.path(paths.VERSION_JSON)),
            "redline_href": paths.link(here, view.path(paths.REDLINE_PAGE)) if view.previous else "",
            "redline_pdf_href": paths.link(here, view.path(paths.REDLINE_PDF)) if view.previous else "",
        } for view in views.get(version.id, [])]
        # A version's own page is a record, never rewritten: this listing is where "in force until" is said.
        successor = {"id": period.successor.id, "anchor": f"v-{period.successor.slug}"} if period.successor else None
        rows.append({"id": version.id, "anchor": f"v-{version.slug}", "effective": version.effective,
                     "until": period.until, "never_in_force": period.never_in_force, "successor": successor,
                     "published": version.published, "classification": version.classification,
                     "summary": version.summaries.get(language) or version.summaries.get(latest.default_language, ""),
                     "latest": version is versions[-1], "files": files})
    context = {
        "policy_id": policy_id, "title": latest.title(language), "language": language, "locale": latest.locale(language), "t": t,
        "css": archive_css(),
        "languages": [{"code": code, "label": language_name(code, repo), "current": code == language,
                       "href": paths.link(here, paths.policy_index(policy_id, code))} for code in languages_of(versions)],
        "changelog_href": paths.link(here, paths.changelog(policy_id, language, "html")),
        "changelog_md_href": paths.link(here, paths.changelog(policy_id, language, "md")),
        "feed_href": paths.link(here, paths.feed(policy_id, language)),
        "manifest_href": paths.link(here, paths.MANIFEST),
        "versions": rows,
    }
    names = [f"archive-index-{policy_id}.html", "archive-index.html"]
    return with_fonts(lambda fonts: render_template(names, {**context, "fonts_css": fonts}, repo.templates_dir))


def render_listings(repo: Repo, policy_id: str, versions: Sequence[PublishedVersion]) -> dict[str, bytes]:
    """A policy's index pages, changelogs (HTML and Markdown) and Atom feeds, keyed by path under history/."""
    out: dict[str, bytes] = {}
    for language in languages_of(versions):
        out[paths.policy_index(policy_id, language)] = index_page(repo, policy_id, versions, language).encode("utf-8")
    for language in languages_of(versions[-1:]):
        for fmt in ("html", "md"):
            document = changelog_document(repo, policy_id, language, fmt, link_base="")
            out[paths.changelog(policy_id, language, fmt)] = document.encode("utf-8")
        out[paths.feed(policy_id, language)] = atom_feed(repo, policy_id, language)
    default = load_version(repo, versions[-1]).default_language
    out[paths.policy_index(policy_id)] = out[paths.policy_index(policy_id, default if default in languages_of(versions) else languages_of(versions)[0])]
    return out
