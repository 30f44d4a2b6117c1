"""`addendum notify` and `addendum notices` against a real SMTP server: content, headers, states, replies, safety."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from click.testing import Result
from pypdf import PdfWriter
from sqlalchemy import select

from addendum.config import open_repo
from addendum.notify import campaign as campaign_module
from addendum.notify.campaign import Campaign, attempt_log
from addendum.notify.content import notice_content, plan_notice
from addendum.notify.message import WIRE, Recipient, message_id_for, to_header
from addendum.notify.state import open_state
from addendum.notify.store import outbox, subscribers, subscriptions
from addendum.notify.tokens import read_unsubscribe_token
from smtp_server import DROP, SmtpServer
from tests_support import set_config

V2 = "privacy@2020-09-01"
V3 = "privacy@2020-10-01"
PEOPLE = """\
email,name,language,sites,audience,policies
ann@example.org,Ann Zoë,en,selentic,subscriber,
bram@example.org,Bram,nl,cavallo;equihealth,account,privacy
cleo@example.org,,nl,selentic,subscriber,
dirk@example.org,Dirk,en,equihealth,account,
"""
TOKEN = r"[0-9]+\.[0-9a-f]{32}\.[A-Za-z0-9_-]{22}"


def subscribe(run: Callable[..., Result], repo: Path, csv_text: str = PEOPLE) -> None:
    path = repo.parent / "people.csv"
    path.write_text(csv_text, encoding="utf-8")
    run("--repo", repo, "subscribers", "import", path)


def received(server: SmtpServer) -> dict[tuple[str, str], EmailMessage]:
    """Messages by (recipient, content language) — each recipient is expected once per site here."""
    out: dict[tuple[str, str], EmailMessage] = {}
    for item in server.handler.received:
        message = item.message
        out[(item.recipients[0], str(message["X-Site"] or message["Content-Language"]))] = message
    return out


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    page = message.get_body(("html",))
    assert text is not None and page is not None
    return text.get_content().replace("\r\n", "\n"), page.get_content().replace("\r\n", "\n")  # CRLF on the wire


def stored(repo: Path) -> list[dict[str, object]]:
    with open_state(open_repo(repo)) as state, state.store.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(select(outbox).order_by(outbox.c.id))]


def test_every_affected_subscriber_gets_one_localised_notice_per_site(run, notify_repo, smtp):
    subscribe(run, notify_repo)
    result = run("--repo", notify_repo, "notify", "privacy", V2, "--yes", "--late", "--reason", "a test of a past version")
    assert "sent 5, retry 0, failed 0, unknown 0" in result.stdout
    by_recipient = smtp.handler.by_recipient()
    assert {k: len(v) for k, v in by_recipient.items()} == {
        "ann@example.org": 1, "bram@example.org": 2, "cleo@example.org": 1, "dirk@example.org": 1}
    rows = {(r["recipient"], r["site_id"]): r for r in stored(notify_repo)}
    assert set(rows) == {("ann@example.org", "selentic"), ("bram@example.org", "cavallo"), ("bram@example.org", "equihealth"),
                         ("cleo@example.org", "selentic"), ("dirk@example.org", "equihealth")}
    for item in smtp.handler.received:
        row = next(r for r in rows.values() if r["message"] == item.data)  # the stored bytes are what arrived
        assert row["state"] == "sent" and row["reply"].startswith("250")
        message = item.message
        assert message["Message-ID"] == row["message_id"]
        assert re.fullmatch(r"<[0-9a-f]{32}\.privacy\.2020-09-01@example\.org>", row["message_id"])
        assert parsedate_to_datetime(message["Date"]).tzinfo is not None
        assert message["Auto-Submitted"] == "auto-generated"
        sender = {"en": "Selentic privacy team", "nl": "Privacyteam van Selentic"}[row["language"]]  # [notify.from_name]
        assert message["From"] == f"{sender} <privacy@example.org>"
        assert message.get_content_type() == "multipart/alternative"
        assert message["Content-Language"] == row["language"]

    ann = by_recipient["ann@example.org"][0].message
    text, page = parts(ann)
    assert ann["To"] == "Ann Zoë <ann@example.org>"
    assert ann["Subject"] == "Selentic: changes to our Privacy policy from 1 September 2020"
    assert text.startswith("Dear Ann Zoë,\n")
    assert "MailChimp now relies on standard contractual clauses instead of the\ninvalidated Privacy Shield." in text
    assert "  - MailChimp: changed" in text
    base = "https://example.org/privacy/history/privacy/"
    for link in (f"{base}2020-09-01/selentic/en/index.html", f"{base}2020-09-01/selentic/en/redline.html",
                 f"{base}2018-05-19/selentic/en/index.html", f"{base}changelog-en.html"):
        assert f"\n  {link}\n" in text and f'href="{link}"' in page
    flat = " ".join(text.split())
    assert "you may withdraw it at any time" in flat and "To use these rights, write to info@selentic.net." in flat
    rights = flat.split("YOUR RIGHTS")[1].split("COMPLAINTS")[0]
    assert "object" not in rights  # policy.toml states no [rights]: no promise of a right to object (GDPR Art. 21)
    assert "Belgian Data Protection Authority" in text and "https://www.dataprotectionauthority.be" in text
    assert "Sint-Pietersstraat 139, 3630 Leut, Belgium" in text
    assert ann["List-Id"] == "Privacy policy <policy-changes.example.org>"
    assert ann["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    match = re.fullmatch(rf"<https://example\.org/unsubscribe/({TOKEN})>, "
                         rf"<mailto:unsubscribe@example\.org\?subject=unsubscribe%20({TOKEN})>", ann["List-Unsubscribe"])
    assert match and match[1] == match[2]
    assert f"Unsubscribe: https://example.org/unsubscribe/{match[1]}" in text
    assert f'<a href="https://example.org/unsubscribe/{match[1]}">Unsubscribe</a>' in page
    with open_state(open_repo(notify_repo)) as state:
        assert read_unsubscribe_token(state.keyring, match[1]) == rows[("ann@example.org", "selentic")]["subscriber_uid"]
    assert "@" not in match[1]  # the token names an id, never the address

    cleo_text, cleo_page = parts(by_recipient["cleo@example.org"][0].message)
    cleo = by_recipient["cleo@example.org"][0].message
    assert cleo["Subject"] == "Selentic: wijzigingen in onze Privacyverklaring vanaf 1 september 2020"
    assert cleo_text.startswith("Hallo,\n")
    assert "MailChimp steunt nu op standaardcontractbepalingen" in cleo_text
    assert "Gegevensbeschermingsautoriteit (GBA)" in cleo_text and "https://www.gegevensbeschermingsautoriteit.be" in cleo_text
    assert f"{base}2020-09-01/selentic/nl/redline.html" in cleo_text and f"{base}changelog-nl.html" in cleo_text
    assert '<html lang="nl">' in cleo_page

    for item in by_recipient["bram@example.org"]:
        bram = item.message
        bram_text, _ = parts(bram)
        assert bram["List-Unsubscribe"] is None and bram["List-Id"] is None and bram["List-Unsubscribe-Post"] is None
        assert "Unsubscribe" not in bram_text and "Uitschrijven" not in bram_text
        assert "wettelijke kennisgeving omdat bram@example.org hoort bij een account bij" in " ".join(bram_text.split())
    sites = sorted(re.search(r"/2020-09-01/(\w+)/nl/index", parts(i.message)[0])[1] for i in by_recipient["bram@example.org"])
    assert sites == ["cavallo", "equihealth"]


def test_notifying_twice_sends_nothing_the_second_time(run, notify_repo, smtp):
    subscribe(run, notify_repo)
    run("--repo", notify_repo, "notify", "privacy", V2, "--yes", "--late", "--reason", "a test of a past version")
    before = stored(notify_repo)
    second = run("--repo", notify_repo, "notify", "privacy", V2, "--yes", "--late", "--reason", "a test of a past version")
    assert len(smtp.handler.received) == 5
    assert "nothing to send" in second.stdout and "outbox: 5 sent" in second.stdout
    assert stored(notify_repo) == before


def test_queueing_window_by_window_reaches_everyone_once(run, notify_repo, smtp, monkeypatch):
    """Recipients are read a few subscribers at a time; one subscribed to the policy and to every policy on a site
    (ann) is one recipient there, at a window's edge too."""
    monkeypatch.setattr(campaign_module, "RECIPIENT_WINDOW", 1)
    subscribe(run, notify_repo)
    subscribe(run, notify_repo, "email,name,language,sites,audience,policies\nann@example.org,Ann Zoë,en,selentic,subscriber,privacy\n")
    with open_state(open_repo(notify_repo)) as state, state.store.begin() as connection:
        ann = connection.execute(select(subscribers.c.id).where(subscribers.c.email == "ann@example.org")).scalar_one()
        connection.execute(subscriptions.insert().values(subscriber_id=ann, policy_id="*", site_id="selentic"))
    result = run("--repo", notify_repo, "notify", "privacy", V2, "--yes", "--late", "--reason", "a test of a past version")
    assert "queued 5 new notice(s); this run: sent 5" in result.stdout
    assert sorted(i.recipients[0] for i in smtp.handler.received) == [
        "ann@example.org", "bram@example.org", "bram@example.org", "cleo@example.org", "dirk@example.org"]


def test_a_subscriber_added_later_is_the_only_one_sent_on_the_next_run(run, notify_repo, smtp):
    subscribe(run, notify_repo)
    run("--repo", notify_repo, "notify", "privacy", V2, "--yes", "--late", "--reason", "a test of a past version")
    run("--repo", notify_repo, "subscribers", "add", "eva@example.org", "--lang", "en", "--site", "cavallo", "--audience", "subscriber")
    result = run("--repo", notify_repo, "notify", "privacy", V2, "--yes", "--late", "--reason", "a test of a past version")
    assert "queued 1 new notice(s); this run: sent 1" in result.stdout
    assert [i.recipients for i in smtp.handler.received[5:]] == [["eva@example.org"]]


def test_an_editorial_version_needs_force(run, notify_repo, smtp):
    subscribe(run, notify_repo)
    refused = run("--repo", notify_repo, "notify", "privacy", V3, "--yes", "--late", "--reason", "a test of a past version", expect=2)
    assert "privacy@2020-10-01 is editorial: change notices are for material versions" in refused.stderr
    assert "--force" in refused.stderr and smtp.handler.received == []
    run("--repo", notify_repo, "notify", "privacy", V3, "--yes", "--late", "--reason", "a test of a past version", "--force")
    assert len(smtp.handler.received) == 5


def test_sending_needs_yes_when_not_on_a_terminal(run, notify_repo, smtp):
    subscribe(run, notify_repo)
    result = run("--repo", notify_repo, "notify", "privacy", V2, "--late", "--reason", "a test of a past version", expect=2)
    assert "this is not a terminal" in result.stderr and "--yes" in result.stderr
    assert smtp.handler.received == [] and stored(notify_repo) == []


def test_temporary_replies_are_retried_with_the_same_bytes(run, notify_repo, smtp):
    subscribe(run, notify_repo)
    smtp.handler.script = {"ann@example.org": ["451 4.3.0 try later"], "cleo@example.org": ["452 4.2.2 mailbox full"],
                           "dirk@example.org": ["552 5.2.2 over quota"]}
    first = run("--repo", notify_repo, "notify", "privacy", V2, "--yes", "--late", "--reason", "a test of a past version", expect=1)
    assert "sent 2, retry 3, failed 0" in first.stdout
    rows = {r["recipient"]: r for r in stored(notify_repo) if r["state"] == "retry"}
    assert set(rows) == {"ann@example.org", "cleo@example.org", "dirk@example.org"}
    assert rows["ann@example.org"]["reply"] == "451 4.3.0 try later" and rows["ann@example.org"]["next_attempt_at"] is not None
    run("--repo", notify_repo, "notify", "privacy", V2, "--yes", "--late", "--reason", "a test of a past version")
    arrived = {i.recipients[0]: i.data for i in smtp.handler.received}
    for address, row in rows.items():
        assert arrived[address] == row["message"]
    after = {r["recipient"]: r for r in stored(notify_repo) if r["recipient"] in rows}
    assert all(r["state"] == "sent" and r["attempts"] == 2 for r in after.values())
    with open_state(open_repo(notify_repo)) as state:
        log = [entry for entry in attempt_log(state.store, V2) if entry[0] == "ann@example.org"]
    assert [(outcome, reply[:3]) for _, _, outcome, reply in log] == [("retry", "451"), ("sent", "250")]


def test_permanent_failures_are_not_retried_and_are_on_record(run, notify_repo, smtp):
    subscribe(run, notify_repo)
    smtp.handler.script = {"ann@example.org": ["550 5.1.1 no such user"]}
    run("--repo", notify_repo, "notify", "privacy", V2, "--yes", "--late", "--reason", "a test of a past version", expect=1)
    again = run("--repo", notify_repo, "notify", "privacy", V2, "--yes", "--late", "--reason", "a test of a past version")
    assert "nothing to send" in again.stdout
    record = run("--repo", notify_repo, "notices", "privacy", V2, "--state", "failed")
    assert "ann@example.org" in record.stdout and "550 5.1.1 no such user" in record.stdout
    assert "1 failed" in record.stderr
    assert [i.recipients[0] for i in smtp.handler.received].count("ann@example.org") == 0


def test_a_connection_dropped_after_data_is_unknown_then_held_or_retried(run, notify_repo, smtp):
    subscribe(run, notify_repo)
    smtp.handler.script = {"ann@example.org": [DROP]}
    run("--repo", notify_repo, "notify", "privacy", V2, "--yes", "--late", "--reason", "a test of a past version", expect=1)
    unknown = [r for r in stored(notify_repo) if r["state"] == "unknown"]
    assert [r["recipient"] for r in unknown] == ["ann@example.org"]
    assert "before the server replied" in unknown[0]["reply"]
    assert len(smtp.handler.received) == 5  # the server did get it: the outcome was unknown to the sender
    held = run("--repo", notify_repo, "notify", "privacy", V2, "--yes", "--late", "--reason", "a test of a past version", "--unknown", "hold", expect=1)  # still owed
    assert held.stdout.splitlines() == ["nothing to send for privacy@2020-09-01 now", "outbox: 4 sent, 1 unknown",
                                        "outstanding: 1 unknown (may have arrived; held: `--unknown retry` sends them again)"]
    assert len(smtp.handler.received) == 5
    run("--repo", notify_repo, "notify", "privacy", V2, "--yes", "--late", "--reason", "a test of a past version", "--unknown", "retry")
    assert [i.recipients[0] for i in smtp.handler.received].count("ann@example.org") == 2
    assert {r["state"] for r in stored(notify_repo)} == {"sent"}


def test_a_server_that_drips_its_reply_keeps_one_message_no_longer_than_its_deadline(run, notify_repo, smtp):
    """Per-socket timeouts bound nothing when each byte comes within them: the message's own deadline does."""
    set_config(notify_repo, {"notify": {"message_deadline": 1.5}})
    subscribe(run, notify_repo)
    smtp.handler.drip_reply = {"ann@example.org": 0.5}  # its 21-byte reply would take ten seconds
    smtp.handler.drip_go_ahead = {"cleo@example.org": 0.5}  # the go-ahead for its message, likewise
    started = time.monotonic()
    result = run("--repo", notify_repo, "notify", "privacy", V2, "--yes", "--late", "--reason", "a test of a past version", expect=1)
    assert time.monotonic() - started < 1.5 * 2 + 2.5  # two deadlines and the rest of the run
    assert "sent 3, retry 1, failed 0, unknown 1" in result.stdout
    rows = {r["recipient"]: r for r in stored(notify_repo)}
    assert rows["ann@example.org"]["state"] == "unknown"  # the message was in: it may have arrived
    assert rows["ann@example.org"]["reply"] == ("no reply within the 1.5 s deadline for one message "
                                                "(notify.message_deadline) after the message was sent: it may have been delivered")
    assert rows["cleo@example.org"]["state"] == "retry"  # it never went out
    assert rows["cleo@example.org"]["reply"] == "the 1.5 s deadline for one message (notify.message_deadline) ran out before the message was complete"
    assert sorted(i.recipients[0] for i in smtp.handler.received) == [
        "ann@example.org", "bram@example.org", "bram@example.org", "dirk@example.org"]
    assert result.stdout.splitlines()[-1].startswith("outstanding: 1 retry (next due ")
    assert result.stdout.splitlines()[-1].endswith(" (may have arrived; the next run sends them again, `--unknown hold` keeps them)")


def test_the_exit_status_counts_what_is_still_owed_not_only_what_this_run_did(run, notify_repo, smtp):
    set_config(notify_repo, {"notify": {"retry_delay": 3600.0}})
    subscribe(run, notify_repo)
    smtp.handler.script = {"ann@example.org": ["451 4.3.0 try later"], "cleo@example.org": ["451 4.3.0 try later"]}
    first = run("--repo", notify_repo, "notify", "privacy", V2, "--yes", "--late", "--reason", "a test of a past version", expect=1)
    assert "sent 3, retry 2, failed 0, unknown 0" in first.stdout
    assert re.search(r"^outstanding: 2 retry \(next due \d{4}-\d\d-\d\d \d\d:\d\d UTC: run notify again then\)$",
                     first.stdout, re.MULTILINE)
    again = run("--repo", notify_repo, "notify", "privacy", V2, "--yes", "--late", "--reason", "a test of a past version", expect=1)  # nothing due yet, but still owed
    assert again.stdout.splitlines()[:2] == ["nothing to send for privacy@2020-09-01 now", "outbox: 2 retry, 3 sent"]
    assert again.stdout.splitlines()[2].startswith("outstanding: 2 retry (next due ")
    with open_state(open_repo(notify_repo)) as state, state.store.begin() as connection:
        connection.execute(outbox.update().where(outbox.c.state == "retry").values(state="failed"))
    done = run("--repo", notify_repo, "notify", "privacy", V2, "--yes", "--late", "--reason", "a test of a past version")  # failed for good: nothing more to do
    assert done.stdout.splitlines() == [
        "nothing to send for privacy@2020-09-01: everyone affected was notified, except 2 whose notice failed for good "
        "(`addendum notices … --state failed`)", "outbox: 2 failed, 3 sent"]


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_a_refused_login_stops_the_run_and_keeps_the_outbox(run, notify_repo, monkeypatch):
    with SmtpServer(credentials=("mailer", "right")) as server:
        monkeypatch.setenv("ADDENDUM_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("ADDENDUM_SMTP_PORT", str(server.port))
        monkeypatch.setenv("ADDENDUM_SMTP_SECURITY", "none")
        monkeypatch.setenv("ADDENDUM_SMTP_USER", "mailer")
        monkeypatch.setenv("ADDENDUM_SMTP_PASSWORD", "wrong")
        subscribe(run, notify_repo)
        refused = run("--repo", notify_repo, "notify", "privacy", V2, "--yes", "--late", "--reason", "a test of a past version", expect=2)
        assert "refused the login of 'mailer': 535" in refused.stderr
        assert {r["state"] for r in stored(notify_repo)} == {"pending"} and server.handler.received == []
        monkeypatch.setenv("ADDENDUM_SMTP_PASSWORD", "right")
        run("--repo", notify_repo, "notify", "privacy", V2, "--yes", "--late", "--reason", "a test of a past version")
        assert len(server.handler.received) == 5 and {r["state"] for r in stored(notify_repo)} == {"sent"}


def test_the_run_pauses_when_most_recent_attempts_fail(run, notify_repo, smtp):
    set_config(notify_repo, {"notify": {"error_window": 3, "error_threshold": 0.6}})
    people = "email,name,language,sites,audience\n" + "".join(
        f"p{n}@example.org,P {n},en,selentic,subscriber\n" for n in range(10))
    subscribe(run, notify_repo, people)
    smtp.handler.always = "550 5.7.1 blocked"
    paused = run("--repo", notify_repo, "notify", "privacy", V2, "--yes", "--late", "--reason", "a test of a past version", expect=1)
    assert "paused: 3 of the last 3 attempts failed (last reply: 550 5.7.1 blocked)" in paused.stderr
    assert "run notify again" in paused.stderr and "error:" not in paused.stderr
    states = [r["state"] for r in stored(notify_repo)]
    assert states.count("failed") == 3 and states.count("pending") == 7


def test_dry_run_and_preview_store_and_send_nothing(run, notify_repo, smtp, tmp_path):
    subscribe(run, notify_repo)
    dry = run("--repo", notify_repo, "notify", "privacy", V2, "--dry-run")
    assert "dry-run: 5 notice(s) of privacy@2020-09-01 rendered, nothing sent or stored" in dry.stdout
    preview = tmp_path / "preview"
    run("--repo", notify_repo, "notify", "privacy", V2, "--preview", preview)
    files = sorted(preview.glob("*.eml"))
    assert [f.name for f in files] == ["00001-selentic-en-subscriber.eml", "00002-cavallo-nl-account.eml",
                                       "00003-equihealth-nl-account.eml", "00004-selentic-nl-subscriber.eml",
                                       "00005-equihealth-en-account.eml"]
    first = BytesParser(policy=default).parsebytes(files[0].read_bytes())
    assert first["To"] == "Ann Zoë <ann@example.org>" and oct(files[0].stat().st_mode & 0o777) == "0o600"
    assert smtp.handler.received == [] and stored(notify_repo) == []


def test_progress_off_a_terminal_is_one_line_per_tenth_like_archive(run, notify_repo, smtp):
    subscribe(run, notify_repo)
    sent = run("--repo", notify_repo, "notify", "privacy", V2, "--yes", "--late", "--reason", "a test of a past version")
    lines = [line for line in sent.stderr.splitlines() if line.startswith(("queueing", "sending"))]
    assert lines == ["queueing: 100% (5/5)", "sending: 20% (1/5)", "sending: 40% (2/5)", "sending: 60% (3/5)",
                     "sending: 80% (4/5)", "sending: 100% (5/5)"]


def test_rate_and_connections_are_checked_by_the_command_line(run, notify_repo):
    helped = run("--repo", notify_repo, "notify", "--help").stdout
    assert "--rate PER_SECOND" in helped and "--connections N" in helped
    rate = run("--repo", notify_repo, "notify", "privacy", V2, "--yes", "--late", "--reason", "a test of a past version", "--rate", "-1", expect=2)
    assert "Invalid value for '--rate'" in rate.stderr and ">=0" in rate.stderr
    connections = run("--repo", notify_repo, "notify", "privacy", V2, "--yes", "--late", "--reason", "a test of a past version", "--connections", "0", expect=2)
    assert "Invalid value for '--connections'" in connections.stderr and ">=1" in connections.stderr


def test_a_preview_folder_git_would_add_is_refused(run, notify_repo, smtp):
    subscribe(run, notify_repo)
    refused = run("--repo", notify_repo, "notify", "privacy", V2, "--preview", notify_repo / "preview", expect=2)
    assert f"the preview folder {notify_repo / 'preview'} is inside the git work tree and not ignored" in refused.stderr
    assert ".gitignore" in refused.stderr and not (notify_repo / "preview").exists()
    (notify_repo / ".gitignore").write_text("*.eml\n", encoding="utf-8")
    run("--repo", notify_repo, "notify", "privacy", V2, "--preview", notify_repo / "preview")
    assert len(list((notify_repo / "preview").glob("*.eml"))) == 5


def test_canaries_receive_each_variant_first_and_stay_out_of_the_outbox(run, notify_repo, smtp):
    subscribe(run, notify_repo)
    result = run("--repo", notify_repo, "notify", "privacy", V2, "--yes", "--late", "--reason", "a test of a past version", "--canary", "team@example.org")
    canaries = [i for i in smtp.handler.received if i.recipients == ["team@example.org"]]
    assert len(canaries) == 5  # selentic/en, selentic/nl (subscriber); cavallo/nl, equihealth/nl, equihealth/en (account)
    assert smtp.handler.received[:5] == canaries
    assert "canary selentic/en/subscriber to team@example.org: 250" in result.stdout
    assert "team@example.org" not in {r["recipient"] for r in stored(notify_repo)}


def test_a_refused_canary_stops_before_anyone_is_notified(run, notify_repo, smtp):
    subscribe(run, notify_repo)
    smtp.handler.script = {"team@example.org": ["550 5.1.1 unknown"]}
    result = run("--repo", notify_repo, "notify", "privacy", V2, "--yes", "--late", "--reason", "a test of a past version", "--canary", "team@example.org", expect=2)
    assert "was not accepted: 550 5.1.1 unknown" in result.stderr
    assert smtp.handler.received == [] and stored(notify_repo) == []


def test_rate_limit_and_parallel_connections(run, notify_repo, smtp):
    people = "email,name,language,sites,audience\n" + "".join(
        f"r{n}@example.org,R {n},nl,cavallo,account\n" for n in range(12))
    subscribe(run, notify_repo, people)
    started = time.monotonic()
    run("--repo", notify_repo, "notify", "privacy", V2, "--yes", "--late", "--reason", "a test of a past version", "--rate", "20", "--connections", "3")
    assert time.monotonic() - started >= 11 / 20
    assert sorted(i.recipients[0] for i in smtp.handler.received) == sorted(f"r{n}@example.org" for n in range(12))


def test_unsubscribed_people_are_skipped_but_account_holders_are_always_told(run, notify_repo, smtp):
    subscribe(run, notify_repo)
    run("--repo", notify_repo, "notify", "privacy", V2, "--yes", "--late", "--reason", "a test of a past version")
    token = re.search(TOKEN, smtp.handler.by_recipient()["ann@example.org"][0].message["List-Unsubscribe"])[0]
    assert "ann@example.org unsubscribed" in run("--repo", notify_repo, "subscribers", "unsubscribe", token).stdout
    run("--repo", notify_repo, "notify", "privacy", V3, "--yes", "--late", "--reason", "a test of a past version", "--force")
    v3 = [i.recipients[0] for i in smtp.handler.received[5:]]
    assert "ann@example.org" not in v3 and v3.count("bram@example.org") == 2
    # Ann becomes an account holder: legal notices reach her although she left the optional list.
    subscribe(run, notify_repo, "email,name,language,sites,audience\nann@example.org,Ann,en,selentic,account\n")
    run("--repo", notify_repo, "notify", "privacy", V3, "--yes", "--late", "--reason", "a test of a past version", "--force")
    assert [i.recipients[0] for i in smtp.handler.received[9:]] == ["ann@example.org"]


def test_removing_a_subscriber_cancels_what_was_not_sent_yet(run, notify_repo, smtp):
    subscribe(run, notify_repo)
    smtp.handler.script = {"ann@example.org": ["451 later"]}
    run("--repo", notify_repo, "notify", "privacy", V2, "--yes", "--late", "--reason", "a test of a past version", expect=1)
    assert "1 unsent notice(s) cancelled" in run("--repo", notify_repo, "subscribers", "remove", "ann@example.org").stdout
    run("--repo", notify_repo, "notify", "privacy", V2, "--yes", "--late", "--reason", "a test of a past version")
    assert [i.recipients[0] for i in smtp.handler.received].count("ann@example.org") == 0
    assert "cancelled" in run("--repo", notify_repo, "notices", "privacy", V2, "--email", "ann@example.org").stdout


def test_notices_show_the_proof_as_json(run, notify_repo, smtp):
    import json

    subscribe(run, notify_repo)
    run("--repo", notify_repo, "notify", "privacy", V2, "--yes", "--late", "--reason", "a test of a past version")
    lines = run("--repo", notify_repo, "notices", "privacy", V2, "--json").stdout.splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 5
    ledger = open_repo(notify_repo)
    from addendum.history.versions import find_version

    version = find_version(ledger, "privacy", V2)
    for record in records:
        assert record["content_hash"] == version.hash_for(record["site_id"], record["language"])
        assert record["state"] == "sent" and record["sent_at"] and record["reply"].startswith("250")
        assert record["message_id"].endswith("@example.org>")


def test_hostile_names_are_escaped_in_html_and_encoded_in_headers(run, notify_repo, smtp):
    subscribe(run, notify_repo, 'email,name,language,sites,audience\nmal@example.org,"<b>Mal</b> ""&"" Co",en,selentic,subscriber\n')
    run("--repo", notify_repo, "notify", "privacy", V2, "--yes", "--late", "--reason", "a test of a past version")
    message = smtp.handler.received[0].message
    text, page = parts(message)
    assert "<p>Dear &lt;b&gt;Mal&lt;/b&gt; &quot;&amp;&quot; Co,</p>" in page and "<b>Mal" not in page
    assert text.startswith('Dear <b>Mal</b> "&" Co,')
    assert message["To"].addresses[0].display_name == '<b>Mal</b> "&" Co'


def test_attach_redline_attaches_the_archived_pdf(run, notify_repo, smtp):
    subscribe(run, notify_repo, "email,name,language,sites,audience\nann@example.org,Ann,en,selentic,subscriber\n")
    (notify_repo / "history/privacy/2020-09-01/selentic/en/redline.pdf").unlink()
    missing = run("--repo", notify_repo, "notify", "privacy", V2, "--yes", "--late", "--reason", "a test of a past version", "--attach-redline", expect=2)
    assert "no redline PDF at history/privacy/2020-09-01/selentic/en/redline.pdf" in missing.stderr
    pdf = notify_repo / "history/privacy/2020-09-01/selentic/en/redline.pdf"
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    with pdf.open("wb") as stream:
        writer.write(stream)
    run("--repo", notify_repo, "notify", "privacy", V2, "--yes", "--late", "--reason", "a test of a past version", "--attach-redline")
    message = smtp.handler.received[0].message
    attachment = next(message.iter_attachments())
    assert attachment.get_filename() == "redline-privacy-2020-09-01-selentic-en.pdf"
    assert attachment.get_content() == pdf.read_bytes()


def test_long_lines_fall_back_to_an_encoding_the_stdlib_chooses(notify_repo, smtp, run):
    """A summary line beyond 998 octets cannot travel as 8-bit text: the message is built whole instead."""
    subscribe(run, notify_repo, "email,name,language,sites,audience\nann@example.org,Ann,en,selentic,subscriber\n")
    repo = open_repo(notify_repo)
    plan = plan_notice(repo, "privacy", V2)
    long_word = "x" * 1200
    plan = dataclasses.replace(plan, version=dataclasses.replace(plan.version, summaries={"en": long_word}))
    with open_state(repo) as state:
        campaign = Campaign(state, plan, attach_redline=False)
        built = campaign.build(Recipient("a" * 32, "ann@example.org", "Ann", "en", "selentic", "subscriber"))
    message = BytesParser(policy=default).parsebytes(built.data)
    assert max(len(line) for line in built.data.split(b"\r\n")) <= 998
    text, _ = parts(message)
    assert long_word in text and "Dear Ann," in text
    assert message.get_body(("plain",))["Content-Transfer-Encoding"] in ("quoted-printable", "base64")


def test_impact_in_the_editors_words_and_language_fallback(notify_repo):
    repo = open_repo(notify_repo)
    plan = plan_notice(repo, "privacy", V2)
    version = dataclasses.replace(plan.version, extra={"impact": {"en": "Your newsletter data stays in the United States."}})
    plan = dataclasses.replace(plan, version=version)
    content = notice_content(plan, "selentic", "en", "https://example.org/h/")
    assert content.impact == "Your newsletter data stays in the United States."
    assert notice_content(plan, "selentic", "nl", "https://example.org/h/").impact == ""  # the template's default sentence
    assert plan.language_for("selentic", "fr") == "en" and plan.language_for("selentic", "nl") == "nl"
    assert [c.heading for c in content.changes if c.kind == "changed"] == ["MailChimp"]


def test_message_ids_are_deterministic():
    first = message_id_for(V2, "a" * 32, "selentic", "example.org")
    assert first == message_id_for(V2, "a" * 32, "selentic", "example.org")
    assert first != message_id_for(V2, "a" * 32, "cavallo", "example.org") != message_id_for(V3, "a" * 32, "selentic", "example.org")


@pytest.mark.parametrize("name, email", [
    ("Person 1", "person1@example.org"), ("", "cleo@example.org"), ("O'Brien-Smith", "first.last+tag@mail.example.org"),
    ("Zoë Ündërberg", "zoe@example.org"), ("J. Smith", "j@example.org"), ("Smith, Jane", "jane@example.org"),
    ("Anne  Marie", "anne@example.org"), (" Lead", "lead@example.org"), ("Tab\there (admin)", "tab@example.org"),
    ("Very Long Name " * 5, "long.address.of.someone@subdomain.example.org"), ("Ann", "ann@exämple.org"),
])
def test_the_to_header_written_directly_is_the_one_the_stdlib_writes(name, email):
    to = Address(display_name=name, addr_spec=email)
    assert to_header(name, email) == WIRE.fold_binary("To", WIRE.header_store_parse("To", to)[1])


def test_notify_works_the_same_on_postgresql(run, notify_repo, smtp, postgres_url, monkeypatch):
    monkeypatch.setenv("ADDENDUM_DATABASE_URL", postgres_url)
    subscribe(run, notify_repo)
    smtp.handler.script = {"ann@example.org": ["451 later"]}
    run("--repo", notify_repo, "notify", "privacy", V2, "--yes", "--late", "--reason", "a test of a past version", expect=1)
    run("--repo", notify_repo, "notify", "privacy", V2, "--yes", "--late", "--reason", "a test of a past version")
    assert "nothing to send" in run("--repo", notify_repo, "notify", "privacy", V2, "--yes", "--late", "--reason", "a test of a past version").stdout
    assert sorted(i.recipients[0] for i in smtp.handler.received) == sorted(
        ["ann@example.org", "bram@example.org", "bram@example.org", "cleo@example.org", "dirk@example.org"])
    assert "5 sent" in run("--repo", notify_repo, "notices", "privacy", V2).stderr
    assert not (notify_repo / ".addendum" / "state.db").exists()


def test_an_unreachable_server_stops_the_run_with_the_outbox_intact(run, notify_repo, monkeypatch):
    from smtp_server import free_port

    monkeypatch.setenv("ADDENDUM_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("ADDENDUM_SMTP_PORT", str(free_port()))  # nothing listens there
    monkeypatch.setenv("ADDENDUM_SMTP_SECURITY", "none")
    subscribe(run, notify_repo)
    result = run("--repo", notify_repo, "notify", "privacy", V2, "--yes", "--late", "--reason", "a test of a past version", expect=2)
    assert "cannot connect to the SMTP server 127.0.0.1:" in result.stderr
    assert {r["state"] for r in stored(notify_repo)} == {"pending"} and all(r["attempts"] == 0 for r in stored(notify_repo))


def test_a_second_sender_is_refused_while_one_runs(run, notify_repo, smtp):
    import os
    import socket

    from sqlalchemy import insert

    from addendum.notify.store import locks, utcnow

    subscribe(run, notify_repo)
    with open_state(open_repo(notify_repo)) as state, state.store.begin() as connection:
        connection.execute(insert(locks).values(name="notify", owner="other", host=socket.gethostname(), pid=os.getppid(),
                                                heartbeat_at=utcnow()))
    result = run("--repo", notify_repo, "notify", "privacy", V2, "--yes", "--late", "--reason", "a test of a past version", expect=2)
    assert f"another `addendum notify` is sending (process {os.getppid()}" in result.stderr
    assert ": it is running, renewed " in result.stderr  # a live sender on this host is never taken over
    assert f"wait for it to finish, or stop it (kill {os.getppid()})" in result.stderr
    assert smtp.handler.received == []


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_the_smtp_password_may_come_from_a_private_file(run, notify_repo, monkeypatch):
    import os

    with SmtpServer(credentials=("mailer", "from-file")) as server:
        for name, value in {"ADDENDUM_SMTP_HOST": "127.0.0.1", "ADDENDUM_SMTP_PORT": str(server.port),
                            "ADDENDUM_SMTP_SECURITY": "none", "ADDENDUM_SMTP_USER": "mailer"}.items():
            monkeypatch.setenv(name, value)
        secret = notify_repo.parent / "smtp-password"
        secret.write_text("from-file\n", encoding="utf-8")
        os.chmod(secret, 0o644)
        set_config(notify_repo, {"notify.smtp": {"password_file": str(secret)}})
        subscribe(run, notify_repo)
        loose = run("--repo", notify_repo, "notify", "privacy", V2, "--yes", "--late", "--reason", "a test of a past version", expect=2)
        assert "SMTP password file" in loose.stderr and "chmod 600" in loose.stderr
        assert stored(notify_repo) == []  # checked before anything is queued
        os.chmod(secret, 0o600)
        run("--repo", notify_repo, "notify", "privacy", V2, "--yes", "--late", "--reason", "a test of a past version")
        assert len(server.handler.received) == 5


def unset_config(root: Path, *keys: str) -> None:
    """Remove dotted keys from a repository's addendum.toml."""
    import tomllib

    import tomli_w

    path = root / "addendum.toml"
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    for key in keys:
        *tables, leaf = key.split(".")
        node = data
        for table in tables:
            node = node[table]
        del node[leaf]
    path.write_text(tomli_w.dumps(data), encoding="utf-8")


def test_every_missing_or_invalid_setting_is_reported_in_one_run(run, notify_repo, smtp):
    subscribe(run, notify_repo)
    unset_config(notify_repo, "archive.base_url", "notify.unsubscribe_url")
    set_config(notify_repo, {"notify": {"reply_to": "privacy team"}})
    refused = run("--repo", notify_repo, "notify", "privacy", V2, "--dry-run", expect=2)
    assert refused.stderr == (
        "error: notify needs 3 setting(s) in addendum.toml that are missing or invalid:\n"
        "  - archive.base_url: is not set\n"
        '    notices link to the archive: set [archive] base_url = "https://…/history/"\n'
        "  - notify.reply_to: invalid address 'privacy team': An email address must have an @-sign.\n"
        '    set [notify] reply_to = "…" to a valid address\n'
        "  - notify.unsubscribe_url: is not set: notices to the subscriber audience need a one-click unsubscribe link (RFC 8058)\n"
        '    set [notify] unsubscribe_url = "https://…" (it receives ?token=…)\n'
        "  every key is described in the README under 'Configuration'\n")
    assert refused.stdout == ""
    set_config(notify_repo, {"archive": {"base_url": "https://example.org/history/"},
                             "notify": {"reply_to": "privacy@example.org", "unsubscribe_url": "https://example.org/u"}})
    assert "dry-run: 5 notice(s)" in run("--repo", notify_repo, "notify", "privacy", V2, "--dry-run").stdout


def test_sending_also_checks_the_smtp_settings_before_anything_is_queued(run, notify_repo, smtp):
    subscribe(run, notify_repo)
    unset_config(notify_repo, "archive.base_url")
    set_config(notify_repo, {"notify.smtp": {"password_file": str(notify_repo.parent / "no-such-file")}})
    refused = run("--repo", notify_repo, "notify", "privacy", V2, "--yes", "--late", "--reason", "a test of a past version", expect=2).stderr
    assert refused.startswith("error: notify needs 2 setting(s) in addendum.toml that are missing or invalid:\n"
                              "  - archive.base_url: is not set\n")
    assert (f"  - notify.smtp: the SMTP password file {notify_repo.parent / 'no-such-file'} does not exist\n"
            "    create it (mode 0600) or set ADDENDUM_SMTP_PASSWORD\n") in refused
    assert stored(notify_repo) == [] and smtp.handler.received == []
    dry = run("--repo", notify_repo, "notify", "privacy", V2, "--dry-run", expect=2).stderr
    assert dry.startswith("error: notify needs 1 setting(s)") and "notify.smtp" not in dry


def test_account_holders_alone_need_no_unsubscribe_url(run, notify_repo, smtp):
    subscribe(run, notify_repo, "email,name,language,sites,audience,policies\nbram@example.org,Bram,nl,cavallo,account,privacy\n")
    unset_config(notify_repo, "notify.unsubscribe_url", "notify.unsubscribe_mailto")
    assert "dry-run: 1 notice(s)" in run("--repo", notify_repo, "notify", "privacy", V2, "--dry-run").stdout
