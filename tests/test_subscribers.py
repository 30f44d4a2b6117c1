"""`addendum subscribers`: validation, import, export, removal, erasure and unsubscribe tokens, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, select

from addendum.config import open_repo
from addendum.errors import NotifyError
from addendum.notify.state import open_state
from addendum.notify.store import subscribers, subscriptions
from addendum.notify.subscribers import _plain_address, import_subscribers, list_subscribers, normalise_address
from addendum.notify.tokens import load_keyring, read_unsubscribe_token, unsubscribe_token
from tests_support import every_value, git_in, set_config

HEADER = "email,name,language,sites,audience\n"
SITES = ("selentic", "cavallo", "equihealth")


def write_csv(folder: Path, text: str, name: str = "people.csv") -> Path:
    path = folder / name
    path.write_bytes(text.encode("utf-8"))
    return path


def listed(run: Callable[..., Result], repo: Path) -> list[str]:
    return [line.split()[0] for line in run("--repo", repo, "subscribers", "list").stdout.splitlines()]


def test_import_reports_every_bad_row_and_imports_nothing(run, notify_repo, tmp_path):
    text = (HEADER
            + "ann@example.org,Ann,en,selentic,subscriber\n"
            + '"eve@example.org","Eve\r\nBcc: x@example.org",en,selentic,subscriber\n'
            + "not-an-address,Nobody,en,selentic,subscriber\n"
            + "fr@example.org,Frans,fr,selentic,subscriber\n"
            + "gone@example.org,Gone,en,nowhere,account\n"
            + "who@example.org,Who,en,selentic,customer\n"
            + "Ann@Example.org,Ann again,en,cavallo,account\n"
            + "bidi@example.org,Ev\u202eil,en,selentic,subscriber\n"
            + "extra@example.org,Extra,en,selentic,subscriber,surplus\n")
    result = run("--repo", notify_repo, "subscribers", "import", write_csv(tmp_path, text), expect=2)
    lines = [line.split(":", 1)[1] for line in result.stderr.splitlines() if line.startswith(str(tmp_path))]
    assert lines == [
        "line 3: name contains a line break (U+000A, U+000D)",
        "line 5: invalid address 'not-an-address': An email address must have an @-sign.",
        "line 6: unknown language 'fr' (known: en, nl)",
        "line 7: unknown site 'nowhere' (known: cavallo, equihealth, selentic)",
        "line 8: audience 'customer' is not one of account, subscriber",
        "line 9: duplicate of line 2 (ann@example.org)",
        "line 10: name contains a control or invisible character (U+202E)",
        "line 11: more fields than the header has columns",
    ]
    assert "error: 8 bad row(s)" in result.stderr and "nothing imported" in result.stderr
    assert listed(run, notify_repo) == []
    imported = run("--repo", notify_repo, "subscribers", "import", write_csv(tmp_path, text), "--skip-invalid")
    assert "imported 1: 1 added, 0 updated, 8 bad row(s) skipped" in imported.stdout
    assert listed(run, notify_repo) == ["ann@example.org"]


def bad_lines(result: Result, folder: Path) -> list[str]:
    """The rows an import reported, as `line N: reason`."""
    return [line.split(":", 1)[1] for line in result.stderr.splitlines() if line.startswith(str(folder))]


def test_an_unterminated_quote_is_reported_as_such_next_to_the_other_bad_rows(run, notify_repo, tmp_path):
    text = (HEADER
            + "ann@example.org,Ann,en,selentic,subscriber\n"
            + "x,Bad,en,selentic,subscriber\n"
            + '"bram@example.org,Bram,nl,cavallo,account\n'  # the quote runs on to the end of the file
            + "cas@example.org,Cas,fr,selentic,subscriber\n"
            + "dee@example.org,Dee,en,equihealth,account\n")
    refused = run("--repo", notify_repo, "subscribers", "import", write_csv(tmp_path, text), expect=2)
    assert bad_lines(refused, tmp_path) == [
        "line 3: invalid address 'x': An email address must have an @-sign.",
        'line 4: unterminated quote starting at this line: the field it opens never closes (a quote inside a field is written "")',
        "line 5: unknown language 'fr' (known: en, nl)",
    ]
    assert "error: 3 bad row(s)" in refused.stderr and "field limit" not in refused.stderr
    assert listed(run, notify_repo) == []
    imported = run("--repo", notify_repo, "subscribers", "import", write_csv(tmp_path, text), "--skip-invalid")
    assert bad_lines(imported, tmp_path) == bad_lines(refused, tmp_path)
    assert "imported 2: 2 added, 0 updated, 3 bad row(s) skipped, 0 suppressed" in imported.stdout
    assert listed(run, notify_repo) == ["ann@example.org", "dee@example.org"]


def test_a_quote_that_runs_past_the_field_limit_hides_no_row_after_it(run, notify_repo, tmp_path):
    rows = [f"p{n}@example.org,Person {n},en,selentic,subscriber\n" for n in range(6000)]
    rows[98] = '"' + rows[98]  # line 100: the reader takes everything after it as one field, up to its limit (128 KiB)
    rows[148] = "p148@example.org,Person 148,en,nowhere,subscriber\n"  # line 150, inside what the quote took
    rows[5998] = "p5998@example.org,Person 5998,xx,selentic,subscriber\n"  # line 6000, far past the limit
    people = write_csv(tmp_path, HEADER + "".join(rows))
    refused = run("--repo", notify_repo, "subscribers", "import", people, expect=2)
    assert [line.split(":")[0] for line in bad_lines(refused, tmp_path)] == ["line 100", "line 150", "line 6000"]
    assert "line 100: unterminated quote starting at this line" in refused.stderr
    imported = run("--repo", notify_repo, "subscribers", "import", people, "--skip-invalid")
    assert "imported 5997: 5997 added, 0 updated, 3 bad row(s) skipped" in imported.stdout


def test_a_quote_closed_on_a_later_line_is_one_row(run, notify_repo, tmp_path):
    text = (HEADER
            + 'ann@example.org,"Ann\nPeeters",en,selentic,subscriber\n'  # lines 2-3
            + 'bram@example.org,Bram,nl,"cavallo,\n'  # line 4: opens a quote after a field, never closed
            + 'cas@example.org,"Cas ""the"" Boss",en,selentic,subscriber\n'  # line 5: quotes inside quotes
            + 'dee@example.org,Dee "Di" Jones,en,selentic,subscriber\n')  # line 6: a quote inside a field is text
    result = run("--repo", notify_repo, "subscribers", "import", write_csv(tmp_path, text), "--skip-invalid")
    assert [line.split(":", 2)[:2] for line in bad_lines(result, tmp_path)] == [
        ["line 2", " name contains a line break (U+000A)"], ["line 4", " unterminated quote starting at this line"]]
    names = {line.split(",")[0]: line.split(",")[1] for line in run(
        "--repo", notify_repo, "subscribers", "export").stdout.splitlines()[1:]}
    assert names == {"cas@example.org": '"Cas ""the"" Boss"', "dee@example.org": '"Dee ""Di"" Jones"'}


def test_bad_rows_beyond_the_first_fifty_are_counted(run, notify_repo, tmp_path):
    text = HEADER + "".join(f"person{n}-at-example.org,P,en,selentic,subscriber\n" for n in range(120))
    result = run("--repo", notify_repo, "subscribers", "import", write_csv(tmp_path, text), expect=2)
    reported = bad_lines(result, tmp_path)
    assert [line.split(":")[0] for line in reported] == [f"line {n}" for n in range(2, 52)] + [" … and 70 more bad row(s)"]
    assert "error: 120 bad row(s)" in result.stderr


def test_a_byte_that_is_not_utf8_is_a_bad_row(run, notify_repo, tmp_path):
    people = tmp_path / "latin1.csv"
    people.write_bytes(HEADER.encode() + b"ann@example.org,Ann,en,selentic,subscriber\n"
                       + "zoe@example.org,Zoë,en,selentic,subscriber\n".encode("latin-1")
                       + b"bram@example.org,Bram,nl,cavallo,account\n")
    result = run("--repo", notify_repo, "subscribers", "import", people, "--skip-invalid")
    assert bad_lines(result, tmp_path) == ["line 3: not UTF-8 text (byte 0xEB): save the file as UTF-8 CSV"]
    assert listed(run, notify_repo) == ["ann@example.org", "bram@example.org"]
    people.write_bytes("emäil,name\n".encode("latin-1"))
    assert "latin1.csv:1: not UTF-8 text (byte 0xE4)" in run("--repo", notify_repo, "subscribers", "import", people, expect=2).stderr


def test_an_import_keeps_an_unsubscribe_and_replaces_the_subscriptions(run, notify_repo, tmp_path):
    run("--repo", notify_repo, "subscribers", "add", "ann@example.org", "--lang", "en", "--site", "selentic",
        "--site", "cavallo", "--audience", "subscriber")
    with open_state(open_repo(notify_repo)) as state:
        token = unsubscribe_token(state.keyring, next(iter(list_subscribers(state))).uid)
    run("--repo", notify_repo, "subscribers", "unsubscribe", token)
    run("--repo", notify_repo, "subscribers", "import", write_csv(tmp_path, HEADER + "Ann@Example.org,Ann B,nl,cavallo;equihealth,subscriber\n"))
    assert run("--repo", notify_repo, "subscribers", "list").stdout.split() == [
        "ann@example.org", "nl", "subscriber", "unsubscribed", "cavallo;equihealth"]


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, notify_repo: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The state store a test runs against: the repository's own SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{notify_repo / '.addendum' / 'state.db'}"
    url = str(request.getfixturevalue("postgres_url"))
    monkeypatch.setenv("ADDENDUM_DATABASE_URL", url)
    return url


def stored(url: str) -> dict[str, tuple[str, ...]]:
    """Each stored address with its language and sites, straight from the database."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            people = {row.id: row for row in connection.execute(select(subscribers))}
            sites: dict[int, list[str]] = {}
            for link in connection.execute(select(subscriptions).order_by(subscriptions.c.site_id)):
                sites.setdefault(link.subscriber_id, []).append(link.site_id)
    finally:
        engine.dispose()
    return {person.email: (person.language, *sites.get(person.id, [])) for person in people.values()}


LARGE = 20_000  # rows: twenty batches, and still quick on a busy machine


def test_a_large_import_is_checked_across_batches_and_refused_or_written_whole(run, notify_repo, tmp_path, store_url):
    rows = [f"p{n}@example.org,Person {n},{('en', 'nl')[n % 2]},{SITES[n % 3]},subscriber\n" for n in range(LARGE)]
    rows[15_000] = "P3@example.org,Again,en,selentic,subscriber\n"  # line 15,002 repeats line 5, fifteen batches on
    rows[19_000] = "p19000-at-example.org,Bad,en,selentic,subscriber\n"  # line 19,002
    people = write_csv(tmp_path, HEADER + "".join(rows))
    run("--repo", notify_repo, "subscribers", "add", "p10@example.org", "--name", "Known", "--lang", "en",
        "--site", "equihealth", "--audience", "account")
    run("--repo", notify_repo, "subscribers", "forget", "p7@example.org", "--yes", expect=1)  # not known: suppressed all the same
    before = stored(store_url)
    refused = run("--repo", notify_repo, "subscribers", "import", people, expect=2)
    assert bad_lines(refused, tmp_path) == [
        "line 15002: duplicate of line 5 (p3@example.org)",
        "line 19002: invalid address 'p19000-at-example.org': An email address must have an @-sign."]
    assert stored(store_url) == before  # nothing half-written
    imported = run("--repo", notify_repo, "subscribers", "import", people, "--skip-invalid")
    assert "line 9: address erased on" in imported.stderr
    assert f"imported {LARGE - 3}: {LARGE - 4} added, 1 updated, 2 bad row(s) skipped, 1 suppressed" in imported.stdout
    after = stored(store_url)
    assert len(after) == LARGE - 3 and "p7@example.org" not in after
    assert after["p10@example.org"] == ("en", "cavallo") and after["p3@example.org"] == ("nl", "selentic")
    changed = [row.replace(",selentic,", ",selentic;equihealth,") for row in rows[:100]]
    again = run("--repo", notify_repo, "subscribers", "import", write_csv(tmp_path, HEADER + "".join(changed), "again.csv"))
    assert "imported 99: 0 added, 99 updated, 1 suppressed" in again.stdout
    final = stored(store_url)
    assert final["p3@example.org"] == ("nl", "equihealth", "selentic") and final["p4@example.org"] == ("en", "cavallo")
    assert {email: value for email, value in final.items() if email not in {f"p{n}@example.org" for n in range(100)}} == \
        {email: value for email, value in after.items() if email not in {f"p{n}@example.org" for n in range(100)}}


def test_import_memory_stays_flat_in_the_number_of_rows(notify_repo, tmp_path):
    import tracemalloc

    def peak(count: int) -> int:
        people = write_csv(tmp_path, HEADER + "".join(f"m{count}.{n}@example.org,Person {n},en,selentic,subscriber\n"
                                                      for n in range(count)), f"people-{count}.csv")
        with open_state(open_repo(notify_repo)) as state:
            tracemalloc.start()
            try:
                assert import_subscribers(state, people).added == count
                return tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()

    peak(1000)  # the first import loads what any import needs
    small, large = peak(2000), peak(LARGE)
    assert large < small + 512 * 1024, f"peak Python memory {small:,} bytes for 2,000 rows, {large:,} for {LARGE:,}"


@pytest.mark.parametrize("address", [
    "ann@example.org", "Ann.Peeters+news@Example.ORG", "a!#$%&'*+/=?^_`{|}~-@example.org", "x@xn--bcher-kva.example",
    "postmaster@example.org", "a" * 64 + "@example.org", "a" * 65 + "@example.org", "a@" + "b" * 63 + ".org",
    "a@" + "b" * 64 + ".org", f"{'a' * 64}@{'b' * 63}.{'c' * 63}.{'d' * 57}.org", f"{'a' * 64}@{'b' * 63}.{'c' * 63}.{'d' * 58}.org",
    "a@localhost", "a@example", "a@example.123", "a@-example.org", "a@example-.org", "a@ex--ample.org", "a@ab--c.org",
    "a..b@example.org", ".a@example.org", "a.@example.org", "a@example..org", "a@.example.org", "a@example.org.",
    "a@test", "a@example.invalid", "a@xn--zz.org", "a@x.xn--p1ai", "a@EXAMPLE.local", "a@b.onion",
])
def test_the_quick_address_check_agrees_with_email_validator(address):
    check_agreement(address)


@settings(max_examples=300, deadline=None)
@given(st.from_regex(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,70}@[A-Za-z0-9.-]{1,80}", fullmatch=True))
def test_the_quick_address_check_agrees_with_email_validator_on_any_plain_address(address):
    check_agreement(address)


def check_agreement(address: str) -> None:
    """The quick path gives what the full check gives, and refuses nothing the full check accepts by mistake."""
    try:
        result = validate_email(address, check_deliverability=False, allow_smtputf8=False)
        expected: str | None = str(result.ascii_email or result.normalized).lower()
    except EmailNotValidError:
        expected = None
    quick = _plain_address(address)
    assert quick is None or quick == expected, (address, quick, expected)
    try:
        assert normalise_address(address) == expected
    except ValueError:
        assert expected is None


def test_a_name_carrying_a_header_is_refused_on_add_too(run, notify_repo):
    result = run("--repo", notify_repo, "subscribers", "add", "eve@example.org", "--name", "Eve\r\nBcc: x@example.org",
                 "--lang", "en", "--site", "selentic", "--audience", "subscriber", expect=2)
    assert "name contains a line break" in result.stderr
    assert listed(run, notify_repo) == []


def test_a_csv_without_the_required_columns_is_refused(run, notify_repo, tmp_path):
    result = run("--repo", notify_repo, "subscribers", "import", write_csv(tmp_path, "email,name\nann@example.org,Ann\n"), expect=2)
    assert "the header row lacks the column(s) language, sites, audience" in result.stderr


def test_add_update_list_and_export_round_trip(run, notify_repo, tmp_path, monkeypatch):
    run("--repo", notify_repo, "subscribers", "add", "Ann@Example.ORG", "--name", "Ann", "--lang", "en", "--site", "selentic",
        "--site", "cavallo", "--audience", "subscriber", "--consent-source", "signup form", "--consent-at", "2024-03-01T10:00:00+01:00")
    run("--repo", notify_repo, "subscribers", "add", "bram@example.org", "--lang", "nl", "--site", "equihealth",
        "--policy", "privacy", "--audience", "account")
    updated = run("--repo", notify_repo, "subscribers", "add", "ann@example.org", "--name", "Ann B", "--lang", "nl",
                  "--site", "selentic", "--audience", "subscriber")
    assert updated.stdout == "updated ann@example.org\n"
    listing = run("--repo", notify_repo, "subscribers", "list").stdout.splitlines()
    assert listing[0].split() == ["ann@example.org", "nl", "subscriber", "active", "selentic"]
    assert listing[1].split() == ["bram@example.org", "nl", "account", "active", "equihealth", "[privacy]"]
    exported = tmp_path / "export.csv"
    run("--repo", notify_repo, "subscribers", "export", "-o", exported)
    assert stat.S_IMODE(exported.stat().st_mode) == 0o600
    rows = exported.read_text(encoding="utf-8").splitlines()
    assert rows[0] == "email,name,language,sites,audience,policies,consent_source,consent_at,unsubscribed_at,status"
    assert rows[1].startswith("ann@example.org,Ann B,nl,selentic,subscriber,,cli,")
    monkeypatch.setenv("ADDENDUM_DATABASE_URL", f"sqlite:///{tmp_path / 'other.db'}")
    run("--repo", notify_repo, "subscribers", "import", exported)
    assert run("--repo", notify_repo, "subscribers", "list").stdout.splitlines() == listing


def test_forget_erases_everything_but_a_keyed_hash(run, notify_repo, smtp, tmp_path):
    people = write_csv(tmp_path, HEADER + "ann@example.org,Ann Zoë,en,selentic;cavallo,subscriber\nbram@example.org,Bram,nl,cavallo,account\n")
    run("--repo", notify_repo, "subscribers", "import", people)
    smtp.handler.script = {"ann@example.org": ["451 later", "550 no"]}
    run("--repo", notify_repo, "notify", "privacy", "privacy@2020-09-01", "--yes", "--late", "--reason", "a test of a past version", expect=1)
    run("--repo", notify_repo, "notify", "privacy", "privacy@2020-09-01", "--yes", "--late", "--reason", "a test of a past version")  # the retry goes through
    database = notify_repo / ".addendum" / "state.db"
    assert any("ann@example.org" in value for value in every_value(f"sqlite:///{database}"))
    forgot = run("--repo", notify_repo, "subscribers", "forget", "ANN@example.org", "--yes")
    assert "forgot ann@example.org: 2 notice record(s) kept under the keyed hash " in forgot.stdout
    assert not any("ann@example.org" in value or "zoë" in value for value in every_value(f"sqlite:///{database}"))
    for file in database.parent.glob("state.db*"):
        assert b"ann@example.org" not in file.read_bytes().lower(), file  # not even in free pages or the log
    assert listed(run, notify_repo) == ["bram@example.org"]
    again = run("--repo", notify_repo, "subscribers", "import", write_csv(tmp_path, HEADER + "Ann@example.org,Ann,en,selentic,subscriber\n"))
    assert "line 2: address erased on" in again.stderr and "suppressed, not imported" in again.stderr
    assert "imported 0: 0 added, 0 updated, 1 suppressed" in again.stdout
    refused = run("--repo", notify_repo, "subscribers", "add", "ann@example.org", "--lang", "en", "--site", "selentic",
                  "--audience", "subscriber", expect=2)
    assert "was erased on" in refused.stderr and "--allow-suppressed" in refused.stderr
    run("--repo", notify_repo, "subscribers", "add", "ann@example.org", "--lang", "en", "--site", "selentic",
        "--audience", "subscriber", "--allow-suppressed", "--consent-source", "new signup")
    assert "ann@example.org" in listed(run, notify_repo)


def test_the_state_store_is_private_and_outside_git(run, notify_repo):
    run("--repo", notify_repo, "subscribers", "add", "ann@example.org", "--lang", "en", "--site", "selentic", "--audience", "account")
    folder = notify_repo / ".addendum"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "state.db").stat().st_mode) == 0o600
    assert stat.S_IMODE((folder / "notify-keys").stat().st_mode) == 0o600
    assert git_in(notify_repo, "status", "--porcelain", "--untracked-files=all") == ""  # ignored, whatever .gitignore says
    os.chmod(folder / "state.db", 0o644)
    loose = run("--repo", notify_repo, "subscribers", "list", expect=2)
    assert "can be read by others (mode 0644)" in loose.stderr and "chmod 600" in loose.stderr


def test_a_state_database_tracked_by_git_is_refused(run, notify_repo):
    (notify_repo / "subscribers.db").write_bytes(b"")
    git_in(notify_repo, "add", "subscribers.db")
    set_config(notify_repo, {"state": {"database": "subscribers.db"}})
    result = run("--repo", notify_repo, "subscribers", "list", expect=2)
    assert "is tracked by git" in result.stderr and "never enter git" in result.stderr


def test_unsubscribe_tokens_name_ids_and_survive_key_rotation(run, notify_repo):
    run("--repo", notify_repo, "subscribers", "add", "ann@example.org", "--lang", "en", "--site", "selentic", "--audience", "subscriber")
    repo = open_repo(notify_repo)
    with open_state(repo) as state:
        uid = next(iter(list_subscribers(state))).uid
        old = unsubscribe_token(state.keyring, uid)
    assert old.startswith(f"1.{uid}.")
    assert "new key version 2" in run("--repo", notify_repo, "subscribers", "rotate-key").stdout
    keyring = load_keyring(notify_repo / ".addendum" / "notify-keys")
    new = unsubscribe_token(keyring, uid)
    assert new.startswith(f"2.{uid}.") and read_unsubscribe_token(keyring, old) == uid == read_unsubscribe_token(keyring, new)
    forged = old[:-1] + ("A" if old[-1] != "A" else "B")
    with pytest.raises(NotifyError, match="not valid"):
        read_unsubscribe_token(keyring, forged)
    assert "not valid" in run("--repo", notify_repo, "subscribers", "unsubscribe", forged, expect=2).stderr
    assert run("--repo", notify_repo, "subscribers", "unsubscribe", old).stdout == "ann@example.org unsubscribed\n"
    assert run("--repo", notify_repo, "subscribers", "unsubscribe", new).stdout == "ann@example.org was already unsubscribed\n"
    assert "unsubscribed" in run("--repo", notify_repo, "subscribers", "list").stdout


def test_keys_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ADDENDUM_NOTIFY_KEYS", "1:" + "a" * 40 + ",3:" + "b" * 40)
    keyring = load_keyring(tmp_path / "absent")
    assert keyring.current == 3 and not (tmp_path / "absent").exists()
    assert unsubscribe_token(keyring, "c" * 32).startswith("3.")
    monkeypatch.setenv("ADDENDUM_NOTIFY_KEYS", "1:short")
    with pytest.raises(NotifyError, match="at least 32 characters"):
        load_keyring(tmp_path / "absent")


def test_a_readable_key_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("ADDENDUM_NOTIFY_KEYS", raising=False)
    path = tmp_path / "keys"
    path.write_text("1:" + "k" * 40 + "\n", encoding="utf-8")
    os.chmod(path, 0o640)
    with pytest.raises(NotifyError, match="can be read by others"):
        load_keyring(path)


def test_export_for_one_person_includes_their_notices(run, notify_repo, smtp, tmp_path):
    run("--repo", notify_repo, "subscribers", "import", write_csv(tmp_path, HEADER + "ann@example.org,Ann,en,selentic,subscriber\n"))
    run("--repo", notify_repo, "notify", "privacy", "privacy@2020-09-01", "--yes", "--late", "--reason", "a test of a past version")
    lines = run("--repo", notify_repo, "subscribers", "export", "--format", "jsonl", "--email", "ann@example.org").stdout.splitlines()
    record = json.loads(lines[0])
    assert record["email"] == "ann@example.org" and record["notices"][0]["version"] == "privacy@2020-09-01"
    assert record["notices"][0]["state"] == "sent" and record["notices"][0]["message_id"].endswith("@example.org>")


def test_subscribers_on_postgresql(run, notify_repo, smtp, tmp_path, postgres_url, monkeypatch):
    monkeypatch.setenv("ADDENDUM_DATABASE_URL", postgres_url)
    bad = write_csv(tmp_path, HEADER + "ann@example.org,Ann,en,selentic,subscriber\nx,Bad,en,selentic,subscriber\n")
    assert "line 3: invalid address" in run("--repo", notify_repo, "subscribers", "import", bad, expect=2).stderr
    run("--repo", notify_repo, "subscribers", "import", bad, "--skip-invalid")
    run("--repo", notify_repo, "subscribers", "add", "bram@example.org", "--lang", "nl", "--site", "cavallo", "--audience", "account")
    run("--repo", notify_repo, "notify", "privacy", "privacy@2020-09-01", "--yes", "--late", "--reason", "a test of a past version")
    assert listed(run, notify_repo) == ["ann@example.org", "bram@example.org"]
    run("--repo", notify_repo, "subscribers", "forget", "ann@example.org", "--yes")
    assert not any("ann@example.org" in value for value in every_value(postgres_url))
    again = run("--repo", notify_repo, "subscribers", "import", write_csv(tmp_path, HEADER + "ann@example.org,Ann,en,selentic,subscriber\n"))
    assert "1 suppressed" in again.stdout
    assert not (notify_repo / ".addendum" / "state.db").exists()


def test_a_database_that_cannot_be_reached_is_a_clean_error(run, notify_repo, monkeypatch):
    monkeypatch.setenv("ADDENDUM_DATABASE_URL", "postgresql+psycopg://nobody@/absent?host=/nonexistent-socket-folder")
    result = run("--repo", notify_repo, "subscribers", "list", expect=2)
    assert "cannot open the state database postgresql+psycopg://nobody@/absent" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_relative_sqlite_url_lives_in_the_repository_not_the_current_folder(run, notify_repo, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    set_config(notify_repo, {"state": {"database": "sqlite:///.addendum/relative.db"}})
    run("--repo", notify_repo, "subscribers", "add", "ann@example.org", "--lang", "en", "--site", "selentic", "--audience", "account")
    database = notify_repo / ".addendum" / "relative.db"
    assert stat.S_IMODE(database.stat().st_mode) == 0o600
    assert any("ann@example.org" in value for value in every_value(f"sqlite:///{database}"))
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("setting", ["subscribers.db", "sqlite:///subscribers.db"])
def test_a_state_database_git_would_add_is_refused(run, notify_repo, setting):
    set_config(notify_repo, {"state": {"database": setting}})
    result = run("--repo", notify_repo, "subscribers", "list", expect=2)
    assert f"the state database {notify_repo / 'subscribers.db'} is inside the git work tree and not ignored" in result.stderr
    assert ".gitignore" in result.stderr and ".addendum/" in result.stderr
    assert not (notify_repo / "subscribers.db").exists()
    (notify_repo / ".gitignore").write_text("subscribers.db\n", encoding="utf-8")
    run("--repo", notify_repo, "subscribers", "list")
    assert (notify_repo / "subscribers.db").exists()
    assert "subscribers.db" not in git_in(notify_repo, "status", "--porcelain", "--untracked-files=all", "--ignored=no")


def test_a_key_file_git_would_add_is_refused(run, notify_repo, tmp_path):
    set_config(notify_repo, {"notify": {"key_file": "keys/notify-keys"}})
    (notify_repo / "keys").mkdir()
    result = run("--repo", notify_repo, "subscribers", "rotate-key", expect=2)
    assert f"the key file {notify_repo / 'keys' / 'notify-keys'} is inside the git work tree and not ignored" in result.stderr
    assert not (notify_repo / "keys" / "notify-keys").exists()
    set_config(notify_repo, {"notify": {"key_file": str(tmp_path / "outside" / "notify-keys")}})
    assert "new key version 2" in run("--repo", notify_repo, "subscribers", "rotate-key").stdout


def test_an_export_git_would_add_is_refused(run, notify_repo, tmp_path):
    run("--repo", notify_repo, "subscribers", "add", "ann@example.org", "--lang", "en", "--site", "selentic", "--audience", "account")
    result = run("--repo", notify_repo, "subscribers", "export", "-o", notify_repo / "people.csv", expect=2)
    assert f"the export {notify_repo / 'people.csv'} is inside the git work tree and not ignored" in result.stderr
    assert not (notify_repo / "people.csv").exists()
    run("--repo", notify_repo, "subscribers", "export", "-o", notify_repo / ".addendum" / "people.csv")
    run("--repo", notify_repo, "subscribers", "export", "-o", tmp_path / "people.csv")
    assert "ann@example.org" in (tmp_path / "people.csv").read_text(encoding="utf-8")


def test_export_neutralises_spreadsheet_formulas_and_import_reads_them_back(run, notify_repo, tmp_path, monkeypatch):
    for email, name in [("ann@example.org", "=HYPERLINK(\"http://evil.example\")"), ("bram@example.org", "+1"),
                        ("-cas@example.org", "@SUM(A1)"), ("dee@example.org", "-Dee")]:
        run("--repo", notify_repo, "subscribers", "add", "--name", name, "--lang", "en", "--site", "selentic",
            "--audience", "account", "--consent-source", "=cmd", "--", email)
    exported = tmp_path / "export.csv"
    run("--repo", notify_repo, "subscribers", "export", "-o", exported)
    rows = sorted(exported.read_text(encoding="utf-8").splitlines()[1:])
    assert rows[0].startswith("'-cas@example.org,'@SUM(A1),en,selentic,account,,'=cmd,")
    assert rows[1].startswith('ann@example.org,"\'=HYPERLINK(""http://evil.example"")",')
    assert rows[2].startswith("bram@example.org,'+1,") and rows[3].startswith("dee@example.org,'-Dee,")
    listing = run("--repo", notify_repo, "subscribers", "export", "--format", "jsonl").stdout
    monkeypatch.setenv("ADDENDUM_DATABASE_URL", f"sqlite:///{tmp_path / 'other.db'}")
    run("--repo", notify_repo, "subscribers", "import", exported)
    again = run("--repo", notify_repo, "subscribers", "export", "--format", "jsonl").stdout
    strip = [{k: v for k, v in json.loads(line).items() if k != "uid"} for line in listing.splitlines()]
    assert [{k: v for k, v in json.loads(line).items() if k != "uid"} for line in again.splitlines()] == strip
    assert {record["name"] for record in strip} == {"=HYPERLINK(\"http://evil.example\")", "+1", "@SUM(A1)", "-Dee"}


def test_help_shows_examples(run, notify_repo):
    imported = run("--repo", notify_repo, "subscribers", "import", "--help").stdout
    assert "email,name,language,sites,audience,policies,consent_at\n" in imported
    assert "ann@example.org,Ann Peeters,nl,selentic;cavallo,subscriber,privacy,2024-03-01\n" in imported
    for command in ("export", "forget", "unsubscribe"):
        assert f"Example:\n    addendum subscribers {command} " in run("--repo", notify_repo, "subscribers", command, "--help").stdout
