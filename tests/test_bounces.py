"""`addendum bounces import`: complaints (ARF) unsubscribe, hard bounces suppress the address for later versions,
soft ones are only recorded, and reports about no notice are named. The DSNs of a real MTA are in test_postfix.py;
here the reports are built the way mailbox providers and MTAs lay them out (RFC 3464, RFC 5965)."""

from __future__ import annotations

import mailbox
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path

from tests_support import set_config

VERSION = "privacy@2020-09-01"
PEOPLE = "email,name,language,sites,audience\nann@example.net,Ann,en,selentic,subscriber\n" \
         "bob@example.net,Bob,en,selentic,account\ncid@example.net,Cid,en,selentic,account\n"


def report(kind: str, original: bytes, fields: list[str], to: str = "bounces@example.org") -> bytes:
    """A multipart/report of `kind` (delivery-status or feedback-report) about `original`."""
    message = MIMEMultipart("report", report_type=kind)
    message["From"] = "MAILER-DAEMON@mx.example.net"
    message["To"] = to
    message["Subject"] = "Report"
    message.attach(MIMEText("A report about a message you sent.\n"))
    status = Message()
    status["Content-Type"] = "message/delivery-status" if kind == "delivery-status" else "message/feedback-report"
    blocks = []
    for text in "\n".join(fields).split("\n\n"):  # field blocks, as the email package keeps them
        block = Message()
        for line in text.splitlines():
            name, value = line.split(": ", 1)
            block[name] = value
        blocks.append(block)
    status.set_payload(blocks)
    message.attach(status)
    headers = Message()
    headers["Content-Type"] = "text/rfc822-headers"
    headers.set_payload(original.split(b"\r\n\r\n", 1)[0].decode().replace("\r\n", "\n") + "\n")
    message.attach(headers)
    return message.as_bytes()


def test_complaints_unsubscribe_hard_bounces_suppress_and_soft_ones_are_only_recorded(run, notify_repo, smtp, tmp_path):
    set_config(notify_repo, {"notify": {"rate_per_second": 0.0, "return_path": "bounces@example.org"}})
    (tmp_path / "people.csv").write_text(PEOPLE, encoding="utf-8")
    run("--repo", notify_repo, "subscribers", "import", tmp_path / "people.csv")
    run("--repo", notify_repo, "notify", "privacy", VERSION, "--yes", "--late", "--reason", "a test of a past version")
    sent = {item.recipients[0]: item for item in smtp.handler.received}
    ann, bob, cid = sent["ann@example.net"], sent["bob@example.net"], sent["cid@example.net"]
    box = mailbox.mbox(str(tmp_path / "bounces.mbox"))
    # Ann complains (matched by the Message-ID of the returned headers alone).
    box.add(report("feedback-report", ann.data, ["Feedback-Type: abuse\nUser-Agent: ExampleFBL/1.0\nVersion: 1\n"
                                                 "Original-Rcpt-To: ann@example.net"], to="fbl@example.org"))
    # Bob's mailbox does not exist (matched by the VERP return path the report was sent to).
    box.add(report("delivery-status", bob.data, ["Reporting-MTA: dns; mx.example.net", "",
                                                 "Final-Recipient: rfc822; bob@example.net", "Action: failed",
                                                 "Status: 5.1.1", "Diagnostic-Code: smtp; 550 5.1.1 no such mailbox"],
                    to=bob.sender))
    # Cid's mailbox is full for now: a soft bounce.
    box.add(report("delivery-status", cid.data, ["Reporting-MTA: dns; mx.example.net", "",
                                                 "Final-Recipient: rfc822; cid@example.net", "Action: delayed",
                                                 "Status: 4.2.2", "Diagnostic-Code: smtp; 452 4.2.2 mailbox full"]))
    # A report about a message we never sent.
    box.add(report("delivery-status", b"Message-ID: <elsewhere@example.com>\r\n\r\n", [
        "Reporting-MTA: dns; mx.example.net", "", "Final-Recipient: rfc822; eve@example.net", "Action: failed",
        "Status: 5.1.1"]))
    box.close()
    result = run("--repo", notify_repo, "bounces", "import", tmp_path / "bounces.mbox", expect=1)
    assert result.stdout.splitlines() == [
        f"{tmp_path / 'bounces.mbox'}: 4 message(s), 4 report(s): 1 hard bounce(s), 1 delayed or soft, 1 complaint(s)",
        "suppressed: ann@example.net (no more notices go to it)",
        "suppressed: bob@example.net (no more notices go to it)"]
    assert "unmatched: 3: a report about eve@example.net that names no notice in the outbox" in result.stderr
    bounced = run("--repo", notify_repo, "notices", "privacy", VERSION, "--state", "bounced").stdout
    assert "bob@example.net" in bounced and "550 5.1.1 no such mailbox" in bounced and "ann@" not in bounced
    subscribers = run("--repo", notify_repo, "subscribers", "list").stdout
    assert "unsubscribed" in next(line for line in subscribers.splitlines() if "ann@example.net" in line)
    # Each report is an event in the person's subscription history, as `addendum evidence` shows it.
    for who, kind in (("ann@example.net", "complained"), ("bob@example.net", "bounced"), ("cid@example.net", "bounced")):
        shown = run("--repo", notify_repo, "evidence", who).stdout
        assert [line.split()[1] for line in shown.splitlines() if line.startswith("  20")] == ["imported", kind], who
    # The next version reaches only Cid: Ann complained, Bob's address bounced (notify.bounce_limit 1).
    smtp.handler.received.clear()
    run("--repo", notify_repo, "notify", "privacy", "privacy@2020-10-01", "--yes", "--late", "--reason", "a test of a past version", "--force")
    assert [item.recipients for item in smtp.handler.received] == [["cid@example.net"]]


def test_a_mailbox_that_is_neither_mbox_nor_maildir_is_refused(run, notify_repo, tmp_path):
    (tmp_path / "folder").mkdir()
    refused = run("--repo", notify_repo, "bounces", "import", tmp_path / "folder", expect=2)
    assert "is a folder but not a Maildir (it has no cur/, new/ and tmp/)" in refused.stderr


def test_bounce_paths_carry_a_tag_tied_to_the_message(notify_repo) -> None:
    from addendum.notify.bounces import TAG, envelope_for, verp_tag
    from addendum.notify.outbox import OutboxRow

    envelope = envelope_for("bounces@example.org")
    assert envelope is not None
    address = envelope(OutboxRow(42, "ann@example.net", "pending", 0, b"", "<abc@example.org>"))
    assert address == f"bounces+{verp_tag(42, '<abc@example.org>')}@example.org"
    match = TAG.search(address)
    assert match is not None and match[1] == "42"
    assert Path  # noqa: B018 - keeps the import used by type checkers in the other tests
