"""What a change notice says for one site and language: the changed sections, the editor's words, links and rights."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from addendum import paths
from addendum.compare.classify import classified_changes
from addendum.compare.reasons import Reason
from addendum.config import Repo
from addendum.errors import AddendumError, ConfigError, NotifyError, UsageError
from addendum.history.ledger import PublishedVersion
from addendum.history.versions import find_version, in_force_periods, load_version, published_versions, replaced_version
from addendum.policy import kinds
from addendum.policy.model import Controller, Policy, load_policy
from addendum.policy.notes import Note, editor_notes
from addendum.policy.resolve import ResolvedPolicy, normalise, resolve, shown_markers
from addendum.policy.sender import sender_name
from addendum.templates import strings

# When a notice is sent, against the version's effective date: at least notice_days before it, inside the notice
# period (sent with --urgent), or on or after it (sent with --late; the notice says the change took effect).
AHEAD, SHORT, LATE = "ahead", "short", "late"


@dataclass(frozen=True)
class SectionChange:
    """One section that readers of this site and language will find added, removed or changed."""

    id: str
    ref: str
    heading: str
    kind: str  # added | removed | changed
    note: str = ""  # the editor's note on this change in the notice's language (policy.toml [notes])
    impact: str = ""
    reasons: tuple[str, ...] = ()  # without a note: why the change matters, in the notice's language


@dataclass(frozen=True)
class Authority:
    name: str
    url: str


@dataclass(frozen=True)
class NoticeLinks:
    new: str
    redline: str
    previous: str
    changelog: str


@dataclass(frozen=True)
class NoticeContent:
    """Everything a notice says to readers of one site in one language; recipients only add their greeting."""

    policy_id: str
    version_id: str
    previous_id: str
    title: str
    site_id: str
    site_name: str
    language: str
    locale: str
    effective: date
    published: date
    material: bool
    summary: str
    summary_language: str
    impact: str
    changes: tuple[SectionChange, ...]
    links: NoticeLinks
    controller: Controller
    contact_email: str
    authority: Authority | None
    content_hash: str
    kind: str = "privacy"  # what the document is: privacy, terms, cookies, subprocessors or other
    rights: tuple[str, ...] = ()  # the rights the notice lists (kinds.RIGHTS), only for a document about personal data
    object_to: tuple[str, ...] = ()  # the processing a reader may object to (kinds.OBJECTION_BASES)
    options: tuple[str, ...] = ()  # terms: what a reader may do (kinds.OPTIONS)
    timing: str = AHEAD  # when it is sent: AHEAD or SHORT (announces the change) or LATE (says it took effect)
    sender_name: str = ""  # the From name in this language: [sites.X] sender_name, else [notify] from_name, else the controller
    # The site's own reply-to ([sites.X] reply_to), else [notify]'s
    reply_to: str = ""

    @property
    def personal_data(self) -> bool:
        """Whether the notice speaks of personal data, rights and the supervisory authority."""
        return self.kind in kinds.PERSONAL_DATA_KINDS


@dataclass(frozen=True)
class NoticePlan:
    """A published version to notify, its predecessor, and the sites whose text changed."""

    repo: Repo
    version: PublishedVersion
    previous: PublishedVersion | None
    affected_sites: tuple[str, ...]
    timing: str = AHEAD  # see notice_timing
    timing_reason: str = ""  # why a notice is sent inside the notice period or after the effective date

    @cached_property
    def policy(self) -> Policy:
        return load_version(self.repo, self.version)

    @cached_property
    def previous_policy(self) -> Policy | None:
        return load_version(self.repo, self.previous) if self.previous else None

    @cached_property
    def reader_facts(self) -> Policy:
        """Where the kind, rights, controller and authority of a notice come from: the policy as it stands now (they
        tell readers how to reach the controller and the authority today), else the published version's."""
        try:
            return load_policy(self.repo.root, self.policy_id)
        except AddendumError:
            return self.policy

    @property
    def policy_id(self) -> str:
        return self.version.policy_id

    def language_for(self, site_id: str, language: str) -> str:
        """The recipient's language when the policy has it, else the site's default language."""
        if language in self.policy.languages:
            return language
        site_default = self.policy.site(site_id).variables.get("default_language")
        return str(site_default) if site_default in self.policy.languages else self.policy.default_language


def plan_notice(repo: Repo, policy_id: str, version_id: str, force: bool = False) -> NoticePlan:
    """The version to notify; an editorial version is refused unless forced (people need not be told of it)."""
    version = find_version(repo, policy_id, version_id)
    if version.classification != "material" and not force:
        raise UsageError(f"{version.id} is {version.classification}: change notices are for material versions",
                         "pass --force to send a notice of it all the same")
    versions = published_versions(repo, policy_id)
    period = next(p for p in in_force_periods(versions) if p.version.id == version.id)
    if period.never_in_force and period.successor is not None:
        raise UsageError(f"{version.id} never takes effect: {period.successor.id} replaced it before its effective date "
                         f"({version.effective.isoformat()})",
                         f"notify {period.successor.id}: its notice compares with the version in force before that date, "
                         "so it covers both")
    # What readers compare with: the version in force before this one's date (for a `.2`, not the `.1`).
    previous = replaced_version(versions, version)
    sites = sorted({key.split("/")[0] for key in version.hashes})
    if previous is not None:
        sites = [s for s in sites if any(version.hashes[k] != previous.hashes.get(k) for k in version.hashes if k.startswith(s + "/"))]
    return NoticePlan(repo, version, previous, tuple(sites))


def notice_timing(plan: NoticePlan, today: date, urgent: bool = False, late: bool = False, reason: str = "",
                  sending: bool = True) -> NoticePlan:
    """The plan with its timing on the day of sending: a notice says "we are changing" only before the effective date,
    and is sent inside the notice period (notice_days of policy.toml) only with --urgent --reason, on or after the
    effective date only with --late --reason (and then says the change took effect). A preview or dry run
    (`sending` False) renders what that day's notice would say and refuses nothing."""
    effective, notice_days = plan.version.effective, plan.policy.notice_days
    reason = reason.strip()
    when = f"{plan.version.id} takes effect on {effective.isoformat()}"
    if today >= effective:
        timing, needed = LATE, late
        problem = (f"{plan.version.id} took effect on {effective.isoformat()} (today is {today.isoformat()}): a notice "
                   "sent now cannot announce it as a coming change")
        hint = ("to tell people it took effect, pass --late --reason TEXT (the reason is recorded with each notice; "
                "the notice then says the change took effect on that date)")
    elif today > effective - timedelta(days=notice_days):
        timing, needed = SHORT, urgent
        problem = (f"{when}, {(effective - today).days} day(s) from today ({today.isoformat()}); policy "
                   f"{plan.policy_id} requires {notice_days} days' notice")
        hint = "to send it all the same, pass --urgent --reason TEXT (the reason is recorded with each notice)"
    else:
        return replace(plan, timing=AHEAD, timing_reason="")
    if sending and not needed:
        raise UsageError(problem, hint)
    if sending and not reason:
        raise UsageError(f"{problem}, and --reason is empty", "say why in --reason TEXT: it is recorded with each notice")
    return replace(plan, timing=timing, timing_reason=reason if needed else "")


def section_changes(old: ResolvedPolicy | None, new: ResolvedPolicy) -> tuple[SectionChange, ...]:
    """Sections added, removed or changed between two resolved texts, in the new text's order (removed ones last)."""
    before = {s.id: s for s in old.sections} if old else {}
    changes = []
    for section in new.sections:
        previous = before.get(section.id)
        if previous is None:
            changes.append(SectionChange(section.id, section.ref, section.heading, "added"))
        elif (normalise(previous.heading), normalise(previous.text).strip()) != (normalise(section.heading), normalise(section.text).strip()):
            changes.append(SectionChange(section.id, section.ref, section.heading, "changed"))
    current = {s.id for s in new.sections}
    changes.extend(SectionChange(s.id, s.ref, s.heading, "removed") for s in before.values() if s.id not in current)
    return tuple(changes)


def _with_notes(changes: tuple[SectionChange, ...], notes: Mapping[str, Note]) -> tuple[SectionChange, ...]:
    return tuple(replace(c, note=notes[c.id].text, impact=notes[c.id].impact) if c.id in notes else c for c in changes)


# A notice tells readers what matters to them: the evidence of a material change, not its section's tags.
_READER_REASONS = frozenset({"added", "removed", "evidence-added", "evidence-removed", "evidence-changed"})


def _with_reasons(changes: tuple[SectionChange, ...], plan: NoticePlan, site_id: str, language: str) -> tuple[SectionChange, ...]:
    """Each change without a note gets the material reasons the redline and the changelog give, said of its heading
    in the notice's language ("MailChimp wijzigt de waarborg voor doorgiften: …")."""
    if plan.previous_policy is None or site_id not in plan.previous_policy.sites or language not in plan.previous_policy.languages:
        return changes
    t = strings(language, plan.repo.templates_dir)
    found = {c.id: c.reasons for c in classified_changes(plan.previous_policy, plan.policy, site_id, language).changes}
    out = []
    for change in changes:
        said = tuple(Reason("material", change.heading or change.ref, r.code, r.kind, r.values, r.tags).phrase(t)
                     for r in found.get(change.id, ()) if isinstance(r, Reason) and r.level == "material" and r.code in _READER_REASONS)
        out.append(replace(change, reasons=said) if said and not change.note else change)
    return tuple(out)


def _per_language(value: Any, language: str, default: str) -> str:
    if isinstance(value, Mapping):
        return str(value.get(language) or value.get(default) or "")
    return str(value or "")


def supervisory_authority(policy: Policy, language: str) -> Authority | None:
    """The authority a reader may complain to: policy.toml's [supervisory_authority] (name and url per language),
    else the authority of the controller's country (policy/authorities.toml); None when neither names one."""
    table = policy.settings.get("supervisory_authority")
    if table is not None and not isinstance(table, Mapping):
        raise NotifyError(f"{policy.config_file}: [supervisory_authority] must be a table with name and url",
                          'e.g. name = { en = "…" } and url = { en = "https://…" }')
    found = kinds.supervisory_authority(policy, language)
    if table and (found is None or urlsplit(found.url).scheme != "https"):
        raise NotifyError(f"{policy.config_file}: [supervisory_authority] needs a name and an https url for {language}",
                          "readers must be told where to complain (GDPR Art. 13(2)(d))")
    return Authority(found.name, found.url) if found else None


def archive_links(base_url: str, version: PublishedVersion, previous: PublishedVersion | None, site_id: str,
                  language: str) -> NoticeLinks:
    policy_id = version.policy_id

    def url(path: str) -> str:
        return paths.url(base_url, path)

    return NoticeLinks(
        new=url(paths.version_page(policy_id, version.slug, site_id, language)),
        redline=url(paths.redline_page(policy_id, version.slug, site_id, language)) if previous else "",
        previous=url(paths.version_page(policy_id, previous.slug, site_id, language)) if previous else "",
        changelog=url(paths.changelog(policy_id, language)),
    )


@dataclass(frozen=True)
class SettingProblem:
    """A key of addendum.toml that a notice run needs, missing or invalid: what is wrong and how to set it."""

    key: str
    problem: str
    fix: str


def settings_error(problems: Sequence[SettingProblem]) -> ConfigError:
    """One error naming every setting to fix, so that a run is not refused one key at a time."""
    listed = "".join(f"\n  - {p.key}: {p.problem}\n    {p.fix}" for p in problems)
    return ConfigError(f"notify needs {len(problems)} setting(s) in addendum.toml that are missing or invalid:{listed}",
                       "every key is described in the README under 'Configuration'")


def base_url_problems(repo: Repo) -> list[SettingProblem]:
    base_url = str(repo.setting("archive.base_url"))
    if urlsplit(base_url).scheme in ("https", "http") and urlsplit(base_url).netloc:
        return []
    return [SettingProblem("archive.base_url", f"{base_url!r} is not a web address" if base_url else "is not set",
                           'notices link to the archive: set [archive] base_url = "https://…/history/"')]


def require_base_url(repo: Repo) -> str:
    problems = base_url_problems(repo)
    if problems:
        raise settings_error(problems)
    return str(repo.setting("archive.base_url"))


def notice_content(plan: NoticePlan, site_id: str, language: str, base_url: str) -> NoticeContent:
    """The notice for readers of one site in one language (already the language the policy has)."""
    policy, version = plan.policy, plan.version
    new = resolve(policy, site_id, language)
    old = None
    if plan.previous_policy is not None and site_id in plan.previous_policy.sites:
        previous_language = language if language in plan.previous_policy.languages else plan.previous_policy.default_language
        old = resolve(plan.previous_policy, site_id, previous_language)
    summary_language = language if version.summaries.get(language) else policy.default_language
    site = policy.site(site_id)
    contact = site.variables.get("contact")
    facts = plan.reader_facts
    contact_email = str(contact.get("email")) if isinstance(contact, Mapping) and contact.get("email") else facts.controller.email
    promises = kinds.promises(facts)
    # Who the site's notices come from is today's setting, like the controller's contact (reader_facts).
    sending_site = facts.sites[site_id].variables if site_id in facts.sites else site.variables
    sender = sender_name(facts if site_id in facts.sites else policy, site_id, language, plan.repo.setting("notify.from_name"))
    return NoticeContent(
        policy_id=policy.id, version_id=version.id, previous_id=plan.previous.id if plan.previous else "",
        title=policy.title(language), site_id=site_id, site_name=site.name, language=language,
        locale=policy.locale(language), effective=version.effective, published=version.published,
        material=version.classification == "material",
        summary=version.summaries.get(summary_language, ""), summary_language=summary_language,
        impact=_per_language(version.extra.get("impact"), language, ""),
        changes=_with_reasons(_with_notes(section_changes(old, new), editor_notes(policy, language)), plan, site_id, language),
        links=archive_links(base_url, version, plan.previous, site_id, language),
        controller=facts.controller, contact_email=contact_email,
        authority=supervisory_authority(facts, language) if promises.personal_data else None,
        content_hash=version.hash_for(site_id, language) or new.content_hash(),
        kind=promises.kind, rights=promises.rights, object_to=promises.object_to, options=promises.options,
        timing=plan.timing, sender_name=sender.name,
        reply_to=str(sending_site.get("reply_to") or ""),
    )


@dataclass(frozen=True)
class UntrueLink:
    """Something a notice to readers of one site in one language would point them to that is not there yet: a
    section showing a pending value's marker, or an archived file that does not exist."""

    site_id: str
    language: str
    what: str
    pending: bool  # True: a "[to be provided: …]" marker; False: a missing archived file


def pending_markers(plan: NoticePlan, site_id: str, language: str) -> list[UntrueLink]:
    """Sections of the version, as readers of the site see them, that show a marker for a value the site has not
    given yet ([sites.X] pending): the page the notice links to would say "[to be provided: contact.email]"."""
    return [UntrueLink(site_id, language, f"{section.ref} shows {', '.join(shown)}", True)
            for section, shown in shown_markers(plan.policy, site_id, language)]


def missing_archive(plan: NoticePlan, site_id: str, language: str) -> list[UntrueLink]:
    """The archived pages a notice links to (the new and previous versions, the redline, the changelog) that are
    not in history/ yet."""
    links = archive_links("", plan.version, plan.previous, site_id, language)
    paths_linked = [links.new, links.redline, links.previous, links.changelog]
    return [UntrueLink(site_id, language, f"history/{path} does not exist", False)
            for path in paths_linked if path and not (plan.repo.history_dir / path).is_file()]


def untrue_links(plan: NoticePlan, variants: Sequence[tuple[str, str]]) -> list[UntrueLink]:
    """What keeps the notices of these (site, language) variants from being true today, every variant at once."""
    found: list[UntrueLink] = []
    for site_id, language in variants:
        found += pending_markers(plan, site_id, language) + missing_archive(plan, site_id, language)
    return found


def untrue_links_error(plan: NoticePlan, found: Sequence[UntrueLink]) -> NotifyError:
    """One error naming each site, language and section or file, and how to fix each kind."""
    listed = "".join(f"\n  - site {u.site_id}, language {u.language}: {u.what}" for u in found)
    fixes = []
    pending_sites = sorted({u.site_id for u in found if u.pending})
    if pending_sites:
        complete = [s for s in plan.affected_sites if s not in pending_sites]
        only = " ".join(f"--site {s}" for s in complete) if complete else "--site SITE"
        fixes.append(f"give the values under [sites.{pending_sites[0]}] in policies/{plan.policy_id}/policy.toml (and take "
                     f"them off its pending list), then publish a version with them and notify that one; or notify only "
                     f"the sites whose text is complete for now: {only}")
    if any(not u.pending for u in found):
        fixes.append(f"build the archive first: addendum archive {plan.policy_id} (or pass --archive to build what is missing)")
    return NotifyError(f"{plan.version.id}: a notice sent now would point readers to text that is not there yet:{listed}",
                       "\n  ".join(fixes))
