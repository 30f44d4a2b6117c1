"""The archive: every published version × site × language as HTML, PDF/A and JSON under history/, with a manifest.

Two kinds of files. A *record* (a version's page, PDF, JSON, redline) is written once and never rewritten: it is
the proof of what readers were shown. A *listing* (a policy's index pages, changelogs, feeds) is rebuilt when the
ledger gains a version. history/manifest.json lists both with their SHA-256. Rendering is deterministic: the
same version renders to the same bytes (fixed PDF identifier and dates, no generation time anywhere), so anyone
can rebuild a version and compare.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from fontTools import subset
from fontTools.ttLib import TTFont
from markupsafe import Markup

from . import __version__, paths
from .changelog import atom_feed, changelog_document
from .classify import classify_changeset
from .config import Repo
from .diff import compare
from .errors import AddendumError, ConfigError, HistoryError, PolicyFormatError, RenderError, UsageError
from .files import write_atomic
from .ids import VERSION_PATTERN, require_id
from .ledger import LEDGER_NAME, PublishedVersion, ledger_path
from .policy import Location, Policy
from .render import policy_context, stylesheet
from .render.pdf import FONT_FACES, html_to_pdf
from .render.redline import redline_html
from .resolve import ResolvedPolicy, ResolvedSection, canonical_text, content_hash, resolve
from .templates import assets_dir, builtin_dir, render_template, strings
from .versions import load_version, published_versions

MANIFEST_FORMAT = "addendum-archive-manifest/1"
JSON_FORMAT = "addendum-archived-version/1"
PDF_VARIANT = "pdf/a-3u"
RECORD_NAMES = (paths.VERSION_PAGE, paths.VERSION_PDF, paths.VERSION_JSON, paths.REDLINE_PAGE, paths.REDLINE_PDF)
RECORD_KINDS = {paths.VERSION_PAGE: "page", paths.VERSION_PDF: "pdf", paths.VERSION_JSON: "json",
                paths.REDLINE_PAGE: "redline", paths.REDLINE_PDF: "redline-pdf"}
MANIFEST_SAVE_SECONDS = 2.0

Progress = Callable[[int, int], None]
FindingKind = Literal["missing", "changed", "unrecorded", "not-archived", "text", "ledger", "rebuild"]


@dataclass(frozen=True)
class Finding:
    """Something in the archive that is not as the manifest or the ledger says it should be."""

    kind: FindingKind
    path: str  # relative to history/, or a version id for findings about a version's text
    detail: str

    def format(self) -> str:
        where = self.path if VERSION_PATTERN.fullmatch(self.path) else f"history/{self.path}"
        return f"{self.kind}: {where}: {self.detail}"


@dataclass(frozen=True)
class View:
    """One published version as one site's readers saw it in one language: the unit the archive is built from."""

    policy_id: str
    version: PublishedVersion
    previous: PublishedVersion | None  # the last earlier version that had this site and language
    site_id: str
    language: str
    last_changed: date  # the effective date of the version that last changed this text
    siblings: tuple[str, ...]  # every "site/lang" this version was published for

    @property
    def key(self) -> str:
        return f"{self.site_id}/{self.language}"

    @property
    def folder(self) -> str:
        return paths.version_dir(self.policy_id, self.version.slug, self.site_id, self.language)

    def path(self, name: str) -> str:
        return f"{self.folder}/{name}"

    @property
    def names(self) -> tuple[str, ...]:
        """The files of this view; the first version of a text has no redline."""
        return RECORD_NAMES if self.previous is not None else RECORD_NAMES[:3]

    def entry(self, name: str, data: bytes, toolchain: str) -> dict[str, Any]:
        """The manifest entry of one of this view's files."""
        entry: dict[str, Any] = {
            "sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "kind": RECORD_KINDS[name],
            "policy": self.policy_id, "version": self.version.id, "commit": self.version.commit,
            "site": self.site_id, "language": self.language, "content_hash": self.version.hashes[self.key],
            "toolchain": toolchain,
        }
        if name in (paths.REDLINE_PAGE, paths.REDLINE_PDF) and self.previous is not None:
            entry["previous"] = self.previous.id
            entry["previous_content_hash"] = self.previous.hashes[self.key]
        return entry


@dataclass
class Manifest:
    """history/manifest.json in memory: every archived file, the inputs of each policy's listings, the toolchains."""

    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    listings: dict[str, str] = field(default_factory=dict)
    toolchains: dict[str, dict[str, str]] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        used = {str(entry.get("toolchain")) for entry in self.files.values()}
        toolchains = {key: value for key, value in self.toolchains.items() if key in used}
        document = {"format": MANIFEST_FORMAT, "files": self.files, "listings": self.listings, "toolchains": toolchains}
        return (json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


@dataclass(frozen=True)
class PolicyPlan:
    policy_id: str
    versions: tuple[PublishedVersion, ...]
    views: tuple[View, ...]
    listing_names: tuple[str, ...]
    listing_key: str


@dataclass(frozen=True)
class ArchiveReport:
    """What a run of the archive did."""

    policies: tuple[PolicyPlan, ...]
    written: tuple[str, ...]  # paths relative to the output folder
    kept: int  # files already archived and left as they were
    findings: tuple[Finding, ...]
    jobs: int
    seconds: float
    dry_run: bool = False

    def index_pages(self) -> list[str]:
        """The entry page of each archived policy, relative to the archive's folder."""
        return [paths.policy_index(plan.policy_id) for plan in self.policies if plan.versions]


# ---------------------------------------------------------------------------------------------- manifest


def manifest_path(history_dir: Path) -> Path:
    return history_dir / paths.MANIFEST


def read_manifest(history_dir: Path) -> Manifest | None:
    """The manifest, or None when the archive has none yet."""
    path = manifest_path(history_dir)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HistoryError(f"{path}: not a manifest ({exc})", "restore history/manifest.json from git") from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT or not isinstance(data.get("files"), dict):
        raise HistoryError(f"{path}: not an archive manifest of format {MANIFEST_FORMAT}", "restore history/manifest.json from git")
    return Manifest(dict(data["files"]), dict(data.get("listings", {})), dict(data.get("toolchains", {})))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------- planning


def plan_views(versions: Sequence[PublishedVersion]) -> list[View]:
    """Every version × site × language the ledger records, oldest first, each knowing its predecessor."""
    views: list[View] = []
    latest: dict[str, PublishedVersion] = {}
    changed_on: dict[str, date] = {}
    for version in versions:
        siblings = tuple(sorted(version.hashes))
        for key in siblings:
            site_id, _, language = key.partition("/")
            previous = latest.get(key)
            if previous is None or previous.hashes[key] != version.hashes[key]:
                changed_on[key] = version.effective
            views.append(View(version.policy_id, version, previous, site_id, language, changed_on[key], siblings))
            latest[key] = version
    return views


def listing_names(policy_id: str, versions: Sequence[PublishedVersion]) -> tuple[str, ...]:
    """A policy's index pages (index.html and one per language), changelogs and feeds."""
    if not versions:
        return ()
    names = [paths.policy_index(policy_id)] + [paths.policy_index(policy_id, language) for language in languages_of(versions)]
    for language in languages_of(versions[-1:]):
        names += [paths.changelog(policy_id, language, "html"), paths.changelog(policy_id, language, "md"), paths.feed(policy_id, language)]
    return tuple(names)


def languages_of(versions: Sequence[PublishedVersion]) -> list[str]:
    """Every language any of these versions was published in."""
    return sorted({key.partition("/")[2] for version in versions for key in version.hashes})


def _files_digest(*folders: Path, suffix: str = "") -> str:
    digest = hashlib.sha256()
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(p for p in folder.rglob(f"*{suffix}") if p.is_file()):
            digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def toolchain(repo: Repo) -> dict[str, str]:
    """What a rendering depends on besides the version itself: a rebuild is byte-identical only with the same."""
    def version_of(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return ""

    return {"addendum": __version__, "code": "sha256:" + _code_digest(), "weasyprint": version_of("weasyprint"),
            "fonttools": version_of("fonttools"), "templates": "sha256:" + _files_digest(builtin_dir(), repo.templates_dir)}


@lru_cache(maxsize=1)
def _code_digest() -> str:
    """The package's own code: a change to how a redline or a page is built changes what a rebuild gives."""
    return _files_digest(Path(__file__).resolve().parent, suffix=".py")


def toolchain_id(chain: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(chain, sort_keys=True).encode()).hexdigest()[:16]


def plan_policy(repo: Repo, policy_id: str, chain_id: str) -> PolicyPlan:
    versions = tuple(published_versions(repo, policy_id))
    names = listing_names(policy_id, versions)
    ledger = ledger_path(repo.history_dir, policy_id)
    digest = hashlib.sha256(chain_id.encode() + b"\0" + "\0".join(names).encode() + b"\0")
    if ledger.is_file():
        digest.update(ledger.read_bytes())
    return PolicyPlan(policy_id, versions, tuple(plan_views(versions)), names, "sha256:" + digest.hexdigest())


def archived_policy_ids(repo: Repo) -> list[str]:
    """The repository's policies, and any other that has a ledger under history/."""
    ids = set(repo.policy_ids())
    if repo.history_dir.is_dir():
        ids |= {p.parent.name for p in repo.history_dir.glob(f"*/{LEDGER_NAME}")}
    return sorted(ids)


def require_policies(repo: Repo, policy_ids: Sequence[str] | None) -> list[str]:
    """The policies asked for (all when none), each known to the repository."""
    known = archived_policy_ids(repo)
    if not policy_ids:
        return known
    for policy_id in policy_ids:
        if require_id(policy_id, "policy") not in known:
            raise UsageError(f"no policy {policy_id!r} in {repo.policies_dir} and no ledger in {repo.history_dir / policy_id}",
                             f"known policies: {', '.join(known)}" if known else "create policies/<id>/policy.toml")
    return list(policy_ids)


# ---------------------------------------------------------------------------------------------- rendering


def _subset_woff(font_file: Path, characters: str) -> bytes:
    options = subset.Options()
    options.name_IDs = ["*"]  # keep the copyright and licence names of the font
    options.notdef_outline = True
    options.drop_tables = [*options.drop_tables, "FFTM"]  # FontForge's timestamps: nothing a browser reads
    # recalcTimestamp=False: fontTools would otherwise stamp the font with today's date, and no rebuild would match.
    font = TTFont(font_file, recalcTimestamp=False)
    subsetter = subset.Subsetter(options)
    subsetter.populate(text=characters)
    subsetter.subset(font)
    font.flavor = "woff"
    buffer = io.BytesIO()
    font.save(buffer)
    return buffer.getvalue()


@lru_cache(maxsize=32)
def _font_faces(characters: str) -> str:
    rules = []
    for family, file, weight, style in FONT_FACES:  # the bundled fonts, as the PDFs embed them
        data = base64.b64encode(_subset_woff(assets_dir() / "fonts" / file, characters)).decode("ascii")
        rules.append(f'@font-face {{ font-family: "{family}"; font-weight: {weight}; font-style: {style}; '
                     f'src: url(data:font/woff;base64,{data}) format("woff"); }}')
    return "\n".join(rules)


def embedded_fonts_css(text: str) -> Markup:
    """@font-face rules carrying the bundled fonts inside the page, subset to the characters `text` uses."""
    printable = "".join(chr(c) for c in range(0x20, 0x7F))
    return Markup(_font_faces("".join(sorted(set(text) | set(printable)))))


def _with_fonts(render: Callable[[Markup], str]) -> str:
    """Render once to learn which characters the page uses, then again with fonts subset to exactly those."""
    return render(embedded_fonts_css(render(Markup(""))))


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
    """A language's name in that language (a reader looks for "Nederlands", not "Dutch"), or its code."""
    try:
        return strings(code, repo.templates_dir)(f"language_name_{code}")
    except RenderError:
        return code


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
            "previous": previous,
            "redline_href": paths.REDLINE_PAGE if view.previous is not None else "",
            "pdf_href": paths.VERSION_PDF,
            "json_href": paths.VERSION_JSON,
            "index_href": paths.link(here, index),
            "later_href": paths.link(here, index) + f"#v-{slug}",
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
    return _with_fonts(lambda fonts: render_template(names, {**context, "fonts_css": fonts}, repo.templates_dir))


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


def _pdf_identity(view: View, name: str) -> tuple[bytes, datetime]:
    """The PDF's fixed identifier and dates: from the version's own data, so a rebuild gives the same bytes."""
    identifier = hashlib.sha256(f"{view.version.id}/{view.site_id}/{view.language}/{name}".encode()).digest()[:16]
    published = view.version.published
    return identifier, datetime(published.year, published.month, published.day, tzinfo=UTC)


def render_view(repo: Repo, view: View, names: Sequence[str]) -> dict[str, bytes]:
    """The requested files of one view, as bytes."""
    resolved = resolved_view(repo, view)
    out: dict[str, bytes] = {}
    if paths.VERSION_PAGE in names:
        out[paths.VERSION_PAGE] = version_page(repo, view, resolved).encode("utf-8")
    if paths.VERSION_PDF in names:
        identifier, created = _pdf_identity(view, paths.VERSION_PDF)
        out[paths.VERSION_PDF] = html_to_pdf(version_page(repo, view, resolved, print_copy=True),
                                             title=f"{resolved.title} — {resolved.site_name} — {view.version.id}",
                                             language=view.language, pdf_variant=PDF_VARIANT, identifier=identifier, created=created)
    if paths.VERSION_JSON in names:
        out[paths.VERSION_JSON] = version_json(view, resolved)
    if view.previous is not None and {paths.REDLINE_PAGE, paths.REDLINE_PDF} & set(names):
        old = _resolved(repo, view.previous, view.site_id, view.language)
        changeset = classify_changeset(compare(old, resolved), _policy_of(repo, view.version))
        # generated: the version's published date, not today, so that a rebuild gives the same bytes
        html = redline_html(changeset, view.previous, view.version, layout="inline", changes_only=False,
                            repo_templates=repo.templates_dir, generated=view.version.published)
        if paths.REDLINE_PAGE in names:
            out[paths.REDLINE_PAGE] = html.encode("utf-8")
        if paths.REDLINE_PDF in names:
            identifier, created = _pdf_identity(view, paths.REDLINE_PDF)
            out[paths.REDLINE_PDF] = html_to_pdf(html, title=f"{resolved.title} — {resolved.site_name} — {view.previous.id} → {view.version.id}",
                                                 language=view.language, pdf_variant=PDF_VARIANT, identifier=identifier,
                                                 created=created)
    return out


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
    for version in reversed(versions):
        files = [{
            "site_name": latest.sites[view.site_id].name if view.site_id in latest.sites else view.site_id,
            "page_href": paths.link(here, view.path(paths.VERSION_PAGE)),
            "pdf_href": paths.link(here, view.path(paths.VERSION_PDF)),
            "json_href": paths.link(here, view.path(paths.VERSION_JSON)),
            "redline_href": paths.link(here, view.path(paths.REDLINE_PAGE)) if view.previous else "",
            "redline_pdf_href": paths.link(here, view.path(paths.REDLINE_PDF)) if view.previous else "",
        } for view in views.get(version.id, [])]
        rows.append({"id": version.id, "anchor": f"v-{version.slug}", "effective": version.effective,
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
    return _with_fonts(lambda fonts: render_template(names, {**context, "fonts_css": fonts}, repo.templates_dir))


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


# ---------------------------------------------------------------------------------------------- work in workers


Action = Literal["write", "restore", "adopt"]


@dataclass(frozen=True)
class ViewTask:
    """Render some files of one view. write: missing; restore: missing but recorded (write only the recorded
    bytes); adopt: present but not recorded (record it if it is what a fresh rendering gives)."""

    repo: Repo
    out_root: Path
    view: View
    actions: tuple[tuple[str, Action, str], ...]  # (file name, action, recorded sha256 for restore)
    toolchain: str


@dataclass(frozen=True)
class ListingTask:
    repo: Repo
    policy_id: str
    versions: tuple[PublishedVersion, ...]


@dataclass(frozen=True)
class TaskResult:
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    written: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = ()
    listings: dict[str, bytes] = field(default_factory=dict)
    policy_id: str = ""
    error: tuple[str, str, str] | None = None  # (error class name, message, hint), re-raised in the parent


def _perform_view(task: ViewTask) -> TaskResult:
    view = task.view
    rendered = render_view(task.repo, view, [name for name, _, _ in task.actions])
    entries: dict[str, dict[str, Any]] = {}
    written: list[str] = []
    findings: list[Finding] = []
    for name, action, recorded in task.actions:
        path, data = view.path(name), rendered[name]
        target = task.out_root / path
        sha = hashlib.sha256(data).hexdigest()
        if action == "adopt":
            if target.read_bytes() == data:
                entries[path] = view.entry(name, data, task.toolchain)
            else:
                findings.append(Finding("unrecorded", path, "not in the manifest, and not what this version renders to; left alone "
                                                             "(delete it to let `addendum archive` write it)"))
        elif action == "restore" and sha != recorded:
            findings.append(Finding("missing", path, "recorded in the manifest but missing, and a fresh rendering differs from the "
                                                     "recorded bytes; restore the file from git"))
        else:
            write_atomic(target, data)
            written.append(path)
            if action == "write":
                entries[path] = view.entry(name, data, task.toolchain)
    return TaskResult(entries=entries, written=tuple(written), findings=tuple(findings))


def _perform(task: ViewTask | ListingTask) -> TaskResult:
    """Run one task, in a worker process or in this one. Errors come back as data: they must cross processes."""
    try:
        if isinstance(task, ListingTask):
            return TaskResult(listings=render_listings(task.repo, task.policy_id, task.versions), policy_id=task.policy_id)
        return _perform_view(task)
    except PolicyFormatError as exc:
        return TaskResult(error=("HistoryError", f"the archived sources of a published version do not load:\n{exc.format()}",
                                 "restore the version's sources under history/ from git"))
    except AddendumError as exc:
        return TaskResult(error=(type(exc).__name__, exc.message, exc.hint))


def _raise(error: tuple[str, str, str]) -> None:
    kinds: dict[str, type[AddendumError]] = {cls.__name__: cls for cls in (HistoryError, RenderError, UsageError, ConfigError)}
    raise kinds.get(error[0], RenderError)(error[1], error[2])


def default_jobs(repo: Repo) -> int:
    """archive.jobs from addendum.toml, or one worker per core this process may use."""
    configured = int(repo.setting("archive.jobs") or 0)
    if configured > 0:
        return configured
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _results(tasks: Sequence[ViewTask | ListingTask], jobs: int) -> Iterator[TaskResult]:
    if jobs <= 1 or len(tasks) <= 1:
        yield from map(_perform, tasks)
        return
    with ProcessPoolExecutor(max_workers=min(jobs, len(tasks))) as pool:
        futures: list[Future[TaskResult]] = [pool.submit(_perform, task) for task in tasks]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


# ---------------------------------------------------------------------------------------------- the run


def _view_tasks(repo: Repo, plan: PolicyPlan, out_root: Path, manifest: Manifest, chain_id: str,
                findings: list[Finding]) -> tuple[list[ViewTask], int]:
    """What must be rendered for a policy's views; what is archived already is left alone, and only re-hashed."""
    tasks: list[ViewTask] = []
    kept = 0
    for view in plan.views:
        actions: list[tuple[str, Action, str]] = []
        for name in view.names:
            path = view.path(name)
            recorded = manifest.files.get(path)
            target = out_root / path
            if not target.exists():
                actions.append((name, "restore", recorded["sha256"]) if recorded else (name, "write", ""))
            elif recorded is None:
                actions.append((name, "adopt", ""))
            else:
                kept += 1
                if sha256_file(target) != recorded.get("sha256"):
                    findings.append(Finding("changed", path, "not as the manifest records it; left alone (see `addendum verify`)"))
        if actions:
            tasks.append(ViewTask(repo, out_root, view, tuple(actions), chain_id))
    return tasks, kept


def _listings_current(plan: PolicyPlan, out_root: Path, manifest: Manifest) -> bool:
    if manifest.listings.get(plan.policy_id) != plan.listing_key:
        return False
    return all((out_root / name).is_file() and name in manifest.files for name in plan.listing_names)


def _apply_listings(result: TaskResult, out_root: Path, manifest: Manifest, chain_id: str, findings: list[Finding],
                    plan: PolicyPlan, dry_run: bool) -> list[str]:
    """Write the listings that changed; a listing that is not as the manifest recorded it is reported, not overwritten."""
    written: list[str] = []
    blocked = False
    for path, data in sorted(result.listings.items()):
        target = out_root / path
        recorded = manifest.files.get(path)
        entry = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "kind": "listing", "policy": plan.policy_id,
                 "toolchain": chain_id}
        if target.is_file():
            on_disk = sha256_file(target)
            if on_disk == entry["sha256"]:
                manifest.files[path] = entry
                continue
            if recorded is None or on_disk != recorded["sha256"]:
                blocked = True
                findings.append(Finding("changed" if recorded else "unrecorded", path,
                                        "not as the manifest records it; left alone (restore it from git, or delete it to let "
                                        "`addendum archive` rebuild it)"))
                continue
        if not dry_run:
            write_atomic(target, data)
            manifest.files[path] = entry
        written.append(path)
    if not blocked:
        manifest.listings[plan.policy_id] = plan.listing_key
    return written


def build(repo: Repo, policy_ids: Sequence[str] | None, out_root: Path, *, jobs: int | None = None,
          progress: Progress | None = None, dry_run: bool = False) -> ArchiveReport:
    """Archive every published version not archived yet into `out_root` (history/ or a folder to compare with)."""
    started = time.perf_counter()
    forget_loaded_versions()
    ids = require_policies(repo, policy_ids)
    manifest = read_manifest(out_root) or Manifest()
    chain = toolchain(repo)
    chain_id = toolchain_id(chain)
    plans = [plan_policy(repo, policy_id, chain_id) for policy_id in ids]
    findings: list[Finding] = []
    tasks: list[ViewTask | ListingTask] = []
    kept = 0
    for plan in plans:
        if plan.versions and not _listings_current(plan, out_root, manifest):
            tasks.append(ListingTask(repo, plan.policy_id, plan.versions))
        view_tasks, plan_kept = _view_tasks(repo, plan, out_root, manifest, chain_id, findings)
        tasks.extend(view_tasks)
        kept += plan_kept
    workers = max(1, jobs or default_jobs(repo))
    if dry_run:
        would = [task.view.path(name) for task in tasks if isinstance(task, ViewTask) for name, action, _ in task.actions
                 if action != "adopt"]
        would += [name for task in tasks if isinstance(task, ListingTask) for name in listing_names(task.policy_id, task.versions)]
        return ArchiveReport(tuple(plans), tuple(would), kept, tuple(findings), workers, time.perf_counter() - started, dry_run=True)
    written: list[str] = []
    by_policy = {plan.policy_id: plan for plan in plans}
    if tasks:
        manifest.toolchains[chain_id] = chain
    saved = time.monotonic()
    try:
        for done, result in enumerate(_results(tasks, workers), start=1):
            if result.error:
                _raise(result.error)
            manifest.files.update(result.entries)
            written.extend(result.written)
            findings.extend(result.findings)
            if result.policy_id:
                written.extend(_apply_listings(result, out_root, manifest, chain_id, findings, by_policy[result.policy_id], dry_run))
            if progress:
                progress(done, len(tasks))
            if time.monotonic() - saved > MANIFEST_SAVE_SECONDS:
                _save(out_root, manifest)
                saved = time.monotonic()
    finally:
        if tasks:
            _save(out_root, manifest)
    return ArchiveReport(tuple(plans), tuple(sorted(written)), kept, tuple(findings), workers, time.perf_counter() - started)


def _save(out_root: Path, manifest: Manifest) -> None:
    data = manifest.to_bytes()
    path = manifest_path(out_root)
    if not path.is_file() or path.read_bytes() != data:
        write_atomic(path, data)


def archive(repo: Repo, policy_ids: Sequence[str] | None = None, *, jobs: int | None = None,
            progress: Progress | None = None, dry_run: bool = False) -> ArchiveReport:
    """`addendum archive`: archive what is missing under the repository's history/, in parallel; never rewrite a record."""
    return build(repo, policy_ids, repo.history_dir, jobs=jobs, progress=progress, dry_run=dry_run)
