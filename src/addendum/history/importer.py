"""Importing the history of a Markdown policy kept in another git repository: each change becomes a published version."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path

import tomli_w
from markdown_it import MarkdownIt

from addendum.config import Repo
from addendum.errors import HistoryError, PolicyFormatError, UsageError
from addendum.history.ledger import PublishedVersion, append_entries, next_version_id, read_ledger
from addendum.history.repository import FileVersion, NewTag, WorkTree, open_work_tree, read_file_history, read_only, require_repository_path, require_revision
from addendum.history.versions import SOURCE_FOLDER, content_hashes
from addendum.ids import ID_PATTERN, require_id, require_language
from addendum.policy.markup import HEADING_ID, PREAMBLE_ID
from addendum.policy.model import load_policy_files, read_policy_files

MONTHS = {name: number for number, names in enumerate([
    ("january", "jan", "januari"), ("february", "feb", "februari"), ("march", "mar", "maart", "mrt"), ("april", "apr"),
    ("may", "mei"), ("june", "jun", "juni"), ("july", "jul", "juli"), ("august", "aug", "augustus"),
    ("september", "sep", "sept"), ("october", "oct", "oktober", "okt"), ("november", "nov"), ("december", "dec"),
], start=1) for name in names}
_MONTH = "|".join(sorted(MONTHS, key=len, reverse=True))
DATE_FORMS = (
    re.compile(r"(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})"),
    re.compile(rf"(?P<d>\d{{1,2}})(?:st|nd|rd|th|e)?\s+(?P<month>{_MONTH})\.?,?\s+(?P<y>\d{{4}})", re.IGNORECASE),
    re.compile(rf"(?P<month>{_MONTH})\.?\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<y>\d{{4}})", re.IGNORECASE),
)
# "Effective date: 19 May 2018", "Last updated on May 19, 2018", "Laatst gewijzigd op 19 mei 2018", "Ingangsdatum: …"
DATE_LINE = re.compile(
    r"^[\W_]*(?:effective(?:\s+date|\s+as\s+of|\s+from|\s+on)?|last\s+(?:updated|modified|revised|changed)(?:\s+on)?"
    r"|updated(?:\s+on)?|ingangsdatum|van\s+kracht(?:\s+vanaf|\s+op)?|laatst\s+(?:gewijzigd|bijgewerkt)(?:\s+op)?)"
    r"[\s:*_\-–]*(?P<rest>.{6,60})$", re.IGNORECASE | re.MULTILINE)
FRONT_MATTER_DATE_KEYS = ("effective", "effective_date", "effective-date", "last_updated", "last-updated", "updated", "date")
_JINJA_OPENING = re.compile(r"\{(?=[{%#])")


@dataclass(frozen=True)
class SkippedCommit:
    commit: str
    subject: str
    reason: str


@dataclass(frozen=True)
class ImportResult:
    """What an import recorded (or, on a dry run, would record)."""

    policy_id: str
    created_policy: bool
    versions: tuple[PublishedVersion, ...]
    skipped: tuple[SkippedCommit, ...]
    warnings: tuple[str, ...]
    commit: str  # "" on a dry run


@dataclass(frozen=True)
class ConvertedText:
    """A source file's text in the policy format: headings carry ids; front matter is taken off."""

    markdown: str
    front_matter: str
    title: str
    sections: tuple[tuple[str, str], ...]  # (id, body) in order, to keep ids stable in the next version


# ---------------------------------------------------------------------------------------------------------------
# Text: front matter, dates, headings and their ids


def split_front_matter(text: str) -> tuple[str, str]:
    """(YAML front matter without its fences, the rest) — front matter is metadata, not policy text."""
    match = re.match(r"---[ \t]*\r?\n(.*?\r?\n)?(?:---|\.\.\.)[ \t]*(?:\r?\n|$)", text, re.DOTALL)
    if match is None:
        return "", text
    return match[1] or "", text[match.end():]


def parse_date_text(text: str) -> date | None:
    """A date written as 2018-05-19, 19 May 2018, May 19th, 2018 or 19 mei 2018; None when there is none."""
    for form in DATE_FORMS:
        match = form.search(text)
        if match is None:
            continue
        month = int(match["m"]) if "m" in match.groupdict() and match["m"] else MONTHS[match["month"].lower()]
        try:
            return date(int(match["y"]), month, int(match["d"]))
        except ValueError:
            return None
    return None


def declared_date(front_matter: str, text: str) -> tuple[date | None, str]:
    """(the date the document declares for itself, where it was found: "front matter" or "text")."""
    for line in front_matter.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in FRONT_MATTER_DATE_KEYS and (found := parse_date_text(value)):
            return found, "front matter"
    for match in DATE_LINE.finditer(text):
        if found := parse_date_text(match["rest"]):
            return found, "text"
    return None, ""


def heading_slug(text: str) -> str:
    """A section id from heading text: lowercase ASCII letters, digits and hyphens."""
    plain = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    plain = unicodedata.normalize("NFKD", plain).encode("ascii", "ignore").decode().lower()
    slug = re.sub(r"[^a-z0-9]+", "-", plain).strip("-")
    if len(slug) > 63:
        slug = slug[:63].rsplit("-", 1)[0] if "-" in slug[:63] else slug[:63]
    return slug or "section"


def _escape_placeholders(text: str) -> str:
    """Make `{{`, `{%` and `{#` literal: in policy text they would be read as placeholders."""
    return _JINJA_OPENING.sub('{{ "{" }}', text)


@lru_cache(maxsize=1)
def _block_parser() -> MarkdownIt:
    # Headings are block structure: skipping inline parsing makes this several times faster on long files.
    return MarkdownIt("commonmark", {"html": False}).disable("inline")


@dataclass(frozen=True)
class _Heading:
    start: int
    end: int
    level: int
    text: str
    explicit_id: str


def _headings(lines: list[str], text: str) -> tuple[list[_Heading], list[int]]:
    """Top-level headings, and the lines of headings nested in lists or quotes (which cannot start sections)."""
    headings, nested = [], []
    tokens = _block_parser().parse(text)
    for index, token in enumerate(tokens):
        if token.type != "heading_open" or token.map is None:
            continue
        if token.level != 0:
            nested.append(token.map[0])
            continue
        content = " ".join(tokens[index + 1].content.split("\n")).strip()
        match = HEADING_ID.match(content)
        explicit = match["id"] if match and ID_PATTERN.fullmatch(match["id"]) else ""
        if explicit:
            content = match["heading"] if match else content
        level = len(token.markup) if token.markup.startswith("#") else (1 if token.markup.startswith("=") else 2)
        headings.append(_Heading(token.map[0], token.map[1], level, content, explicit))
    return headings, nested


def _bodies(lines: list[str], headings: list[_Heading]) -> list[str]:
    ends = [h.start for h in headings[1:]] + [len(lines)] if headings else []
    return ["".join(lines[h.end:end]) for h, end in zip(headings, ends, strict=True)]


def _assign_ids(headings: list[_Heading], bodies: list[str], previous: Sequence[tuple[str, str]]) -> list[str]:
    """Ids from the heading text; a renamed heading whose text is unchanged keeps the id it had before."""
    taken = {PREAMBLE_ID} | {h.explicit_id for h in headings if h.explicit_id}
    ids = []
    for heading in headings:
        if heading.explicit_id:
            ids.append(heading.explicit_id)
            continue
        base = candidate = heading_slug(heading.text)
        number = 2
        while candidate in taken:
            candidate = f"{base[:58]}-{number}"
            number += 1
        taken.add(candidate)
        ids.append(candidate)
    before = dict(previous)
    vanished = {body: old for old, body in previous if old not in ids and body.strip()}
    for position, (heading, body) in enumerate(zip(headings, bodies, strict=True)):
        if not heading.explicit_id and ids[position] not in before and body in vanished:
            ids[position] = vanished.pop(body)
    return ids


def convert(text: str, previous: Sequence[tuple[str, str]] = ()) -> ConvertedText:
    """A Markdown file as policy text: front matter removed, every heading an ATX heading with a stable `{#id}`."""
    front_matter, body = split_front_matter(text.removeprefix("\ufeff"))
    lines = body.splitlines(keepends=True)
    headings, nested = _headings(lines, body)
    bodies = _bodies(lines, headings)
    ids = _assign_ids(headings, bodies, previous)
    replaced = {h.start: (h, section_id) for h, section_id in zip(headings, ids, strict=True)}
    nested_lines = set(nested)
    out: list[str] = []
    skip_until = 0
    for number, line in enumerate(lines):
        if number < skip_until:
            continue
        if number in replaced:
            heading, section_id = replaced[number]
            out.append(f"{'#' * heading.level} {_escape_placeholders(heading.text)} {{#{section_id}}}\n")
            skip_until = heading.end
        elif number in nested_lines:
            out.append(_escape_placeholders(line.replace("#", "\\#", 1)))
        else:
            out.append(_escape_placeholders(line))
    title = next((h.text for h in headings if h.level == 1), "")
    return ConvertedText("".join(out), front_matter, title, tuple(zip(ids, bodies, strict=True)))


# ---------------------------------------------------------------------------------------------------------------
# The import


def policy_toml(policy_id: str, language: str, site_id: str, title: str, source: str) -> str:
    """policy.toml for an imported policy: one site, one language; the controller left for the editor to complete."""
    data = {"id": policy_id, "default_language": language, "languages": [language], "default_site": site_id,
            "title": {language: title}, "controller": {k: "to be completed" for k in ("name", "address", "email")},
            "sites": {site_id: {"name": site_id.replace("-", " ").title()}}}
    return (f"# Created by `addendum import-history` from {source}.\n"
            "# Complete [controller] (who is responsible, and how to reach them) before publishing a new version.\n"
            + tomli_w.dumps(data))


def _existing_config(repo: Repo, policy_id: str, language: str) -> str | None:
    """The policy.toml of an existing policy that can take the import; None when the policy does not exist."""
    if read_ledger(repo.history_dir, policy_id):  # the ledger itself: the policy need not exist yet
        raise UsageError(f"policy {policy_id} has published versions already",
                         "import into a new policy id; an import is the whole history of a policy")
    folder = repo.policies_dir / policy_id
    if not (folder / "policy.toml").is_file():
        return None
    files = read_policy_files(folder)
    policy = load_policy_files(policy_id, files, f"policies/{policy_id}")
    if policy.languages != (language,):
        raise UsageError(f"policy {policy_id} has the languages {', '.join(policy.languages)}; an import brings one, {language}",
                         f"import into a new policy id, or make {language} its only language first")
    return files["policy.toml"]


def _decode(version: FileVersion) -> str:
    try:
        return version.content.decode("utf-8")
    except UnicodeDecodeError:
        raise HistoryError(f"{version.path} at commit {version.commit[:10]} is not UTF-8 text",
                           "convert the file to UTF-8 in the source repository, or import from a later revision") from None


def _effective(version: FileVersion, converted: ConvertedText, date_from_text: bool,
               previous: PublishedVersion | None, warnings: list[str]) -> tuple[date, str]:
    effective, source = version.committed.date(), "commit date"
    if date_from_text:
        declared, where = declared_date(converted.front_matter, converted.markdown)
        if declared is not None:
            effective, source = declared, where
        else:
            warnings.append(f"{version.commit[:10]}: no date in the text; used the commit date {effective.isoformat()}")
    if previous is not None and effective < previous.effective:
        warnings.append(f"{version.commit[:10]}: its date {effective.isoformat()} ({source}) is before that of "
                        f"{previous.id}; recorded as {previous.effective.isoformat()} to keep versions in order")
        effective = previous.effective
    return effective, source


def import_history(repo: Repo, source: Path, paths: Sequence[str], policy_id: str, language: str, *,
                   site_id: str = "main", revision: str = "HEAD", date_from_text: bool = False,
                   dry_run: bool = False) -> ImportResult:
    """Make every first-parent commit that changed the file a published version of `policy_id`.

    Merge commits count on the first-parent line only: a merged branch becomes one version, dated by the
    merge, because that is when its text reached the main line; the branch's own commits are not versions.
    Versions whose resolved text equals the previous one are skipped. The source repository is only read.
    """
    require_id(policy_id, "policy")
    require_language(language)
    require_id(site_id, "site")
    require_revision(revision)
    for path in paths:
        require_repository_path(path)
    if not paths:
        raise UsageError("name the file to import with --path FILE")
    config = _existing_config(repo, policy_id, language)
    work_tree = None if dry_run else open_work_tree(repo.root)
    if work_tree is not None:
        _require_clean_target(repo, work_tree, policy_id)
    with read_only(source) as source_git:
        history = read_file_history(source_git, paths, revision)
    if not history:
        raise HistoryError(f"{paths[0]} has no history at {revision} in {source}", "check the path and the revision")

    label = f"{source.resolve().name}:{paths[0]}"
    texts: list[ConvertedText] = []
    previous_sections: Sequence[tuple[str, str]] = ()
    for file_version in history:
        texts.append(convert(_decode(file_version), previous_sections))
        previous_sections = texts[-1].sections
    created = config is None
    if config is None:
        title = next((t.title for t in reversed(texts) if t.title), policy_id.replace("-", " ").capitalize())
        config = policy_toml(policy_id, language, site_id, title, label)

    versions: list[PublishedVersion] = []
    sources: dict[str, dict[str, str]] = {}
    skipped: list[SkippedCommit] = []
    warnings: list[str] = []
    for file_version, converted in zip(history, texts, strict=True):
        files = {"policy.toml": config, f"{language}.md": converted.markdown}
        where = f"{file_version.commit[:10]}:{file_version.path}"
        try:
            hashes = content_hashes(load_policy_files(policy_id, files, where))
        except PolicyFormatError as exc:
            raise HistoryError(f"{where} cannot be read as a policy:\n  " + "\n  ".join(p.format() for p in exc.problems),
                               "import up to an earlier revision with --rev, or fix the file in the source repository") from None
        previous = versions[-1] if versions else None
        if previous is not None and previous.hashes == hashes:
            skipped.append(SkippedCommit(file_version.commit, file_version.subject, "same text as the previous version"))
            continue
        effective, date_source = _effective(file_version, converted, date_from_text, previous, warnings)
        provenance: dict[str, object] = {"repository": str(source.resolve()), "commit": file_version.commit,
                                         "path": file_version.path, "committed": file_version.committed,
                                         "date_source": date_source}
        if converted.front_matter:
            provenance["front_matter"] = converted.front_matter
        published = PublishedVersion(
            id=next_version_id(policy_id, effective, {v.id for v in versions}), policy_id=policy_id,
            effective=effective, published=file_version.committed.date(), commit="", classification="material",
            reason="imported: not classified by an editor", author=file_version.author,
            summaries={language: file_version.subject or f"Commit {file_version.commit[:10]}"}, hashes=hashes,
            extra={"provenance": provenance},
        )
        versions.append(published)
        sources[published.slug] = files
    if work_tree is None:
        return ImportResult(policy_id, created, tuple(versions), tuple(skipped), tuple(warnings), "")

    latest = sources[versions[-1].slug]
    write = {f"policies/{policy_id}/{name}": text.encode("utf-8") for name, text in latest.items()}
    write[f"history/{policy_id}/ledger.toml"] = append_entries(None, policy_id, versions).encode("utf-8")
    for slug, files in sources.items():
        write.update({f"history/{policy_id}/{slug}/{SOURCE_FOLDER}/{name}": text.encode("utf-8") for name, text in files.items()})
    message = (f"Import the history of {policy_id} from {label}\n\n{len(versions)} versions, {versions[0].id} to "
               f"{versions[-1].id}; {len(skipped)} commits without a change of text skipped.\n\nPolicy: {policy_id}\n")
    tags = [NewTag(v.id, f"{v.id}: effective {v.effective.isoformat()} (imported from {v.extra['provenance']['commit'][:10]})")
            for v in versions]
    commit = work_tree.commit(message, write=write, tags=tags)
    return ImportResult(policy_id, created, tuple(versions), tuple(skipped), tuple(warnings), commit)


def _require_clean_target(repo: Repo, work_tree: WorkTree, policy_id: str) -> None:
    """Refuse to overwrite uncommitted work: the policy folder and its history must be as HEAD has them."""
    head = work_tree.head()
    for folder in (f"policies/{policy_id}", f"history/{policy_id}"):
        committed = work_tree.files_at(head, folder) if head else {}
        root = repo.root / folder
        on_disk = {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()} if root.is_dir() else {}
        if committed != on_disk:
            raise HistoryError(f"{folder} has uncommitted changes", "commit or remove them before importing")
