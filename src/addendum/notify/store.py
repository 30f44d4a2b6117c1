"""The state store outside git: subscribers, suppressions, the outbox and acceptances, as SQLAlchemy Core tables (SQLite or PostgreSQL)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
    inspect,
    make_url,
    tuple_,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from addendum.config import Repo
from addendum.errors import NotifyError
from addendum.history.repository import is_tracked
from addendum.notify.tokens import private_dir, require_ignored, require_private

DATABASE_ENV = "ADDENDUM_DATABASE_URL"
ALL_POLICIES = "*"
AUDIENCES = ("account", "subscriber")
# What each audience's notices rest on (GDPR Art. 6(1)): account holders are told under their contract, subscribers
# because they asked to be.
LEGAL_BASES = {"account": "contract", "subscriber": "consent"}
ERASED_PREFIX = "erased:"  # + the keyed hash of the address: the recipient of a notice record kept after erasure


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, whatever the backend keeps."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the state store; use an aware UTC datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


metadata = MetaData()

subscribers = Table(
    "subscribers", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("uid", String(32), nullable=False, unique=True),  # public id: in tokens and Message-IDs, never the address
    Column("email", String(320), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("language", String(16), nullable=False),
    Column("audience", String(16), nullable=False),
    Column("consent_source", String(200), nullable=False),
    Column("consent_at", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("unsubscribed_at", UtcDateTime),
    Column("legal_basis", String(16)),  # LEGAL_BASES[audience]; NULL in rows of an earlier release
)

# What happened to each person's subscription, with its source, time and legal basis: added, imported, changed,
# resubscribed, unsubscribed, bounced, complained, removed, forgotten. Never the address or the name: once the person
# is forgotten, `digest` (the keyed hash of the address) is what finds their events.
subscriber_events = Table(
    "subscriber_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("subscriber_uid", String(32), nullable=False),
    Column("digest", String(64)),
    Column("kind", String(16), nullable=False),
    Column("audience", String(16), nullable=False),
    Column("legal_basis", String(16), nullable=False),
    Column("source", String(200), nullable=False),
    Column("detail", Text, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Index("subscriber_events_by_uid", "subscriber_uid", "id"),
    Index("subscriber_events_by_digest", "digest"),
)

subscriptions = Table(
    "subscriptions", metadata,
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True),
    Column("policy_id", String(63), primary_key=True),  # ALL_POLICIES: every policy, present and future
    Column("site_id", String(63), primary_key=True),
    Index("subscriptions_by_site", "site_id", "policy_id"),
)

suppressions = Table(
    "suppressions", metadata,
    Column("digest", String(64), primary_key=True),  # keyed hash of the erased address, never the address
    Column("key_version", Integer, nullable=False),
    Column("reason", String(32), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

# One row per (version, recipient address, site): the UNIQUE constraint is what makes re-running safe.
outbox = Table(
    "outbox", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("version_id", String(80), nullable=False),
    Column("policy_id", String(63), nullable=False),
    Column("subscriber_uid", String(32), nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("site_id", String(63), nullable=False),
    Column("language", String(16), nullable=False),
    Column("audience", String(16), nullable=False),
    Column("content_hash", String(80), nullable=False),
    Column("message_id", String(250), nullable=False, unique=True),
    Column("message_sha256", String(64), nullable=False),
    Column("message", LargeBinary, nullable=False),
    Column("state", String(12), nullable=False),
    # When the notice was sent against the effective date (ahead | short | late) and why, for short and late.
    Column("timing", String(8)),
    Column("timing_reason", Text),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime),
    Column("reply", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("sent_at", UtcDateTime),
    # The sender that holds the row (its lease in `locks` is named "sender:" + this), and until when its claim holds
    # unless renewed: another sender takes it over only once that sender is gone. NULL: nobody holds it.
    Column("claimed_by", String(64)),
    Column("lease_until", UtcDateTime),
    # When the recipient was forgotten: the row then keeps ERASED_PREFIX + keyed hash as recipient, no message body,
    # and is purged by `addendum retention run` once retention.erased_records_days have passed.
    Column("erased_at", UtcDateTime),
    UniqueConstraint("version_id", "recipient", "site_id", name="outbox_one_per_recipient"),
    Index("outbox_by_state", "version_id", "state", "id"),
    Index("outbox_by_recipient", "recipient"),
    Index("outbox_by_claim", "claimed_by"),
)

# Every SMTP attempt and its reply: the evidence `addendum notices` shows.
attempts = Table(
    "attempts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("outbox_id", Integer, ForeignKey("outbox.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("attempted_at", UtcDateTime, nullable=False),
    Column("outcome", String(12), nullable=False),
    Column("reply", Text, nullable=False),
    Column("sender", String(300)),  # which sender made the attempt: host, process and lease
)

# What came back after a notice was sent: delivery status notifications (RFC 3464) and complaints (RFC 5965), one
# row per report and notice; `source` (a digest of the report) keeps a mailbox read twice from counting twice.
bounces = Table(
    "bounces", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("outbox_id", Integer, ForeignKey("outbox.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("kind", String(12), nullable=False),  # hard | soft | complaint
    Column("status", String(16), nullable=False),  # the RFC 3463 status code, e.g. 5.1.1; the feedback type of a complaint
    Column("diagnostic", Text, nullable=False),
    Column("reported_at", UtcDateTime, nullable=False),
    Column("source", String(64), nullable=False),
    UniqueConstraint("source", "outbox_id", name="bounces_once_per_report"),
)

# The shared rate limit of every sender on this store: a token bucket, refilled at the configured rate.
rate_limits = Table(
    "rate_limits", metadata,
    Column("name", String(40), primary_key=True),
    Column("tokens", Float, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# Leases renewed while their holder runs, taken over when it is gone: "notify" (the one sender of a SQLite store) and
# one "sender:…" per sending process, whose outbox claims live as long as it does.
locks = Table(
    "locks", metadata,
    Column("name", String(40), primary_key=True),
    Column("owner", String(64), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("heartbeat_at", UtcDateTime, nullable=False),
)

# Webhooks: the receivers, every event once (`key` names it: a second emission of the same event is a no-op), and one
# delivery per event and receiver, stored before its first attempt; `webhook_attempts` is each attempt's evidence.
webhook_endpoints = Table(
    "webhook_endpoints", metadata,
    Column("id", String(40), primary_key=True),  # ep_… : names the endpoint's secret in the secret file
    Column("url", String(2000), nullable=False),
    Column("events", String(200), nullable=False),  # comma-separated event types
    Column("site_id", String(63)),  # NULL: events of every site
    Column("created_at", UtcDateTime, nullable=False),
)

webhook_events = Table(
    "webhook_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(200), nullable=False, unique=True),
    Column("type", String(40), nullable=False),
    Column("body", LargeBinary, nullable=False),  # the exact bytes every delivery of the event sends
    Column("created_at", UtcDateTime, nullable=False),
)

webhook_deliveries = Table(
    "webhook_deliveries", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", String(40), nullable=False, unique=True),  # the webhook-id header: the receiver's dedup key
    Column("event_id", Integer, ForeignKey("webhook_events.id"), nullable=False),
    Column("endpoint_id", String(40), nullable=False),
    Column("url", String(2000), nullable=False),
    Column("state", String(12), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime),
    Column("reply", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("delivered_at", UtcDateTime),
    UniqueConstraint("event_id", "endpoint_id", name="webhook_deliveries_once"),
    Index("webhook_deliveries_by_state", "state", "next_attempt_at"),
)

webhook_attempts = Table(
    "webhook_attempts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", Integer, ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("attempted_at", UtcDateTime, nullable=False),
    Column("outcome", String(12), nullable=False),
    Column("status", Integer),  # the HTTP status; NULL when no answer came
    Column("reply", Text, nullable=False),
)


# Acceptances: which version of a policy each user of a site accepted, one row per act. Append-only: a correction is a
# new row. `user_ref` is the site's own pseudonymous id; the client address is kept only as a keyed hash.
acceptances = Table(
    "acceptances", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_ref", String(200), nullable=False),
    Column("policy_id", String(63), nullable=False),
    Column("site_id", String(63), nullable=False),
    Column("version_id", String(80), nullable=False),
    Column("content_hash", String(80), nullable=False),
    Column("language", String(16), nullable=False),
    Column("accepted_at", UtcDateTime, nullable=False),
    Column("method", String(16), nullable=False),
    Column("ip_hash", String(64)),
    Column("ip_key_version", Integer),
    Column("source", String(200), nullable=False),  # api:KEY_ID, import:FILE
    Column("recorded_at", UtcDateTime, nullable=False),
    Index("acceptances_by_user", "user_ref", "site_id", "policy_id", "accepted_at"),
)

# Each user's latest acceptance per policy and site, kept with every record (derived from `acceptances`): what `stats`
# counts along its index and what a needs-acceptance question reads by key.
acceptance_standing = Table(
    "acceptance_standing", metadata,
    Column("policy_id", String(63), primary_key=True),
    Column("site_id", String(63), primary_key=True),
    Column("user_ref", String(200), primary_key=True),
    Column("version_id", String(80), nullable=False),
    Column("language", String(16), nullable=False),
    Column("accepted_at", UtcDateTime, nullable=False),
    Index("acceptance_standing_by_version", "policy_id", "site_id", "version_id", "language"),
)

# The API keys of the sites that record acceptances: the SHA-256 of each secret, never the secret.
acceptance_keys = Table(
    "acceptance_keys", metadata,
    Column("key_id", String(12), primary_key=True),
    Column("site_id", String(63), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime),
)


@dataclass(frozen=True)
class Store:
    """An open state store; `where` names it in messages without showing a password."""

    engine: Engine
    where: str

    def begin(self) -> Any:
        return self.engine.begin()

    def connect(self) -> Connection:
        return self.engine.connect()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def dispose(self) -> None:
        self.engine.dispose()

    def compact(self) -> None:
        """Push erased rows out of SQLite's write-ahead log, so deleted personal data does not linger in a file."""
        if self.dialect == "sqlite":
            with self.engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def database_url(repo: Repo, override: str | None = None) -> str:
    """Where the state lives: an explicit URL, else ADDENDUM_DATABASE_URL, else the state.database setting."""
    chosen = override or os.environ.get(DATABASE_ENV, "").strip() or str(repo.setting("state.database"))
    if "://" in chosen:
        return chosen
    return f"sqlite:///{repo.path(chosen)}"


def _sqlite_file(repo: Repo, url: str) -> Path | None:
    database = make_url(url).database
    if not database or database == ":memory:":
        return None
    return repo.path(database)


def _prepare_sqlite_file(repo: Repo, path: Path) -> None:
    if is_tracked(repo.root, path):
        raise NotifyError(f"the state database {path} is tracked by git",
                          "subscribers are personal data and never enter git: `git rm --cached` it and choose a "
                          "git-ignored path (state.database, default .addendum/state.db)")
    private_dir(path.parent)
    require_ignored(repo.root, path, "state database")
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    require_private(path, "state database")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers never block the sender, and a commit survives the process being killed at any point.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Erased personal data is overwritten in the file, not merely unlinked from the b-tree.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def open_store(repo: Repo, url: str | None = None) -> Store:
    """Open (and create, mode 0600, schema included) the state store of a repository."""
    chosen = database_url(repo, url)
    try:
        parsed = make_url(chosen)
    except ArgumentError:
        raise NotifyError(f"{chosen!r} is not a database URL", "use a path, sqlite:///PATH or postgresql+psycopg://…") from None
    where = parsed.render_as_string(hide_password=True)
    try:
        if parsed.get_backend_name() == "sqlite":
            file = _sqlite_file(repo, chosen)
            if file is not None:
                _prepare_sqlite_file(repo, file)
                # A relative sqlite:///name would be opened against the current folder, not the repository.
                parsed = parsed.set(database=str(file))
            engine = create_engine(parsed)
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(parsed, pool_pre_ping=True)
        metadata.create_all(engine)
        _add_new_columns(engine)
    except (OperationalError, SQLAlchemyError) as exc:
        raise NotifyError(f"cannot open the state database {where}: {exc.__class__.__name__}: {str(exc).splitlines()[0]}",
                          f"check the URL in {DATABASE_ENV} or state.database, and that the server is running") from None
    except ModuleNotFoundError as exc:
        raise NotifyError(f"the database driver {exc.name!r} is not installed",
                          "install it, e.g. `pip install 'addendum[postgres]'` for postgresql+psycopg://") from None
    return Store(engine, where)


def _add_new_columns(engine: Engine) -> None:
    """Bring a store made by an earlier release up to date: columns added since (all nullable) and their indexes.
    create_all makes missing tables only, never a column of a table that exists."""
    inspector = inspect(engine)
    with engine.begin() as connection:
        for table in metadata.sorted_tables:
            present = {column["name"] for column in inspector.get_columns(table.name)}
            missing = [column for column in table.columns if column.name not in present]
            for column in missing:
                kind = column.type.compile(dialect=engine.dialect)
                connection.exec_driver_sql(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}')
            if missing:
                indexed = {index["name"] for index in inspector.get_indexes(table.name)}
                for index in table.indexes:
                    if index.name not in indexed:
                        index.create(connection, checkfirst=True)


def batched_rows(connection: Connection, query: Any, key_columns: tuple[Any, ...], size: int = 500) -> Iterator[Any]:
    """Rows of `query` in key order, fetched page by page (keyset pagination): memory stays flat in the row count.
    Each page is its own read transaction, so a long run never pins an old snapshot (or SQLite's log)."""
    last: tuple[Any, ...] | None = None
    while True:
        page_query = query.order_by(*key_columns).limit(size)
        if last is not None:
            # The first key alone as well: a condition on one table's column, which its index can start from, where
            # the row comparison spanning a join would be checked only after reading every row before it.
            page_query = page_query.where(key_columns[0] >= last[0], tuple_(*key_columns) > tuple_(*last))
        rows = connection.execute(page_query).all()
        connection.commit()
        if not rows:
            return
        yield from rows
        last = tuple(rows[-1]._mapping[column.key] for column in key_columns)
        if len(rows) < size:
            return


def insert_ignoring(connection: Connection, table: Table, rows: list[dict[str, Any]] | dict[str, Any]) -> None:
    """Insert rows; one whose key exists already is left exactly as it was."""
    if not rows:
        return
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    connection.execute(dialect.insert(table).on_conflict_do_nothing(), rows)


def insert_new(connection: Connection, table: Table, row: dict[str, Any]) -> bool:
    """Insert one row unless its key exists already; whether it was inserted."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    # By what it returns, not by rowcount, which PostgreSQL's driver does not give for an insert that returns its key.
    key = next(iter(table.primary_key.columns))
    return connection.execute(dialect.insert(table).values(row).on_conflict_do_nothing().returning(key)).first() is not None


def insert_outbox_rows(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Queue messages; a row that exists already (same version, recipient and site) is left exactly as it was."""
    insert_ignoring(connection, outbox, rows)


def record_events(connection: Connection, events: list[dict[str, Any]]) -> None:
    """Add to the history of subscriptions: each event a dict of subscriber_events' columns, `at` defaulting to now
    and the legal basis to that of the audience."""
    if events:
        now = utcnow()
        connection.execute(subscriber_events.insert(), [
            {"digest": None, "detail": "", "at": now, **event,
             "legal_basis": event.get("legal_basis") or LEGAL_BASES.get(event["audience"], "")} for event in events])
