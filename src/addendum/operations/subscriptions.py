"""One-click unsubscribe for a server: the state store opened once, the keys read at every use, the token checked."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from addendum.config import Repo
from addendum.errors import NotifyError, UsageError
from addendum.notify.state import State, key_file
from addendum.notify.store import Store, open_store
from addendum.notify.subscribers import Subscriber, token_holder, unsubscribe
from addendum.notify.tokens import load_keyring, read_unsubscribe_token


class InvalidToken(UsageError):
    """A token that is malformed, forged, or signed with a key this server does not have: nothing was changed."""


@dataclass(frozen=True)
class Unsubscribed:
    """What a one-click unsubscribe did: `already` when the person had unsubscribed before (the request is idempotent)."""

    email: str
    language: str
    already: bool


class Subscriptions:
    """The state store of a repository, opened on first use and kept while the server runs; the keys are read again
    at every use, so a rotated key signs and verifies at once, and tokens of older keys keep working while kept."""

    def __init__(self, repo: Repo, database_url: str | None = None) -> None:
        self.repo = repo
        self.database_url = database_url
        self._store: Store | None = None
        self._lock = threading.Lock()

    def state(self) -> State:
        with self._lock:
            if self._store is None:
                self._store = open_store(self.repo, self.database_url)
            store = self._store
        return State(self.repo, store, load_keyring(key_file(self.repo), self.repo.root))

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.dispose()
                self._store = None


def _holder(state: State, token: str) -> Subscriber | None:
    try:
        read_unsubscribe_token(state.keyring, token)
    except NotifyError as exc:
        raise InvalidToken(exc.message, exc.hint) from None
    return token_holder(state, token)


def token_subscriber(subscriptions: Subscriptions, token: str) -> Subscriber | None:
    """Who a token names, changing nothing (None: nobody on the list any more); InvalidToken for a bad token."""
    return _holder(subscriptions.state(), token)


def unsubscribe_one_click(subscriptions: Subscriptions, token: str) -> Unsubscribed | None:
    """Honour an RFC 8058 one-click unsubscribe: the person stops receiving optional notices at once, and their
    unsent notices are cancelled. None when the token names nobody on the list (erased, or removed): nothing to do."""
    state = subscriptions.state()
    holder = _holder(state, token)
    if holder is None:
        return None
    result = unsubscribe(state, token)
    return Unsubscribed(result.email, holder.language, result.already)
