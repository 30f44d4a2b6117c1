"""A policy's source as an editable .docx, and an edited copy read back into its Markdown in the working tree."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from addendum.config import Repo
from addendum.errors import HistoryError, Problem, UsageError
from addendum.files import write_atomic
from addendum.history.documents import Comment, ReadSection, document_kind, match_sections, read_docx, rebuild
from addendum.policy.markup import split_sections
from addendum.policy.model import Document, Policy, load_policy
from addendum.render.word.document import KIND_PROPERTY, SourceSection, source_docx
from addendum.render.word.ooxml import bookmark_name


@dataclass(frozen=True)
class ImportReport:
    """What an import wrote and found."""

    written: tuple[str, ...]
    new_ids: tuple[str, ...]
    deleted_ids: tuple[str, ...]
    changed_ids: tuple[str, ...]
    comments: tuple[Comment, ...]
    accepted_changes: int
    unaligned: tuple[str, ...] = ()  # a new language's headings no existing section matched by structure
    missing: tuple[str, ...] = ()  # existing sections a new language's text has no heading for


def _commit(repo: Repo) -> str:
    from addendum.history.repository import open_work_tree

    try:
        return open_work_tree(repo.root).head() or ""
    except HistoryError:  # a folder that is not (yet) a git repository: no commit to record
        return ""


def _documents(policy: Policy, language: str, site_id: str | None) -> tuple[Document, Document | None]:
    language = policy.require_language(language)
    base = policy.documents.get(language)
    if base is None:
        raise UsageError(f"policy {policy.id} has no {language} text", f"its languages: {', '.join(policy.languages)}")
    override = policy.site(site_id).overrides.get(language) if site_id else None
    return base, override


def source_sections(policy: Policy, language: str, site_id: str | None) -> list[SourceSection]:
    """The base text's sections, each replaced by the site's overriding section where it has one (marked)."""
    base, override = _documents(policy, language, site_id)
    out = []
    for section in base.sections:
        replaced = override.get(section.id) if override is not None else None
        if section.id == "preamble" and not section.body.strip() and replaced is None:
            continue
        used = replaced or section
        out.append(SourceSection(section.id, used.heading, section.level, used.body.strip("\n"), replaced is not None))
    return out


def export_document(repo: Repo, policy_id: str, language: str, site_id: str | None, output: Path) -> bytes:
    """Write one language's source (with --site, that site's overrides in place, marked) as an editable .docx."""
    policy = load_policy(repo.root, policy_id)
    if site_id:
        policy.site(site_id)
    data = _export(repo, policy, language, site_id)
    write_atomic(output, data)
    return data


def _export(repo: Repo, policy: Policy, language: str, site_id: str | None, commit: str | None = None) -> bytes:
    site = policy.site(site_id) if site_id else None
    properties = {"addendum.policy": policy.id, "addendum.language": language, "addendum.site": site_id or "",
                  "addendum.commit": _commit(repo) if commit is None else commit}
    return source_docx(source_sections(policy, language, site_id), title=policy.title(language), language=language,
                       locale=policy.locale(language), site_name=site.name if site else "", properties=properties,
                       repo_templates=repo.templates_dir)


def import_document(repo: Repo, source: Path, policy_id: str, language: str, site_id: str | None, *,
                    accept_changes: bool = False) -> ImportReport:
    """Read an edited export back into the policy's Markdown (base file; with --site the site's overriding sections
    go to its override file), as an ordinary working-tree change."""
    policy = load_policy(repo.root, policy_id)
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {source}: {exc.strerror}", "give the path of the .docx to import") from None
    if not data.startswith(b"PK") or document_kind(data, str(source)) == "":
        return _add_language(repo, policy, data, source, language, site_id)
    base, override = _documents(policy, language, site_id)
    read = read_docx(data, str(source), accept_changes=accept_changes)
    kind = read.properties.get(KIND_PROPERTY, "")
    if kind == "render":
        raise UsageError(f"{source} is a rendered text for readers (addendum render --format docx): its placeholders are "
                         "filled in and cannot be given back", f"export the source with `addendum export-document {policy_id} "
                         f"--lang {language}`, edit that, and import it")
    exported = read.properties.get("addendum.policy", policy_id), read.properties.get("addendum.language", language)
    if kind == "source" and exported != (policy_id, language):
        raise UsageError(f"{source} was exported from policy {exported[0]} in {exported[1]}, not {policy_id} in {language}",
                         f"import it with --into {exported[0]} --lang {exported[1]}")
    if kind == "source" and read.properties.get("addendum.site", "") != (site_id or ""):
        was = read.properties.get("addendum.site", "")
        raise UsageError(f"{source} was exported {'for site ' + was if was else 'without --site'}",
                         f"import it {'with --site ' + was if was else 'without --site'}")
    reference = read_docx(_export(repo, policy, language, site_id, commit=""), "the current source")
    known = list(base.sections)
    bookmark_of = {bookmark_name(s.id): s.id for s in known}
    ids = match_sections(read.sections, known, bookmark_of)
    ref_by_id = dict(zip(match_sections(reference.sections, known, bookmark_of), reference.sections, strict=True))
    taken = {s.id for s in known} | {i for i in ids if i}
    into_base: list[tuple[str, ReadSection | None]] = []
    into_site: list[tuple[str, ReadSection | None]] = []
    for section_id, section in zip(ids, read.sections, strict=True):
        if site_id and section.site_override:
            into_site.append((section_id, section))
            into_base.append((section_id, None))
        else:
            into_base.append((section_id, section))
    written, new_ids, deleted, changed = [], [], [], []
    base_result = rebuild(base, into_base, {k: v for k, v in ref_by_id.items() if not v.site_override}, taken)
    targets = [(base, base_result)]
    if site_id:
        site_doc = override or Document(language, f"{policy.directory}/sites/{site_id}/{language}.md", ())
        site_result = rebuild(site_doc, into_site, {k: v for k, v in ref_by_id.items() if v.site_override}, taken)
        # A section the site no longer overrides is not deleted from the policy: its common text stands.
        base_ids = {i for i, _ in into_base}
        site_result.deleted_ids = [i for i in site_result.deleted_ids if i not in base_ids]
        targets.append((site_doc, site_result))
    for document, result in targets:
        new_ids += result.new_ids
        deleted += result.deleted_ids
        changed += result.changed_ids
        if result.text != document.text():
            _, problems = split_sections(result.text, document.file)
            errors = [p for p in problems if p.severity == "error"]
            if errors:
                raise UsageError(f"the imported text of {document.file} would not load: {errors[0].message}",
                                 "fix that in the .docx and import it again")
            write_atomic(repo.root / document.file, result.text)
            written.append(document.file)
    return ImportReport(tuple(written), tuple(new_ids), tuple(deleted), tuple(changed), read.comments, read.tracked_changes)


@dataclass(frozen=True)
class AdoptReport:
    """A new policy made from an existing document: what was written, its sections, what was left out, what check says."""

    written: tuple[str, ...]
    section_ids: tuple[str, ...]
    dropped: tuple[tuple[str, int], ...]
    problems: tuple[Problem, ...]


def adopt_document(repo: Repo, source: Path, policy_id: str, language: str, *, select: str | None = None) -> AdoptReport:
    """Create policies/<policy_id>/ (policy.toml and <language>.md) from a .docx or a saved .html page."""
    import tomli_w

    from addendum.history.adopt import MAX_INPUT, adopt_docx, adopt_html
    from addendum.ids import require_id, require_language
    from addendum.policy.check import check

    require_id(policy_id, "policy")
    require_language(language)
    folder = repo.policies_dir / policy_id
    if folder.exists():
        raise UsageError(f"policies/{policy_id} already exists", "choose a new id with --policy, or import an export "
                         "of it with --into")
    try:
        size = source.stat().st_size
        if size > MAX_INPUT:
            raise UsageError(f"{source} is {size:,} bytes, more than a policy document ({MAX_INPUT:,})",
                             "import the policy's text alone")
        data = source.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {source}: {exc.strerror}", "give the path of a .docx or a saved .html page") from None
    if data.startswith(b"PK"):
        if select:
            raise UsageError("--select picks part of a web page; a .docx is imported whole", "leave out --select")
        adopted = adopt_docx(data, str(source))
    else:
        adopted = adopt_html(data, select=select, name=str(source))
    if not adopted.section_ids and not adopted.markdown.strip():
        raise UsageError(f"{source} holds no text to import", "with a saved page, point --select at the element holding the policy")
    config = {"id": policy_id, "default_language": language, "languages": [language], "default_site": "main",
              "title": {language: adopted.title[:200]},
              "controller": {k: "to be completed" for k in ("name", "address", "email")},
              "sites": {"main": {"name": "Main"}}}
    files = {"policy.toml": f"# Created by `addendum import-document` from {source.name}.\n# Complete [controller] "
                            "(who is responsible, and how to reach them) before publishing.\n" + tomli_w.dumps(config),
             f"{language}.md": adopted.markdown}
    for name, text in files.items():
        write_atomic(folder / name, text)
    result = check(repo.root, policy_id)
    return AdoptReport(tuple(f"policies/{policy_id}/{n}" for n in files), tuple(adopted.section_ids),
                       tuple(sorted(adopted.dropped.items())), result.problems)


def _add_language(repo: Repo, policy: Policy, data: bytes, source: Path, language: str, site_id: str | None) -> ImportReport:
    """A policy's text in a new language from a .docx or a saved page that is not an export: its headings take the
    ids of the default language's sections by structure (nesting and order); the language is added to policy.toml
    (`languages`, and its title from the document's)."""
    import re

    from addendum.history.adopt import adopt_docx, adopt_html, align
    from addendum.ids import require_language

    if site_id:
        raise UsageError("--site goes with an export of addendum export-document", "import the language's common text without --site")
    require_language(language)
    target = f"{policy.directory}/{language}.md"
    if language in policy.languages:
        raise UsageError(f"{source} is not an export of addendum export-document, and {policy.id} already has {language} text",
                         f"export it with `addendum export-document {policy.id} --lang {language}`, edit that and import it")
    config_path = repo.root / policy.config_file
    config = config_path.read_text(encoding="utf-8")
    languages = re.compile(r"^languages\s*=\s*\[([^\]]*)\]", re.M)
    title = re.compile(r"^\[title\]\s*\n", re.M)
    if not languages.search(config) or not title.search(config):
        raise UsageError(f"{policy.config_file} has no `languages = [...]` line or no [title] table to add {language} to",
                         f"add {language!r} to languages and a title for it, then import again")
    adopted = adopt_docx(data, str(source)) if data.startswith(b"PK") else adopt_html(data, name=str(source))
    base = policy.documents[policy.default_language]
    aligned = align(adopted, [(s.id, s.level) for s in base.sections if s.level])
    listed = languages.search(config)
    assert listed is not None
    items = [item for item in (part.strip() for part in listed.group(1).split(",")) if item]
    config = languages.sub(lambda _: "languages = [" + ", ".join([*items, f'"{language}"']) + "]", config, count=1)
    name = adopted.title.replace("\\", "").replace('"', "'")
    config = title.sub(lambda m: m.group(0) + f'{language} = "{name}"\n', config, count=1)
    write_atomic(repo.root / target, aligned.markdown)
    write_atomic(config_path, config)
    return ImportReport((target, policy.config_file), (), (), (), (), 0, aligned.unaligned, aligned.missing)
