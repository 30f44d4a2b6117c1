"""`addendum evidence`: one person's dossier — what was in force for them, what they were told, and the proof."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from addendum import __version__, paths
from addendum.archive.manifest import read_manifest, sha256_file
from addendum.archive.verify import verify_archive
from addendum.config import Repo
from addendum.errors import NotifyError
from addendum.files import write_atomic
from addendum.history.ledger import PublishedVersion, ledger_path
from addendum.history.versions import published_versions, require_policy
from addendum.notify.erasure import LEGAL_GROUND
from addendum.notify.records import Notice, PersonRecords, legal_basis, message_file_name, person_records, stored_messages
from addendum.notify.state import State, open_state
from addendum.notify.tokens import private_dir, require_ignored
from addendum.render import stylesheet
from addendum.render.pdf import html_to_pdf
from addendum.templates import render_template, strings

DOSSIER_FORMAT = "addendum-evidence/1"
ARTICLES = {"consent": "GDPR Art. 6(1)(a)", "contract": "GDPR Art. 6(1)(b)"}


class NobodyFound(NotifyError):
    """The address, id or keyed hash names nobody the state store has records of."""

    exit_code = 1


@dataclass(frozen=True)
class Period:
    start: date | None  # None: since the first version
    end: date

    def overlaps(self, effective: date, until: date | None) -> bool:
        return effective <= self.end and (until is None or self.start is None or until > self.start)


def _iso(value: datetime | date | None) -> str | None:
    if value is None:
        return None
    return value.isoformat(timespec="seconds") if isinstance(value, datetime) else value.isoformat()


def _person(records: PersonRecords) -> dict[str, Any]:
    subscriber = records.subscriber
    bases = [{"audience": audience, "basis": legal_basis(audience), "article": ARTICLES.get(legal_basis(audience), "")}
             for audience in records.audiences]
    person: dict[str, Any] = {"erased": records.erased, "keyed_hashes": list(records.digests), "audiences": list(records.audiences),
                              "legal_bases": bases, "sites": list(records.sites), "languages": list(records.languages())}
    if subscriber is not None:
        person.update(email=subscriber.email, name=subscriber.name, uid=subscriber.uid, policies=list(subscriber.policies),
                      source=subscriber.consent_source, since=_iso(subscriber.consent_at), added=_iso(subscriber.created_at),
                      status=subscriber.status, unsubscribed=_iso(subscriber.unsubscribed_at))
    else:
        forgotten = [e.at for e in records.events if e.kind == "forgotten"]
        person.update(erased_at=_iso(max(forgotten)) if forgotten else None, legal_ground=LEGAL_GROUND)
    return person


def _policies(repo: Repo, records: PersonRecords, policy_id: str | None) -> list[str]:
    """The policies the person subscribes to (all, when none is named), and every policy they were notified of."""
    if policy_id is not None:
        return [require_policy(repo, policy_id)]
    subscribed = (list(records.subscriber.policies) or repo.policy_ids()) if records.subscriber is not None else []
    named = [p for p in _named_policies(records) if ledger_path(repo.history_dir, p).is_file()]
    return sorted(set(subscribed + named))


def _named_policies(records: PersonRecords) -> list[str]:
    return [n.policy_id for n in records.notices] + [a.policy_id for a in records.acceptances]


def _keys(records: PersonRecords, version: PublishedVersion) -> list[str]:
    """The site/language texts of `version` this person read: their language where the version has it, else the
    language their notices were in, else the site's first."""
    keys = []
    for site_id in records.sites:
        offered = sorted(key for key in version.hashes if key.startswith(site_id + "/"))
        mine = [f"{site_id}/{language}" for language in records.languages(site_id) if f"{site_id}/{language}" in version.hashes]
        keys += mine[:1] or offered[:1]
    return keys


class _Archive:
    """The manifest and `verify`'s findings, read once for a dossier."""

    def __init__(self, repo: Repo, policy_ids: Sequence[str]) -> None:
        self.repo = repo
        self.manifest = read_manifest(repo.history_dir)
        self.findings: dict[str, list[str]] = {}
        self.verified = False
        # Every archived file is covered by the manifest's SHA-256 of it: the manifest's signature and token attest it.
        self.attested = {"signature": "none", "timestamp": "none"}
        if self.manifest is not None and policy_ids:
            report = verify_archive(repo, policy_ids)
            self.verified = report.intact
            self.attested = {"signature": report.signature, "timestamp": report.timestamp}
            for finding in report.findings:
                self.findings.setdefault(finding.path, []).append(finding.format())

    def summary(self) -> dict[str, Any]:
        path = self.repo.history_dir / paths.MANIFEST
        if self.manifest is None:
            return {"manifest": None, "verified": False, "findings": []}
        return {"manifest": f"history/{paths.MANIFEST}", "manifest_sha256": sha256_file(path), "verified": self.verified,
                "findings": sorted(line for lines in self.findings.values() for line in lines), **self.attested}

    def files(self, version: PublishedVersion, key: str) -> list[dict[str, Any]]:
        if self.manifest is None:
            return []
        site_id, _, language = key.partition("/")
        found = []
        for path, entry in sorted(self.manifest.files.items()):
            if (entry.get("version"), entry.get("site"), entry.get("language")) != (version.id, site_id, language):
                continue
            on_disk = self.repo.history_dir / path
            problems = self.findings.get(path, []) + self.findings.get(version.id, [])
            found.append({"path": f"history/{path}", "kind": entry.get("kind"), "sha256": entry.get("sha256"),
                          "sha256_on_disk": sha256_file(on_disk) if on_disk.is_file() else None, "manifest_entry": entry,
                          "verdict": "intact" if not problems else "; ".join(problems), **self.attested})
        return found


def _acceptances(records: PersonRecords, ledgers: dict[str, dict[str, PublishedVersion]]) -> list[dict[str, Any]]:
    """The acceptance records of a site's user reference, each content hash checked against the ledger."""
    out = []
    for record in records.acceptances:
        version = ledgers.get(record.policy_id, {}).get(record.version_id)
        recorded = version.hash_for(record.site_id, record.language) if version else None
        out.append({**record.as_json(), "ledger_content_hash": recorded, "content_hash_matches_ledger": recorded == record.content_hash})
    return out


def _versions(repo: Repo, records: PersonRecords, policy_ids: Sequence[str], period: Period, archive: _Archive) -> list[dict[str, Any]]:
    notified = {n.version_id for n in records.notices} | {a.version_id for a in records.acceptances}
    out = []
    for policy_id in policy_ids:
        versions = published_versions(repo, policy_id)
        for index, version in enumerate(versions):
            until = versions[index + 1].effective if index + 1 < len(versions) else None
            if not (period.overlaps(version.effective, until) or version.id in notified):
                continue
            for key in _keys(records, version):
                site_id, _, language = key.partition("/")
                out.append({"policy": policy_id, "version": version.id, "site": site_id, "language": language,
                            "effective": _iso(version.effective), "in_force_until": _iso(until),
                            "published": _iso(version.published), "classification": version.classification,
                            "commit": version.commit, "content_hash": version.hashes[key],
                            "ledger": f"history/{policy_id}/{ledger_path(repo.history_dir, policy_id).name}",
                            "files": archive.files(version, key)})
    return out


def _notice(repo: Repo, notice: Notice, ledgers: dict[str, dict[str, PublishedVersion]]) -> dict[str, Any]:
    version = ledgers.get(notice.policy_id, {}).get(notice.version_id)
    recorded = version.hash_for(notice.site_id, notice.language) if version else None
    return {"policy": notice.policy_id, "version": notice.version_id, "site": notice.site_id, "language": notice.language,
            "audience": notice.audience, "state": notice.state, "message_id": notice.message_id,
            "queued_at": _iso(notice.queued_at), "sent_at": _iso(notice.sent_at), "reply": notice.reply,
            "timing": notice.timing, "timing_reason": notice.timing_reason,
            "content_hash": notice.content_hash, "ledger_content_hash": recorded,
            "content_hash_matches_ledger": recorded == notice.content_hash,
            "message_sha256": notice.message_sha256, "stored_message_sha256": notice.stored_sha256 or None,
            "stored_message_matches": (notice.stored_sha256 == notice.message_sha256) if notice.stored_sha256 else None,
            "message_erased_at": _iso(notice.erased_at),
            "attempts": [{"at": _iso(a.at), "outcome": a.outcome, "reply": a.reply} for a in notice.attempts],
            "bounces": [{"kind": b.kind, "status": b.status, "diagnostic": b.diagnostic, "reported_at": _iso(b.reported_at)}
                        for b in notice.bounces]}


def build_dossier(repo: Repo, state: State, asked: str, policy_id: str | None = None, start: date | None = None,
                  end: date | None = None, now: datetime | None = None) -> dict[str, Any]:
    """The dossier of the person `asked` names (address, subscriber id or keyed hash of a forgotten address), as
    JSON-ready data: who they are to us and on what legal basis, their subscription history, every version in force
    for their sites and languages in the period with its archived files and `verify`'s verdict, every notice."""
    records = person_records(state, asked)
    if not records.found:
        raise NobodyFound(f"no records of {asked}: not on the list, never notified, never forgotten",
                          "check the address (`addendum subscribers list`), or give the keyed hash `subscribers forget` printed")
    made = now or datetime.now(UTC)
    period = Period(start, end or made.date())
    policy_ids = _policies(repo, records, policy_id)
    archive = _Archive(repo, policy_ids)
    ledgers = {pid: {v.id: v for v in published_versions(repo, pid)}
               for pid in set(_named_policies(records)) if ledger_path(repo.history_dir, pid).is_file()}
    return {"format": DOSSIER_FORMAT, "made": _iso(made), "tool": f"addendum {__version__}", "asked": asked,
            "period": {"from": _iso(period.start), "to": _iso(period.end)}, "policies": policy_ids,
            "person": _person(records),
            "events": [{"kind": e.kind, "audience": e.audience, "legal_basis": e.legal_basis, "source": e.source,
                        "detail": e.detail, "at": _iso(e.at)} for e in records.events],
            "versions": _versions(repo, records, policy_ids, period, archive),
            "notices": [_notice(repo, n, ledgers) for n in records.notices if policy_id in (None, n.policy_id)],
            "acceptances": _acceptances(records, ledgers),
            "archive": archive.summary()}


def dossier_json(dossier: dict[str, Any]) -> bytes:
    return (json.dumps(dossier, indent=1, ensure_ascii=False, sort_keys=False) + "\n").encode("utf-8")


def dossier_pdf(repo: Repo, dossier: dict[str, Any], language: str) -> bytes:
    """The dossier as a PDF in the operator's language, through templates/dossier.html."""
    words = strings(language, repo.templates_dir)
    html = render_template(["dossier.html"], {"d": dossier, "t": words, "locale": words.language, "css": stylesheet("dossier.css"),
                                              "articles": ARTICLES}, repo.templates_dir)
    made = datetime.fromisoformat(str(dossier["made"]))
    who = dossier["person"].get("email") or (dossier["person"]["keyed_hashes"] or [dossier["asked"]])[0]
    return html_to_pdf(html, title=words.gettext("Evidence: %(who)s", who=who), language=words.language, created=made)


def dossier_lines(dossier: dict[str, Any]) -> list[str]:
    """The dossier in short, for a terminal (English, as every terminal message)."""
    person = dossier["person"]
    who = person.get("email") or ("forgotten person, keyed hash " + ", ".join(person["keyed_hashes"]) if person["erased"]
                                  else f"{dossier['asked']} (not on the list)" if "@" in dossier["asked"]
                                  else f"user {dossier['asked']}")
    bases = ", ".join(f"{b['audience']}: {b['basis']} ({b['article']})" for b in person["legal_bases"])
    lines = [f"evidence for {who}", f"  audience and legal basis: {bases or '-'}",
             f"  sites: {', '.join(person['sites']) or '-'}; languages: {', '.join(person['languages']) or '-'}"]
    if person.get("erased"):
        lines.append(f"  forgotten on {person.get('erased_at') or '-'}: address, name and messages erased; records kept "
                     f"under {LEGAL_GROUND}")
    lines.append(f"events ({len(dossier['events'])}):")
    lines += [f"  {e['at']}  {e['kind']:<12} {e['audience']}/{e['legal_basis']}  {e['source']}" + (f"  {e['detail']}" if e["detail"] else "")
              for e in dossier["events"]]
    lines.append(f"versions in force ({len(dossier['versions'])}), {dossier['period']['from'] or 'first version'} to {dossier['period']['to']}:")
    for v in dossier["versions"]:
        intact = sum(1 for f in v["files"] if f["verdict"] == "intact")
        lines.append(f"  {v['version']} {v['site']}/{v['language']} from {v['effective']} to {v['in_force_until'] or 'now'}  "
                     f"{v['content_hash']}  {len(v['files'])} archived file(s), {intact} intact")
    lines.append(f"notices ({len(dossier['notices'])}):")
    for n in dossier["notices"]:
        stored = {True: "stored message matches", False: "STORED MESSAGE DIFFERS", None: "message erased"}[n["stored_message_matches"]]
        ledger = "ledger matches" if n["content_hash_matches_ledger"] else "CONTENT HASH NOT IN LEDGER"
        lines.append(f"  {n['version']} {n['site']}/{n['language']} {n['state']} {n['sent_at'] or '-'} {n['message_id']}")
        lines.append(f"    {n['content_hash']} ({ledger}); message SHA-256 {n['message_sha256']} ({stored}); reply: {n['reply'] or '-'}")
    if dossier["acceptances"]:
        lines.append(f"acceptances ({len(dossier['acceptances'])}):")
        lines += [f"  {a['accepted_at']}  {a['version']} {a['site']}/{a['language']} {a['method']} {a['source']}  {a['content_hash']}"
                  f" ({'ledger matches' if a['content_hash_matches_ledger'] else 'CONTENT HASH NOT IN LEDGER'})"
                  for a in dossier["acceptances"]]
    archive = dossier["archive"]
    verdict = "no archive" if archive["manifest"] is None else "verified intact" if archive["verified"] else \
        f"{len(archive['findings'])} finding(s) by verify"
    lines.append(f"archive: {verdict}" + (f"; manifest SHA-256 {archive['manifest_sha256']}" if archive["manifest"] else ""))
    return lines


def export_messages(repo: Repo, version_id: str, folder: Path, email: str | None = None, only_state: str | None = None,
                    database_url: str | None = None) -> tuple[int, int]:
    """Write the stored messages of a version's notices to `folder` byte for byte (each file's SHA-256 is the
    record's); a folder inside the repository must be git-ignored. Returns (written, erased with their recipient)."""
    require_ignored(repo.root, folder.resolve(), "message folder", probe=folder.resolve() / "message.eml")
    written = erased = 0
    with open_state(repo, database_url) as state:
        for message in stored_messages(state, version_id, email, only_state):
            if not message.data:
                erased += 1
                continue
            private_dir(folder)
            write_atomic(folder / message_file_name(message), message.data, mode=0o600)
            written += 1
    return written, erased
