"""Subscribers: validating, adding, importing, listing, exporting, removing, unsubscribing and forgetting people."""

from __future__ import annotations

import csv
import io
import json
import secrets
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.engine import Connection

from addendum.config import Repo
from addendum.errors import NotifyError, UsageError
from addendum.history.versions import require_policy
from addendum.ids import ID_PATTERN, LANGUAGE_PATTERN
from addendum.notify.state import State
from addendum.notify.store import ALL_POLICIES, AUDIENCES, attempts, batched_rows, outbox, subscribers, subscriptions, suppressions, utcnow
from addendum.notify.tokens import Keyring, address_digests, read_unsubscribe_token
from addendum.policy.model import load_policy

REQUIRED_COLUMNS = ("email", "name", "language", "sites", "audience")
OPTIONAL_COLUMNS = ("policies", "consent_source", "consent_at")
MAX_NAME = 200
MAX_SOURCE = 200
# Bidi controls and zero-width characters: invisible in a name, yet able to disguise it.
INVISIBLE = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF)}
UNSENT_STATES = ("pending", "retry", "unknown")


@dataclass(frozen=True)
class Targets:
    """What a subscriber may ask for: each policy of the repository with its languages and sites."""

    languages: Mapping[str, tuple[str, ...]]
    sites: Mapping[str, tuple[str, ...]]

    @property
    def policies(self) -> tuple[str, ...]:
        return tuple(self.languages)


@dataclass(frozen=True)
class SubscriberEntry:
    """A validated subscriber as given: `policies` empty means every policy, present and future."""

    email: str
    name: str
    language: str
    sites: tuple[str, ...]
    audience: str
    policies: tuple[str, ...] = ()
    consent_source: str = "cli"
    consent_at: datetime | None = None


@dataclass(frozen=True)
class Subscriber:
    uid: str
    email: str
    name: str
    language: str
    sites: tuple[str, ...]
    policies: tuple[str, ...]
    audience: str
    consent_source: str
    consent_at: datetime
    created_at: datetime
    unsubscribed_at: datetime | None

    @property
    def status(self) -> str:
        return "unsubscribed" if self.unsubscribed_at else "active"

    def as_row(self) -> dict[str, str]:
        """The subscriber in the import file's columns, so an export can be imported again."""
        return {"email": self.email, "name": self.name, "language": self.language, "sites": ";".join(self.sites),
                "audience": self.audience, "policies": ";".join(self.policies), "consent_source": self.consent_source,
                "consent_at": self.consent_at.isoformat(), "unsubscribed_at": self.unsubscribed_at.isoformat() if self.unsubscribed_at else "",
                "status": self.status}


@dataclass(frozen=True)
class RowProblem:
    line: int
    reason: str

    def format(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(frozen=True)
class ImportReport:
    added: int = 0
    updated: int = 0
    problems: tuple[RowProblem, ...] = ()
    suppressed: tuple[RowProblem, ...] = ()
    imported: bool = True


@dataclass(frozen=True)
class ForgetReport:
    subscriber_found: bool
    outbox_rows_erased: int
    newly_suppressed: bool


@dataclass(frozen=True)
class AddResult:
    subscriber: Subscriber
    created: bool
    messages: tuple[str, ...] = field(default_factory=tuple)


def repository_targets(repo: Repo) -> Targets:
    languages: dict[str, tuple[str, ...]] = {}
    sites: dict[str, tuple[str, ...]] = {}
    for policy_id in repo.policy_ids():
        policy = load_policy(repo.root, policy_id)
        languages[policy_id], sites[policy_id] = policy.languages, tuple(policy.sites)
    if not languages:
        raise NotifyError(f"{repo.policies_dir} holds no policy", "subscribers subscribe to policies: create one first")
    return Targets(languages, sites)


def normalise_address(value: str) -> str:
    """The address as stored and compared: validated, IDN domain in ASCII, lower case (providers ignore case)."""
    try:
        result = validate_email(value.strip(), check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise ValueError(f"invalid address {value.strip()!r}: {exc}") from None
    return str(result.ascii_email or result.normalized).lower()


def _clean_text(value: str, what: str, limit: int) -> str:
    bad = sorted({f"U+{ord(ch):04X}" for ch in value if unicodedata.category(ch) == "Cc" or ch in INVISIBLE})
    if bad:
        kind = "a line break" if any(ch in value for ch in "\r\n") else "a control or invisible character"
        raise ValueError(f"{what} contains {kind} ({', '.join(bad)})")
    value = unicodedata.normalize("NFC", value.strip())
    if len(value) > limit:
        raise ValueError(f"{what} is longer than {limit} characters")
    return value


def _split(value: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(part.strip() for part in value.replace(",", ";").split(";") if part.strip()))


def _consent_time(value: str | datetime | None) -> datetime:
    if value is None or value == "":
        return utcnow()
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"consent_at {value!r} is not a date or date-time (use 2024-05-01 or 2024-05-01T10:00:00+02:00)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def validate_entry(raw: Mapping[str, Any], targets: Targets, default_source: str = "cli") -> SubscriberEntry:
    """Check one subscriber's fields; raises ValueError naming every problem of the row."""
    reasons: list[str] = []

    def attempt(check: Any) -> Any:
        try:
            return check()
        except ValueError as exc:
            reasons.append(str(exc))
            return None

    email = attempt(lambda: normalise_address(str(raw.get("email") or "")))
    name = attempt(lambda: _clean_text(str(raw.get("name") or ""), "name", MAX_NAME))
    source = attempt(lambda: _clean_text(str(raw.get("consent_source") or default_source), "consent_source", MAX_SOURCE))
    consent_at = attempt(lambda: _consent_time(raw.get("consent_at")))
    audience = str(raw.get("audience") or "").strip()
    if audience not in AUDIENCES:
        reasons.append(f"audience {audience!r} is not one of {', '.join(AUDIENCES)}")
    policies = _split(str(raw.get("policies") or ""))
    unknown_policies = [p for p in policies if p not in targets.languages]
    if unknown_policies:
        reasons.append(f"unknown policy {', '.join(map(repr, unknown_policies))} (known: {', '.join(targets.policies)})")
    chosen = [p for p in policies if p in targets.languages] or list(targets.policies)
    language = str(raw.get("language") or "").strip()
    languages = sorted({lang for p in chosen for lang in targets.languages[p]})
    if not LANGUAGE_PATTERN.fullmatch(language) or language not in languages:
        reasons.append(f"unknown language {language!r} (known: {', '.join(languages)})")
    sites = _split(str(raw.get("sites") or ""))
    known_sites = sorted({s for p in chosen for s in targets.sites[p]})
    if not sites:
        reasons.append(f"no site given (known: {', '.join(known_sites)})")
    unknown_sites = [s for s in sites if not ID_PATTERN.fullmatch(s) or s not in known_sites]
    if unknown_sites:
        reasons.append(f"unknown site {', '.join(map(repr, unknown_sites))} (known: {', '.join(known_sites)})")
    if reasons:
        raise ValueError("; ".join(reasons))
    return SubscriberEntry(email, name, language, sites, audience, policies, source, consent_at)


def _suppressed(connection: Connection, keyring: Keyring, email: str) -> datetime | None:
    digests = list(address_digests(keyring, email).values())
    row = connection.execute(select(suppressions.c.created_at).where(suppressions.c.digest.in_(digests))).first()
    return row.created_at if row else None


def _save(connection: Connection, entries: Iterable[SubscriberEntry]) -> tuple[int, int]:
    """Insert new people and update known ones (never re-subscribing someone who unsubscribed); (added, updated)."""
    entries = list(entries)
    known = {row.email: row.id for row in connection.execute(
        select(subscribers.c.email, subscribers.c.id).where(subscribers.c.email.in_([e.email for e in entries])))}
    now = utcnow()
    new = [e for e in entries if e.email not in known]
    new_emails = {e.email for e in new}
    if new:
        connection.execute(insert(subscribers), [
            {"uid": secrets.token_hex(16), "email": e.email, "name": e.name, "language": e.language, "audience": e.audience,
             "consent_source": e.consent_source, "consent_at": e.consent_at or now, "created_at": now} for e in new])
        known.update({row.email: row.id for row in connection.execute(
            select(subscribers.c.email, subscribers.c.id).where(subscribers.c.email.in_([e.email for e in new])))})
    for entry in entries:
        if entry.email not in new_emails:
            connection.execute(update(subscribers).where(subscribers.c.id == known[entry.email]).values(
                name=entry.name, language=entry.language, audience=entry.audience, consent_source=entry.consent_source,
                consent_at=entry.consent_at or now))
    ids = [known[e.email] for e in entries]
    connection.execute(delete(subscriptions).where(subscriptions.c.subscriber_id.in_(ids)))
    connection.execute(insert(subscriptions), [
        {"subscriber_id": known[e.email], "policy_id": policy, "site_id": site}
        for e in entries for policy in (e.policies or (ALL_POLICIES,)) for site in e.sites])
    return len(new), len(entries) - len(new)


def add_subscriber(state: State, raw: Mapping[str, Any], resubscribe: bool = False,
                   allow_suppressed: bool = False) -> AddResult:
    """Add one person, or update them when the address is known."""
    store, keyring = state.store, state.keyring
    try:
        entry = validate_entry(raw, repository_targets(state.repo))
    except ValueError as exc:
        raise UsageError(str(exc), "see `addendum subscribers add --help` for the accepted values") from None
    with store.begin() as connection:
        erased = _suppressed(connection, keyring, entry.email)
        if erased and not allow_suppressed:
            raise NotifyError(f"this address was erased on {erased:%Y-%m-%d} and is suppressed",
                              "add it again only with the person's new consent: pass --allow-suppressed")
        if erased:
            digests = list(address_digests(keyring, entry.email).values())
            connection.execute(delete(suppressions).where(suppressions.c.digest.in_(digests)))
        added, _ = _save(connection, [entry])
        if resubscribe:
            connection.execute(update(subscribers).where(subscribers.c.email == entry.email).values(unsubscribed_at=None))
        subscriber = _load(connection, [entry.email])[0]
    notes = ("this person had unsubscribed and stays unsubscribed (pass --resubscribe with new consent)",) \
        if subscriber.unsubscribed_at else ()
    return AddResult(subscriber, bool(added), notes)


# A spreadsheet runs a cell starting with one of these as a formula (CSV injection): exported with a leading
# apostrophe, which spreadsheets show as text, and which import takes off again.
FORMULA_STARTS = ("=", "+", "-", "@")


def _spreadsheet_safe(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _from_spreadsheet(value: str) -> str:
    return value[1:] if value.startswith("'") and value[1:].startswith(FORMULA_STARTS) else value


def read_import_file(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a subscriber CSV with the line each starts on; the header must name the required columns."""
    try:
        text = path.read_bytes().decode("utf-8-sig")  # no newline translation: a CR inside a field must stay visible
    except UnicodeDecodeError as exc:
        raise NotifyError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})", "save the file as UTF-8 CSV") from None
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    columns = [c.strip() for c in reader.fieldnames or []]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    unknown = [c for c in columns if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS + ("unsubscribed_at", "status")]
    if missing or unknown:
        problem = f"lacks the column(s) {', '.join(missing)}" if missing else f"has unknown column(s) {', '.join(unknown)}"
        raise NotifyError(f"{path}: the header row {problem}",
                          f"the first row names the columns: {','.join(REQUIRED_COLUMNS)} (optional: {','.join(OPTIONAL_COLUMNS)})")
    reader.fieldnames = columns
    start = 2
    try:
        for row in reader:
            if None in row:
                yield start, {"__extra__": "more fields than the header has columns"}
            else:
                yield start, {k: _from_spreadsheet(v or "") for k, v in row.items()}
            start = reader.line_num + 1
    except csv.Error as exc:
        raise NotifyError(f"{path}:{reader.line_num}: {exc}", "fix the CSV quoting at that line") from None


def import_subscribers(state: State, path: Path, skip_invalid: bool = False, consent_source: str | None = None) -> ImportReport:
    """Import a CSV in one transaction: nothing when any row is bad (unless skip_invalid); erased addresses stay out."""
    store, keyring, targets = state.store, state.keyring, repository_targets(state.repo)
    source = consent_source or f"import:{path.name}"
    problems: list[RowProblem] = []
    suppressed: list[RowProblem] = []
    entries: list[SubscriberEntry] = []
    seen: dict[str, int] = {}
    with store.begin() as connection:
        for line, raw in read_import_file(path):
            if "__extra__" in raw:
                problems.append(RowProblem(line, raw["__extra__"]))
                continue
            try:
                entry = validate_entry(raw, targets, source)
            except ValueError as exc:
                problems.append(RowProblem(line, str(exc)))
                continue
            if entry.email in seen:
                problems.append(RowProblem(line, f"duplicate of line {seen[entry.email]} ({entry.email})"))
                continue
            seen[entry.email] = line
            erased = _suppressed(connection, keyring, entry.email)
            if erased:
                suppressed.append(RowProblem(line, f"address erased on {erased:%Y-%m-%d}: suppressed, not imported"))
                continue
            entries.append(entry)
        if problems and not skip_invalid:
            return ImportReport(problems=tuple(problems), suppressed=tuple(suppressed), imported=False)
        added = updated = 0
        for start in range(0, len(entries), 500):
            a, u = _save(connection, entries[start:start + 500])
            added, updated = added + a, updated + u
    return ImportReport(added, updated, tuple(problems), tuple(suppressed), True)


def _load(connection: Connection, emails: list[str] | None = None, page: list[Any] | None = None) -> list[Subscriber]:
    rows: list[Any] = page if page is not None else []
    if page is None:
        rows.extend(connection.execute(select(subscribers).where(subscribers.c.email.in_(emails or [])).order_by(subscribers.c.id)))
    links: dict[int, list[tuple[str, str]]] = {}
    for link in connection.execute(select(subscriptions).where(subscriptions.c.subscriber_id.in_([r.id for r in rows]))
                                   .order_by(subscriptions.c.policy_id, subscriptions.c.site_id)):
        links.setdefault(link.subscriber_id, []).append((link.policy_id, link.site_id))
    out = []
    for row in rows:
        pairs = links.get(row.id, [])
        policies = tuple(dict.fromkeys(p for p, _ in pairs if p != ALL_POLICIES))
        out.append(Subscriber(row.uid, row.email, row.name, row.language, tuple(dict.fromkeys(s for _, s in pairs)), policies,
                              row.audience, row.consent_source, row.consent_at, row.created_at, row.unsubscribed_at))
    return out


def list_subscribers(state: State, policy_id: str | None = None, site_id: str | None = None,
                     email: str | None = None) -> Iterator[Subscriber]:
    """Subscribers in the order they were added, page by page; filtered by policy, site or address."""
    if policy_id is not None:
        require_policy(state.repo, policy_id)
    store = state.store
    query = select(subscribers)
    if email is not None:
        query = query.where(subscribers.c.email == _lookup_address(email))
    if policy_id is not None or site_id is not None:
        conditions = [subscriptions.c.subscriber_id == subscribers.c.id]
        if policy_id is not None:
            conditions.append(subscriptions.c.policy_id.in_([policy_id, ALL_POLICIES]))
        if site_id is not None:
            conditions.append(subscriptions.c.site_id == site_id)
        query = query.where(select(subscriptions.c.subscriber_id).where(and_(*conditions)).exists())
    with store.connect() as connection:
        page: list[Any] = []
        for row in batched_rows(connection, query, (subscribers.c.id,)):
            page.append(row)
            if len(page) == 500:
                yield from _load(connection, page=page)
                page = []
        yield from _load(connection, page=page)


def _lookup_address(email: str) -> str:
    try:
        return normalise_address(email)
    except ValueError as exc:
        raise UsageError(str(exc), "give the address as it was subscribed") from None


def subscriber_notices(state: State, email: str) -> list[dict[str, Any]]:
    """What the outbox records about one address: for a person's request to see their data."""
    address = _lookup_address(email)
    with state.store.connect() as connection:
        rows = connection.execute(select(outbox.c.version_id, outbox.c.site_id, outbox.c.language, outbox.c.state,
                                         outbox.c.sent_at, outbox.c.message_id, outbox.c.reply)
                                  .where(outbox.c.recipient == address).order_by(outbox.c.id)).all()
    return [{"version": r.version_id, "site": r.site_id, "language": r.language, "state": r.state,
             "sent_at": r.sent_at.isoformat() if r.sent_at else None, "message_id": r.message_id, "reply": r.reply} for r in rows]


def _cancel_unsent(connection: Connection, condition: Any) -> int:
    result = connection.execute(update(outbox).where(condition, outbox.c.state.in_(UNSENT_STATES))
                                .values(state="cancelled", updated_at=utcnow(), next_attempt_at=None))
    return int(result.rowcount or 0)


def remove_subscriber(state: State, email: str) -> int:
    """Remove a person from the list; notices not yet sent to them are cancelled, the record of sent ones is kept."""
    address = _lookup_address(email)
    with state.store.begin() as connection:
        row = connection.execute(select(subscribers.c.id).where(subscribers.c.email == address)).first()
        if row is None:
            raise NotifyError(f"no subscriber {address}", "`addendum subscribers list` shows who is subscribed")
        connection.execute(delete(subscriptions).where(subscriptions.c.subscriber_id == row.id))
        connection.execute(delete(subscribers).where(subscribers.c.id == row.id))
        return _cancel_unsent(connection, outbox.c.recipient == address)


def forget_subscriber(state: State, email: str) -> ForgetReport:
    """Erase a person everywhere, outbox and attempts included, keeping only a keyed hash that suppresses the address."""
    store, keyring = state.store, state.keyring
    address = _lookup_address(email)
    with store.begin() as connection:
        row = connection.execute(select(subscribers.c.id, subscribers.c.uid).where(subscribers.c.email == address)).first()
        matches = [outbox.c.recipient == address] + ([outbox.c.subscriber_uid == row.uid] if row else [])
        rows = [r.id for r in connection.execute(select(outbox.c.id).where(or_(*matches)))]
        for start in range(0, len(rows), 500):
            chunk = rows[start:start + 500]
            connection.execute(delete(attempts).where(attempts.c.outbox_id.in_(chunk)))
            connection.execute(delete(outbox).where(outbox.c.id.in_(chunk)))
        if row is not None:
            connection.execute(delete(subscriptions).where(subscriptions.c.subscriber_id == row.id))
            connection.execute(delete(subscribers).where(subscribers.c.id == row.id))
        already = _suppressed(connection, keyring, address) is not None
        if not already:
            connection.execute(insert(suppressions).values(digest=address_digests(keyring, address)[keyring.current],
                                                           key_version=keyring.current, reason="erased", created_at=utcnow()))
    store.compact()
    return ForgetReport(row is not None, len(rows), not already)


@dataclass(frozen=True)
class UnsubscribeResult:
    email: str
    already: bool
    cancelled: int


def unsubscribe(state: State, token: str) -> UnsubscribeResult:
    """Honour a one-click unsubscribe: the token's subscriber stops receiving optional change notices at once."""
    uid = read_unsubscribe_token(state.keyring, token)
    with state.store.begin() as connection:
        row = connection.execute(select(subscribers).where(subscribers.c.uid == uid)).first()
        if row is None:
            raise NotifyError("the unsubscribe token names nobody on the list", "the person was removed or erased already")
        already = row.unsubscribed_at is not None
        if not already:
            connection.execute(update(subscribers).where(subscribers.c.id == row.id).values(unsubscribed_at=utcnow()))
        cancelled = _cancel_unsent(connection, and_(outbox.c.subscriber_uid == uid, outbox.c.audience == "subscriber"))
    return UnsubscribeResult(row.email, already, cancelled)


def token_holder(state: State, token: str) -> Subscriber | None:
    """The subscriber an unsubscribe token names (None when nobody on the list has that id any more), changing
    nothing: what a confirmation page shows before the person presses the button. Refuses a forged or malformed token."""
    uid = read_unsubscribe_token(state.keyring, token)
    with state.store.begin() as connection:
        row = connection.execute(select(subscribers.c.email).where(subscribers.c.uid == uid)).first()
        found = _load(connection, [row.email]) if row is not None else []
    return found[0] if found else None


def export_subscribers(state: State, stream: Any, fmt: str = "csv", policy_id: str | None = None,
                       site_id: str | None = None, email: str | None = None) -> int:
    """Write subscribers to `stream`: CSV in the import format (plus status), or JSON lines that also carry each
    person's notices (for a request to see or take one's data). Returns how many."""
    count = 0
    writer = csv.DictWriter(stream, fieldnames=[*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS, "unsubscribed_at", "status"],
                            lineterminator="\n")
    if fmt == "csv":
        writer.writeheader()
    for subscriber in list_subscribers(state, policy_id, site_id, email):
        if fmt == "csv":
            writer.writerow({key: _spreadsheet_safe(value) for key, value in subscriber.as_row().items()})
        else:
            record = {**subscriber.as_row(), "uid": subscriber.uid, "notices": subscriber_notices(state, subscriber.email)}
            stream.write(json.dumps(record, ensure_ascii=False) + "\n")
        count += 1
    return count
