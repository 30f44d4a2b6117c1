"""The archive's evidence: the ledger's hash chain, the manifest's SSH signature and RFC 3161 timestamp tokens, all
checked by `verify` with real ssh-keygen and openssl, against a real time-stamping authority on 127.0.0.1."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from addendum.history.ledger import ledger_entries
from tests_support import TimestampAuthority, git_in, invoke_ok, set_config

PROJECT = Path(__file__).resolve().parents[1]
LEDGER = "history/privacy/ledger.toml"


def _make_key(folder: Path, principal: str = "editor@example.org") -> tuple[Path, str]:
    """An ed25519 key pair in `folder`, and its allowed_signers line."""
    key = folder / "signing-key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", principal, "-f", str(key)], check=True, timeout=30)
    return key, f'{principal} namespaces="addendum" {(folder / "signing-key.pub").read_text(encoding="utf-8").strip()}\n'


def _line_of(root: Path, version_id: str) -> int:
    """The line of the [[version]] header of `version_id` in the ledger."""
    lines = (root / LEDGER).read_text(encoding="utf-8").splitlines()
    return lines.index(f'id = "{version_id}"')  # the header is the line before it: index = line number - 1 + 1


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _replace_once(path: Path, after: str, old: str, new: str) -> None:
    """Change `old` to `new` in the first place it occurs after `after`: one byte, when they differ in one."""
    text = path.read_text(encoding="utf-8")
    start = text.index(after)
    at = text.index(old, start)
    path.write_text(text[:at] + new + text[at + len(old):], encoding="utf-8")


@pytest.fixture(scope="session")
def tsa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TimestampAuthority]:
    authority = TimestampAuthority(tmp_path_factory.mktemp("tsa")).start()
    yield authority
    authority.stop()


@pytest.fixture(scope="session")
def sealed_template(shipped_archive: Path, tsa: TimestampAuthority, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped archive in git, signed and timestamped: two more versions published by the real `publish` with a
    TSA (so the ledger's chain starts at the third entry, each new entry with its token), then `archive` with an SSH
    key outside the repository."""
    root = tmp_path_factory.mktemp("sealed") / "repo"
    shutil.copytree(shipped_archive, root)
    key, allowed = _make_key(tmp_path_factory.mktemp("keys"))
    (root / "allowed_signers").write_text(allowed, encoding="utf-8")
    shutil.copy(tsa.ca_file, root / "tsa-ca.pem")
    set_config(root, {"archive": {"signing_key": str(key)}, "evidence": {"tsa_url": tsa.url, "tsa_ca_file": "tsa-ca.pem"}})
    git_in(root, "init", "-q", "-b", "main")
    git_in(root, "add", "-A")
    git_in(root, "commit", "-q", "-m", "Archive")
    en = root / "policies/privacy/en.md"
    for effective, old, new in (("2020-10-01", "no longer which to receive", "no longer wish to receive"),
                                ("2020-11-01", "you can subscribe at anytime", "you can unsubscribe at any time")):
        en.write_text(en.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")
        git_in(root, "commit", "-q", "-am", f"Fix a typo ({effective})")
        invoke_ok("--repo", root, "publish", "privacy", "--effective", effective, "--published", effective, "--editorial",
                  "--summary", "A typo fixed.", "--summary-nl", "Een tikfout verbeterd.", "--reason", "Only a typo.")
    invoke_ok("--repo", root, "archive")
    return root


@pytest.fixture
def sealed(sealed_template: Path, tmp_path: Path) -> Path:
    """A private copy of `sealed_template` without its git folder: what `verify` sees holds from the files alone."""
    root = tmp_path / "sealed"
    shutil.copytree(sealed_template, root, ignore=shutil.ignore_patterns(".git"))
    return root


def test_publish_chains_and_timestamps_each_new_entry_and_archive_signs_the_manifest(sealed_template: Path) -> None:
    text = (sealed_template / LEDGER).read_text(encoding="utf-8")
    entries, breaks = ledger_entries(text)
    assert breaks == []
    assert [entry.link is not None for entry in entries] == [False, False, True, True]
    assert entries[3].link == entries[2].digest  # the fourth entry carries the third's hash
    assert "previous_entry" not in text.split('id = "privacy@2020-10-01"')[0]  # entries written before are as they were
    for slug in ("2018-05-19", "2020-09-01", "2020-10-01", "2020-11-01"):  # publish's two, archive's two for the older
        assert (sealed_template / f"history/privacy/timestamps/{slug}.tsr").is_file()
    committed = git_in(sealed_template, "show", "--stat", "--format=", "HEAD")
    assert "history/privacy/timestamps/2020-11-01.tsr" in committed  # in the commit that publishes the entry
    signature = (sealed_template / "history/manifest.json.sig").read_text(encoding="utf-8")
    assert signature.startswith("-----BEGIN SSH SIGNATURE-----")
    # What an inspector runs, without Addendum:
    subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(sealed_template / "allowed_signers"), "-I", "editor@example.org",
                    "-n", "addendum", "-s", str(sealed_template / "history/manifest.json.sig")],
                   input=(sealed_template / "history/manifest.json").read_bytes(), check=True, capture_output=True)
    done = subprocess.run(["openssl", "ts", "-verify", "-data", str(sealed_template / "history/manifest.json"),
                           "-in", str(sealed_template / "history/manifest.json.tsr"), "-CAfile", str(sealed_template / "tsa-ca.pem")],
                          capture_output=True, text=True)
    assert "Verification: OK" in done.stdout, done.stderr


def test_a_sealed_archive_verifies_and_says_what_holds(run, sealed: Path) -> None:
    result = run("--repo", sealed, "verify")
    lines = result.stdout.splitlines()
    line = _line_of(sealed, "privacy@2020-10-01")
    assert f"{LEDGER}: hash chain from privacy@2020-10-01 ({LEDGER}:{line}); the 2 entries before it predate the chain" in lines
    assert "history/privacy/timestamps: 4 of 4 ledger entries timestamped" in lines
    assert any(x.startswith("history/manifest.json: signed by editor@example.org (ED25519 SHA256:") for x in lines)
    assert any(x.startswith("history/manifest.json: timestamped 20") and x.endswith(" UTC by /CN=Test TSA") for x in lines)
    assert lines[-1].endswith(": intact")


def test_one_byte_of_a_chained_entry_breaks_the_chain_at_that_entry(run, sealed: Path) -> None:
    _replace_once(sealed / LEDGER, 'id = "privacy@2020-10-01"', "A typo fixed.", "A typo fixed!")
    result = run("--repo", sealed, "verify", expect=1)
    line, next_line = _line_of(sealed, "privacy@2020-10-01"), _line_of(sealed, "privacy@2020-11-01")
    assert (f"chain: {LEDGER}:{line}: privacy@2020-10-01 (line {line}): not what privacy@2020-11-01 (line {next_line}) "
            "recorded (previous_entry sha256:") in result.stdout
    assert "timestamp: history/privacy/timestamps/2020-10-01.tsr: does not hold for the ledger entry of privacy@2020-10-01" \
        in result.stdout


def test_one_byte_of_an_entry_from_before_the_chain_is_caught_by_the_first_link(run, sealed: Path) -> None:
    _replace_once(sealed / LEDGER, 'id = "privacy@2018-05-19"', "First published version", "first published version")
    result = run("--repo", sealed, "verify", expect=1)
    assert (f"chain: {LEDGER}:1: the ledger's header and the entries before the chain: not what privacy@2020-10-01 "
            f"(line {_line_of(sealed, 'privacy@2020-10-01')}) recorded") in result.stdout


def test_one_byte_of_the_last_entry_is_caught_by_its_timestamp(run, sealed: Path) -> None:
    _replace_once(sealed / LEDGER, 'id = "privacy@2020-11-01"', "Only a typo.", "Only a typo!")
    result = run("--repo", sealed, "verify", expect=1)
    line = _line_of(sealed, "privacy@2020-11-01")
    assert (f"timestamp: history/privacy/timestamps/2020-11-01.tsr: does not hold for the ledger entry of privacy@2020-11-01 "
            f"({LEDGER}:{line}): it covers sha256:") in result.stdout


def test_a_removed_last_entry_leaves_its_token_naming_it(run, sealed: Path) -> None:
    text = (sealed / LEDGER).read_text(encoding="utf-8")
    (sealed / LEDGER).write_text(text[:text.rindex("[[version]]")], encoding="utf-8")
    result = run("--repo", sealed, "verify", expect=1)
    assert ("timestamp: history/privacy/timestamps/2020-11-01.tsr: a token for privacy@2020-11-01, which the ledger does "
            "not list") in result.stdout


def test_a_ledger_that_no_longer_parses_is_a_finding(run, sealed: Path) -> None:
    _replace_once(sealed / LEDGER, 'id = "privacy@2020-10-01"', 'reason = "', 'reason = ')
    result = run("--repo", sealed, "verify", expect=1)
    assert f"ledger: {LEDGER}: " in result.stdout


def test_one_byte_of_the_manifest_fails_its_signature_and_its_timestamp(run, sealed: Path) -> None:
    _replace_once(sealed / "history/manifest.json", '"built": "', '"built": "2', '"built": "3')  # when a file was built
    result = run("--repo", sealed, "verify", expect=1)
    assert ("signature: history/manifest.json.sig: does not verify: it is not a good signature of these bytes by "
            "editor@example.org") in result.stdout
    assert "timestamp: history/manifest.json.tsr: does not hold for history/manifest.json: it covers sha256:" in result.stdout


def test_one_byte_of_the_signature_is_named(run, sealed: Path) -> None:
    signature = sealed / "history/manifest.json.sig"
    lines = signature.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[3] = lines[3][:10] + ("A" if lines[3][10] != "A" else "B") + lines[3][11:]
    signature.write_text("".join(lines), encoding="utf-8")
    result = run("--repo", sealed, "verify", expect=1)
    assert "signature: history/manifest.json.sig: does not verify: " in result.stdout


@pytest.mark.parametrize("where", ["the time it states", "the TSA's signature"])
def test_one_byte_of_the_manifest_token_is_named(run, sealed: Path, where: str) -> None:
    token = sealed / "history/manifest.json.tsr"
    data = token.read_bytes()
    # genTime is a GeneralizedTime "YYYYMMDDhhmmssZ" inside the signed TSTInfo; the signature is the token's last bytes.
    offset = data.index(b"Z", data.index(b"\x18\x0f") + 2) - 1 if where == "the time it states" else len(data) - 5
    _flip(token, offset)
    result = run("--repo", sealed, "verify", expect=1)
    assert "timestamp: history/manifest.json.tsr: does not hold for history/manifest.json: " in result.stdout


def test_any_byte_of_a_ledger_token_is_named(run, sealed: Path) -> None:
    """The manifest records each ledger entry's token, so a byte the TSA did not sign (the DER framing) is caught too."""
    token = sealed / "history/privacy/timestamps/2020-10-01.tsr"
    _flip(token, 34)  # the CMS version: outside the TSA's signature
    result = run("--repo", sealed, "verify", expect=1)
    assert "changed: history/privacy/timestamps/2020-10-01.tsr: SHA-256 " in result.stdout


def test_a_token_of_another_entry_is_a_mismatch(run, sealed: Path) -> None:
    folder = sealed / "history/privacy/timestamps"
    shutil.copy(folder / "2020-10-01.tsr", folder / "2020-11-01.tsr")
    result = run("--repo", sealed, "verify", expect=1)
    assert ("timestamp: history/privacy/timestamps/2020-11-01.tsr: does not hold for the ledger entry of privacy@2020-11-01 "
            f"({LEDGER}:{_line_of(sealed, 'privacy@2020-11-01')}): it covers sha256:") in result.stdout
    assert "but they hash to sha256:" in result.stdout and "(they changed, or the token is another's)" in result.stdout


def test_a_token_from_an_untrusted_tsa_is_named(run, sealed: Path, tmp_path: Path) -> None:
    other = TimestampAuthority(tmp_path / "other-tsa", name="Other TSA")
    other.make_certificates()
    shutil.copy(other.ca_file, sealed / "tsa-ca.pem")  # the CA the repository trusts is not the one that signed
    result = run("--repo", sealed, "verify", expect=1)
    assert "timestamp: history/manifest.json.tsr: does not hold for history/manifest.json: its signature does not verify " \
           "against" in result.stdout
    assert "unable to get local issuer certificate" in result.stdout


def test_a_missing_signature_is_a_finding_where_allowed_signers_says_the_archive_is_signed(run, sealed: Path) -> None:
    (sealed / "history/manifest.json.sig").unlink()
    result = run("--repo", sealed, "verify", expect=1)
    assert "signature: history/manifest.json.sig: missing, but allowed_signers says the archive is signed" in result.stdout


def test_without_a_key_or_a_tsa_nothing_breaks_and_status_says_so(run, archived_copy: Path) -> None:
    result = run("--repo", archived_copy, "verify")
    assert "history/manifest.json: not timestamped (set evidence.tsa_url and evidence.tsa_ca_file)" in result.stdout
    assert "history/manifest.json: not signed (set archive.signing_key and commit allowed_signers)" in result.stdout
    status = run("--repo", archived_copy, "status", "privacy")
    assert "note: the archive and the ledger are not timestamped (set evidence.tsa_url and evidence.tsa_ca_file)" in status.stdout


def test_a_signing_key_git_would_commit_is_refused(run, archived_copy: Path) -> None:
    key, _ = _make_key(archived_copy)
    set_config(archived_copy, {"archive": {"signing_key": "signing-key"}})
    git_in(archived_copy, "init", "-q")
    git_in(archived_copy, "add", "signing-key")
    result = run("--repo", archived_copy, "archive", expect=2)
    assert f"error: archive.signing_key {key} is inside the git work tree and not ignored: git would commit the private key" \
        in result.stderr
    assert not (archived_copy / "history/manifest.json.sig").exists()


def test_a_key_that_allowed_signers_does_not_list_is_refused(run, archived_copy: Path, tmp_path: Path) -> None:
    key, _ = _make_key(tmp_path)
    set_config(archived_copy, {"archive": {"signing_key": str(key)}})
    result = run("--repo", archived_copy, "archive", expect=2)
    assert f"error: the manifest was signed with {key}, but the signature does not verify: there is no allowed_signers" \
        in result.stderr
    assert not (archived_copy / "history/manifest.json.sig").exists()


def test_a_tsa_that_cannot_be_reached_or_answers_wrong_is_named(run, archived_copy: Path, tsa: TimestampAuthority,
                                                                 tmp_path: Path) -> None:
    dead = TimestampAuthority(tmp_path / "dead").start()
    url = dead.url
    dead.stop()
    set_config(archived_copy, {"evidence": {"tsa_url": url, "tsa_ca_file": str(tsa.ca_file), "tsa_timeout": 5.0}})
    result = run("--repo", archived_copy, "archive", expect=2)
    assert f"error: the time-stamping authority {url} could not be reached for the ledger entry of privacy@2018-05-19" \
        in result.stderr
    broken = TimestampAuthority(tmp_path / "dead").start()
    broken.answer = (200, "text/html", b"<html>login</html>")
    set_config(archived_copy, {"evidence": {"tsa_url": broken.url}})
    try:
        result = run("--repo", archived_copy, "archive", expect=2)
    finally:
        broken.stop()
    assert "answered for the ledger entry of privacy@2018-05-19 with text/html, not application/timestamp-reply" in result.stderr
    assert not (archived_copy / "history/privacy/timestamps").exists()


def test_a_tsa_setting_without_ca_certificates_is_refused_naming_both_keys(run, archived_copy: Path) -> None:
    set_config(archived_copy, {"evidence": {"tsa_url": "ftp://tsa.example.org"}})
    result = run("--repo", archived_copy, "archive", expect=2)
    assert "error: evidence.tsa_url 'ftp://tsa.example.org' is not an http or https URL\n" \
           "  evidence.tsa_url is set, but evidence.tsa_ca_file is not" in result.stderr


def test_publish_refuses_when_the_tsa_cannot_answer_and_records_nothing(run, published_terms, tmp_path: Path) -> None:
    root = published_terms(1)
    dead = TimestampAuthority(tmp_path / "tsa").start()
    dead.stop()
    set_config(root, {"evidence": {"tsa_url": dead.url, "tsa_ca_file": str(dead.ca_file)}})
    ledger = (root / "history/terms/ledger.toml").read_bytes()
    en = root / "policies/terms/en.md"
    en.write_text(en.read_text(encoding="utf-8").replace("Write to", "Please write to"), encoding="utf-8")
    git_in(root, "commit", "-q", "-am", "Reword")
    result = run("--repo", root, "publish", "terms", "--effective", "2024-02-01", "--published", "2023-02-01", "--material",
                 "--summary", "Reworded.", "--summary-nl", "Herschreven.", "--allow-stale", expect=2)
    assert f"the time-stamping authority {dead.url} could not be reached for the ledger entry of terms@2024-02-01" in result.stderr
    assert (root / "history/terms/ledger.toml").read_bytes() == ledger
    assert "terms@2024-02-01" not in git_in(root, "tag")


def test_the_chain_survives_windows_line_endings_and_starts_at_the_first_entry_of_a_new_ledger() -> None:
    from dataclasses import replace
    from datetime import date

    from addendum.history.ledger import append_entries, read_ledger

    first, second = read_ledger(PROJECT / "history", "privacy")
    text = append_entries(None, "privacy", [replace(first, extra={}), replace(second, extra={})])
    entries, breaks = ledger_entries(text)
    assert breaks == [] and all(entry.link for entry in entries)
    assert ledger_entries(text.replace("\n", "\r\n"))[1] == []
    text = append_entries(text, "privacy", [replace(second, id="privacy@2021-01-01", effective=date(2021, 1, 1), extra={})])
    assert ledger_entries(text)[0][-1].link == ledger_entries(text)[0][1].digest


def test_an_inspector_checks_the_tokens_with_the_ca_file_alone(run, sealed: Path) -> None:
    set_config(sealed, {"evidence": {"tsa_url": ""}})  # no TSA to ask: a copy handed to an auditor
    result = run("--repo", sealed, "verify")
    assert "history/privacy/timestamps: 4 of 4 ledger entries timestamped" in result.stdout
    assert result.stdout.splitlines()[-1].endswith(": intact")


def test_the_manifest_verdicts_are_what_a_dossier_shows_for_each_archived_file(sealed: Path) -> None:
    from addendum.archive.verify import verify_archive
    from addendum.config import open_repo

    report = verify_archive(open_repo(sealed))
    assert report.signature.startswith("valid: signed by editor@example.org (ED25519 SHA256:")
    assert report.timestamp.startswith("valid: timestamped 20") and report.timestamp.endswith(" by /CN=Test TSA")
    (sealed / "history/manifest.json.sig").write_text("not a signature\n", encoding="utf-8")
    assert verify_archive(open_repo(sealed)).signature.startswith("invalid: does not verify: ")


def test_archive_seals_under_the_lock_it_builds_under(archived_copy: Path, tsa: TimestampAuthority) -> None:
    """While `archive` waits for the TSA, the archive is still locked: a second run cannot change the manifest between
    this run's build and its signature."""
    import sys
    import threading
    import time

    from addendum.errors import UsageError
    from addendum.processes import folder_lock

    set_config(archived_copy, {"evidence": {"tsa_url": tsa.url, "tsa_ca_file": str(tsa.ca_file)}})
    tsa.gate, asked = threading.Event(), tsa.requests
    process = subprocess.Popen([sys.executable, "-m", "addendum", "--repo", str(archived_copy), "archive"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while tsa.requests == asked and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert tsa.requests > asked, process.communicate(timeout=60)  # sealing has begun, and waits for the TSA
        with pytest.raises(UsageError, match="is running already"), folder_lock(archived_copy / "history", "a test", wait=0):
            pass
    finally:
        tsa.gate.set()
        tsa.gate = None
        out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert (archived_copy / "history/manifest.json.tsr").is_file()


def _unsigned_spans(token: bytes) -> list[tuple[int, int]]:
    """The byte ranges of the token's values that the TSA's signature does not cover, one per value: the framing around
    the TSTInfo, the signed attributes, the signature and the TSA's certificate (the signature covers those, its
    signed attributes hash that certificate), down to their own headers."""
    from addendum.seal import der

    response = der.read(token)
    signed_data = response.children[1].children[1].children[0]
    signer_info = signed_data.children[-1].children[0]
    covered = [signed_data.children[2].children[1].children[0], signer_info.children[3], signer_info.children[5]]
    covered += [cert for cert in signed_data.children[3].children] if signed_data.children[3].tag == 0xA0 else []
    spans, stack = [], [response]
    while stack:
        value = stack.pop()
        if any(value.start == c.start and value.end == c.end for c in covered):
            spans.append((value.start, value.start + value.header))  # its header: how long it is, and what
            continue
        spans.append((value.start, value.end if not value.children else value.start + value.header))
        stack.extend(value.children)
    return sorted(spans)


def _without_key(root: Path) -> None:
    """The archive as a repository without an SSH key keeps it: the tokens' own checks are all that guard them."""
    set_config(root, {"archive": {"signing_key": ""}})
    for name in ("allowed_signers", "history/manifest.json.sig", "history/manifest.json.tsr.sig"):
        (root / name).unlink()


def test_every_byte_of_the_manifest_token_is_covered_without_a_key(sealed: Path) -> None:
    """openssl alone accepts a token with a changed byte in its status, CMS versions, algorithm parameters or signature
    algorithm; the strict profile leaves no byte of it that can change unnoticed."""
    import hashlib

    from addendum.seal.timestamps import check_token

    token = (sealed / "history/manifest.json.tsr").read_bytes()
    digest = "sha256:" + hashlib.sha256((sealed / "history/manifest.json").read_bytes()).hexdigest()
    assert check_token(token, digest, sealed / "tsa-ca.pem").valid
    accepted = []
    for offset in range(len(token)):
        changed = bytearray(token)
        changed[offset] ^= 0x01
        if check_token(bytes(changed), digest, sealed / "tsa-ca.pem").valid:
            accepted.append(offset)
    assert accepted == []
    assert not check_token(token + b"\x00", digest, sealed / "tsa-ca.pem").valid  # nothing may follow it either


@pytest.mark.parametrize("which", ["manifest", "ledger entry"])
def test_verify_names_the_token_for_a_byte_changed_where_the_tsa_did_not_sign(run, sealed: Path, which: str) -> None:
    _without_key(sealed)
    name = "manifest.json.tsr" if which == "manifest" else "privacy/timestamps/2020-10-01.tsr"
    path = sealed / "history" / name
    token = path.read_bytes()
    spans = _unsigned_spans(token)
    # One byte of every unsigned value (its last: the value itself where it has one), for the manifest's token; a
    # sample of them for a ledger entry's (the manifest records its SHA-256 as well).
    offsets = sorted({end - 1 for _, end in spans})
    for offset in offsets if which == "manifest" else offsets[::6]:
        changed = bytearray(token)
        changed[offset] ^= 0x01
        path.write_bytes(bytes(changed))
        result = run("--repo", sealed, "verify", expect=1)
        assert f"timestamp: history/{name}: does not hold for " in result.stdout, (offset, result.stdout)
    path.write_bytes(token)


def test_with_a_key_the_manifest_token_is_signed_too(run, sealed: Path) -> None:
    subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(sealed / "allowed_signers"), "-I", "editor@example.org",
                    "-n", "addendum", "-s", str(sealed / "history/manifest.json.tsr.sig")],
                   input=(sealed / "history/manifest.json.tsr").read_bytes(), check=True, capture_output=True)
    _flip(sealed / "history/manifest.json.tsr", 34)  # SignedData's version
    result = run("--repo", sealed, "verify", expect=1)
    assert ("signature: history/manifest.json.tsr.sig: does not verify for manifest.json.tsr: it is not a good signature "
            "of these bytes by editor@example.org") in result.stdout
    assert "timestamp: history/manifest.json.tsr: does not hold for history/manifest.json: not a timestamp token as a " \
           "TSA issues it: SignedData version 2 (byte 32), not 3" in result.stdout
    (sealed / "history/manifest.json.tsr.sig").unlink()
    result = run("--repo", sealed, "verify", expect=1)
    assert "signature: history/manifest.json.tsr.sig: missing, but allowed_signers says the archive is signed" in result.stdout


def test_a_revoked_tsa_certificate_is_named(run, sealed: Path, tsa: TimestampAuthority) -> None:
    result = run("--repo", sealed, "verify")
    assert "the revocation of the TSA's certificate is not checked (set evidence.tsa_crl)" in result.stdout.splitlines()
    status = run("--repo", sealed, "status", "privacy")
    assert "note: the revocation of the TSA's certificate is not checked (set evidence.tsa_crl)" in status.stdout
    shutil.copy(tsa.revocation_list(revoke=False), sealed / "tsa-ca.crl.pem")
    set_config(sealed, {"evidence": {"tsa_crl": "tsa-ca.crl.pem"}})
    result = run("--repo", sealed, "verify")
    assert "revocation" not in result.stdout
    shutil.copy(tsa.revocation_list(revoke=True), sealed / "tsa-ca.crl.pem")
    result = run("--repo", sealed, "verify", expect=1)
    assert (f"timestamp: history/manifest.json.tsr: does not hold for history/manifest.json: the TSA's certificate is "
            f"revoked: {sealed / 'tsa-ca.crl.pem'} lists it (openssl: certificate revoked)") in result.stdout
    assert "timestamp: history/privacy/timestamps/2020-10-01.tsr: does not hold for the ledger entry of " \
           "privacy@2020-10-01" in result.stdout
    (sealed / "tsa-ca.crl.pem").write_text("not a CRL\n", encoding="utf-8")
    result = run("--repo", sealed, "verify", expect=2)
    assert f"error: evidence.tsa_crl {sealed / 'tsa-ca.crl.pem'} is not a PEM file of a CRL" in result.stderr


def test_an_rsa_token_is_held_to_the_signature_algorithm_form_of_the_tokens_the_manifest_records(
        run, archived_copy: Path, tmp_path: Path) -> None:
    """An RSA signature may be labelled rsaEncryption or sha256WithRSAEncryption, one byte apart, and openssl takes
    either: the manifest's token must use the form of the ledger's tokens from the same TSA certificate."""
    import hashlib

    from addendum.seal import der
    from addendum.seal.timestamps import check_token

    authority = TimestampAuthority(tmp_path / "rsa-tsa", name="RSA TSA", key="rsa").start()
    try:
        set_config(archived_copy, {"evidence": {"tsa_url": authority.url, "tsa_ca_file": str(authority.ca_file)}})
        run("--repo", archived_copy, "archive")
    finally:
        authority.stop()
    assert run("--repo", archived_copy, "verify").stdout.splitlines()[-1].endswith(": intact")
    path = archived_copy / "history/manifest.json.tsr"
    token = path.read_bytes()
    algorithm = der.read(token).children[1].children[1].children[0].children[-1].children[0].children[4].children[0]
    changed = bytearray(token)
    last = algorithm.end - 1
    changed[last] = {0x01: 0x0B, 0x0B: 0x01}[token[last]]  # rsaEncryption <-> sha256WithRSAEncryption
    digest = "sha256:" + hashlib.sha256((archived_copy / "history/manifest.json").read_bytes()).hexdigest()
    assert check_token(bytes(changed), digest, authority.ca_file).valid  # a good token by itself
    path.write_bytes(bytes(changed))
    result = run("--repo", archived_copy, "verify", expect=1)
    assert "timestamp: history/manifest.json.tsr: its signature algorithm is written 300d06092a864886f70d01010" in result.stdout
    assert "the ledger's tokens of the same TSA certificate 300d06092a864886f70d01010" in result.stdout


def test_every_other_certificate_a_token_holds_must_chain_to_the_trusted_ca(tsa: TimestampAuthority, tmp_path: Path) -> None:
    from addendum.seal.profile import check_profile
    from addendum.seal.timestamps import check_token

    digest = "ab" * 32
    subprocess.run(["openssl", "ts", "-query", "-digest", digest, "-sha256", "-cert", "-out", str(tmp_path / "q.tsq")],
                   check=True, capture_output=True, timeout=30)
    token = tsa.reply((tmp_path / "q.tsq").read_bytes(), with_ca=True)
    assert check_token(token, f"sha256:{digest}", tsa.ca_file).valid
    # The CA's certificate in the token is not what the TSA's signature covers: a byte of it changed is named all the same.
    other = check_profile(token).others[0]
    start = token.index(other)
    accepted = []
    for offset in range(start, start + len(other), 3):
        changed = bytearray(token)
        changed[offset] ^= 0x01
        check = check_token(bytes(changed), f"sha256:{digest}", tsa.ca_file)
        if check.valid:
            accepted.append(offset)
    assert accepted == []


def _tlv(tag: int, content: bytes) -> bytes:
    """One DER value: `tag`, the definite length of `content` in its fewest bytes, `content`."""
    if len(content) < 0x80:
        return bytes([tag, len(content)]) + content
    size = len(content).to_bytes((len(content).bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def _nested(depth: int) -> bytes:
    """A NULL inside `depth` SEQUENCEs."""
    data = b"\x05\x00"
    for _ in range(depth):
        data = _tlv(0x30, data)
    return data


@pytest.mark.parametrize(("data", "reason"), [
    (b"\x30\x84\xff\xff\xff\xff", "byte 0: a length of 4294967295 runs past the end of what holds it"),
    (_tlv(0x30, b"\x04\x05abc"), "byte 2: a length of 5 runs past the end of what holds it"),
    (b"\x30\x85\x01\x00\x00\x00\x00", "byte 1: a length written in 5 bytes (no value of a token needs more than 4)"),
    (b"\x30\x82\x01", "byte 1: a length written in 2 bytes runs past the end of what holds it"),
    (_tlv(0x30, _tlv(0x30, b"\x05\x00")[:-1]), "byte 2: a length of 2 runs past the end of what holds it"),
    (_nested(40), "nested deeper than 32"),
    (_tlv(0x30, b"\x05\x00" * 20_001), "more than 20,000 values"),
    (_tlv(0x06, b"\x2b" + b"\x81" * 200_000 + b"\x01"), "an OBJECT IDENTIFIER that is empty, not in its fewest bytes, "
                                                        "or with an arc of more than 20 bytes"),
    (_tlv(0x30, b"\x05\x00") + b"\x00", "1 bytes after the end of the value, from byte 4"),
])
def test_the_der_reader_refuses_lengths_depths_and_counts_beyond_its_bounds(data: bytes, reason: str) -> None:
    from addendum.seal import der

    with pytest.raises(der.DerError) as refused:
        der.read(data)
    assert reason in str(refused.value)


def test_a_token_whose_version_is_a_huge_integer_is_refused_in_plain_words() -> None:
    from addendum.seal.profile import ProfileError, check_profile

    token = _tlv(0x30, _tlv(0x30, b"\x02\x01\x00") + _tlv(0x30, _tlv(0x06, bytes.fromhex("2a864886f70d010702"))
                                                           + _tlv(0xA0, _tlv(0x30, _tlv(0x02, b"\x01" * 5000)
                                                                            + _tlv(0x31, b"") + _tlv(0x30, b"")
                                                                            + _tlv(0x31, b"")))))
    with pytest.raises(ProfileError, match="not canonical DER: byte 32: an INTEGER of 5,000 bytes where a small number belongs"):
        check_profile(token)
