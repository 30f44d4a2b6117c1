"""`addendum evidence`, `notices --eml`, the subscription history and erasure that keeps the proof of notification."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import Result
from pypdf import PdfReader

from addendum.config import open_repo
from addendum.history.ledger import read_ledger
from addendum.notify.erasure import run_retention
from addendum.notify.state import open_state
from addendum.notify.store import utcnow
from tests_support import every_value, set_config

V2 = "privacy@2020-09-01"
LATE = ("--yes", "--late", "--reason", "a test of a past version")
PEOPLE = """\
email,name,language,sites,audience,consent_source
ann@example.org,Ann Zoë,en,selentic,subscriber,signup form
bram@example.org,Bram,nl,selentic,account,
"""


@pytest.fixture
def repo(shipped_archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the shipped policy repository, its two versions archived; state and keys in its .addendum/."""
    root = tmp_path / "repo"
    shutil.copytree(shipped_archive, root)
    for name in ("ADDENDUM_DATABASE_URL", "ADDENDUM_NOTIFY_KEYS"):
        monkeypatch.delenv(name, raising=False)
    return root


def notified(run: Callable[..., Result], repo: Path, people: str = PEOPLE) -> None:
    path = repo.parent / "people.csv"
    path.write_text(people, encoding="utf-8")
    run("--repo", repo, "subscribers", "import", path)
    run("--repo", repo, "notify", "privacy", V2, *LATE)


def dossier(run: Callable[..., Result], repo: Path, who: str, *args: str) -> dict[str, object]:
    out = repo / ".addendum" / "dossier.json"
    run("--repo", repo, "evidence", who, "-o", out, *args)
    loaded: dict[str, object] = json.loads(out.read_text(encoding="utf-8"))
    return loaded


def test_the_dossier_matches_the_manifest_the_stored_message_and_the_ledger(run, repo, smtp):
    notified(run, repo)
    data = dossier(run, repo, "ann@example.org")
    person = data["person"]
    assert person["email"] == "ann@example.org" and person["sites"] == ["selentic"] and person["languages"] == ["en"]
    assert person["legal_bases"] == [{"audience": "subscriber", "basis": "consent", "article": "GDPR Art. 6(1)(a)"}]
    assert [(e["kind"], e["source"], e["legal_basis"]) for e in data["events"]] == [("imported", "signup form", "consent")]
    manifest = json.loads((repo / "history" / "manifest.json").read_bytes())["files"]
    ledger = {v.id: v for v in read_ledger(repo / "history", "privacy")}
    versions = {(v["version"], v["site"], v["language"]): v for v in data["versions"]}
    assert set(versions) == {(vid, "selentic", "en") for vid in ledger}  # the whole history by default
    for (version_id, _, _), version in versions.items():
        assert version["content_hash"] == ledger[version_id].hash_for("selentic", "en")
        assert version["files"], version_id
        for file in version["files"]:
            entry = manifest[file["path"].removeprefix("history/")]
            assert file["sha256"] == file["sha256_on_disk"] == entry["sha256"] == \
                hashlib.sha256((repo / file["path"]).read_bytes()).hexdigest()
            assert file["manifest_entry"] == entry and file["verdict"] == "intact"
    [notice] = data["notices"]
    [sent] = [item for item in smtp.handler.received if item.recipients == ["ann@example.org"]]
    assert notice["version"] == V2 and notice["state"] == "sent" and notice["reply"].startswith("250")
    assert notice["content_hash"] == notice["ledger_content_hash"] == ledger[V2].hash_for("selentic", "en")
    assert notice["message_sha256"] == notice["stored_message_sha256"] and notice["stored_message_matches"] is True
    assert notice["message_id"] == sent.message["Message-ID"]
    assert data["archive"]["verified"] is True and data["archive"]["signature"] == "none"

    account = dossier(run, repo, "bram@example.org")
    assert account["person"]["legal_bases"] == [{"audience": "account", "basis": "contract", "article": "GDPR Art. 6(1)(b)"}]
    assert account["events"][0]["source"] == "import:people.csv" and account["events"][0]["legal_basis"] == "contract"


def test_the_dossier_pdf_and_the_terminal_summary(run, repo, smtp):
    notified(run, repo)
    pdf = repo / ".addendum" / "ann.pdf"
    shown = run("--repo", repo, "evidence", "ann@example.org", "-o", pdf, "--lang", "nl")
    data = dossier(run, repo, "ann@example.org")
    [notice] = data["notices"]
    assert "evidence for ann@example.org" in shown.stdout and notice["message_id"] in shown.stdout
    assert "ledger matches" in shown.stdout and "stored message matches" in shown.stdout
    text = " ".join("".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.read_bytes())).pages).split())
    assert "Geschiedenis van inschrijving en toestemming" in text and "abonnee: toestemming (GDPR Art. 6(1)(a))" in text
    assert notice["message_id"] in text.replace(" ", "") or notice["message_id"] in text
    assert notice["content_hash"].split(":")[-1][:16] in text.replace(" ", "")
    assert (pdf.stat().st_mode & 0o777) == 0o600


def test_period_and_policy_narrow_the_dossier(run, repo, smtp):
    notified(run, repo)
    data = dossier(run, repo, "ann@example.org", "--from", "2020-09-15", "--to", "2020-12-31", "--policy", "privacy")
    assert [v["version"] for v in data["versions"]] == [V2]
    # Before the revision took effect: the first version, and the revision all the same, since they were told of it.
    data = dossier(run, repo, "ann@example.org", "--from", "2018-06-01", "--to", "2019-01-01")
    assert [v["version"] for v in data["versions"]] == ["privacy@2018-05-19", V2]


def test_eml_export_is_byte_for_byte_the_record(run, repo, smtp, tmp_path):
    notified(run, repo)
    folder = repo / ".addendum" / "mail"
    listing = run("--repo", repo, "notices", "privacy", V2, "--json", "--eml", folder)
    records = {r["message_id"]: r for r in map(json.loads, listing.stdout.splitlines())}
    files = sorted(folder.glob("*.eml"))
    assert len(files) == len(records) == 2 and "wrote 2 stored message(s)" in listing.stderr
    received = {item.message["Message-ID"]: item for item in smtp.handler.received}
    for file in files:
        data = file.read_bytes()
        message_id = next(line for line in data.decode().splitlines() if line.startswith("Message-ID:")).split(": ", 1)[1]
        assert hashlib.sha256(data).hexdigest() == records[message_id]["message_sha256"]
        assert message_id in received


def test_forget_keeps_a_pseudonymised_record_that_evidence_finds_by_keyed_hash(run, repo, smtp):
    notified(run, repo)
    before = dossier(run, repo, "ann@example.org")
    asked = run("--repo", repo, "subscribers", "forget", "ann@example.org", expect=2)
    assert "needs confirmation" in asked.stderr and "--yes" in asked.stderr
    forgot = run("--repo", repo, "subscribers", "forget", "ann@example.org", "--yes")
    assert "erase: the address and name, 1 subscription(s), 1 stored message(s)" in forgot.stdout
    assert "1 notice record(s) (version, content hash, Message-ID, times, SMTP reply)" in forgot.stdout
    digest = forgot.stdout.rsplit("keyed hash ", 1)[1].split(";")[0]
    assert len(digest) == 64
    database = f"sqlite:///{repo / '.addendum' / 'state.db'}"
    assert not any("ann@example.org" in value or "zoë" in value for value in every_value(database))

    out = repo / ".addendum" / "forgotten.json"
    shown = run("--repo", repo, "evidence", digest, "-o", out)
    raw = out.read_text(encoding="utf-8")
    assert "ann@example.org" not in raw and "Zoë" not in raw and "ann@example.org" not in shown.stdout
    after = json.loads(raw)
    assert after["person"]["erased"] is True and after["person"]["keyed_hashes"] == [digest] and "email" not in after["person"]
    [kept] = after["notices"]
    [was] = before["notices"]
    for key in ("version", "site", "language", "content_hash", "message_id", "message_sha256", "queued_at", "sent_at", "reply"):
        assert kept[key] == was[key], key
    assert kept["stored_message_matches"] is None and kept["message_erased_at"]
    assert [e["kind"] for e in after["events"]] == ["imported", "forgotten"]
    assert "GDPR Art. 17(3)(e)" in after["events"][-1]["detail"]
    assert after["versions"] == before["versions"]  # what was in force for them is still shown
    assert dossier(run, repo, "ann@example.org")["notices"] == after["notices"]  # the address finds it too, by its hash

    again = run("--repo", repo, "subscribers", "forget", "ann@example.org", "--yes", expect=1)
    assert "is not known" in again.stdout and "forgotten on" in again.stdout
    unknown = run("--repo", repo, "subscribers", "forget", "nobody@example.org", "--yes", expect=1)
    assert "nobody@example.org is not known: no subscriber and no notice record" in unknown.stdout
    missing = run("--repo", repo, "evidence", "carol@example.org", expect=1)
    assert "no records of carol@example.org" in missing.stderr


def test_retention_purges_the_kept_records_once_their_period_is_over(run, repo, smtp):
    set_config(repo, {"retention": {"erased_records_days": 30}})
    notified(run, repo)
    forgot = run("--repo", repo, "subscribers", "forget", "ann@example.org", "--yes")
    digest = forgot.stdout.rsplit("keyed hash ", 1)[1].split(";")[0]
    assert "purged 0 notice record(s) and 0 event(s)" in run("--repo", repo, "retention", "run").stdout
    with open_state(open_repo(repo)) as state:
        assert run_retention(state, dry_run=True, now=utcnow() + timedelta(days=31)).notices == 1
        report = run_retention(state, now=utcnow() + timedelta(days=31))
    assert (report.notices, report.events, report.days) == (1, 2, 30)
    assert "no records of" in run("--repo", repo, "evidence", digest, expect=1).stderr
    assert dossier(run, repo, "bram@example.org")["notices"]  # others' records are untouched
    again = run("--repo", repo, "subscribers", "import", repo.parent / "people.csv")
    assert "1 suppressed" in again.stdout  # the hash that suppresses the address stays


def test_every_change_to_a_subscription_is_an_event(run, repo, smtp):
    run("--repo", repo, "subscribers", "add", "eva@example.org", "--name", "Eva", "--lang", "en", "--site", "selentic",
        "--audience", "subscriber", "--consent-source", "newsletter form")
    people = repo.parent / "people.csv"
    people.write_text("email,name,language,sites,audience\neva@example.org,Eva B,nl,selentic,subscriber\n", encoding="utf-8")
    run("--repo", repo, "subscribers", "import", people)
    run("--repo", repo, "subscribers", "add", "eva@example.org", "--name", "Eva B", "--lang", "nl", "--site", "selentic",
        "--audience", "account", "--consent-source", "account opened")
    from addendum.notify.subscribers import list_subscribers
    from addendum.notify.tokens import load_keyring, unsubscribe_token

    with open_state(open_repo(repo)) as state:
        [eva] = list(list_subscribers(state))
        token = unsubscribe_token(load_keyring(repo / ".addendum" / "notify-keys"), eva.uid)
    run("--repo", repo, "subscribers", "unsubscribe", token)
    events = dossier(run, repo, "eva@example.org")["events"]
    assert [(e["kind"], e["source"], e["audience"], e["legal_basis"], e["detail"]) for e in events] == [
        ("added", "newsletter form", "subscriber", "consent", "en selentic"),
        ("changed", "import:people.csv", "subscriber", "consent", "name language consent_source"),
        ("changed", "account opened", "account", "contract", "audience consent_source"),
        ("unsubscribed", "subscribers unsubscribe", "account", "contract", "")]


def test_erasure_and_evidence_on_postgresql(run, repo, smtp, postgres_url, monkeypatch):
    monkeypatch.setenv("ADDENDUM_DATABASE_URL", postgres_url)
    notified(run, repo)
    forgot = run("--repo", repo, "subscribers", "forget", "ann@example.org", "--yes")
    digest = forgot.stdout.rsplit("keyed hash ", 1)[1].split(";")[0]
    assert not any("ann@example.org" in value for value in every_value(postgres_url))
    [kept] = dossier(run, repo, digest)["notices"]
    assert kept["version"] == V2 and kept["reply"].startswith("250") and kept["message_id"]
    with open_state(open_repo(repo)) as state:
        assert run_retention(state, now=utcnow() + timedelta(days=4000)).notices == 1


def test_a_store_of_an_earlier_release_gains_the_history_and_erasure_columns(run, repo):
    from sqlalchemy import create_engine, inspect

    run("--repo", repo, "subscribers", "add", "ann@example.org", "--lang", "en", "--site", "selentic", "--audience", "account")
    url = f"sqlite:///{repo / '.addendum' / 'state.db'}"
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE subscribers DROP COLUMN legal_basis")
        connection.exec_driver_sql("ALTER TABLE outbox DROP COLUMN erased_at")
        connection.exec_driver_sql("DROP TABLE subscriber_events")
    engine.dispose()
    data = dossier(run, repo, "ann@example.org")  # the basis of a row from before is its audience's
    assert data["person"]["legal_bases"][0]["basis"] == "contract" and data["events"] == []
    engine = create_engine(url)
    assert "erased_at" in {c["name"] for c in inspect(engine).get_columns("outbox")}
    engine.dispose()


def test_a_user_reference_shows_its_acceptance_records_checked_against_the_ledger(run, repo):
    people = repo.parent / "accepted.csv"
    people.write_text("user,policy,version,site,language,accepted_at,method\n"
                      "u-1001,privacy,privacy@2018-05-19,selentic,nl,2019-02-11T09:30:00+01:00,signup\n"
                      f"u-1001,privacy,{V2},selentic,nl,2020-09-14T17:45:00Z,clickwrap\n", encoding="utf-8")
    run("--repo", repo, "acceptances", "import", people)
    data = dossier(run, repo, "u-1001")
    ledger = {v.id: v for v in read_ledger(repo / "history", "privacy")}
    assert [(a["version"], a["method"], a["content_hash_matches_ledger"]) for a in data["acceptances"]] == [
        ("privacy@2018-05-19", "signup", True), (V2, "clickwrap", True)]
    assert all(a["content_hash"] == ledger[a["version"]].hash_for("selentic", "nl") for a in data["acceptances"])
    assert [(v["version"], v["site"], v["language"]) for v in data["versions"]] == [
        ("privacy@2018-05-19", "selentic", "nl"), (V2, "selentic", "nl")]
    pdf = repo / ".addendum" / "u-1001.pdf"
    shown = run("--repo", repo, "evidence", "u-1001", "-o", pdf)
    assert "evidence for user u-1001" in shown.stdout and "acceptances (2):" in shown.stdout
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.read_bytes())).pages)
    assert "Acceptances" in text and "clickwrap" in text
    assert "no records of u-9999" in run("--repo", repo, "evidence", "u-9999", expect=1).stderr


def test_a_person_removed_from_the_list_keeps_their_notices_and_history(run, repo, smtp):
    notified(run, repo)
    run("--repo", repo, "subscribers", "remove", "bram@example.org")
    data = dossier(run, repo, "bram@example.org")
    assert "email" not in data["person"] and not data["person"]["erased"]
    assert [e["kind"] for e in data["events"]] == ["imported", "removed"]
    assert [n["state"] for n in data["notices"]] == ["sent"] and data["notices"][0]["stored_message_matches"] is True
