"""DKIM signatures (RFC 6376) on change notices, with dkimpy: the sender's domain vouches for each message."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from addendum.config import Repo
from addendum.errors import NotifyError
from addendum.notify.tokens import require_ignored, require_private

# Mailbox providers require the unsubscribe headers to be signed (RFC 8058 §4); a header a notice lacks (List-Id on an
# account holder's notice) is signed as absent, so nobody can add it on the way.
SIGNED_HEADERS = (b"From", b"To", b"Subject", b"Date", b"Message-ID", b"List-Id", b"List-Unsubscribe",
                  b"List-Unsubscribe-Post")


@dataclass(frozen=True)
class DkimSettings:
    domain: str
    selector: str
    key_file: Path


def dkim_settings(repo: Repo) -> DkimSettings | None:
    """The [notify.dkim] settings, or None when notices are not signed (no domain). A key file must exist, be
    readable by its owner only (0600) and never be tracked by git."""
    domain = str(repo.setting("notify.dkim.domain")).strip().lower().rstrip(".")
    selector = str(repo.setting("notify.dkim.selector")).strip()
    key_file = str(repo.setting("notify.dkim.key_file")).strip()
    if not domain:
        if selector or key_file:
            raise NotifyError("notify.dkim.selector and .key_file are set, but notify.dkim.domain is not",
                              'set [notify.dkim] domain = "example.org" (the d= of the signature), or remove the others')
        return None
    missing = [key for key, value in (("notify.dkim.selector", selector), ("notify.dkim.key_file", key_file)) if not value]
    if missing:
        raise NotifyError(f"notify.dkim.domain is set, but {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not",
                          "set the selector (the key is published at SELECTOR._domainkey.DOMAIN) and the 0600 PEM "
                          "file of the private key")
    path = repo.path(key_file)
    if not path.is_file():
        raise NotifyError(f"the DKIM key file {path} does not exist",
                          "create it (mode 0600, e.g. `openssl genrsa -out FILE 2048`) or fix notify.dkim.key_file")
    require_private(path, "DKIM key file")
    if path.resolve().is_relative_to(repo.root.resolve()):
        require_ignored(repo.root, path, "DKIM key file")
    return DkimSettings(domain, selector, path)


class Signer:
    """Signs messages with one key (relaxed/relaxed, rsa-sha256): call it with a message, get it back signed."""

    def __init__(self, settings: DkimSettings) -> None:
        try:
            import dkim
        except ModuleNotFoundError:
            raise NotifyError("DKIM signing needs dkimpy, which is not installed",
                              "install it (`pip install 'addendum[dkim]'`), or unset notify.dkim.domain") from None
        self._dkim: Any = dkim
        self.settings = settings
        self._selector, self._domain = settings.selector.encode("ascii"), settings.domain.encode("ascii")
        self._key = settings.key_file.read_bytes()
        probe = b"From: probe@" + self._domain + b"\r\nSubject: probe\r\n\r\nprobe\r\n"
        try:
            self(probe)
        except (dkim.DKIMException, ValueError, IndexError, TypeError) as exc:
            raise NotifyError(f"the DKIM key file {settings.key_file} holds no usable RSA private key ({exc})",
                              "give a PEM RSA private key, e.g. from `openssl genrsa -out FILE 2048`") from None

    def __call__(self, message: bytes) -> bytes:
        signature: bytes = self._dkim.sign(message, self._selector, self._domain, self._key,
                                           canonicalize=(b"relaxed", b"relaxed"), include_headers=list(SIGNED_HEADERS))
        return signature + message


def signer_for(repo: Repo) -> Signer | None:
    settings = dkim_settings(repo)
    return Signer(settings) if settings is not None else None
