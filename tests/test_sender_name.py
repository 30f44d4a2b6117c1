"""Who a notice comes from, in the reader's language: [notify] from_name and a site's sender_name, one name or one per
language, checked by the schema and by `check`, and sent as an RFC 2047 encoded word when it is not ASCII."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from email.message import EmailMessage
from pathlib import Path

from click.testing import Result

from addendum.config import open_repo
from addendum.notify.campaign import NotifyOptions, notify
from smtp_server import SmtpServer
from tests_support import set_config

VERSION = "privacy@2020-09-01"  # announced ahead on 1 August 2020 (30 days' notice)
PEOPLE = """\
email,name,language,sites,audience,policies
ann@example.org,Ann,en,selentic,subscriber,
cleo@example.org,Cleo,nl,selentic,subscriber,
"""


def send(run: Callable[..., Result], repo: Path) -> None:
    people = repo.parent / "people.csv"
    people.write_text(PEOPLE, encoding="utf-8")
    run("--repo", repo, "subscribers", "import", people)
    report = notify(open_repo(repo), "privacy", VERSION, NotifyOptions(today=date(2020, 8, 1)), lambda audience: True)
    assert report.send is not None and report.send.sent == 2


def received(server: SmtpServer, address: str) -> tuple[EmailMessage, bytes]:
    [item] = server.handler.by_recipient()[address]
    return item.message, item.data


def header_line(data: bytes, name: bytes) -> bytes:
    head = data.split(b"\r\n\r\n", 1)[0]
    return next(line for line in head.replace(b"\r\n ", b" ").split(b"\r\n") if line.startswith(name + b":"))


def test_the_dutch_notice_comes_from_the_dutch_sender_name_of_the_shipped_settings(run, notify_repo, smtp):
    send(run, notify_repo)
    english, _ = received(smtp, "ann@example.org")
    dutch, _ = received(smtp, "cleo@example.org")
    assert english["From"].addresses[0].display_name == "Selentic privacy team"
    assert dutch["From"].addresses[0].display_name == "Privacyteam van Selentic"
    assert dutch["From"].addresses[0].addr_spec == "privacy@example.org"


def test_a_site_names_its_sender_per_language_and_a_name_beyond_ascii_is_an_encoded_word(run, notify_repo, smtp):
    toml = notify_repo / "policies" / "privacy" / "policy.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace(
        '[sites.selentic]\nname = "Selentic"\n',
        '[sites.selentic]\nname = "Selentic"\nsender_name = { en = "Selentic’s privacy team", nl = "Privacyteam van Selentic – Zoë" }\n'),
        encoding="utf-8")
    send(run, notify_repo)
    english, english_bytes = received(smtp, "ann@example.org")
    dutch, dutch_bytes = received(smtp, "cleo@example.org")
    assert dutch["From"].addresses[0].display_name == "Privacyteam van Selentic – Zoë"
    assert english["From"].addresses[0].display_name == "Selentic’s privacy team"
    line = header_line(dutch_bytes, b"From")
    assert line.isascii() and b"=?utf-8?" in line.lower() and line.endswith(b"<privacy@example.org>")
    assert header_line(english_bytes, b"From").isascii()


def test_one_plain_name_still_serves_every_language_without_a_warning(run, notify_repo, smtp):
    set_config(notify_repo, {"notify": {"from_name": "Selentic"}})
    checked = run("--repo", notify_repo, "check", "privacy", expect=None)
    assert "sender name" not in checked.output
    send(run, notify_repo)
    assert received(smtp, "cleo@example.org")[0]["From"].addresses[0].display_name == "Selentic"
    assert received(smtp, "ann@example.org")[0]["From"].addresses[0].display_name == "Selentic"


def test_check_warns_of_a_language_in_use_without_a_sender_name_and_the_notice_falls_back(run, notify_repo, smtp):
    set_config(notify_repo, {"notify": {"from_name": {"en": "Selentic privacy team", "fr": "Équipe vie privée"}}})
    checked = run("--repo", notify_repo, "check", "privacy", expect=None).output
    line = next(n for n, text in enumerate((notify_repo / "addendum.toml").read_text().splitlines(), 1)
                if text.startswith("[notify.from_name]"))
    assert (f"warning: addendum.toml:{line}: notify.from_name has no sender name for Dutch (nl): Dutch (nl) notices of "
            "selentic, cavallo, equihealth come from 'Selentic privacy team' instead") in checked
    assert 'add nl = "…" under [notify.from_name] in addendum.toml' in checked
    assert "for English (en)" not in checked
    send(run, notify_repo)
    assert received(smtp, "cleo@example.org")[0]["From"].addresses[0].display_name == "Selentic privacy team"


def test_a_site_table_without_a_language_is_warned_of_at_its_site(run, notify_repo):
    set_config(notify_repo, {"notify": {"from_name": {"en": "Selentic privacy team"}}})
    toml = notify_repo / "policies" / "privacy" / "policy.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace(
        '[sites.cavallo]\nname = "Cavallo"\n', '[sites.cavallo]\nname = "Cavallo"\nsender_name = { en = "Cavallo team" }\n'),
        encoding="utf-8")
    checked = run("--repo", notify_repo, "check", "privacy", expect=None).output
    assert "sites.cavallo.sender_name has no sender name for Dutch (nl): Dutch (nl) notices of cavallo come from " \
           "'Cavallo team' instead" in checked
    assert "policies/privacy/policy.toml:" in checked
    assert "notify.from_name has no sender name for Dutch (nl): Dutch (nl) notices of selentic, equihealth come" in checked


def test_the_schema_names_the_key_of_a_wrong_per_language_value(run, notify_repo):
    set_config(notify_repo, {"notify": {"from_name": {"nl": 1, "Dutch": "Privacyteam"}}})
    refused = run("--repo", notify_repo, "check", "privacy", expect=2).stderr
    assert "addendum.toml: config value 'notify.from_name.nl': expected str, got 1" in refused
    assert "addendum.toml: config value 'notify.from_name.Dutch': 'Dutch' is not a language code" in refused
    toml = notify_repo / "policies" / "privacy" / "policy.toml"
    set_config(notify_repo, {"notify": {"from_name": "Selentic"}})
    toml.write_text(toml.read_text(encoding="utf-8").replace(
        '[sites.cavallo]\nname = "Cavallo"\n', '[sites.cavallo]\nname = "Cavallo"\nsender_name = { nl = 3 }\n'), encoding="utf-8")
    checked = run("--repo", notify_repo, "check", "privacy", expect=1).output
    assert "'sites.cavallo.sender_name.nl' must be str, got 3" in checked
