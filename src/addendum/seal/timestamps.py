"""RFC 3161 trusted timestamps: a token from a time-stamping authority (TSA) that a hash existed at a time it signs.

A token is requested over HTTP (`application/timestamp-query`, RFC 3161 §3.4) for a SHA-256 hash, with a nonce and
the TSA's certificate asked for, and is kept only after it has been checked as `verify` will check it: its status,
that it covers that hash, and its signature, chained to the CA certificates in `evidence.tsa_ca_file` at the time the
TSA states. openssl does the cryptography (`openssl ts`); this module keeps its files in a temporary folder.
"""

from __future__ import annotations

import re
import ssl
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from addendum.config import Repo
from addendum.errors import ConfigError, SealError
from addendum.seal.profile import ProfileError, TokenProfile, check_profile
from addendum.seal.tools import run_tool, said

# A response holds a signature and a few certificates: a few kilobytes. Anything this large is not one.
TOKEN_MAX_BYTES = 256 * 1024
# A TSA's clock and ours may differ a little; a token dated later than this ahead of ours is refused.
CLOCK_SKEW = timedelta(minutes=5)
TOKEN_SUFFIX = ".tsr"
_STATUS = re.compile(r"^Status: (.+?)\.?$", re.MULTILINE)
_TIME = re.compile(r"^Time stamp: ([A-Z][a-z]{2}) +(\d{1,2}) (\d\d:\d\d:\d\d)(?:\.\d+)? (\d{4}) GMT$", re.MULTILINE)
_TSA = re.compile(r"^TSA: (.+)$", re.MULTILINE)
_ALGORITHM = re.compile(r"^Hash Algorithm: (\S+)$", re.MULTILINE)
_HEX_LINE = re.compile(r"^ {4}[0-9a-f]{4} - ((?:[0-9a-f]{2}[ -]){0,15}[0-9a-f]{2})", re.MULTILINE)


@dataclass(frozen=True)
class TsaSettings:
    url: str
    ca_file: Path
    timeout: float


def tsa_settings(repo: Repo) -> TsaSettings | None:
    """evidence.tsa_url and its CA file, or None when nothing is to be timestamped. Every problem is named at once."""
    url = str(repo.setting("evidence.tsa_url")).strip()
    ca_file = str(repo.setting("evidence.tsa_ca_file")).strip()
    if not url:
        return None
    problems = []
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        problems.append(f"evidence.tsa_url {url!r} is not an http or https URL")
    path = repo.path(ca_file)
    if not ca_file:
        problems.append("evidence.tsa_url is set, but evidence.tsa_ca_file is not")
    elif not path.is_file():
        problems.append(f"evidence.tsa_ca_file {path} does not exist")
    if problems:
        raise ConfigError("\n  ".join(problems),
                          "set evidence.tsa_url to the TSA's RFC 3161 address and evidence.tsa_ca_file to a PEM file of "
                          "the CA certificates its tokens chain to (your TSA publishes them)")
    return TsaSettings(url, path, float(repo.setting("evidence.tsa_timeout")))


def tsa_crl(repo: Repo) -> Path | None:
    """evidence.tsa_crl (a PEM CRL of the TSA's CA, in the repository), or None when revocation is not checked."""
    configured = str(repo.setting("evidence.tsa_crl")).strip()
    if not configured:
        return None
    path = repo.path(configured)
    if not path.is_file() or not _begins_as_pem_crl(path):
        raise ConfigError(f"evidence.tsa_crl {path} is not a PEM file of a CRL",
                          "download the CRL your TSA's CA publishes (the certificate's CRL distribution point), "
                          "convert it with `openssl crl -inform DER -in ca.crl -out tsa-ca.crl.pem`, and point "
                          "evidence.tsa_crl at it; or leave evidence.tsa_crl empty")
    return path


def _begins_as_pem_crl(path: Path) -> bool:
    """Whether the file's start holds a PEM CRL's first line (only that much of a file of any size is read); an
    unreadable file is not one."""
    try:
        with path.open("rb") as file:
            return b"-----BEGIN X509 CRL-----" in file.read(TOKEN_MAX_BYTES)
    except OSError:
        return False


@dataclass(frozen=True)
class TokenCheck:
    """What a token says, and what is wrong with it ("" when it holds)."""

    time: datetime | None  # when the TSA says the hash existed, in UTC
    tsa: str
    problem: str
    profile: TokenProfile | None = None  # its certificates and signature algorithm, when it holds

    @property
    def valid(self) -> bool:
        return not self.problem


def _hex(digest: str) -> str:
    value = digest.removeprefix("sha256:")
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise SealError(f"{digest!r} is not a SHA-256 hash", "report this: a timestamp is requested for a hash")
    return value


def _described(reply: Path) -> tuple[str, str]:
    """(openssl's text form of the response, "") or ("", what openssl said when it is not a response)."""
    done = run_tool("openssl", "ts", "-reply", "-in", reply, "-text")
    if done.returncode != 0:
        return "", f"not an RFC 3161 timestamp response (openssl: {said(done)})"
    return done.stdout.decode("utf-8", "replace"), ""


def _time(text: str) -> datetime | None:
    found = _TIME.search(text)
    if found is None:
        return None
    stamp = datetime.strptime(f"{found[1]} {found[2]} {found[3]} {found[4]}", "%b %d %H:%M:%S %Y")
    return stamp.replace(tzinfo=UTC)


def _field(pattern: re.Pattern[str], text: str, default: str) -> str:
    found = pattern.search(text)
    return found[1] if found else default


def check_token(token: bytes, digest: str, ca_file: Path, now: datetime | None = None,
                crl_file: Path | None = None) -> TokenCheck:
    """Check a stored response as `verify` does: exactly as the strict profile says a TSA issues it (profile.py: no
    byte outside its signature can change), granted, over `digest` (SHA-256), signed by a TSA whose certificate chains
    to `ca_file` and was valid at the time it states, and that time not in our future. With `crl_file` (a PEM CRL of
    the CA), a revoked TSA certificate is refused too."""
    expected = _hex(digest)
    if len(token) > TOKEN_MAX_BYTES:
        return TokenCheck(None, "", f"{len(token):,} bytes: not a timestamp token (at most {TOKEN_MAX_BYTES:,})")
    try:
        certificates = check_profile(token)
    except ProfileError as exc:
        return TokenCheck(None, "", f"not a timestamp token as a TSA issues it: {exc}")
    with tempfile.TemporaryDirectory(prefix="addendum-tsr-") as name:
        reply = Path(name) / "reply.tsr"
        reply.write_bytes(token)
        text, problem = _described(reply)
        if problem:
            return TokenCheck(None, "", problem)
        stamp = _time(text)
        tsa = _field(_TSA, text, "unnamed").removeprefix("DirName:")
        status = _field(_STATUS, text, "unknown")
        if status != "Granted":
            return TokenCheck(stamp, tsa, f"the TSA did not grant it (status: {status})")
        algorithm = _field(_ALGORITHM, text, "none")
        imprint = "".join(_HEX_LINE.findall(text[text.find("Message data:"):])).replace(" ", "").replace("-", "")
        if algorithm != "sha256" or imprint != expected:
            return TokenCheck(stamp, tsa, f"it covers {algorithm}:{imprint[:16]}…, but they hash to sha256:{expected[:16]}… "
                                          "(they changed, or the token is another's)")
        if stamp is None:
            return TokenCheck(None, tsa, "it states no time openssl can read")
        if stamp > (now or datetime.now(UTC)) + CLOCK_SKEW:
            return TokenCheck(stamp, tsa, f"it is dated {stamp:%Y-%m-%d %H:%M:%S} UTC, in the future")
        at_time = str(int(stamp.timestamp()))
        done = run_tool("openssl", "ts", "-verify", "-digest", expected, "-sha256", "-in", reply, "-CAfile", ca_file,
                        "-attime", at_time)
        if done.returncode != 0 or b"Verification: OK" not in done.stdout:
            return TokenCheck(stamp, tsa, f"its signature does not verify against {ca_file} (openssl: {_reason(done.stderr)})")
        problem = _other_certificates(certificates, Path(name), ca_file, at_time)
        if not problem and crl_file is not None:
            problem = _revoked(certificates, Path(name), ca_file, crl_file)
        if problem:
            return TokenCheck(stamp, tsa, problem)
    return TokenCheck(stamp, tsa, "", certificates)


def _revoked(certificates: TokenProfile, folder: Path, ca_file: Path, crl_file: Path) -> str:
    """"" unless `crl_file` revokes the TSA's certificate (or cannot be used for it). The CRL is the CA's latest: it
    is usually issued after the token, so the check is of its list, not of the time it was valid."""
    trusted = folder / "trusted-with-crl.pem"
    trusted.write_bytes(ca_file.read_bytes().rstrip(b"\n") + b"\n" + crl_file.read_bytes())
    signer = folder / "signer.pem"
    signer.write_bytes(_pem(certificates.signer))
    untrusted = folder / "chain.pem"
    untrusted.write_bytes(b"".join(map(_pem, certificates.others)) or _pem(certificates.signer))
    done = run_tool("openssl", "verify", "-CAfile", trusted, "-untrusted", untrusted, "-crl_check", "-no_check_time",
                    signer)
    if done.returncode == 0:
        return ""
    reason = _reason(done.stderr or done.stdout)
    if "revoked" in reason:
        return f"the TSA's certificate is revoked: {crl_file} lists it (openssl: {reason})"
    return f"the revocation of the TSA's certificate cannot be checked with {crl_file} (openssl: {reason})"


def _pem(certificate: bytes) -> bytes:
    return ssl.DER_cert_to_PEM_cert(certificate).encode("ascii")


def _other_certificates(certificates: TokenProfile, folder: Path, trusted: Path, at_time: str) -> str:
    """"" when every certificate the token holds besides the TSA's chains to the trusted CAs (so none of its bytes can
    change unnoticed), else which does not. The signatures of self-signed ones are checked too."""
    if not certificates.others:
        return ""
    untrusted = folder / "untrusted.pem"
    untrusted.write_bytes(b"".join(map(_pem, (certificates.signer, *certificates.others))))
    for number, certificate in enumerate(certificates.others, 1):
        path = folder / f"other-{number}.pem"
        path.write_bytes(_pem(certificate))
        done = run_tool("openssl", "verify", "-CAfile", trusted, "-untrusted", untrusted, "-check_ss_sig", "-partial_chain",
                        "-attime", at_time, path)
        if done.returncode != 0:
            return (f"certificate {number + 1} of the token (besides the TSA's) does not chain to the trusted CA "
                    f"certificates (openssl: {_reason(done.stderr or done.stdout)})")
    return ""


def _reason(stderr: bytes) -> str:
    """openssl's reason for a failed verification: "Verify error:REASON", else the REASON of its first error line
    (PID:error:CODE:LIBRARY:FUNCTION:REASON:FILE:LINE:)."""
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    for line in lines:
        if "Verify error:" in line:
            return line.split("Verify error:", 1)[1].strip()
        if line.startswith("error ") and " lookup:" in line:  # openssl verify: "error 23 at 0 depth lookup: REASON"
            return line.split(" lookup:", 1)[1].strip()
    for line in lines:
        parts = line.split(":")
        if "error" in parts and len(parts) > parts.index("error") + 4:
            return parts[parts.index("error") + 4]
    return lines[0] if lines else "verification failed"


def request_token(settings: TsaSettings, digest: str, what: str) -> bytes:
    """A checked timestamp response from the TSA for `digest` (SHA-256); `what` names the hashed thing in errors."""
    expected = _hex(digest)
    with tempfile.TemporaryDirectory(prefix="addendum-tsq-") as name:
        query = Path(name) / "query.tsq"
        done = run_tool("openssl", "ts", "-query", "-digest", expected, "-sha256", "-cert", "-out", query)
        if done.returncode != 0:
            raise SealError(f"openssl could not make a timestamp query: {said(done)}", "check that openssl works: openssl version")
        data = _post(settings, query.read_bytes(), what)
        reply = Path(name) / "reply.tsr"
        reply.write_bytes(data)
        check = check_token(data, digest, settings.ca_file)
        if not check.valid:
            raise SealError(f"the time-stamping authority {settings.url} answered for {what} with a token that does not "
                            f"hold: {check.problem}", "check evidence.tsa_url and evidence.tsa_ca_file, then run the command again; the token was not kept")
        # The nonce in our query must come back: a replayed or misrouted response does not carry it.
        done = run_tool("openssl", "ts", "-verify", "-queryfile", query, "-in", reply, "-CAfile", settings.ca_file,
                        "-attime", str(int(check.time.timestamp())) if check.time else "0")
        if done.returncode != 0:
            raise SealError(f"the time-stamping authority {settings.url} answered for {what} with a token that does not "
                            f"match the query (openssl: {_reason(done.stderr)})", "run the command again; the token was not kept")
    return data


def _post(settings: TsaSettings, body: bytes, what: str) -> bytes:
    """POST the query; the answer's body, refused when it is not a timestamp reply, too large or too slow."""
    import urllib.error  # only a run that asks a TSA pays for the HTTP client (log and diff import this module)
    import urllib.request
    hint = f"check that the TSA at {settings.url} is reachable (evidence.tsa_url), then run the command again; no token was kept"
    request = urllib.request.Request(settings.url, data=body, method="POST",
                                     headers={"Content-Type": "application/timestamp-query",
                                              "Accept": "application/timestamp-reply", "User-Agent": "addendum"})
    deadline = time.monotonic() + settings.timeout
    try:
        with urllib.request.urlopen(request, timeout=settings.timeout) as response:  # noqa: S310 (the scheme is checked)
            chunks: list[bytes] = []
            size = 0
            while chunk := response.read(16384):
                size += len(chunk)
                if size > TOKEN_MAX_BYTES:
                    raise SealError(f"the time-stamping authority {settings.url} answered for {what} with more than "
                                    f"{TOKEN_MAX_BYTES:,} bytes: not a timestamp reply", hint)
                if time.monotonic() > deadline:
                    raise TimeoutError
                chunks.append(chunk)
            kind = response.headers.get_content_type()
    except urllib.error.HTTPError as exc:
        raise SealError(f"the time-stamping authority {settings.url} answered {exc.code} {exc.reason} for {what}", hint) from None
    except (TimeoutError, urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc) or "timed out"
        if isinstance(exc, TimeoutError) or "timed out" in str(reason):
            reason = f"no answer within {settings.timeout:g} seconds (evidence.tsa_timeout)"
        raise SealError(f"the time-stamping authority {settings.url} could not be reached for {what}: {reason}", hint) from None
    if kind != "application/timestamp-reply":
        raise SealError(f"the time-stamping authority {settings.url} answered for {what} with {kind}, not "
                        "application/timestamp-reply: is this the RFC 3161 address?", hint)
    return b"".join(chunks)
