"""The local state of notices, opened together: the store (subscribers, outbox) and the token keys."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from addendum.config import Repo
from addendum.notify.store import Store, open_store
from addendum.notify.tokens import Keyring, load_keyring, rotate_key


@dataclass(frozen=True)
class State:
    repo: Repo
    store: Store
    keyring: Keyring


def key_file(repo: Repo) -> Path:
    return repo.path(str(repo.setting("notify.key_file")))


@contextmanager
def open_state(repo: Repo, database_url: str | None = None) -> Iterator[State]:
    """The repository's state store (ADDENDUM_DATABASE_URL or state.database) and keys; closed on leaving."""
    store = open_store(repo, database_url)
    try:
        yield State(repo, store, load_keyring(key_file(repo), repo.root))
    finally:
        store.dispose()


def rotate_keys(repo: Repo) -> int:
    """Sign new unsubscribe tokens with a fresh key; old tokens and erasure hashes keep working."""
    return rotate_key(key_file(repo), repo.root)
