"""The archive's evidence: the ledgers' hash chains, the manifest's SSH signature, and RFC 3161 timestamp tokens.

`archive` signs history/manifest.json (manifest.json.sig) when archive.signing_key is set, and with evidence.tsa_url
asks the TSA for a token over the manifest (manifest.json.tsr; signed too, manifest.json.tsr.sig, with the key) and
over every ledger entry that has none yet
(history/POLICY/timestamps/SLUG.tsr; `publish` requests the new entry's token itself, in its commit). `verify` checks
all of it and names what does not hold; what is simply absent is a note, unless the repository says it should be
there (an allowed_signers file means the manifest must be signed; a configured TSA, that it must be timestamped).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from addendum import paths
from addendum.archive.manifest import Finding, manifest_path, read_manifest
from addendum.config import Repo
from addendum.errors import SealError
from addendum.files import read_repository_file, write_atomic
from addendum.history.ledger import LedgerEntry, chain_start, ledger_entries, ledger_path, read_ledger
from addendum.seal.signatures import allowed_signers_path, check_signature, sign, signing_key
from addendum.seal.timestamps import TokenCheck, check_token, request_token, tsa_crl, tsa_settings

# A ledger is a few hundred kilobytes at most; the chain is checked on its bytes.
LEDGER_MAX_BYTES = 10_000_000
TOKEN_KIND = "timestamp"  # a ledger entry's token, as the manifest lists it
Trust = tuple[Path | None, Path | None]  # the TSA's CA file, and the CRL that revokes its certificates (or None)
SignatureEncodings = dict[bytes, set[bytes]]  # a TSA certificate: the signature algorithm encodings its tokens use


@dataclass(frozen=True)
class SealCheck:
    findings: tuple[Finding, ...]
    notes: tuple[str, ...]  # what holds, and what is not there (signed by…, chain starts at…, not timestamped)
    signature: str = "none"  # the manifest's: "valid: signed by …", "invalid: …" or "none"
    timestamp: str = "none"  # the manifest's: "valid: timestamped … by …", "invalid: …" or "none"


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _entries(repo: Repo, policy_id: str) -> tuple[list[LedgerEntry], list[Finding]]:
    """The ledger's entries as bytes, and a finding for every break in its chain (file:line)."""
    path = ledger_path(repo.history_dir, policy_id)
    if not path.is_file():
        return [], []
    relative = path.relative_to(repo.history_dir).as_posix()
    data = read_repository_file(repo.root, path)
    if len(data) > LEDGER_MAX_BYTES:
        return [], [Finding("chain", relative, f"{len(data):,} bytes: larger than any ledger ({LEDGER_MAX_BYTES:,})")]
    entries, breaks = ledger_entries(data.decode("utf-8"))
    return entries, [Finding("chain", f"{relative}:{b.line}", b.message) for b in breaks]


def _token_time(check: TokenCheck) -> str:
    return f"{check.time:%Y-%m-%d %H:%M:%S} UTC" if check.time else "an unknown time"


# ---------------------------------------------------------------------------------------------- archive


def evidence_notes(repo: Repo) -> tuple[str, ...]:
    """What the settings leave out, from the settings alone (no file is read): not signed, not timestamped."""
    notes = []
    if not str(repo.setting("archive.signing_key")).strip():
        notes.append("the archive is not signed (set archive.signing_key; see `addendum help config`)")
    if not str(repo.setting("evidence.tsa_url")).strip():
        notes.append("the archive and the ledger are not timestamped (set evidence.tsa_url and evidence.tsa_ca_file)")
    elif not str(repo.setting("evidence.tsa_crl")).strip():
        notes.append("the revocation of the TSA's certificate is not checked (set evidence.tsa_crl)")
    return tuple(notes)


def require_seal_settings(repo: Repo) -> None:
    """Refuse, before any work, settings that sealing would refuse: every problem of the key and the TSA."""
    signing_key(repo)
    allowed_signers_path(repo)
    tsa_settings(repo)
    tsa_crl(repo)


def seal_archive(repo: Repo, policy_ids: Sequence[str], manifest_before: bytes | None) -> tuple[str, ...]:
    """Timestamp every ledger entry without a token and record every token in the manifest (so that a changed byte
    in one is a changed file); then sign and timestamp the manifest when it changed in this run, or has no signature
    or token yet. Returns what was done, one line each. A signature or token of an earlier manifest is removed once
    the manifest changed and nothing replaces it: it no longer says anything true."""
    manifest = read_manifest(repo.history_dir)
    if manifest is None:
        return ()
    done: list[str] = []
    key, tsa = signing_key(repo), tsa_settings(repo)
    for policy_id in policy_ids:
        entries, _ = _entries(repo, policy_id)
        for entry in entries:
            relative = paths.ledger_timestamp(policy_id, entry.version_id.partition("@")[2])
            path = repo.history_dir / relative
            if not path.is_file() and tsa is not None:
                write_atomic(path, request_token(tsa, entry.digest, f"the ledger entry of {entry.version_id}"))
                done.append(f"timestamped the ledger entry of {entry.version_id}: history/{relative}")
            if path.is_file() and relative not in manifest.files:
                data = path.read_bytes()
                manifest.files[relative] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "kind": TOKEN_KIND,
                                            "policy": policy_id, "version": entry.version_id, "ledger_entry": entry.digest}
    data = manifest.to_bytes()
    if manifest_path(repo.history_dir).read_bytes() != data:
        write_atomic(manifest_path(repo.history_dir), data)
    changed = data != manifest_before
    signature, token = repo.history_dir / paths.MANIFEST_SIGNATURE, repo.history_dir / paths.MANIFEST_TIMESTAMP
    token_signature = repo.history_dir / paths.MANIFEST_TIMESTAMP_SIGNATURE
    # What this run would make: a file whose maker is not configured any more is stale once the manifest changed.
    made_here = ((signature, key is not None), (token, tsa is not None), (token_signature, key is not None and tsa is not None))
    for path, wanted in made_here:
        if changed and not wanted and path.is_file():
            path.unlink()
            done.append(f"removed history/{path.name}: it was made for the manifest before this run")
    if key is not None and (changed or not signature.is_file()):
        made = sign(key, data)
        allowed = allowed_signers_path(repo)
        check = check_signature(data, made, allowed)
        if not check.valid:
            raise SealError(f"the manifest was signed with {key}, but the signature does not verify: {check.problem}",
                            f"add the key to {allowed.name}: echo \"editor@example.org namespaces=\\\"addendum\\\" "
                            f"$(cat {key}.pub)\" >> {allowed.name}; then run `addendum archive` again")
        write_atomic(signature, made)
        done.append(f"signed history/{paths.MANIFEST} as {check.signer}: history/{paths.MANIFEST_SIGNATURE}")
    stamped = False
    if tsa is not None and (changed or not token.is_file()):
        write_atomic(token, request_token(tsa, _sha256(data), f"history/{paths.MANIFEST}"))
        done.append(f"timestamped history/{paths.MANIFEST} by {tsa.url}: history/{paths.MANIFEST_TIMESTAMP}")
        stamped = True
    # The token's own bytes under the key's signature too: nothing of the archive's evidence is left unsigned.
    if key is not None and token.is_file() and (stamped or not token_signature.is_file()):
        write_atomic(token_signature, sign(key, token.read_bytes()))
        done.append(f"signed history/{paths.MANIFEST_TIMESTAMP}: history/{paths.MANIFEST_TIMESTAMP_SIGNATURE}")
    return tuple(done)


# ---------------------------------------------------------------------------------------------- verify


def check_seals(repo: Repo, policy_ids: Sequence[str]) -> SealCheck:
    """Every ledger's chain, the manifest's signature, and every timestamp token, as findings and notes."""
    findings: list[Finding] = []
    notes: list[str] = []
    tsa = tsa_settings(repo)
    # An inspector checks the tokens with the CA certificates alone: no TSA URL needed.
    configured_ca = str(repo.setting("evidence.tsa_ca_file")).strip()
    ca_file = tsa.ca_file if tsa is not None else (repo.path(configured_ca) if configured_ca else None)
    crl_file = tsa_crl(repo)
    encodings: SignatureEncodings = {}
    for policy_id in policy_ids:
        entries, breaks = _entries(repo, policy_id)
        findings += breaks
        start = chain_start(entries)
        relative = f"history/{policy_id}/{ledger_path(repo.history_dir, policy_id).name}"
        if start is None:
            notes.append(f"{relative}: not chained (its {len(entries)} entries predate the hash chain)" if entries else "")
        else:
            earlier = f"; the {start.number - 1} entries before it predate the chain" if start.number > 1 else ""
            notes.append(f"{relative}: hash chain from {start.version_id} ({relative}:{start.line}){earlier}")
        entry_findings, entry_notes = _check_entry_tokens(repo, policy_id, entries, (ca_file, crl_file), tsa is not None, encodings)
        findings += entry_findings
        notes += entry_notes
    manifest_findings, manifest_notes = _check_manifest(repo, (ca_file, crl_file), tsa is not None, encodings)
    if ca_file is not None and crl_file is None:
        manifest_notes.append("the revocation of the TSA's certificate is not checked (set evidence.tsa_crl)")
    return SealCheck(tuple(findings + manifest_findings), tuple(note for note in notes + manifest_notes if note),
                     _verdict("signature", "signed", manifest_findings, manifest_notes),
                     _verdict("timestamp", "timestamped", manifest_findings, manifest_notes))


def _verdict(kind: str, word: str, findings: list[Finding], notes: list[str]) -> str:
    """The manifest's signature or timestamp in one phrase: "valid: …", "invalid: …" or "none"."""
    wrong = next((finding.detail for finding in findings if finding.kind == kind), None)
    if wrong is not None:
        return f"invalid: {wrong}"
    held = next((note for note in notes if note.startswith(f"history/{paths.MANIFEST}: {word} ")), None)
    return f"valid: {held.split(': ', 1)[1]}" if held else "none"


def _check_manifest(repo: Repo, trust: Trust, tsa_configured: bool, encodings: SignatureEncodings) -> tuple[list[Finding], list[str]]:
    findings: list[Finding] = []
    notes: list[str] = []
    data = manifest_path(repo.history_dir).read_bytes()
    signature = repo.history_dir / paths.MANIFEST_SIGNATURE
    allowed = allowed_signers_path(repo)
    if signature.is_file():
        check = check_signature(data, signature.read_bytes(), allowed)
        if check.valid:
            notes.append(f"history/{paths.MANIFEST}: signed by {check.signer}")
        else:
            findings.append(Finding("signature", paths.MANIFEST_SIGNATURE, f"does not verify: {check.problem}"))
    elif allowed.is_file():
        findings.append(Finding("signature", paths.MANIFEST_SIGNATURE, f"missing, but {allowed.name} says the archive is "
                                                                       "signed; run `addendum archive` with archive.signing_key set"))
    else:
        notes.append(f"history/{paths.MANIFEST}: not signed (set archive.signing_key and commit {allowed.name})")
    token = repo.history_dir / paths.MANIFEST_TIMESTAMP
    if token.is_file():
        built = [str(e["built"]) for e in json.loads(data).get("files", {}).values() if isinstance(e, dict) and e.get("built")]
        latest = max((datetime.fromisoformat(b) for b in built), default=None)
        token_bytes = token.read_bytes()
        stamp = _token(findings, paths.MANIFEST_TIMESTAMP, token_bytes, _sha256(data), trust, f"history/{paths.MANIFEST}")
        _check_token_signature(findings, repo.history_dir, token_bytes, allowed)
        if stamp is not None and stamp.profile is not None and \
                stamp.profile.signature_algorithm not in encodings.get(stamp.profile.signer, {stamp.profile.signature_algorithm}):
            findings.append(Finding("timestamp", paths.MANIFEST_TIMESTAMP, "its signature algorithm is written "
                                    f"{stamp.profile.signature_algorithm.hex()}, the ledger's tokens of the same TSA "
                                    f"certificate {' or '.join(sorted(encoding.hex() for encoding in encodings[stamp.profile.signer]))} "
                                    "(a byte outside the TSA's signature changed)"))
        elif stamp is not None and stamp.time is not None and latest is not None and stamp.time < latest - timedelta(minutes=5):
            findings.append(Finding("timestamp", paths.MANIFEST_TIMESTAMP, f"dated {_token_time(stamp)}, before the manifest's "
                                                                           f"last file was built ({latest.isoformat()})"))
        elif stamp is not None:
            notes.append(f"history/{paths.MANIFEST}: timestamped {_token_time(stamp)} by {stamp.tsa}")
    elif tsa_configured:
        findings.append(Finding("timestamp", paths.MANIFEST_TIMESTAMP, "missing, but evidence.tsa_url is set; run `addendum archive`"))
    else:
        notes.append(f"history/{paths.MANIFEST}: not timestamped (set evidence.tsa_url and evidence.tsa_ca_file)")
    return findings, notes


def _check_token_signature(findings: list[Finding], history: Path, token: bytes, allowed: Path) -> None:
    """The SSH signature of the manifest's token (so that no byte of it is unsigned): required where allowed_signers
    says the archive is signed."""
    where = paths.MANIFEST_TIMESTAMP_SIGNATURE
    path = history / where
    if path.is_file():
        check = check_signature(token, path.read_bytes(), allowed)
        if not check.valid:
            findings.append(Finding("signature", where, f"does not verify for {paths.MANIFEST_TIMESTAMP}: {check.problem}"))
    elif allowed.is_file():
        findings.append(Finding("signature", where, f"missing, but {allowed.name} says the archive is signed; run "
                                                    "`addendum archive` with archive.signing_key set"))


def _token(findings: list[Finding], where: str, token: bytes, digest: str, trust: Trust, what: str) -> TokenCheck | None:
    """The token's check, or None with a finding when it does not hold (or cannot be checked)."""
    ca_file, crl_file = trust
    if ca_file is None:
        findings.append(Finding("timestamp", where, "cannot be checked: set evidence.tsa_ca_file to the PEM file of the TSA's CA certificates"))
        return None
    check = check_token(token, digest, ca_file, crl_file=crl_file)
    if not check.valid:
        findings.append(Finding("timestamp", where, f"does not hold for {what}: {check.problem}"))
        return None
    return check


def _check_entry_tokens(repo: Repo, policy_id: str, entries: list[LedgerEntry], trust: Trust,
                        tsa_configured: bool, encodings: SignatureEncodings) -> tuple[list[Finding], list[str]]:
    """The ledger's tokens; each one that holds adds its TSA certificate's signature-algorithm encoding to `encodings` (the
    manifest records these tokens' bytes, so the manifest's own token is held to the encodings they show)."""
    findings: list[Finding] = []
    folder = repo.history_dir / policy_id / paths.TIMESTAMPS
    by_slug = {entry.version_id.partition("@")[2]: entry for entry in entries}
    tokens = sorted(folder.glob("*.tsr")) if folder.is_dir() else []
    stamped = 0
    for path in tokens:
        where = path.relative_to(repo.history_dir).as_posix()
        entry = by_slug.get(path.stem)
        if entry is None:
            findings.append(Finding("timestamp", where, f"a token for {policy_id}@{path.stem}, which the ledger does not list "
                                                        "(an entry was removed?)"))
            continue
        what = f"the ledger entry of {entry.version_id} (history/{policy_id}/{ledger_path(repo.history_dir, policy_id).name}:{entry.line})"
        check = _token(findings, where, path.read_bytes(), entry.digest, trust, what)
        if check is None or check.time is None:
            continue
        if check.profile is not None:
            encodings.setdefault(check.profile.signer, set()).add(check.profile.signature_algorithm)
        published = _published(repo, policy_id, entry)
        if published is not None and check.time < published - timedelta(days=1):
            findings.append(Finding("timestamp", where, f"dated {_token_time(check)}, before {entry.version_id} was published"))
            continue
        stamped += 1
    missing = len(entries) - len([p for p in tokens if p.stem in by_slug])
    notes = [f"history/{policy_id}/{paths.TIMESTAMPS}: {stamped} of {len(entries)} ledger entries timestamped"] if tokens else []
    if missing and not tokens:
        notes.append(f"history/{policy_id}: ledger entries not timestamped"
                     + ("; run `addendum archive` to timestamp them" if tsa_configured else " (set evidence.tsa_url)"))
    return findings, notes


def _published(repo: Repo, policy_id: str, entry: LedgerEntry) -> datetime | None:
    for version in read_ledger(repo.history_dir, policy_id):
        if version.id == entry.version_id:
            return datetime(version.published.year, version.published.month, version.published.day, tzinfo=UTC)
    return None
