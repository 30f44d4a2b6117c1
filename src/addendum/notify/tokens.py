"""Versioned HMAC keys: unsubscribe tokens over subscriber ids, and keyed hashes that keep erased addresses suppressed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from addendum.errors import NotifyError, UsageError
from addendum.files import write_atomic
from addendum.history.repository import is_ignored

KEYS_ENV = "ADDENDUM_NOTIFY_KEYS"
MIN_SECRET_LENGTH = 32
KEY_ENTRY = re.compile(r"^(?P<version>[1-9][0-9]{0,3}):(?P<secret>\S+)$")
TOKEN_PATTERN = re.compile(r"^(?P<version>[1-9][0-9]{0,3})\.(?P<uid>[0-9a-f]{32})\.(?P<mac>[A-Za-z0-9_-]{22})$")
KEY_FILE_HEADER = ("# Keys for unsubscribe tokens and erasure hashes: version:secret, one per line; the highest version\n"
                   "# signs new tokens. Never delete a line: old tokens and erased addresses are checked with old keys.\n")


@dataclass(frozen=True)
class Keyring:
    """Secrets by version; the highest version signs, every version verifies."""

    keys: Mapping[int, bytes]
    source: str

    @property
    def current(self) -> int:
        return max(self.keys)

    def mac(self, version: int, purpose: str, value: str) -> bytes:
        if version not in self.keys:
            raise NotifyError(f"no key version {version} in {self.source}", "old keys must be kept when keys are rotated")
        return hmac.new(self.keys[version], f"{purpose}\x00{value}".encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def unsubscribe_token(keyring: Keyring, subscriber_uid: str) -> str:
    """An opaque, unforgeable token naming one subscriber by id (never by address): `version.uid.mac`."""
    version = keyring.current
    return f"{version}.{subscriber_uid}.{_b64(keyring.mac(version, 'unsubscribe', subscriber_uid)[:16])}"


def read_unsubscribe_token(keyring: Keyring, token: str) -> str:
    """The subscriber uid a token names; refuses a malformed, forged or unknown-key token."""
    match = TOKEN_PATTERN.fullmatch(token.strip())
    if match is None:
        raise NotifyError("the unsubscribe token is malformed", "pass the token exactly as it appears in the link (?token=…)")
    version, uid = int(match["version"]), match["uid"]
    if version not in keyring.keys:
        raise NotifyError(f"the unsubscribe token was signed with key version {version}, which {keyring.source} lacks",
                          "restore that key: rotated keys must be kept")
    expected = _b64(keyring.mac(version, "unsubscribe", uid)[:16])
    if not hmac.compare_digest(expected, match["mac"]):
        raise NotifyError("the unsubscribe token is not valid", "it was altered, or signed with another key")
    return uid


def address_digests(keyring: Keyring, address: str) -> dict[int, str]:
    """The keyed hash of an address under every key version: what erasure keeps instead of the address."""
    normal = address.strip().lower()
    return {version: keyring.mac(version, "suppress", normal).hex() for version in keyring.keys}


def _parse(text: str, source: str) -> dict[int, bytes]:
    keys: dict[int, bytes] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = KEY_ENTRY.fullmatch(line)
        if match is None or len(match["secret"]) < MIN_SECRET_LENGTH:
            raise NotifyError(f"{source}: entry {number} is not `version:secret` with a secret of at least "
                              f"{MIN_SECRET_LENGTH} characters", "generate one with `addendum subscribers rotate-key`")
        keys[int(match["version"])] = match["secret"].encode("utf-8")
    if not keys:
        raise NotifyError(f"{source} holds no key", "add a line `1:<secret of 32+ characters>`, or delete the file to have one created")
    return keys


def require_private(path: Path, what: str) -> None:
    """Refuse a secret or personal-data file that others on this machine could read."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise NotifyError(f"{what} {path} can be read by others (mode {mode:04o})",
                          f"it holds secrets or personal data: run `chmod 600 {path}`")


def require_ignored(repo_root: Path, path: Path, what: str, probe: Path | None = None) -> None:
    """Refuse to keep personal data or keys where `git add -A` would pick them up: inside the work tree, not ignored.
    `probe` is the file to ask git about when `path` is a folder (its files may be ignored by name)."""
    if not is_ignored(repo_root, probe or path):
        raise UsageError(f"the {what} {path} is inside the git work tree and not ignored: `git add -A` would commit it",
                         "it holds personal data or keys: add it to .gitignore, or choose a path outside the repository, "
                         "e.g. under .addendum/")


def load_keyring(key_file: Path, work_tree: Path | None = None) -> Keyring:
    """Keys from ADDENDUM_NOTIFY_KEYS, else from `key_file` (mode 0600), which is created with one key when missing;
    with `work_tree` (the repository root), a key file git would add is refused."""
    if os.environ.get(KEYS_ENV, "").strip():
        return Keyring(_parse(os.environ[KEYS_ENV].replace(",", "\n"), f"environment {KEYS_ENV}"), f"environment {KEYS_ENV}")
    if work_tree is not None:
        private_dir(key_file.parent)
        require_ignored(work_tree, key_file, "key file")
    if not key_file.exists():
        private_dir(key_file.parent)
        write_atomic(key_file, KEY_FILE_HEADER + f"1:{secrets.token_urlsafe(32)}\n", mode=0o600)
    require_private(key_file, "key file")
    return Keyring(_parse(key_file.read_text(encoding="utf-8"), str(key_file)), str(key_file))


def rotate_key(key_file: Path, work_tree: Path | None = None) -> int:
    """Add a new key version to the key file; tokens are signed with it from now on. Returns the new version."""
    if os.environ.get(KEYS_ENV, "").strip():
        raise NotifyError(f"keys come from the environment ({KEYS_ENV}), not from {key_file}",
                          f"append `,<n+1>:<new secret>` to {KEYS_ENV} where it is set")
    keyring = load_keyring(key_file, work_tree)
    version = keyring.current + 1
    text = key_file.read_text(encoding="utf-8")
    write_atomic(key_file, text + ("" if text.endswith("\n") else "\n") + f"{version}:{secrets.token_urlsafe(32)}\n", mode=0o600)
    return version


def private_dir(folder: Path) -> None:
    """Create a folder for local state readable by its owner only; one inside a work tree ignores itself in git."""
    if folder.exists():
        return
    folder.mkdir(parents=True, mode=0o700)
    write_atomic(folder / ".gitignore", "# Local state of addendum: personal data and keys, never committed.\n*\n")
