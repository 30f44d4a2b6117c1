"""Acceptance records: who accepted which version, who must accept again after a material change, and the sites' API keys."""

from __future__ import annotations

import csv
import hashlib
import hmac
import ipaddress
import json
import operator
import re
import secrets
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import Table, delete, func, insert, select, tuple_, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from addendum.errors import AddendumError, FieldError, HistoryError, NotifyError, UsageError
from addendum.history.ledger import PublishedVersion
from addendum.history.versions import published_versions
from addendum.ids import LANGUAGE_PATTERN, VERSION_PATTERN, is_id
from addendum.notify.state import State
from addendum.notify.store import acceptance_keys, acceptance_standing, acceptances, batched_rows, utcnow
from addendum.paths import SLUG_PATTERN

METHODS = ("clickwrap", "signup", "email-link")
MAX_USER_REF = 200
MAX_SOURCE = 200
CLOCK_SKEW = timedelta(minutes=5)  # an acceptance "from the future" within this is a clock off by a little
IMPORT_BATCH = 1000
REPORT_LIMIT = 50  # bad rows reported in full; the rest are counted
REQUIRED_COLUMNS = ("user", "policy", "version", "site", "language", "accepted_at", "method")
OPTIONAL_COLUMNS = ("content_hash", "ip", "ip_hash", "ip_key_version")
EXPORT_COLUMNS = (*REQUIRED_COLUMNS, "content_hash", "ip_hash", "ip_key_version", "source", "recorded_at")
KEY_PREFIX = "adk_"
KEY_PATTERN = re.compile(r"\Aadk_(?P<id>[0-9a-f]{12})_(?P<secret>[A-Za-z0-9_-]{43})\Z")
INVISIBLE = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF)}


class KeyRefused(UsageError):
    """No API key, or one that is malformed, unknown or revoked (HTTP 401)."""


class WrongSite(UsageError):
    """A valid API key used for another site than its own (HTTP 403)."""


# ---------------------------------------------------------------------------------------------------------------
# One record, checked


@dataclass(frozen=True)
class AcceptanceEntry:
    """A validated acceptance, ready to store: the version's content hash from the ledger, the address already hashed."""

    user_ref: str
    policy_id: str
    site_id: str
    version_id: str
    content_hash: str
    language: str
    accepted_at: datetime
    method: str
    ip_hash: str | None = None
    ip_key_version: int | None = None

    def as_row(self, source: str, recorded_at: datetime) -> dict[str, Any]:
        return {"user_ref": self.user_ref, "policy_id": self.policy_id, "site_id": self.site_id,
                "version_id": self.version_id, "content_hash": self.content_hash, "language": self.language,
                "accepted_at": self.accepted_at, "method": self.method, "ip_hash": self.ip_hash,
                "ip_key_version": self.ip_key_version, "source": source, "recorded_at": recorded_at}


@dataclass(frozen=True)
class Acceptance:
    """A stored acceptance record."""

    id: int
    user_ref: str
    policy_id: str
    site_id: str
    version_id: str
    content_hash: str
    language: str
    accepted_at: datetime
    method: str
    ip_hash: str | None
    ip_key_version: int | None
    source: str
    recorded_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "user": self.user_ref, "policy": self.policy_id, "site": self.site_id,
                "version": self.version_id, "content_hash": self.content_hash, "language": self.language,
                "accepted_at": _iso(self.accepted_at), "method": self.method, "ip_hash": self.ip_hash,
                "ip_key_version": self.ip_key_version, "source": self.source, "recorded_at": _iso(self.recorded_at)}

    def as_csv(self) -> dict[str, str]:
        row = self.as_json()
        return {"user": self.user_ref, **{k: "" if row[k] is None else str(row[k]) for k in EXPORT_COLUMNS if k != "user"}}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class Ledgers:
    """The published versions of each policy, read once per use (an import of many rows reads each ledger once)."""

    def __init__(self, state: State) -> None:
        self.state = state
        self._versions: dict[str, list[PublishedVersion]] = {}

    def versions(self, policy_id: str) -> list[PublishedVersion]:
        if policy_id not in self._versions:
            self._versions[policy_id] = published_versions(self.state.repo, policy_id)
        return self._versions[policy_id]


def clean_user_ref(value: object) -> str:
    """The site's own id of a user: printable text, at most 200 characters, and not an e-mail address."""
    if value is not None and not isinstance(value, str):
        raise FieldError("user", f"the user reference must be text, got {type(value).__name__}")
    if not value or not value.strip():
        raise FieldError("user", "the user reference is missing", "give the site's own id of the user, e.g. u-4821")
    text = unicodedata.normalize("NFC", value.strip())
    if not text.isprintable() or any(ch in INVISIBLE for ch in text):
        raise FieldError("user", "the user reference contains a control or invisible character")
    if len(text) > MAX_USER_REF:
        raise FieldError("user", f"the user reference is longer than {MAX_USER_REF} characters")
    local, at, domain = text.rpartition("@")
    if at and local and "." in domain:
        raise FieldError("user", "the user reference looks like an e-mail address",
                         "acceptances are pseudonymous: give the site's own id of the user, not their address")
    return text


def _text(raw: Mapping[str, Any], name: str, required: bool = True) -> str:
    value = raw.get(name)
    if value is None or value == "":
        if required:
            raise FieldError(name, f"{name} is missing")
        return ""
    if not isinstance(value, str):
        raise FieldError(name, f"{name} must be text, got {type(value).__name__}")
    return value.strip()


def _moment(value: str, name: str = "accepted_at") -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise FieldError(name, f"{name} {value!r} is not a date-time",
                         "write it as ISO 8601 with its offset, e.g. 2024-05-01T10:00:00Z") from None
    if moment.tzinfo is None:
        raise FieldError(name, f"{name} {value!r} has no time zone", "add Z (UTC) or an offset such as +02:00")
    return moment.astimezone(UTC)


def _version(versions: list[PublishedVersion], policy_id: str, value: str) -> PublishedVersion:
    version_id = f"{policy_id}@{value}" if SLUG_PATTERN.fullmatch(value) else value
    match = VERSION_PATTERN.fullmatch(version_id)
    if match is None or match["policy"] != policy_id:
        raise FieldError("version", f"{value!r} is not a version of {policy_id}", f"version ids look like {policy_id}@2018-05-19")
    found = next((v for v in versions if v.id == version_id), None)
    if found is None:
        known = ", ".join(v.id for v in versions[-5:]) or "none"
        raise FieldError("version", f"{policy_id} has no published version {version_id}", f"its latest versions: {known}")
    return found


def ip_digest(state: State, value: str) -> tuple[str, int]:
    """The keyed hash of a client address (and the key version): equal addresses give equal hashes, none reveals one."""
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        raise FieldError("ip", f"{value!r} is not an IP address", "give the client's address, e.g. 203.0.113.7 or 2001:db8::1") from None
    version = state.keyring.current
    return state.keyring.mac(version, "client-ip", address.compressed).hex(), version


def validate_acceptance(state: State, ledgers: Ledgers, raw: Mapping[str, Any], *, default_site: str | None = None,
                        now: datetime | None = None) -> AcceptanceEntry:
    """Check one acceptance's fields against the ledger; raises FieldError naming the first wrong field."""
    now = now or utcnow()
    user_ref = clean_user_ref(raw.get("user"))
    policy_id = _text(raw, "policy")
    if not is_id(policy_id):
        raise FieldError("policy", f"policy {policy_id!r} is not a valid id")
    try:
        versions = ledgers.versions(policy_id)
    except AddendumError as exc:
        raise FieldError("policy", exc.message, exc.hint) from None
    version = _version(versions, policy_id, _text(raw, "version"))
    site_id = _text(raw, "site", required=default_site is None) or str(default_site)
    if not is_id(site_id):
        raise FieldError("site", f"site {site_id!r} is not a valid id")
    language = _text(raw, "language")
    if not LANGUAGE_PATTERN.fullmatch(language):
        raise FieldError("language", f"{language!r} is not a language code", "language codes look like en, nl or pt-BR")
    recorded_hash = version.hash_for(site_id, language)
    if recorded_hash is None:
        field = "site" if not any(key.startswith(f"{site_id}/") for key in version.hashes) else "language"
        raise FieldError(field, f"{version.id} has no text for site {site_id!r} in language {language!r}",
                         f"it was published for: {', '.join(sorted(version.hashes))}")
    given_hash = _text(raw, "content_hash", required=False)
    if given_hash and given_hash != recorded_hash:
        raise FieldError("content_hash", f"content_hash {given_hash!r} is not the hash of {version.id} for {site_id}/{language}",
                         f"the ledger records {recorded_hash}; leave content_hash out to record that one")
    at_text = _text(raw, "accepted_at", required=False)
    accepted_at = _moment(at_text) if at_text else now
    if accepted_at > now + CLOCK_SKEW:
        raise FieldError("accepted_at", f"accepted_at {at_text} is in the future")
    if accepted_at.date() < version.published:
        raise FieldError("accepted_at", f"accepted_at {at_text} is before {version.id} was published ({version.published})",
                         "check the version: nobody can accept a text before it is published")
    method = _text(raw, "method")
    if method not in METHODS:
        raise FieldError("method", f"method {method!r} is not one of {', '.join(METHODS)}")
    ip_hash, key_version = None, None
    ip = _text(raw, "ip", required=False)
    given_ip_hash = _text(raw, "ip_hash", required=False)
    if ip and given_ip_hash:
        raise FieldError("ip", "give ip or ip_hash, not both")
    if ip:
        ip_hash, key_version = ip_digest(state, ip)
    elif given_ip_hash:
        if not re.fullmatch(r"[0-9a-f]{64}", given_ip_hash):
            raise FieldError("ip_hash", "ip_hash is not a hash exported by addendum (64 hexadecimal digits)")
        version_text = _text(raw, "ip_key_version", required=False)
        if not version_text.isdigit() or int(version_text) not in state.keyring.keys:
            raise FieldError("ip_key_version", f"ip_key_version {version_text!r} is not a key version of {state.keyring.source}")
        ip_hash, key_version = given_ip_hash, int(version_text)
    return AcceptanceEntry(user_ref, policy_id, site_id, version.id, recorded_hash, language, accepted_at, method,
                           ip_hash, key_version)


# ---------------------------------------------------------------------------------------------------------------
# Storing, reading, forgetting


RECORD_COLUMNS = tuple(column.name for column in acceptances.columns if column.name != "id")
STANDING_COLUMNS = tuple(column.name for column in acceptance_standing.columns)
STANDING_UPSERT = (f"INSERT INTO acceptance_standing ({', '.join(STANDING_COLUMNS)}) VALUES ({{marks}}) "
                   "ON CONFLICT (policy_id, site_id, user_ref) DO UPDATE SET version_id = excluded.version_id, "
                   "language = excluded.language, accepted_at = excluded.accepted_at "
                   "WHERE acceptance_standing.accepted_at <= excluded.accepted_at")


def _driver_rows(connection: Connection, table: Table, columns: tuple[str, ...], rows: Iterable[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    """Rows as the driver takes them, through each column's own conversion (UTC datetimes stored naive, for one)."""
    dialect = connection.dialect
    converters = [(index, process) for index, name in enumerate(columns)
                  if (process := table.c[name].type.dialect_impl(dialect).bind_processor(dialect)) is not None]
    pick = operator.itemgetter(*columns)
    converted = []
    for row in rows:
        values = list(pick(row))
        for index, process in converters:
            if values[index] is not None:
                values[index] = process(values[index])
        converted.append(tuple(values))
    return converted


def _store_rows(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Append records and move each user's standing to their latest acceptance (a later record of the same moment wins).
    Straight to the driver, a batch at a time (COPY into PostgreSQL): SQLAlchemy's work per row would cost more than
    the database's."""
    if not rows:
        return
    latest: dict[tuple[str, str, str], dict[str, Any]] = {}
    for row in rows:
        key = (row["policy_id"], row["site_id"], row["user_ref"])
        if key not in latest or latest[key]["accepted_at"] <= row["accepted_at"]:
            latest[key] = row
    records = _driver_rows(connection, acceptances, RECORD_COLUMNS, rows)
    standing = _driver_rows(connection, acceptance_standing, STANDING_COLUMNS, latest.values())
    if connection.dialect.driver == "psycopg":
        driver: Any = connection.connection.driver_connection
        with driver.cursor() as cursor:
            with cursor.copy(f"COPY acceptances ({', '.join(RECORD_COLUMNS)}) FROM STDIN") as copy:
                for record in records:
                    copy.write_row(record)
            # The batch's standings through a temporary table of this transaction, then one set-wise upsert.
            cursor.execute("CREATE TEMPORARY TABLE IF NOT EXISTS acceptance_batch "
                           "(LIKE acceptance_standing) ON COMMIT DROP")
            cursor.execute("TRUNCATE acceptance_batch")
            with cursor.copy(f"COPY acceptance_batch ({', '.join(STANDING_COLUMNS)}) FROM STDIN") as copy:
                for standing_row in standing:
                    copy.write_row(standing_row)
            cursor.execute(STANDING_UPSERT.replace("VALUES ({marks})", f"SELECT {', '.join(STANDING_COLUMNS)} FROM acceptance_batch"))
        return
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql(f"INSERT INTO acceptances ({', '.join(RECORD_COLUMNS)}) "
                                   f"VALUES ({', '.join(['?'] * len(RECORD_COLUMNS))})", records)
        connection.exec_driver_sql(STANDING_UPSERT.format(marks=", ".join(["?"] * len(STANDING_COLUMNS))), standing)
        return
    # PostgreSQL through another driver: SQLAlchemy's own statements.
    connection.execute(insert(acceptances), rows)
    statement = postgresql.insert(acceptance_standing)
    statement = statement.on_conflict_do_update(
        index_elements=[acceptance_standing.c.policy_id, acceptance_standing.c.site_id, acceptance_standing.c.user_ref],
        set_={"version_id": statement.excluded.version_id, "language": statement.excluded.language,
              "accepted_at": statement.excluded.accepted_at},
        where=acceptance_standing.c.accepted_at <= statement.excluded.accepted_at)
    connection.execute(statement, [{name: row[name] for name in STANDING_COLUMNS} for row in latest.values()])


def record_acceptances(state: State, entries: Iterable[AcceptanceEntry], source: str) -> int:
    """Store validated acceptances in one transaction; returns how many."""
    count = 0
    recorded_at = utcnow()
    with state.store.begin() as connection:
        batch: list[dict[str, Any]] = []
        for entry in entries:
            batch.append(entry.as_row(source, recorded_at))
            if len(batch) >= IMPORT_BATCH:
                _store_rows(connection, batch)
                count += len(batch)
                batch = []
        _store_rows(connection, batch)
        count += len(batch)
    return count


def record_acceptance(state: State, entry: AcceptanceEntry, source: str) -> Acceptance:
    """Store one acceptance and return it as stored."""
    recorded_at = utcnow()
    with state.store.begin() as connection:
        _store_rows(connection, [entry.as_row(source, recorded_at)])
        row = connection.execute(select(acceptances).where(acceptances.c.user_ref == entry.user_ref,
                                                           acceptances.c.site_id == entry.site_id,
                                                           acceptances.c.policy_id == entry.policy_id)
                                 .order_by(acceptances.c.id.desc()).limit(1)).one()
    return Acceptance(**row._mapping)


def list_acceptances(state: State, user_ref: str | None = None, policy_id: str | None = None,
                     site_id: str | None = None) -> Iterator[Acceptance]:
    """Records in the order they were stored, page by page."""
    conditions = [column == value for column, value in ((acceptances.c.user_ref, user_ref), (acceptances.c.policy_id, policy_id),
                                                         (acceptances.c.site_id, site_id)) if value is not None]
    query = select(acceptances).where(*conditions) if conditions else select(acceptances)
    with state.store.connect() as connection:
        for row in batched_rows(connection, query, (acceptances.c.id,)):
            yield Acceptance(**row._mapping)


def user_acceptances(state: State, user_ref: str, site_id: str, policy_id: str | None = None) -> list[Acceptance]:
    """One user's records on one site, newest first (at most a few per policy version: read at once)."""
    query = select(acceptances).where(acceptances.c.user_ref == user_ref, acceptances.c.site_id == site_id)
    if policy_id is not None:
        query = query.where(acceptances.c.policy_id == policy_id)
    with state.store.connect() as connection:
        rows = connection.execute(query.order_by(acceptances.c.accepted_at.desc(), acceptances.c.id.desc()).limit(1000)).all()
    return [Acceptance(**row._mapping) for row in rows]


@dataclass(frozen=True)
class Standing:
    """A user's latest acceptance of a policy on a site."""

    version_id: str
    language: str
    accepted_at: datetime


def standing_of(state: State, user_ref: str, policy_id: str, site_id: str) -> Standing | None:
    with state.store.connect() as connection:
        row = connection.execute(select(acceptance_standing.c.version_id, acceptance_standing.c.language,
                                        acceptance_standing.c.accepted_at)
                                 .where(acceptance_standing.c.policy_id == policy_id, acceptance_standing.c.site_id == site_id,
                                        acceptance_standing.c.user_ref == user_ref)).first()
    return Standing(row.version_id, row.language, row.accepted_at) if row is not None else None


def forget_user(state: State, user_ref: str, site_id: str | None = None) -> int:
    """Erase every acceptance record of a user reference (on one site, or on all); returns how many were erased."""
    conditions = [acceptances.c.user_ref == user_ref] + ([acceptances.c.site_id == site_id] if site_id else [])
    standing = [acceptance_standing.c.user_ref == user_ref] + ([acceptance_standing.c.site_id == site_id] if site_id else [])
    with state.store.begin() as connection:
        erased = connection.execute(delete(acceptances).where(*conditions)).rowcount or 0
        connection.execute(delete(acceptance_standing).where(*standing))
    state.store.compact()
    return int(erased)


def export_acceptances(state: State, stream: TextIO, fmt: str = "csv", user_ref: str | None = None,
                       policy_id: str | None = None, site_id: str | None = None) -> int:
    """Write records to `stream`: CSV that `import` reads back, or JSON lines. Returns how many."""
    writer = csv.DictWriter(stream, fieldnames=list(EXPORT_COLUMNS), lineterminator="\n")
    if fmt == "csv":
        writer.writeheader()
    count = 0
    for record in list_acceptances(state, user_ref, policy_id, site_id):
        if fmt == "csv":
            writer.writerow({k: ("'" + v if v.startswith(("=", "+", "-", "@")) else v) for k, v in record.as_csv().items()})
        else:
            stream.write(json.dumps(record.as_json(), ensure_ascii=False) + "\n")
        count += 1
    return count


# ---------------------------------------------------------------------------------------------------------------
# Importing a CSV file: every row checked, all stored in one transaction or none


@dataclass(frozen=True)
class ImportReport:
    imported: int
    bad_rows: int
    problems: tuple[str, ...]  # "LINE: field: message", the first REPORT_LIMIT of them


def _import_rows(path: Path) -> Iterator[tuple[int, dict[str, str] | str]]:
    """The rows of an acceptance CSV with the line each starts on: values by column, or what is wrong with the row."""
    with path.open(encoding="utf-8-sig", errors="strict", newline="") as stream:
        reader = csv.reader(stream, strict=True)
        try:
            header = [c.strip() for c in next(reader, [])]
        except (csv.Error, UnicodeDecodeError) as exc:
            raise NotifyError(f"{path}:1: the header row cannot be read ({exc})", "save the file as UTF-8 CSV") from None
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        unknown = [c for c in header if c not in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS, "source", "recorded_at")]
        if missing or unknown:
            problem = f"lacks the column(s) {', '.join(missing)}" if missing else f"has unknown column(s) {', '.join(unknown)}"
            raise NotifyError(f"{path}:1: the header row {problem}",
                              f"the columns: {','.join(REQUIRED_COLUMNS)} (optional: {','.join(OPTIONAL_COLUMNS)})")
        line = reader.line_num
        while True:
            start = line + 1
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield start, f"broken quoting ({exc})"
                return  # where the row ends is unknown: nothing after it can be trusted
            except UnicodeDecodeError:
                yield start, "not UTF-8 text: save the file as UTF-8 CSV"
                return
            line = reader.line_num
            if not values:
                continue
            if len(values) > len(header):
                yield start, "more fields than the header has columns"
                continue
            fields = dict(zip(header, values, strict=False))
            yield start, {k: (v[1:] if v.startswith("'") and v[1:2] in ("=", "+", "-", "@") else v) for k, v in fields.items()}


def import_acceptances(state: State, path: Path) -> ImportReport:
    """Import acceptance records from a CSV file: every row is checked; when one is wrong, nothing is stored."""
    ledgers = Ledgers(state)
    problems: list[str] = []
    bad = 0
    now = utcnow()
    source = f"import:{path.name}"[:MAX_SOURCE]
    with state.store.connect() as connection:
        transaction = connection.begin()
        batch: list[dict[str, Any]] = []
        count = 0
        for line, row in _import_rows(path):
            if isinstance(row, str):
                reason = row
            else:
                try:
                    entry = validate_acceptance(state, ledgers, row, now=now)
                except FieldError as exc:
                    reason = f"{exc.field}: {exc.message}"
                else:
                    if not bad:
                        batch.append(entry.as_row(source, now))
                        if len(batch) >= IMPORT_BATCH:
                            _store_rows(connection, batch)
                            count, batch = count + len(batch), []
                    continue
            bad += 1
            if len(problems) < REPORT_LIMIT:
                problems.append(f"{line}: {reason}")
        if bad:
            transaction.rollback()
            return ImportReport(0, bad, tuple(problems))
        _store_rows(connection, batch)
        transaction.commit()
    return ImportReport(count + len(batch), 0, ())


# ---------------------------------------------------------------------------------------------------------------
# Who must accept again


@dataclass(frozen=True)
class Change:
    """A version between the one accepted and the one asked about that changed the text of this site and language."""

    version: PublishedVersion
    material: bool
    summary: str

    def as_json(self) -> dict[str, Any]:
        return {"id": self.version.id, "effective": self.version.effective.isoformat(),
                "classification": self.version.classification, "material": self.material,
                "summary": self.summary, "reason": self.version.reason}


@dataclass(frozen=True)
class Need:
    """Whether a user must accept `target`, having accepted `accepted` last (None: never), and the changes since."""

    needed: bool
    target: PublishedVersion
    accepted: str | None
    changes: tuple[Change, ...]

    @property
    def material_changes(self) -> tuple[Change, ...]:
        return tuple(change for change in self.changes if change.material)


def target_version(versions: list[PublishedVersion], at: date, upcoming: bool = False) -> PublishedVersion:
    """The version in force on `at`, or with `upcoming` the last one announced to take effect after it."""
    current = next((v for v in reversed(versions) if v.effective <= at), None)
    if upcoming and versions and versions[-1].effective > at:
        return versions[-1]
    if current is None:
        first = versions[0] if versions else None
        raise HistoryError(f"no version of the policy was in force on {at.isoformat()}",
                          f"the first version, {first.id}, takes effect on {first.effective}; ask with upcoming"
                          if first else "nothing is published yet")
    return current


def need_among(versions: list[PublishedVersion], target: PublishedVersion, accepted_id: str | None, site_id: str,
               language: str) -> Need:
    """Whether accepting `accepted_id` still covers `target` for readers of one site and language: not when a material
    version in between changed their text. Editorial versions, and versions that left their text as it was, never ask."""
    if accepted_id is None:
        return Need(True, target, None, ())
    ids = [v.id for v in versions]
    if accepted_id not in ids:
        return Need(True, target, accepted_id, ())
    start, end = ids.index(accepted_id), ids.index(target.id)
    if start >= end or versions[start].hash_for(site_id, language) == target.hash_for(site_id, language):
        return Need(False, target, accepted_id, ())
    changes = []
    for before, version in zip(versions[start:end], versions[start + 1:end + 1], strict=True):
        if version.hash_for(site_id, language) != before.hash_for(site_id, language):
            summary = version.summaries.get(language) or next(iter(version.summaries.values()), "")
            changes.append(Change(version, version.classification == "material", summary))
    return Need(any(change.material for change in changes), target, accepted_id, tuple(changes))


def _versions(state: State, policy_id: str) -> list[PublishedVersion]:
    try:
        return published_versions(state.repo, policy_id)
    except UsageError as exc:
        raise FieldError("policy", exc.message, exc.hint) from None


def needs_acceptance(state: State, user_ref: str, policy_id: str, site_id: str, language: str | None = None,
                     at: date | None = None, upcoming: bool = False) -> tuple[Need, Standing | None, str]:
    """Whether `user_ref` must accept `policy_id` on `site_id` again: (the answer, their latest acceptance, the language
    compared — the one given, else the one they accepted in)."""
    versions = _versions(state, policy_id)
    target = target_version(versions, at or datetime.now(UTC).date(), upcoming)
    standing = standing_of(state, clean_user_ref(user_ref), policy_id, site_id)
    chosen = language or (standing.language if standing else None) or _first_language(target, site_id)
    if target.hash_for(site_id, chosen) is None:
        field = "lang" if any(key.startswith(f"{site_id}/") for key in target.hashes) else "site"
        raise FieldError(field, f"{target.id} has no text for site {site_id!r} in language {chosen!r}",
                         f"it was published for: {', '.join(sorted(target.hashes))}")
    return need_among(versions, target, standing.version_id if standing else None, site_id, chosen), standing, chosen


def _first_language(version: PublishedVersion, site_id: str) -> str:
    return next((key.split("/")[1] for key in sorted(version.hashes) if key.startswith(f"{site_id}/")), "")


@dataclass(frozen=True)
class VersionCount:
    site_id: str
    version_id: str
    accepted: int
    must_accept: int


@dataclass(frozen=True)
class Stats:
    """Per site and version: how many users accepted it last, and how many of them must accept `target` still."""

    policy_id: str
    target: PublishedVersion
    rows: tuple[VersionCount, ...]

    def as_json(self) -> dict[str, Any]:
        return {"policy": self.policy_id, "target": self.target.id,
                "rows": [{"site": r.site_id, "version": r.version_id, "accepted": r.accepted, "must_accept": r.must_accept}
                         for r in self.rows]}


def acceptance_stats(state: State, policy_id: str, at: date | None = None, upcoming: bool = False,
                     site_id: str | None = None) -> Stats:
    """Count users by the version they accepted last, along the standing index, and ask the ledger once per
    (site, version, language) whether they must accept again."""
    versions = _versions(state, policy_id)
    target = target_version(versions, at or datetime.now(UTC).date(), upcoming)
    table = acceptance_standing
    query = (select(table.c.site_id, table.c.version_id, table.c.language, func.count())
             .where(table.c.policy_id == policy_id)
             .group_by(table.c.site_id, table.c.version_id, table.c.language))
    if site_id is not None:
        query = query.where(table.c.site_id == site_id)
    with state.store.connect() as connection:
        groups = connection.execute(query).all()
    totals: dict[tuple[str, str], list[int]] = {}
    for site, version_id, language, count in groups:
        counts = totals.setdefault((site, version_id), [0, 0])
        counts[0] += count
        if _must_accept(versions, target, site, version_id, language):
            counts[1] += count
    order = {v.id: n for n, v in enumerate(versions)}
    rows = tuple(VersionCount(site, version_id, accepted, must)
                 for (site, version_id), (accepted, must) in sorted(totals.items(), key=lambda i: (i[0][0], order.get(i[0][1], -1))))
    return Stats(policy_id, target, rows)


def _must_accept(versions: list[PublishedVersion], target: PublishedVersion, site_id: str, version_id: str, language: str) -> bool:
    return target.hash_for(site_id, language) is not None and need_among(versions, target, version_id, site_id, language).needed


def pending_users(state: State, policy_id: str, at: date | None = None, upcoming: bool = False,
                  site_id: str | None = None) -> tuple[PublishedVersion, Iterator[PendingUser]]:
    """(the version to accept, the users who must accept it: site by site, in user order, with what they accepted last).
    Read page by page along the standing table's key, so memory stays flat however many there are."""
    versions = _versions(state, policy_id)
    target = target_version(versions, at or datetime.now(UTC).date(), upcoming)
    table = acceptance_standing
    query = select(table.c.site_id, table.c.version_id, table.c.language).where(table.c.policy_id == policy_id).distinct()
    if site_id is not None:
        query = query.where(table.c.site_id == site_id)

    def users() -> Iterator[PendingUser]:
        with state.store.connect() as connection:
            needing: dict[str, list[tuple[str, str]]] = {}
            for site, version_id, language in connection.execute(query).all():
                if _must_accept(versions, target, site, version_id, language):
                    needing.setdefault(site, []).append((version_id, language))
            connection.commit()
            for site in sorted(needing):
                page = (select(table.c.site_id, table.c.user_ref, table.c.version_id, table.c.language, table.c.accepted_at)
                        .where(table.c.policy_id == policy_id, table.c.site_id == site,
                               tuple_(table.c.version_id, table.c.language).in_(needing[site])))
                for row in batched_rows(connection, page, (table.c.user_ref,)):
                    yield PendingUser(row.site_id, row.user_ref, row.version_id, row.language, row.accepted_at)

    return target, users()


@dataclass(frozen=True)
class PendingUser:
    """A user of a site and their latest acceptance, as `pending` lists them."""

    site_id: str
    user_ref: str
    version_id: str
    language: str
    accepted_at: datetime


# ---------------------------------------------------------------------------------------------------------------
# API keys, one or more per site


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    site_id: str
    created_at: datetime
    revoked_at: datetime | None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def add_key(state: State, site_id: str) -> tuple[ApiKey, str]:
    """A new API key for a site: (its record, the key itself, which is shown this once and stored only hashed)."""
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    created = utcnow()
    with state.store.begin() as connection:
        connection.execute(insert(acceptance_keys).values(key_id=key_id, site_id=site_id, digest=_digest(secret),
                                                          created_at=created))
    return ApiKey(key_id, site_id, created, None), f"{KEY_PREFIX}{key_id}_{secret}"


def list_keys(state: State) -> list[ApiKey]:
    with state.store.connect() as connection:
        rows = connection.execute(select(acceptance_keys).order_by(acceptance_keys.c.site_id, acceptance_keys.c.created_at)).all()
    return [ApiKey(r.key_id, r.site_id, r.created_at, r.revoked_at) for r in rows]


def revoke_key(state: State, key_id: str) -> bool:
    """Revoke a key at once; False when it was revoked already."""
    key_id = key_id.removeprefix(KEY_PREFIX).split("_", 1)[0]
    with state.store.begin() as connection:
        row = connection.execute(select(acceptance_keys.c.revoked_at).where(acceptance_keys.c.key_id == key_id)).first()
        if row is None:
            raise NotifyError(f"no API key {key_id}", "`addendum acceptances keys list` shows the keys")
        if row.revoked_at is not None:
            return False
        connection.execute(update(acceptance_keys).where(acceptance_keys.c.key_id == key_id).values(revoked_at=utcnow()))
    return True


def key_site(state: State, key: str) -> tuple[str, str]:
    """(the site, the key id) of a valid, unrevoked API key; KeyRefused otherwise."""
    match = KEY_PATTERN.fullmatch(key.strip())
    if match is None:
        raise KeyRefused("the API key is missing or malformed", "send `Authorization: Bearer adk_…`, a key from "
                         "`addendum acceptances keys add SITE`")
    with state.store.connect() as connection:
        row = connection.execute(select(acceptance_keys).where(acceptance_keys.c.key_id == match["id"])).first()
    if row is None or not hmac.compare_digest(row.digest, _digest(match["secret"])):
        raise KeyRefused("the API key is not valid", "use the key exactly as `addendum acceptances keys add` printed it")
    if row.revoked_at is not None:
        raise KeyRefused(f"the API key {row.key_id} was revoked", "create a new one with `addendum acceptances keys add SITE`")
    return str(row.site_id), str(row.key_id)
