"""`addendum subscribers`: validation, import, export, removal, erasure and unsubscribe tokens, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import create_engine, select

from addendum.config import open_repo
from addendum.errors import NotifyError
from addendum.notify.state import open_state
from addendum.notify.store import metadata
from addendum.notify.subscribers import list_subscribers
from addendum.notify.tokens import load_keyring, read_unsubscribe_token, unsubscribe_token
from tests_support import git_in, set_config

HEADER = "email,name,language,sites,audience\n"


def write_csv(folder: Path, text: str, name: str = "people.csv") -> Path:
    path = folder / name
    path.write_bytes(text.encode("utf-8"))
    return path


def listed(run: Callable[..., Result], repo: Path) -> list[str]:
    return [line.split()[0] for line in run("--repo", repo, "subscribers", "list").stdout.splitlines()]


def every_value(url: str) -> list[str]:
    """Every value in every table of the state store, as lower-case text (bytes decoded)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            values = [value for table in metadata.sorted_tables for row in connection.execute(select(table)) for value in row]
    finally:
        engine.dispose()
    return [(v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)).lower() for v in values]


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
    run("--repo", notify_repo, "notify", "privacy", "privacy@2020-09-01", "--yes", expect=1)
    run("--repo", notify_repo, "notify", "privacy", "privacy@2020-09-01", "--yes")  # the retry goes through
    database = notify_repo / ".addendum" / "state.db"
    assert any("ann@example.org" in value for value in every_value(f"sqlite:///{database}"))
    forgot = run("--repo", notify_repo, "subscribers", "forget", "ANN@example.org")
    assert forgot.stdout == "forgot ANN@example.org: subscriber erased, 2 outbox record(s) erased, address suppressed\n"
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
    run("--repo", notify_repo, "notify", "privacy", "privacy@2020-09-01", "--yes")
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
    run("--repo", notify_repo, "notify", "privacy", "privacy@2020-09-01", "--yes")
    assert listed(run, notify_repo) == ["ann@example.org", "bram@example.org"]
    run("--repo", notify_repo, "subscribers", "forget", "ann@example.org")
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
