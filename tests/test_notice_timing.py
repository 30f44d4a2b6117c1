"""A notice is true on the day it is sent: announced ahead, sent inside the notice period or late only with a reason,
and worded in the past tense once the change is in force; its subject and body name the recipient's site."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from pathlib import Path

import pytest
from click.testing import Result

from addendum.config import open_repo
from addendum.errors import UsageError
from addendum.i18n import words
from addendum.notify.campaign import NotifyOptions, NotifyReport, notice_records, notify
from smtp_server import SmtpServer

VERSION = "privacy@2020-09-01"  # takes effect on 1 September 2020; policy privacy requires 30 days' notice
PEOPLE = """\
email,name,language,sites,audience,policies
ann@example.org,Ann,en,selentic,subscriber,
bram@example.org,Bram,nl,cavallo,account,privacy
"""
LATE_INTRO = ("We have changed the %(title)s of %(site)s. The new version took effect on %(date)s. This message tells "
              "you what changed, what it means for you and what you can do.")
LATE_WHEN = "The new version took effect on %(date)s and has applied since then."


def subscribe(run: Callable[..., Result], repo: Path) -> None:
    path = repo.parent / "people.csv"
    path.write_text(PEOPLE, encoding="utf-8")
    run("--repo", repo, "subscribers", "import", path)


def send(repo: Path, today: date, **options: object) -> NotifyReport:
    return notify(open_repo(repo), "privacy", VERSION, NotifyOptions(today=today, **options), lambda audience: True)  # type: ignore[arg-type]


def text_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return " ".join(body.get_content().split())  # the text part is wrapped at 72 columns


def html_of(message: EmailMessage) -> str:
    body = message.get_body(("html",))
    assert body is not None
    return " ".join(body.get_content().split())


def only(server: SmtpServer, address: str) -> EmailMessage:
    [item] = server.handler.by_recipient()[address]
    return item.message


def test_a_notice_of_a_change_in_force_is_refused_today_naming_the_date_and_the_late_option(run, notify_repo, smtp):
    subscribe(run, notify_repo)
    refused = run("--repo", notify_repo, "notify", "privacy", VERSION, "--yes", expect=2)
    assert "took effect on 2020-09-01" in refused.stderr
    assert "cannot announce it as a coming change" in refused.stderr
    assert "--late --reason TEXT" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert smtp.handler.received == []
    # As typed, without --yes and not on a terminal: the date is the reason given, not the confirmation.
    as_typed = run("--repo", notify_repo, "notify", "privacy", VERSION, expect=2)
    assert "took effect on 2020-09-01" in as_typed.stderr and "--late --reason TEXT" in as_typed.stderr
    assert "not a terminal" not in as_typed.stderr
    no_reason = run("--repo", notify_repo, "notify", "privacy", VERSION, "--yes", "--late", expect=2)
    assert "--reason is empty" in no_reason.stderr and smtp.handler.received == []


def test_ahead_of_the_notice_period_the_notice_announces_the_change(run, notify_repo, smtp):
    subscribe(run, notify_repo)
    report = send(notify_repo, date(2020, 8, 2))  # 30 days before 1 September 2020
    assert report.send is not None and report.send.sent == 2
    ann = only(smtp, "ann@example.org")
    assert ann["Subject"] == "Selentic: changes to our Privacy policy from 1 September 2020"
    assert "We are changing the Privacy policy of Selentic. The new version takes effect on 1 September 2020." in text_of(ann)
    assert "Until then, the current version applies." in text_of(ann)
    assert "took effect" not in text_of(ann) and "took effect" not in html_of(ann)
    records = list(notice_records(open_repo(notify_repo), "privacy", VERSION))
    assert {(r.timing, r.timing_reason) for r in records} == {("ahead", "")}


def test_inside_the_notice_period_only_urgent_with_a_reason_and_the_reason_is_recorded(run, notify_repo, smtp):
    subscribe(run, notify_repo)
    with pytest.raises(UsageError) as refused:
        send(notify_repo, date(2020, 8, 3))  # 29 days before
    assert "29 day(s) from today (2020-08-03)" in refused.value.message and "30 days' notice" in refused.value.message
    assert "--urgent --reason TEXT" in (refused.value.hint or "")
    with pytest.raises(UsageError):
        send(notify_repo, date(2020, 8, 31), late=True, reason="late is not urgent")
    assert smtp.handler.received == []
    send(notify_repo, date(2020, 8, 31), urgent=True, reason="the processor changed at short notice")
    ann = only(smtp, "ann@example.org")
    assert "The new version takes effect on 1 September 2020." in text_of(ann)
    records = list(notice_records(open_repo(notify_repo), "privacy", VERSION))
    assert len(records) == 2
    assert {(r.timing, r.timing_reason) for r in records} == {("short", "the processor changed at short notice")}
    assert all(r.as_json()["timing_reason"] == "the processor changed at short notice" for r in records)


def test_on_the_effective_date_a_late_notice_says_the_change_took_effect_in_the_readers_language(run, notify_repo, smtp):
    subscribe(run, notify_repo)
    with pytest.raises(UsageError) as refused:
        send(notify_repo, date(2020, 9, 1))
    assert "took effect on 2020-09-01 (today is 2020-09-01)" in refused.value.message
    send(notify_repo, date(2020, 9, 1), late=True, reason="the notice was forgotten")
    ann, bram = only(smtp, "ann@example.org"), only(smtp, "bram@example.org")
    for page in (text_of(ann), html_of(ann)):
        assert "We have changed the Privacy policy of Selentic. The new version took effect on 1 September 2020." in page
        assert "The new version took effect on 1 September 2020 and has applied since then." in page
        assert "We are changing" not in page and "Until then" not in page and "takes effect" not in page
    assert "WHAT CHANGED" in ann.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    # The cavallo account holder reads of Cavallo, in Dutch, in the past tense.
    assert bram["Subject"].startswith("Cavallo: ") and bram["Subject"].endswith(" 1 september 2020")
    dutch = text_of(bram)
    assert "Wij hebben de" in dutch and "van Cavallo gewijzigd" in dutch and "is op 1 september 2020 in werking getreden" in dutch
    assert "Wij wijzigen" not in dutch and "Tot dan" not in dutch
    assert "Selentic" not in bram["Subject"]
    records = list(notice_records(open_repo(notify_repo), "privacy", VERSION))
    assert {(r.timing, r.timing_reason) for r in records} == {("late", "the notice was forgotten")}


def test_a_preview_refuses_nothing_and_shows_the_wording_of_the_day(run, notify_repo, tmp_path):
    subscribe(run, notify_repo)
    preview = tmp_path / "preview"
    run("--repo", notify_repo, "notify", "privacy", VERSION, "--preview", preview)
    messages = [BytesParser(policy=default).parsebytes(p.read_bytes()) for p in sorted(preview.glob("*.eml"))]
    assert len(messages) == 2
    for message in messages:
        assert isinstance(message, EmailMessage)
        assert "We are changing" not in text_of(message) and "Wij wijzigen" not in text_of(message)
    assert any("We have changed the Privacy policy of Selentic." in text_of(m) for m in messages if isinstance(m, EmailMessage))


@pytest.mark.parametrize("language", ["en", "nl", "fr", "de"])
def test_every_shipped_language_has_the_past_tense_wording(language):
    t = words(language, None)
    for message in (LATE_INTRO, LATE_WHEN):
        said = t.gettext(message, title="T", site="S", date="D")
        assert "D" in said and "S" in said or "S" not in message
        if language != "en":
            assert said != message % {"title": "T", "site": "S", "date": "D"}


def test_a_site_may_name_its_own_sender_and_reply_to(run, notify_repo, smtp):
    toml = notify_repo / "policies" / "privacy" / "policy.toml"
    text = toml.read_text(encoding="utf-8")
    toml.write_text(text.replace('[sites.cavallo]\nname = "Cavallo"\n',
                                 '[sites.cavallo]\nname = "Cavallo"\nsender_name = "Cavallo privacy team"\n'
                                 'reply_to = "privacy@cavallo.example"\n'), encoding="utf-8")
    subscribe(run, notify_repo)
    send(notify_repo, date(2020, 8, 1))
    ann, bram = only(smtp, "ann@example.org"), only(smtp, "bram@example.org")
    assert bram["From"] == "Cavallo privacy team <privacy@example.org>"
    assert bram["Reply-To"] == "privacy@cavallo.example"
    assert "Cavallo" in bram["Subject"] and "Selentic" not in bram["Subject"]
    assert ann["From"] == "Selentic privacy team <privacy@example.org>"  # [notify] from_name, as before
    assert ann["Reply-To"] != "privacy@cavallo.example"


def test_a_site_reply_to_that_is_not_an_address_is_refused_by_the_schema(run, notify_repo):
    toml = notify_repo / "policies" / "privacy" / "policy.toml"
    text = toml.read_text(encoding="utf-8")
    toml.write_text(text.replace('[sites.cavallo]\nname = "Cavallo"\n',
                                 '[sites.cavallo]\nname = "Cavallo"\nreply_to = "privacy team"\n'), encoding="utf-8")
    refused = run("--repo", notify_repo, "check", "privacy", expect=None)
    assert refused.exit_code != 0
    assert "policy.toml" in refused.output and "site cavallo: reply_to 'privacy team' is not an e-mail address" in refused.output
