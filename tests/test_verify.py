"""`addendum verify`: every archived file against the manifest, every version's text against the ledger, a rebuild."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from addendum import paths
from addendum.archive.manifest import read_manifest
from addendum.archive.verify import verify_archive
from addendum.config import open_repo
from tests_support import git_in, publish_terms

PDF = paths.version_pdf("privacy", "2018-05-19", "selentic", "nl")


def test_an_intact_archive_verifies(run, shipped_archive: Path) -> None:
    result = run("--repo", shipped_archive, "verify")
    last = result.stdout.splitlines()[-1]
    assert last.startswith("privacy: ") and last.endswith(": intact")
    manifest = read_manifest(shipped_archive / "history")
    assert manifest is not None
    assert f"{len(manifest.files)} file(s) hashed" in last


def test_one_changed_byte_in_a_pdf_is_found_and_named(run, archived_copy: Path) -> None:
    pdf = archived_copy / "history" / PDF
    data = bytearray(pdf.read_bytes())
    data[len(data) // 2] ^= 0x01
    pdf.write_bytes(bytes(data))
    result = run("--repo", archived_copy, "verify", expect=1)
    assert result.stdout.splitlines()[0].startswith(f"changed: history/{PDF}: SHA-256 ")
    assert result.stdout.splitlines()[-1].endswith(": 1 finding(s)")


def test_missing_and_unrecorded_files_are_found(run, archived_copy: Path) -> None:
    history = archived_copy / "history"
    (history / PDF).unlink()
    (history / "privacy" / "2018-05-19" / "selentic" / "nl" / "notes.txt").write_text("added later", encoding="utf-8")
    result = run("--repo", archived_copy, "verify", expect=1)
    assert f"missing: history/{PDF}: in the manifest but not on disk; restore it from git" in result.stdout
    assert "unrecorded: history/privacy/2018-05-19/selentic/nl/notes.txt: not in the manifest" in result.stdout


def test_a_changed_source_no_longer_matches_the_ledger(run, archived_copy: Path) -> None:
    source = archived_copy / "history" / "privacy" / "2018-05-19" / "source" / "en.md"
    source.write_text(source.read_text(encoding="utf-8").replace("GDPR", "the GDPR", 1), encoding="utf-8")
    result = run("--repo", archived_copy, "verify", expect=1)
    assert "text: privacy@2018-05-19: history/privacy/2018-05-19/source does not match the ledger" in result.stdout


def test_json_whose_text_was_edited_and_rehashed_in_the_manifest_is_still_caught(run, archived_copy: Path) -> None:
    """An edit that also fixes up the manifest passes the file hash, but not the text hash the ledger holds."""
    history = archived_copy / "history"
    target = paths.version_json("privacy", "2018-05-19", "cavallo", "en")
    document = json.loads((history / target).read_text(encoding="utf-8"))
    document["sections"][-1]["text"] += "\nAn extra promise.\n"
    data = (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
    (history / target).write_bytes(data)
    manifest = json.loads((history / "manifest.json").read_text(encoding="utf-8"))
    manifest["files"][target].update(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    (history / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    result = run("--repo", archived_copy, "verify", expect=1)
    assert result.stdout.splitlines() == [
        f"text: history/{target}: its sections hash to " + result.stdout.split("hash to ")[1].split(";")[0]
        + f"; the ledger records {document['content_hash']}",
        # what holds and what is not there: the shipped archive is neither chained, signed nor timestamped
        "history/privacy/ledger.toml: not chained (its 2 entries predate the hash chain)",
        "history/privacy: ledger entries not timestamped (set evidence.tsa_url)",
        "history/manifest.json: not signed (set archive.signing_key and commit allowed_signers)",
        "history/manifest.json: not timestamped (set evidence.tsa_url and evidence.tsa_ca_file)",
        result.stdout.splitlines()[-1],
    ]
    rebuilt = run("--repo", archived_copy, "verify", "--rebuild", "--jobs", "2", expect=1)
    assert f"rebuild: history/{target}: differs from a fresh rendering of the same version" in rebuilt.stdout


def test_a_ledger_hash_changed_after_archiving_is_found(run, archived_copy: Path) -> None:
    ledger = archived_copy / "history" / "privacy" / "ledger.toml"
    text = ledger.read_text(encoding="utf-8")
    recorded = read_manifest(archived_copy / "history").files[PDF]["content_hash"]  # type: ignore[union-attr]
    ledger.write_text(text.replace(str(recorded), "sha256:" + "0" * 64, 1), encoding="utf-8")
    result = run("--repo", archived_copy, "verify", expect=1)
    assert "ledger: history/privacy/2018-05-19/" in result.stdout and f"archived for content hash {recorded}" in result.stdout
    assert "text: privacy@2018-05-19: " in result.stdout


def test_rebuild_reproduces_every_file(run, shipped_archive: Path) -> None:
    result = run("--repo", shipped_archive, "verify", "--rebuild")
    last = result.stdout.splitlines()[-1]
    manifest = read_manifest(shipped_archive / "history")
    assert manifest is not None
    assert f"{len(manifest.files)} rebuilt and compared: intact" in last


def test_no_archive_cannot_be_verified(run, shipped: Path) -> None:
    result = run("--repo", shipped, "verify", expect=2)
    assert result.stderr.startswith("error: ") and "does not exist: there is no archive to verify" in result.stderr
    assert "addendum archive" in result.stderr


def test_a_published_version_not_archived_yet_is_a_finding(run, published_terms) -> None:
    root = published_terms(1)
    run("--repo", root, "archive")
    assert run("--repo", root, "verify").stdout.endswith(": intact\n")
    publish_terms(root, 2)
    result = run("--repo", root, "verify", expect=1)
    assert "not-archived: history/terms/2024-02-01/main/en: terms@2024-02-01 is published but" in result.stdout
    run("--repo", root, "archive")
    run("--repo", root, "verify")


def test_an_uncommitted_ledger_edit_is_found_against_git(run, published_terms) -> None:
    root = published_terms(2)
    run("--repo", root, "archive")
    git_in(root, "add", "-A")
    git_in(root, "commit", "-q", "-m", "Archive")
    ledger = root / "history" / "terms" / "ledger.toml"
    ledger.write_text(ledger.read_text(encoding="utf-8").replace("Version 1.", "Version one.", 1), encoding="utf-8")
    result = run("--repo", root, "verify", expect=1)
    assert "ledger: history/terms/ledger.toml: differs from the last commit" in result.stdout


def test_the_library_returns_the_findings(archived_copy: Path) -> None:
    (archived_copy / "history" / PDF).write_bytes(b"%PDF-1.7 not the archived one")
    report = verify_archive(open_repo(archived_copy))
    assert [(f.kind, f.path) for f in report.findings] == [("changed", PDF)]
    assert not report.intact and report.policies == ("privacy",)
