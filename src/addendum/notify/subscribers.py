"""Subscribers: validating, adding, importing, listing, exporting, removing, unsubscribing and forgetting people."""

from __future__ import annotations

import csv
import json
import re
import secrets
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, TextIO

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.schema import CreateIndex, CreateTable, DropTable

from addendum.config import Repo
from addendum.errors import NotifyError, UsageError
from addendum.history.versions import require_policy
from addendum.notify.state import State
from addendum.notify.store import (
    ALL_POLICIES,
    AUDIENCES,
    LEGAL_BASES,
    UtcDateTime,
    batched_rows,
    outbox,
    record_events,
    subscriber_events,
    subscribers,
    subscriptions,
    suppressions,
    utcnow,
)
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
    # Each choice of policies asked for, with its languages and sites: an import of many rows works them out once.
    scopes: dict[tuple[str, ...], tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def policies(self) -> tuple[str, ...]:
        return tuple(self.languages)

    def scope(self, policies: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The languages and the sites (each sorted) open to someone who asks for `policies`; empty means all."""
        found = self.scopes.get(policies)
        if found is None:
            chosen = policies or self.policies
            found = self.scopes[policies] = (tuple(sorted({lang for p in chosen for lang in self.languages[p]})),
                                             tuple(sorted({site for p in chosen for site in self.sites[p]})))
        return found


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
    """What an import did. `problems` and `suppressed` hold the first REPORT_LIMIT rows of each kind, in line order;
    `bad_rows` and `suppressed_rows` count them all."""

    added: int = 0
    updated: int = 0
    problems: tuple[RowProblem, ...] = ()
    suppressed: tuple[RowProblem, ...] = ()
    imported: bool = True
    bad_rows: int = 0
    suppressed_rows: int = 0


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


# A plain ASCII address (dot-atom local part, one @, a host name): email_validator accepts every local part of this
# form as it is, so only its domain needs checking, once per domain. Anything else takes the full check.
PLAIN_ADDRESS = re.compile(r"([A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*)@([A-Za-z0-9.-]+)")
MAX_ADDRESS, MAX_LOCAL_PART = 254, 64


@lru_cache(maxsize=4096)
def _domain_forms(domain: str) -> tuple[str, str] | None:
    """A domain's ASCII and Unicode forms as email_validator gives them, or None when it refuses the domain."""
    try:
        result = validate_email(f"a@{domain}", check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        return None
    return str(result.ascii_domain), str(result.domain)


def _plain_address(value: str) -> str | None:
    """The normalised form of a plain ASCII address whose domain is valid, exactly as the full check gives it;
    None for any other address."""
    match = PLAIN_ADDRESS.fullmatch(value)
    if match is None or len(value) > MAX_ADDRESS or len(match[1]) > MAX_LOCAL_PART:
        return None
    forms = _domain_forms(match[2])
    if forms is None:
        return None
    ascii_domain, domain = forms
    if len(match[1]) + 1 + max(len(ascii_domain), len(domain.encode("utf-8"))) > MAX_ADDRESS:
        return None
    return f"{match[1]}@{ascii_domain}".lower()


def normalise_address(value: str) -> str:
    """The address as stored and compared: validated, IDN domain in ASCII, lower case (providers ignore case)."""
    value = value.strip()
    plain = _plain_address(value)
    if plain is not None:
        return plain
    try:
        result = validate_email(value, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise ValueError(f"invalid address {value!r}: {exc}") from None
    return str(result.ascii_email or result.normalized).lower()


def _clean_text(value: str, what: str, limit: int) -> str:
    # Every control (Cc) and invisible (Cf) character is unprintable: a printable value needs no scan, character by character.
    if not value.isprintable():
        bad = sorted({f"U+{ord(ch):04X}" for ch in value if unicodedata.category(ch) == "Cc" or ch in INVISIBLE})
        if bad:
            kind = "a line break" if any(ch in value for ch in "\r\n") else "a control or invisible character"
            raise ValueError(f"{what} contains {kind} ({', '.join(bad)})")
    value = unicodedata.normalize("NFC", value.strip())
    if len(value) > limit:
        raise ValueError(f"{what} is longer than {limit} characters")
    return value


def _split(value: str) -> tuple[str, ...]:
    if ";" not in value and "," not in value:
        value = value.strip()
        return (value,) if value else ()
    return tuple(dict.fromkeys(part.strip() for part in value.replace(",", ";").split(";") if part.strip()))


def _consent_time(value: str | datetime | None) -> datetime | None:
    """When consent was given; None when not said, which is taken as the time the entry is saved."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"consent_at {value!r} is not a date or date-time (use 2024-05-01 or 2024-05-01T10:00:00+02:00)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _checked(reasons: list[str], check: Any, *args: Any) -> Any:
    """`check(*args)`, or None with its ValueError's message added to `reasons`."""
    try:
        return check(*args)
    except ValueError as exc:
        reasons.append(str(exc))
        return None


def validate_entry(raw: Mapping[str, Any], targets: Targets, default_source: str = "cli") -> SubscriberEntry:
    """Check one subscriber's fields; raises ValueError naming every problem of the row."""
    reasons: list[str] = []
    email = _checked(reasons, normalise_address, str(raw.get("email") or ""))
    name = _checked(reasons, _clean_text, str(raw.get("name") or ""), "name", MAX_NAME)
    source = _checked(reasons, _clean_text, str(raw.get("consent_source") or default_source), "consent_source", MAX_SOURCE)
    consent_at = _checked(reasons, _consent_time, raw.get("consent_at"))
    audience = str(raw.get("audience") or "").strip()
    if audience not in AUDIENCES:
        reasons.append(f"audience {audience!r} is not one of {', '.join(AUDIENCES)}")
    policies = _split(str(raw.get("policies") or ""))
    known_policies = tuple(p for p in policies if p in targets.languages) if policies else ()
    if len(known_policies) < len(policies):
        unknown_policies = [p for p in policies if p not in targets.languages]
        reasons.append(f"unknown policy {', '.join(map(repr, unknown_policies))} (known: {', '.join(targets.policies)})")
    # The policies' own languages and sites are valid ids, so being among them is all a value needs.
    languages, known_sites = targets.scope(known_policies)
    language = str(raw.get("language") or "").strip()
    if language not in languages:
        reasons.append(f"unknown language {language!r} (known: {', '.join(languages)})")
    sites = _split(str(raw.get("sites") or ""))
    if not sites:
        reasons.append(f"no site given (known: {', '.join(known_sites)})")
    unknown_sites = [s for s in sites if s not in known_sites]
    if unknown_sites:
        reasons.append(f"unknown site {', '.join(map(repr, unknown_sites))} (known: {', '.join(known_sites)})")
    if reasons:
        raise ValueError("; ".join(reasons))
    return SubscriberEntry(email, name, language, sites, audience, policies, source, consent_at)


def suppressed_since(connection: Connection, keyring: Keyring, email: str) -> datetime | None:
    digests = list(address_digests(keyring, email).values())
    row = connection.execute(select(suppressions.c.created_at).where(suppressions.c.digest.in_(digests))).first()
    return row.created_at if row else None


# What a known person's row takes from a new entry; their uid, creation time and any unsubscribe stay.
UPDATED_COLUMNS = ("name", "language", "audience", "consent_source", "consent_at", "legal_basis")
CHANGE_SHOWN = ("name", "language", "audience", "consent_source")  # what a `changed` event names when it differs
IN_CHUNK = 900  # values in one IN (…): below the 999 parameters of the oldest SQLite


def _chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), IN_CHUNK):
        yield values[start:start + IN_CHUNK]


def _rows_in(connection: Connection, query: Any, column: Any, values: Sequence[Any]) -> Iterator[Any]:
    """The rows of `query` whose `column` is one of `values`, asked a chunk of values at a time."""
    for chunk in _chunks(values):
        yield from connection.execute(query.where(column.in_(chunk)))


def _save(connection: Connection, entries: Sequence[SubscriberEntry]) -> tuple[int, int]:
    """Insert new people and update known ones (never re-subscribing someone who unsubscribed); the addresses must
    be distinct. Returns (added, updated)."""
    if not entries:
        return 0, 0
    emails = [e.email for e in entries]
    known = sum(1 for _ in _rows_in(connection, select(subscribers.c.id), subscribers.c.email, emails))
    now = utcnow()
    upsert = (postgresql if connection.dialect.name == "postgresql" else sqlite).insert(subscribers)
    connection.execute(
        upsert.on_conflict_do_update(index_elements=[subscribers.c.email],
                                     set_={name: upsert.excluded[name] for name in UPDATED_COLUMNS}),
        [{"uid": secrets.token_hex(16), "email": e.email, "name": e.name, "language": e.language, "audience": e.audience,
          "consent_source": e.consent_source, "consent_at": e.consent_at or now, "created_at": now,
          "legal_basis": LEGAL_BASES[e.audience]} for e in entries])
    ids = dict(_rows_in(connection, select(subscribers.c.email, subscribers.c.id), subscribers.c.email, emails))
    for chunk in _chunks(list(ids.values())):
        connection.execute(delete(subscriptions).where(subscriptions.c.subscriber_id.in_(chunk)))
    connection.execute(insert(subscriptions), [
        {"subscriber_id": ids[e.email], "policy_id": policy, "site_id": site}
        for e in entries for policy in (e.policies or (ALL_POLICIES,)) for site in e.sites])
    return len(entries) - known, known


def add_subscriber(state: State, raw: Mapping[str, Any], resubscribe: bool = False,
                   allow_suppressed: bool = False) -> AddResult:
    """Add one person, or update them when the address is known."""
    store, keyring = state.store, state.keyring
    try:
        entry = validate_entry(raw, repository_targets(state.repo))
    except ValueError as exc:
        raise UsageError(str(exc), "see `addendum subscribers add --help` for the accepted values") from None
    with store.begin() as connection:
        erased = suppressed_since(connection, keyring, entry.email)
        if erased and not allow_suppressed:
            raise NotifyError(f"this address was erased on {erased:%Y-%m-%d} and is suppressed",
                              "add it again only with the person's new consent: pass --allow-suppressed")
        if erased:
            digests = list(address_digests(keyring, entry.email).values())
            connection.execute(delete(suppressions).where(suppressions.c.digest.in_(digests)))
        before = connection.execute(select(subscribers).where(subscribers.c.email == entry.email)).first()
        added, _ = _save(connection, [entry])
        if resubscribe:
            connection.execute(update(subscribers).where(subscribers.c.email == entry.email).values(unsubscribed_at=None))
        subscriber = load_subscribers(connection, [entry.email])[0]
        record_events(connection, _add_events(before, entry, subscriber, resubscribe))
    notes = ("this person had unsubscribed and stays unsubscribed (pass --resubscribe with new consent)",) \
        if subscriber.unsubscribed_at else ()
    return AddResult(subscriber, bool(added), notes)


def _add_events(before: Any, entry: SubscriberEntry, after: Subscriber, resubscribe: bool) -> list[dict[str, Any]]:
    """The history an add leaves: added (or changed, naming what changed), then resubscribed when it undid an unsubscribe."""
    base = {"subscriber_uid": after.uid, "audience": entry.audience, "source": entry.consent_source}
    if before is None:
        return [{**base, "kind": "added", "detail": _where(entry.language, after.sites)}]
    events = []
    changed = [name for name in CHANGE_SHOWN if getattr(before, name) != getattr(entry, name)]
    if changed:
        events.append({**base, "kind": "changed", "detail": " ".join(changed)})
    if resubscribe and before.unsubscribed_at is not None:
        events.append({**base, "kind": "resubscribed"})
    return events


def _where(language: str, sites: Sequence[str]) -> str:
    return f"{language} {';'.join(sites)}"


# A spreadsheet runs a cell starting with one of these as a formula (CSV injection): exported with a leading
# apostrophe, which spreadsheets show as text, and which import takes off again.
FORMULA_STARTS = ("=", "+", "-", "@")


def _spreadsheet_safe(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _from_spreadsheet(value: str) -> str:
    return value[1:] if value.startswith("'") and value[1:].startswith(FORMULA_STARTS) else value


IMPORT_BATCH = 1000  # rows staged together
REPORT_LIMIT = 50  # bad (and suppressed) rows reported in full; the rest are counted
# What surrogateescape makes of a byte that is not UTF-8.
UNDECODABLE = re.compile("[\udc80-\udcff]")
# The good rows read so far, staged in temporary tables inside the import's transaction: SQL finds the duplicates
# and updates the store set-wise, and nothing of the file is held in memory.
staging = MetaData()
import_rows = Table(
    "import_rows", staging,
    Column("line", Integer, primary_key=True),
    Column("email", String(320), nullable=False),
    Column("uid", String(32), nullable=False),  # taken when the address is new
    Column("name", String(200), nullable=False),
    Column("language", String(16), nullable=False),
    Column("audience", String(16), nullable=False),
    Column("consent_source", String(200), nullable=False),
    Column("consent_at", DateTime),  # naive UTC, as the store keeps it; none given: the time of the import
    Column("erased_on", String(10)),  # the day the address was erased: suppressed, not imported
    prefixes=["TEMPORARY"],
)
import_links = Table(
    "import_links", staging,
    Column("line", Integer, nullable=False),
    Column("policy_id", String(63), nullable=False),
    Column("site_id", String(63), nullable=False),
    prefixes=["TEMPORARY"],
)
# Built only when known people's subscriptions are compared, once all rows are in: cheaper than keeping it up to date.
import_links_by_line = Index("import_links_by_line", import_links.c.line)


class _NumberedLines:
    """A file's physical lines as the csv reader takes them, counted. The lines of a row the reader gave up on can be
    handed out again, so reading resumes right after the line that broke it."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.number = 0  # the line handed out last
        self.row: list[str] = []  # the lines handed out for the row being read
        self.again: list[str] = []  # lines to hand out again, the next one last
        self.undecodable: tuple[int, str] | None = None  # the row's first byte that is not UTF-8, and its line

    def __iter__(self) -> _NumberedLines:
        return self

    def __next__(self) -> str:
        line = self.again.pop() if self.again else next(self.stream)
        self.number += 1
        self.row.append(line)
        if self.undecodable is None and not line.isascii() and (bad := UNDECODABLE.search(line)):
            self.undecodable = (self.number, bad[0])
        return line

    def take_row(self) -> tuple[int, list[str], tuple[int, str] | None]:
        """The first line, the lines and the first undecodable byte of the row just read; the next row starts after it."""
        lines, self.row, undecodable, self.undecodable = self.row, [], self.undecodable, None
        return self.number - len(lines) + 1, lines, undecodable

    def resume_after(self, start: int, lines: list[str], index: int) -> None:
        """Go on reading from the line after lines[index], where lines are a row starting at line `start`."""
        self.again.extend(reversed(lines[index + 1:]))
        self.number = start + index


def _runaway_quote(lines: list[str]) -> int | None:
    """The line (an index into `lines`) where the quoted field opens that is still open at the end, or else the last
    one that ran on past the end of its line; None when no quoted field did. By the csv reader's rules: a quote opens
    a field only at its start, and "" inside quotes is a quote."""
    opened, quoted, after_quote, at_start = 0, False, False, True
    runaway = None
    for index, line in enumerate(lines):
        for char in line:
            if quoted:
                quoted, after_quote = char != '"', char == '"'
            elif after_quote and char == '"':
                quoted, after_quote = True, False
            else:
                if at_start and char == '"':
                    quoted, opened = True, index
                after_quote, at_start = False, char in ",\r\n"
        if quoted:
            runaway = opened
    return runaway


def _broken_row(lines: list[str], message: str) -> tuple[int, str]:
    """Why the csv reader gave up on a row (its `message`): the line that broke it (an index into `lines`, where
    reading goes on after it) and the reason. No field of ours holds a line break, so a quoted field that runs past
    the end of its line is a quote left open (the reader took the lines after it as part of the field), even when a
    quote on a later line seems to close it."""
    runaway = _runaway_quote(lines)
    if runaway is not None:
        return runaway, 'unterminated quote starting at this line: the field it opens never closes (a quote inside a field is written "")'
    if "field limit" in message:
        return 0, f"a field longer than {csv.field_size_limit()} characters"
    return 0, f'broken quoting ({message}): a quoted field ends at its closing quote (a quote inside it is written "")'


def _header(path: Path, lines: _NumberedLines) -> list[str]:
    """The columns the first row names; all required ones, and no unknown one."""
    try:
        values = next(csv.reader(lines, strict=True), [])
    except csv.Error as exc:
        raise NotifyError(f"{path}:1: the header row cannot be read ({exc})", "the first row names the columns, e.g. "
                          f"{','.join(REQUIRED_COLUMNS)}") from None
    _, _, undecodable = lines.take_row()
    if undecodable is not None:
        raise NotifyError(f"{path}:{undecodable[0]}: not UTF-8 text (byte 0x{ord(undecodable[1]) - 0xDC00:02X})",
                          "save the file as UTF-8 CSV")
    columns = [c.strip() for c in values]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    unknown = [c for c in columns if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS + ("unsubscribed_at", "status")]
    if missing or unknown:
        problem = f"lacks the column(s) {', '.join(missing)}" if missing else f"has unknown column(s) {', '.join(unknown)}"
        raise NotifyError(f"{path}: the header row {problem}",
                          f"the first row names the columns: {','.join(REQUIRED_COLUMNS)} (optional: {','.join(OPTIONAL_COLUMNS)})")
    return columns


def read_import_file(path: Path) -> Iterator[tuple[int, dict[str, str] | str]]:
    """The rows of a subscriber CSV, read as a stream, each with the physical line it starts on: its values by
    column, or what is wrong with it. A row with broken quoting is reported and reading goes on after it, so one
    stray quote hides no other row. The header must name the required columns."""
    # No newline translation: a CR inside a field must stay visible. An undecodable byte is reported with its row.
    with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as stream:
        lines = _NumberedLines(stream)
        columns = _header(path, lines)
        while True:
            try:
                for values in csv.reader(lines, strict=True):
                    start, raw, undecodable = lines.take_row()
                    if undecodable is not None:
                        yield undecodable[0], f"not UTF-8 text (byte 0x{ord(undecodable[1]) - 0xDC00:02X}): save the file as UTF-8 CSV"
                    elif len(values) > len(columns):
                        yield start, "more fields than the header has columns"
                    elif values:  # a blank line is no row; a short row lacks its last columns
                        fields = dict(zip(columns, values, strict=False))
                        if "'" in "".join(raw):  # maybe a formula that an export made safe
                            fields = {column: _from_spreadsheet(value) for column, value in fields.items()}
                        yield start, fields
                return
            except csv.Error as exc:
                start, row, _ = lines.take_row()
                broken, reason = _broken_row(row, str(exc))
                yield start + broken, reason
                lines.resume_after(start, row, broken)


def _stage(connection: Connection, table: Table, rows: list[tuple[Any, ...]]) -> None:
    """Append rows (tuples in column order) to a staging table the fastest way the driver has: COPY into PostgreSQL
    through psycopg, else the driver's own executemany, since SQLAlchemy's work per row would cost more than the
    database's. Only a driver with named parameters gets SQLAlchemy's executemany."""
    if not rows:
        return
    dialect = connection.dialect
    if dialect.driver != "psycopg" and not dialect.positional:
        keys = table.c.keys()
        connection.execute(insert(table), [dict(zip(keys, row, strict=True)) for row in rows])
        return
    converters = [(index, converter) for index, column in enumerate(table.columns)
                  if (converter := column.type.dialect_impl(dialect).bind_processor(dialect)) is not None]
    if converters:
        rows = [_converted(row, converters) for row in rows]
    if dialect.driver == "psycopg":
        with connection.connection.driver_connection.cursor() as cursor, cursor.copy(  # type: ignore[union-attr]
                f"COPY {table.name} ({', '.join(table.c.keys())}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    else:
        connection.exec_driver_sql(str(insert(table).compile(dialect=dialect)), rows)


def _converted(row: tuple[Any, ...], converters: list[tuple[int, Any]]) -> tuple[Any, ...]:
    """A row's values as the driver takes them (SQLite keeps a datetime as text, for one)."""
    values = list(row)
    for index, converter in converters:
        if values[index] is not None:
            values[index] = converter(values[index])
    return tuple(values)


class _Import:
    """One import under way, in one transaction. Rows are checked one by one as they are read, and the good ones
    staged a batch at a time; at the end, SQL finds the rows that repeat an earlier row's address, leaves out the
    erased addresses and writes the store, set-wise; until then the store is only read, for erased addresses, so an
    SQLite store stays unlocked. Once a row is bad (without skip_invalid) the import is refused: every row is still
    checked, and staged to find repeats, but nothing is written."""

    def __init__(self, connection: Connection, keyring: Keyring, skip_invalid: bool) -> None:
        self.connection, self.keyring, self.skip_invalid = connection, keyring, skip_invalid
        self.batch: list[tuple[int, SubscriberEntry]] = []
        self.problems: list[RowProblem] = []  # the first REPORT_LIMIT bad rows, in line order
        self.bad_rows = 0
        # Asked before the transaction writes anything: most stores never erased anyone, and then no row needs a hash.
        self.anyone_erased = connection.execute(select(suppressions.c.digest).limit(1)).first() is not None
        for table in staging.sorted_tables:
            connection.execute(CreateTable(table, if_not_exists=True))
            connection.execute(delete(table))  # left by an import on this connection that failed

    @property
    def refused(self) -> bool:
        return self.bad_rows > 0 and not self.skip_invalid

    def bad(self, line: int, reason: str) -> None:
        self.bad_rows += 1
        if len(self.problems) < REPORT_LIMIT:
            self.problems.append(RowProblem(line, reason))

    def add(self, line: int, entry: SubscriberEntry) -> None:
        self.batch.append((line, entry))
        if len(self.batch) == IMPORT_BATCH:
            self._stage_batch()

    def _stage_batch(self) -> None:
        batch, self.batch = self.batch, []
        erased = self._erased(batch) if self.anyone_erased and not self.refused else {}
        uids = secrets.token_hex(16 * len(batch))  # one call for the batch: the same randomness, a fraction of the time
        _stage(self.connection, import_rows, [
            (line, e.email, uids[32 * index:32 * index + 32], e.name, e.language, e.audience, e.consent_source,
             e.consent_at and e.consent_at.astimezone(UTC).replace(tzinfo=None), erased.get(index))
            for index, (line, e) in enumerate(batch)])
        _stage(self.connection, import_links, [
            (line, policy, site) for line, e in batch for policy in (e.policies or (ALL_POLICIES,)) for site in e.sites])

    def _erased(self, batch: list[tuple[int, SubscriberEntry]]) -> dict[int, str]:
        """The day each erased address of the batch was erased, by its index in the batch."""
        owner = {digest: index for index, (_, entry) in enumerate(batch)
                 for digest in address_digests(self.keyring, entry.email).values()}
        return {owner[row.digest]: f"{row.created_at:%Y-%m-%d}" for row in _rows_in(
            self.connection, select(suppressions.c.digest, suppressions.c.created_at), suppressions.c.digest, list(owner))}

    def finish(self) -> ImportReport:
        """Check the staged rows against each other, then write them, unless the import is refused (the caller then
        rolls the transaction back)."""
        self._stage_batch()
        self._find_repeats()
        suppressed: tuple[RowProblem, ...] = ()
        suppressed_rows = added = updated = 0
        if not self.refused:
            suppressed, suppressed_rows = self._leave_out_erased()
            added, updated = self._save()
        for table in reversed(staging.sorted_tables):
            self.connection.execute(DropTable(table))
        return ImportReport(added, updated, tuple(self.problems), suppressed, not self.refused, self.bad_rows, suppressed_rows)

    def _find_repeats(self) -> None:
        """Report each row whose address an earlier row has, and take it out of the staged rows."""
        rows = select(import_rows.c.line, import_rows.c.email,
                      func.min(import_rows.c.line).over(partition_by=import_rows.c.email).label("first")).subquery()
        repeats = select(rows).where(rows.c.line > rows.c.first)
        found = [RowProblem(row.line, f"duplicate of line {row.first} ({row.email})")
                 for row in self.connection.execute(repeats.order_by(rows.c.line).limit(REPORT_LIMIT))]
        if found:
            self.bad_rows += self.connection.execute(select(func.count()).select_from(repeats.subquery())).scalar_one()
            self.problems = sorted(self.problems + found, key=lambda problem: problem.line)[:REPORT_LIMIT]
            self.connection.execute(delete(import_rows).where(import_rows.c.line.in_(repeats.with_only_columns(rows.c.line))))

    def _leave_out_erased(self) -> tuple[tuple[RowProblem, ...], int]:
        """The first REPORT_LIMIT rows whose address was erased, and how many there are; they are left out."""
        erased = import_rows.c.erased_on.is_not(None)
        suppressed = tuple(RowProblem(row.line, f"address erased on {row.erased_on}: suppressed, not imported")
                           for row in self.connection.execute(select(import_rows.c.line, import_rows.c.erased_on)
                                                              .where(erased).order_by(import_rows.c.line).limit(REPORT_LIMIT)))
        if not suppressed:
            return (), 0
        count = self.connection.execute(select(func.count()).select_from(import_rows).where(erased)).scalar_one()
        self.connection.execute(delete(import_rows).where(erased))
        return suppressed, count

    def _save(self) -> tuple[int, int]:
        """Update the known people (never re-subscribing someone who unsubscribed) and insert the new ones, then give
        each the subscriptions of their row, writing only those that change; (added, updated). Plain inserts where
        nothing can conflict: PostgreSQL takes them at about twice the speed of ON CONFLICT."""
        connection, now = self.connection, utcnow()
        dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
        rows = connection.execute(select(func.count()).select_from(import_rows)).scalar_one()
        known = exists().where(subscribers.c.email == import_rows.c.email)
        updated = connection.execute(select(func.count()).select_from(import_rows).where(known)).scalar_one()
        wanted = (select(subscribers.c.id, import_links.c.policy_id, import_links.c.site_id)
                  .join_from(import_links, import_rows, import_rows.c.line == import_links.c.line)
                  .join(subscribers, subscribers.c.email == import_rows.c.email))
        fields = ("uid", "email", "name", "language", "audience", "consent_source")
        basis = case(*((import_rows.c.audience == audience, literal(name)) for audience, name in LEGAL_BASES.items()),
                     else_=literal(""))
        # In file order, so that ids (the order of `subscribers list`) follow the file.
        source = select(*(import_rows.c[name] for name in fields),
                        func.coalesce(import_rows.c.consent_at, literal(now, UtcDateTime())), literal(now, UtcDateTime()),
                        basis).order_by(import_rows.c.line)
        columns = [*fields, "consent_at", "created_at", "legal_basis"]
        self._record_events(basis, known, bool(updated))
        if updated:
            connection.execute(CreateIndex(import_links_by_line, if_not_exists=True))
            key = (subscriptions.c.subscriber_id, subscriptions.c.policy_id, subscriptions.c.site_id)
            stale = (select(*key).join_from(import_rows, subscribers, subscribers.c.email == import_rows.c.email)
                     .join(subscriptions, subscriptions.c.subscriber_id == subscribers.c.id)
                     .outerjoin(import_links, and_(import_links.c.line == import_rows.c.line,
                                                   import_links.c.policy_id == subscriptions.c.policy_id,
                                                   import_links.c.site_id == subscriptions.c.site_id))
                     .where(import_links.c.line.is_(None)))
            connection.execute(delete(subscriptions).where(tuple_(*key).in_(stale)))
            upsert = dialect.insert(subscribers)
            changed = or_(*(subscribers.c[name] != upsert.excluded[name] for name in UPDATED_COLUMNS))  # else no write
            connection.execute(upsert.from_select(columns, source.where(known)).on_conflict_do_update(
                index_elements=[subscribers.c.email], set_={name: upsert.excluded[name] for name in UPDATED_COLUMNS},
                where=changed))
            wanted = wanted.where(~exists().where(subscriptions.c.subscriber_id == subscribers.c.id,
                                                  subscriptions.c.policy_id == import_links.c.policy_id,
                                                  subscriptions.c.site_id == import_links.c.site_id))
        try:
            connection.execute(insert(subscribers).from_select(columns, source.where(~known)))
            connection.execute(insert(subscriptions).from_select(["subscriber_id", "policy_id", "site_id"], wanted))
        except IntegrityError:
            raise NotifyError("someone else added some of these subscribers while the file was imported: nothing "
                              "was imported", "import the file again") from None
        return rows - updated, updated

    def _record_events(self, basis: Any, known: Any, updated: bool) -> None:
        """Write an `imported` event for each new person and a `changed` one (naming what) for each known person the
        file changes, before the store is written (the comparison needs the old values)."""
        now = literal(utcnow(), UtcDateTime())
        columns = ["subscriber_uid", "kind", "audience", "legal_basis", "source", "detail", "at"]
        if updated:
            differs = [subscribers.c[name] != import_rows.c[name] for name in CHANGE_SHOWN]
            named = [case((condition, literal(f"{name} ")), else_=literal("")) for name, condition in zip(CHANGE_SHOWN, differs, strict=True)]
            detail: Any = named[0]
            for part in named[1:]:
                detail = detail + part
            self.connection.execute(insert(subscriber_events).from_select(columns, select(
                subscribers.c.uid, literal("changed"), import_rows.c.audience, basis, import_rows.c.consent_source,
                func.trim(detail), now).join_from(import_rows, subscribers, subscribers.c.email == import_rows.c.email)
                .where(or_(*differs)).order_by(import_rows.c.line)))
        self.connection.execute(insert(subscriber_events).from_select(columns, select(
            import_rows.c.uid, literal("imported"), import_rows.c.audience, basis, import_rows.c.consent_source,
            literal(""), now).where(~known).order_by(import_rows.c.line)))


def import_subscribers(state: State, path: Path, skip_invalid: bool = False, consent_source: str | None = None) -> ImportReport:
    """Import a CSV in one streaming pass and one transaction, memory flat in the number of rows. Every bad row is
    reported (the first REPORT_LIMIT in full); when any is, nothing is written, unless skip_invalid. Erased
    addresses stay out."""
    targets = repository_targets(state.repo)
    source = consent_source or f"import:{path.name}"
    with state.store.connect() as connection, connection.begin() as transaction:
        run = _Import(connection, state.keyring, skip_invalid)
        for line, row in read_import_file(path):
            if isinstance(row, str):
                run.bad(line, row)
                continue
            try:
                run.add(line, validate_entry(row, targets, source))
            except ValueError as exc:
                run.bad(line, str(exc))
        report = run.finish()
        if not report.imported:
            transaction.rollback()
    return report


def load_subscribers(connection: Connection, emails: list[str] | None = None, page: list[Any] | None = None) -> list[Subscriber]:
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
        query = query.where(subscribers.c.email == lookup_address(email))
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
                yield from load_subscribers(connection, page=page)
                page = []
        yield from load_subscribers(connection, page=page)


def lookup_address(email: str) -> str:
    try:
        return normalise_address(email)
    except ValueError as exc:
        raise UsageError(str(exc), "give the address as it was subscribed") from None


def subscriber_notices(state: State, email: str) -> list[dict[str, Any]]:
    """What the outbox records about one address: for a person's request to see their data."""
    address = lookup_address(email)
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
    address = lookup_address(email)
    with state.store.begin() as connection:
        row = connection.execute(select(subscribers.c.id, subscribers.c.uid, subscribers.c.audience)
                                 .where(subscribers.c.email == address)).first()
        if row is None:
            raise NotifyError(f"no subscriber {address}", "`addendum subscribers list` shows who is subscribed")
        connection.execute(delete(subscriptions).where(subscriptions.c.subscriber_id == row.id))
        connection.execute(delete(subscribers).where(subscribers.c.id == row.id))
        record_events(connection, [{"subscriber_uid": row.uid, "kind": "removed", "audience": row.audience, "source": "cli"}])
        return _cancel_unsent(connection, outbox.c.recipient == address)


@dataclass(frozen=True)
class UnsubscribeResult:
    email: str
    already: bool
    cancelled: int


def unsubscribe(state: State, token: str, source: str = "one-click unsubscribe") -> UnsubscribeResult:
    """Honour a one-click unsubscribe: the token's subscriber stops receiving optional change notices at once."""
    uid = read_unsubscribe_token(state.keyring, token)
    with state.store.begin() as connection:
        row = connection.execute(select(subscribers).where(subscribers.c.uid == uid)).first()
        if row is None:
            raise NotifyError("the unsubscribe token names nobody on the list", "the person was removed or erased already")
        already = row.unsubscribed_at is not None
        if not already:
            connection.execute(update(subscribers).where(subscribers.c.id == row.id).values(unsubscribed_at=utcnow()))
            record_events(connection, [{"subscriber_uid": uid, "kind": "unsubscribed", "audience": row.audience,
                                        "source": source}])
        cancelled = _cancel_unsent(connection, and_(outbox.c.subscriber_uid == uid, outbox.c.audience == "subscriber"))
    return UnsubscribeResult(row.email, already, cancelled)


def token_holder(state: State, token: str) -> Subscriber | None:
    """The subscriber an unsubscribe token names (None when nobody on the list has that id any more), changing
    nothing: what a confirmation page shows before the person presses the button. Refuses a forged or malformed token."""
    uid = read_unsubscribe_token(state.keyring, token)
    with state.store.begin() as connection:
        row = connection.execute(select(subscribers.c.email).where(subscribers.c.uid == uid)).first()
        found = load_subscribers(connection, [row.email]) if row is not None else []
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
