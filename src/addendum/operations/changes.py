"""Comparing a policy between two points of its history: the diff, the redline and each version's suggested class."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from addendum import __version__
from addendum.compare.model import ChangeSet
from addendum.compare.sections import compare
from addendum.config import Repo
from addendum.errors import HistoryError, UsageError
from addendum.history.repository import open_work_tree
from addendum.history.versions import LATEST, Snapshot, load_version, published_versions, snapshot
from addendum.ids import require_id
from addendum.policy.model import load_policy
from addendum.policy.resolve import resolve
from addendum.templates import strings

# The classifier, the redline renderer and the status matrix are imported where they are used: `addendum diff` on a
# terminal compares without classifying, and pays for none of them (the matchers alone take tens of milliseconds).
if TYPE_CHECKING:
    from addendum.publish.status import PolicyStatus
    from addendum.render.redline import Layout
    from addendum.render.word import Formatting

# ---------------------------------------------------------------------------------------------------------
# Between two states of a repository: published versions, dates, git revisions or the working tree.

@dataclass(frozen=True)
class PolicyDiff:
    """The ChangeSets of every site × language compared between two snapshots of one policy."""

    policy_id: str
    old: Snapshot
    new: Snapshot
    changesets: tuple[ChangeSet, ...]

    @property
    def has_changes(self) -> bool:
        return any(c.has_changes for c in self.changesets)

    def as_json(self, templates_dir: Path | None = None) -> dict[str, Any]:
        """The comparison as data (docs/diff-json.md); each change set's reasons also said in its own language,
        through the catalogues (a repository's own first, from beside `templates_dir`)."""
        return {
            "format": "addendum-diff/2",
            "policy": self.policy_id,
            "from": _snapshot_json(self.old),
            "to": _snapshot_json(self.new),
            "compared": [f"{c.site}/{c.language}" for c in self.changesets],
            "changesets": [c.as_json(t=strings(c.language, templates_dir)) for c in self.changesets if c.has_changes],
        }


def _snapshot_json(shot: Snapshot) -> dict[str, Any]:
    return {"label": shot.label, "version": shot.version.id if shot.version else None,
            "effective": shot.effective.isoformat() if shot.effective else None}


def diff_policy(repo: Repo, policy_id: str, from_ref: str | None = None, to_ref: str | None = None,
                site_id: str | None = None, language: str | None = None) -> PolicyDiff:
    """Compare a policy between FROM (default: the last published version) and TO (default: the working tree),
    for one site and language or, when not given, every site × language either side has."""
    require_id(policy_id, "policy")
    if from_ref is None and not published_versions(repo, policy_id):
        raise HistoryError(f"{policy_id} has no published version to compare the working tree with",
                           f"name what to compare: addendum diff {policy_id} FROM [TO] (a git revision, e.g. HEAD)")
    old = snapshot(repo, policy_id, from_ref or LATEST)
    new = snapshot(repo, policy_id, to_ref)
    sites = [site_id] if site_id else list(dict.fromkeys([*new.policy.sites, *old.policy.sites]))
    languages = [language] if language else list(dict.fromkeys([*new.policy.languages, *old.policy.languages]))
    for site in sites:
        if site not in new.policy.sites and site not in old.policy.sites:
            new.policy.site(site)  # raises the usual "no site" error listing the known ones
    for code in languages:
        if code not in new.policy.languages and code not in old.policy.languages:
            new.policy.require_language(code)
    changesets = []
    for site in sites:
        for code in languages:
            before = resolve(old.policy, site, code) if site in old.policy.sites and code in old.policy.languages else None
            after = resolve(new.policy, site, code) if site in new.policy.sites and code in new.policy.languages else None
            # A site or language only one side has is compared with nothing: all added, or all removed.
            if after is None and before is not None:
                after = replace(before, sections=())
            elif before is None and after is not None:
                before = replace(after, sections=())
            if before is not None and after is not None:
                changesets.append(compare(before, after))
    return PolicyDiff(policy_id, old, new, tuple(changesets))


def classified_diff(repo: Repo, policy_id: str, from_ref: str | None = None, to_ref: str | None = None,
                    site_id: str | None = None, language: str | None = None) -> PolicyDiff:
    """`addendum diff`: the comparison with each change's suggested class and reasons (tags of the TO side)."""
    from addendum.compare.classify import classify_changeset

    result = diff_policy(repo, policy_id, from_ref, to_ref, site_id, language)
    return replace(result, changesets=tuple(classify_changeset(c, result.new.policy) for c in result.changesets))


def make_redline(repo: Repo, policy_id: str, from_ref: str, to_ref: str | None, site_id: str | None = None,
                 language: str | None = None, *, fmt: Literal["html", "pdf", "docx"] = "html", layout: Layout = "inline",
                 changes_only: bool = False, generated: date | None = None, author: str | None = None,
                 formatting: Formatting = "show", prepared_by: str | None = None, signoff: bool = True,
                 now: datetime | None = None) -> bytes:
    """The redline of one site and language (default: the TO side's default site and language) between two snapshots
    (version, date, revision; None: working tree), with each change's suggested materiality, as HTML, PDF or .docx bytes
    (`author` and `formatting` are the .docx's: see _redline_docx). The HTML and PDF state when they were made (`now`,
    default this moment in the local time zone), by whom (`prepared_by`, default the git identity) and with which
    version of Addendum, and end with a sign-off block unless `signoff` is False."""
    from addendum.compare.classify import classified_changes
    from addendum.render.redline import Preparation, VersionInfo, redline_html

    old, new = snapshot(repo, policy_id, from_ref), snapshot(repo, policy_id, to_ref)
    site_id = site_id or new.policy.default_site
    language = language or new.policy.default_language
    for shot in (old, new):
        shot.policy.site(site_id)
        shot.policy.require_language(language)
    changeset = classified_changes(old.policy, new.policy, site_id, language)
    if fmt == "docx":
        return _redline_docx(repo, changeset, old, new, author=author, formatting=formatting, generated=generated)
    when = (now or datetime.now().astimezone()).replace(microsecond=0)
    prepared = Preparation(when, prepared_by or _preparer(repo), f"Addendum {__version__}", signoff)
    ends = [VersionInfo.of(shot, resolve(shot.policy, site_id, language).content_hash()) for shot in (old, new)]
    html = redline_html(changeset, ends[0], ends[1], layout=layout, changes_only=changes_only,
                        repo_templates=repo.templates_dir, prepared=prepared)
    if fmt == "html":
        return html.encode("utf-8")
    from addendum.render.pdf import html_to_pdf

    t = strings(language, repo.templates_dir)
    title = t.gettext("Redline — %(title)s: %(old)s → %(new)s", title=changeset.new_title, old=old.label, new=new.label)
    return html_to_pdf(html, title=title, language=language, created=when)


def _preparer(repo: Repo) -> str:
    """Who prepares a redline, as git knows them; a redline never leaves its "prepared by" blank."""
    try:
        return open_work_tree(repo.root).identity()
    except HistoryError:
        raise UsageError("a redline states who prepared it, and git does not know who you are here",
                         "pass --prepared-by NAME, or set git config user.name and user.email") from None


def _redline_docx(repo: Repo, changeset: ChangeSet, old: Snapshot, new: Snapshot, *, author: str | None,
                  formatting: Formatting, generated: date | None) -> bytes:
    """The .docx redline: its revisions are by the publisher of TO (or `author`), dated TO's publication date; for an
    unpublished TO, by the git identity of whoever makes it, dated today."""
    from addendum.render.word.redline import redline_docx

    if new.version is not None:
        who, when = author or new.version.author, new.version.published
    else:
        who, when = author or open_work_tree(repo.root).identity(), date.today()
    return redline_docx(changeset, old, new, author=who, revision_date=when, formatting=formatting,
                        repo_templates=repo.templates_dir, generated=generated)


def policy_status(repo: Repo, policy_id: str) -> PolicyStatus:
    """`addendum status`: sections × languages (and overriding sites) of the working tree, and what is unpublished."""
    from addendum.publish.status import status_of

    current = load_policy(repo.root, policy_id)
    versions = published_versions(repo, policy_id)
    return status_of(current, [load_version(repo, v) for v in versions], versions)


def status_json(repo: Repo, status: PolicyStatus, language: str | None = None) -> dict[str, Any]:
    """`addendum status --json`: the status with each reason's sentence in `language` (default: the policy's)."""
    policy = load_policy(repo.root, status.policy_id)
    chosen = policy.require_language(language) if language else policy.default_language
    return status.as_json(strings(chosen, repo.templates_dir))
