"""SSH signatures (`ssh-keygen -Y`, namespace "addendum", as git signs commits) over the archive's manifest.

The private key is the editor's: named by archive.signing_key, never inside the repository where git would commit
it. Who may sign is the repository's `allowed_signers` file (archive.allowed_signers, ssh-keygen's format, see
ALLOWED SIGNERS in ssh-keygen(1)), committed with it, so that anyone holding a copy can check.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from addendum.config import Repo
from addendum.errors import ConfigError, SealError
from addendum.files import OutsideRepository, inside_repository
from addendum.history.repository import is_ignored
from addendum.seal.tools import run_tool, said

NAMESPACE = "addendum"
SIGNATURE_SUFFIX = ".sig"
SIGNATURE_MAX_BYTES = 64 * 1024  # an SSH signature is a few hundred bytes, an RSA one about two kilobytes
_GOOD = re.compile(r'^Good "[^"]+" signature for (.+) with (\S+) key (\S+)\s*$', re.MULTILINE)


@dataclass(frozen=True)
class SignatureCheck:
    """Whose signature it is (principal, key type and fingerprint), or what is wrong ("" when it holds)."""

    signer: str
    problem: str

    @property
    def valid(self) -> bool:
        return not self.problem


def allowed_signers_path(repo: Repo) -> Path:
    """archive.allowed_signers, inside the repository (a link leading out of it is refused)."""
    configured = str(repo.setting("archive.allowed_signers")).strip()
    path = repo.root / configured
    try:
        return inside_repository(repo.root, path)
    except OutsideRepository as exc:
        raise ConfigError(f"archive.allowed_signers: {exc.message}",
                          "the allowed signers are part of the repository: keep the file inside it, and commit it") from None


def signing_key(repo: Repo) -> Path | None:
    """archive.signing_key, or None when the archive is not signed. The key must exist and stay out of git: a key
    inside the work tree that git tracks, or would add with `git add -A`, is refused."""
    configured = str(repo.setting("archive.signing_key")).strip()
    if not configured:
        return None
    path = repo.path(Path(configured).expanduser())
    if not path.is_file():
        raise ConfigError(f"archive.signing_key {path} does not exist",
                          "make one outside the repository (ssh-keygen -t ed25519 -f ~/.ssh/addendum), or fix the path")
    if not is_ignored(repo.root, path):
        raise ConfigError(f"archive.signing_key {path} is inside the git work tree and not ignored: git would commit the "
                          "private key", "keep the key outside the repository (e.g. ~/.ssh/addendum) and point "
                                         "archive.signing_key at it")
    return path


def sign(key: Path, data: bytes) -> bytes:
    """An armoured SSH signature of `data` by `key`, in namespace NAMESPACE."""
    done = run_tool("ssh-keygen", "-Y", "sign", "-n", NAMESPACE, "-f", key, input=data)
    if done.returncode != 0 or b"BEGIN SSH SIGNATURE" not in done.stdout:
        raise SealError(f"ssh-keygen could not sign with {key}: {said(done)}",
                        "archive.signing_key must be an SSH private key without a passphrase, or the public key of one "
                        "an ssh-agent holds")
    return done.stdout


def check_signature(data: bytes, signature: bytes, allowed_signers: Path) -> SignatureCheck:
    """Whether `signature` is a good NAMESPACE signature of `data` by a key that `allowed_signers` lists."""
    if len(signature) > SIGNATURE_MAX_BYTES:
        return SignatureCheck("", f"{len(signature):,} bytes: not an SSH signature")
    if not allowed_signers.is_file():
        return SignatureCheck("", f"there is no {allowed_signers.name} to check it against (archive.allowed_signers)")
    with tempfile.TemporaryDirectory(prefix="addendum-sig-") as name:
        sig = Path(name) / "signature.sig"
        sig.write_bytes(signature)
        found = run_tool("ssh-keygen", "-Y", "find-principals", "-s", sig, "-f", allowed_signers)
        principals = found.stdout.decode("utf-8", "replace").split() if found.returncode == 0 else []
        if not principals:
            return SignatureCheck("", f"not made by a key that {allowed_signers.name} lists ({said(found)})")
        for principal in principals:
            done = run_tool("ssh-keygen", "-Y", "verify", "-f", allowed_signers, "-I", principal, "-n", NAMESPACE,
                            "-s", sig, input=data)
            good = _GOOD.search(done.stdout.decode("utf-8", "replace"))
            if done.returncode == 0 and good:
                return SignatureCheck(f"{good[1]} ({good[2]} {good[3]})", "")
    return SignatureCheck("", f"it is not a good signature of these bytes by {', '.join(principals)} "
                              "(the file or its signature was changed)")
