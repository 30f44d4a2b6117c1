"""Acceptance records on SQLite and PostgreSQL: who accepted which version, who must accept again, the HTTP API on uvicorn."""

from __future__ import annotations

import json
import secrets
import shutil
from collections.abc import Callable
from datetime import date
from pathlib import Path

import httpx
import pytest
from click.testing import Result

from addendum.config import open_repo
from addendum.errors import HistoryError
from addendum.history.ledger import PublishedVersion
from addendum.notify.acceptances import acceptance_stats, need_among, needs_acceptance, target_version
from addendum.notify.state import open_state
from conftest import PROJECT
from tests_support import GIT_IDENTITY, Served, git_in, invoke_ok

FIRST = "privacy@2018-05-19"
HEADER = "user,policy,version,site,language,accepted_at,method"
TYPO = ("no longer which to receive", "no longer wish to receive")
SHIELD = ("is certified in the EU-U.S. Privacy Shield Framework",
          "transfers it to the United States under the European Commission's standard contractual clauses")


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The state store of the test, on each backend; its keys from the environment."""
    url = f"sqlite:///{tmp_path / 'state.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    monkeypatch.setenv("ADDENDUM_DATABASE_URL", url)
    monkeypatch.setenv("ADDENDUM_NOTIFY_KEYS", f"1:{secrets.token_urlsafe(32)}")
    return url


@pytest.fixture
def privacy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shipped policy as first published, in a git repository: privacy@2018-05-19 only."""
    for name, value in GIT_IDENTITY.items():
        monkeypatch.setenv(name, value)
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copy(PROJECT / "addendum.toml", root / "addendum.toml")
    shutil.copytree(PROJECT / "history" / "privacy" / "2018-05-19" / "source", root / "policies" / "privacy")
    git_in(root, "init", "-q", "-b", "main")
    git_in(root, "add", "-A")
    git_in(root, "commit", "-q", "-m", "Policy")
    invoke_ok("--repo", root, "publish", "privacy", "--effective", "2018-05-19", "--published", "2018-05-19",
              "--summary", "First version.", "--summary-nl", "Eerste versie.", "--material")
    return root


def revise(root: Path, change: tuple[str, str], message: str, *publish_args: str) -> None:
    """Change one English sentence, commit and publish it."""
    en = root / "policies" / "privacy" / "en.md"
    text = en.read_text(encoding="utf-8")
    assert change[0] in text
    en.write_text(text.replace(*change), encoding="utf-8")
    git_in(root, "commit", "-q", "-am", message)
    invoke_ok("--repo", root, "publish", "privacy", *publish_args)


def import_rows(run: Callable[..., Result], root: Path, rows: list[str], expect: int = 0, name: str = "in.csv") -> Result:
    path = root.parent / name
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return run("--repo", root, "acceptances", "import", path, expect=expect)


def stored_values(root: Path) -> set[str]:
    """Every value in every table of the repository's state store, as text."""
    from sqlalchemy import select

    from addendum.notify.store import metadata

    with open_state(open_repo(root)) as state, state.store.connect() as connection:
        return {str(value) for table in metadata.sorted_tables for row in connection.execute(select(table)) for value in row}


def must_accept(root: Path, policy: str = "privacy", at: str = "2030-01-01") -> dict[str, int]:
    with open_state(open_repo(root)) as state:
        stats = acceptance_stats(state, policy, date.fromisoformat(at))
    return {f"{row.site_id} {row.version_id}": row.must_accept for row in stats.rows}


# ---------------------------------------------------------------------------------------------------------------
# The flow: editorial versions never ask again, material ones do


def test_only_a_material_version_asks_users_to_accept_again(privacy: Path, database: str, run: Callable[..., Result]) -> None:
    import_rows(run, privacy, [f"u-{n},privacy,{FIRST},selentic,en,2019-0{n}-01T10:00:00Z,clickwrap" for n in (1, 2, 3)])
    assert must_accept(privacy) == {f"selentic {FIRST}": 0}

    revise(privacy, TYPO, "Fix a typo", "--effective", "2020-06-01", "--published", "2020-06-01",
           "--summary", "A typo fixed.", "--editorial", "--reason", "Only a typo.")
    assert must_accept(privacy) == {f"selentic {FIRST}": 0}
    answer = run("--repo", privacy, "acceptances", "needs", "u-1", "--policy", "privacy", "--site", "selentic", "--at", "2030-01-01")
    assert answer.stdout == "u-1: has accepted privacy@2020-06-01 (accepted last: privacy@2018-05-19)\n"

    revise(privacy, SHIELD, "Replace the Privacy Shield", "--effective", "2020-09-01", "--published", "2020-08-01",
           "--summary", "Standard contractual clauses instead of the Privacy Shield.", "--summary-nl", "Modelcontractbepalingen.",
           "--material", "--allow-stale")
    assert must_accept(privacy) == {f"selentic {FIRST}": 3}
    needed = run("--repo", privacy, "acceptances", "needs", "u-2", "--policy", "privacy", "--site", "selentic",
                 "--at", "2030-01-01", expect=1)
    assert needed.stdout == ("u-2: must accept privacy@2020-09-01 (accepted last: privacy@2018-05-19)\n"
                             "  privacy@2020-09-01 (material): Standard contractual clauses instead of the Privacy Shield.\n")
    with open_state(open_repo(privacy)) as state:
        need, standing, _ = needs_acceptance(state, "u-3", "privacy", "selentic")
        assert standing is not None and standing.version_id == FIRST
        assert [(c.version.id, c.material) for c in need.changes] == [("privacy@2020-06-01", False), ("privacy@2020-09-01", True)]
        # Before the material version took effect, it asks only with upcoming.
        assert not needs_acceptance(state, "u-3", "privacy", "selentic", at=date(2020, 8, 15))[0].needed
        assert needs_acceptance(state, "u-3", "privacy", "selentic", at=date(2020, 8, 15), upcoming=True)[0].needed

    import_rows(run, privacy, ["u-3,privacy,privacy@2020-09-01,selentic,en,2020-09-05T08:00:00Z,email-link"], name="more.csv")
    assert must_accept(privacy) == {f"selentic {FIRST}": 2, "selentic privacy@2020-09-01": 0}
    stats = run("--repo", privacy, "acceptances", "stats", "privacy", "--at", "2030-01-01")
    assert stats.stdout.splitlines() == [
        "privacy: who must accept privacy@2020-09-01",
        "site           accepted last                 users  must accept",
        "selentic       privacy@2018-05-19                2            2",
        "selentic       privacy@2020-09-01                1            0",
        "total                                            3            2",
    ]
    pending = run("--repo", privacy, "acceptances", "pending", "privacy", "--at", "2030-01-01")
    assert pending.stdout.split() == ["selentic", "u-1", FIRST, "en", "selentic", "u-2", FIRST, "en"]
    assert pending.stderr == "2 user(s) must accept privacy@2020-09-01\n"
    # A correction is a new record: u-3's acceptance is superseded by a later one of the first version.
    import_rows(run, privacy, ["u-3,privacy,privacy@2018-05-19,selentic,en,2020-09-06T08:00:00Z,clickwrap"], name="fix.csv")
    assert must_accept(privacy) == {f"selentic {FIRST}": 3}
    listed = run("--repo", privacy, "acceptances", "list", "--user", "u-3")
    assert [line.split()[4] for line in listed.stdout.splitlines()] == [FIRST, "privacy@2020-09-01", FIRST]


def version(n: int, classification: str, hashes: dict[str, str]) -> PublishedVersion:
    return PublishedVersion(f"terms@2024-0{n}-01", "terms", date(2024, n, 1), date(2024, n, 1), "", classification,
                            f"reason {n}", "", {"en": f"Version {n}.", "nl": f"Versie {n}."}, hashes)


def test_a_material_version_asks_only_the_readers_whose_text_it_changed() -> None:
    versions = [version(1, "material", {"main/en": "a", "main/nl": "x", "shop/en": "s"}),
                version(2, "material", {"main/en": "b", "main/nl": "x", "shop/en": "s"}),  # English on main only
                version(3, "editorial", {"main/en": "c", "main/nl": "y", "shop/en": "s2"}),
                version(4, "material", {"main/en": "a", "main/nl": "z", "shop/en": "s2"})]  # back to the text accepted
    first, last = versions[0].id, versions[-1]
    assert need_among(versions, versions[1], first, "main", "en").needed
    assert not need_among(versions, versions[1], first, "main", "nl").needed
    assert not need_among(versions, versions[1], first, "shop", "en").needed
    dutch = need_among(versions, last, first, "main", "nl")
    assert dutch.needed and [(c.version.id, c.material, c.summary) for c in dutch.changes] == \
        [("terms@2024-03-01", False, "Versie 3."), ("terms@2024-04-01", True, "Versie 4.")]
    assert not need_among(versions, last, first, "main", "en").needed  # the same text as the one accepted
    assert not need_among(versions, last, "terms@2024-04-01", "main", "nl").needed
    assert not need_among(versions, versions[1], "terms@2024-04-01", "main", "en").needed  # accepted a later one
    assert need_among(versions, last, None, "main", "en").needed
    assert target_version(versions, date(2024, 2, 15)).id == "terms@2024-02-01"
    assert target_version(versions, date(2024, 2, 15), upcoming=True).id == "terms@2024-04-01"
    with pytest.raises(HistoryError, match="no version of the policy was in force on 2023-01-01"):
        target_version(versions, date(2023, 1, 1))


# ---------------------------------------------------------------------------------------------------------------
# Import, export, forget


def test_an_import_with_a_bad_row_stores_nothing_and_names_every_bad_line(privacy: Path, database: str,
                                                                           run: Callable[..., Result]) -> None:
    good = [f"u-{n},privacy,{FIRST},selentic,en,2019-01-01T10:00:00Z,clickwrap" for n in range(1500)]
    bad = ["ann@example.org,privacy,privacy@2018-05-19,selentic,en,2019-01-01T10:00:00Z,clickwrap",
           "u-x,privacy,privacy@2017-01-01,selentic,en,2019-01-01T10:00:00Z,clickwrap",
           "u-x,privacy,privacy@2018-05-19,mars,en,2019-01-01T10:00:00Z,clickwrap",
           "u-x,privacy,privacy@2018-05-19,selentic,en,2019-01-01T10:00:00,clickwrap",
           "u-x,privacy,privacy@2018-05-19,selentic,en,2018-01-01T10:00:00Z,clickwrap",
           "u-x,privacy,privacy@2018-05-19,selentic,en,2019-01-01T10:00:00Z,phone"]
    result = import_rows(run, privacy, good + bad + good[:1], expect=2)
    path = privacy.parent / "in.csv"
    assert result.stderr.splitlines() == [
        f"{path}:1502: user: the user reference looks like an e-mail address",
        f"{path}:1503: version: privacy has no published version privacy@2017-01-01",
        f"{path}:1504: site: privacy@2018-05-19 has no text for site 'mars' in language 'en'",
        f"{path}:1505: accepted_at: accepted_at '2019-01-01T10:00:00' has no time zone",
        f"{path}:1506: accepted_at: accepted_at 2018-01-01T10:00:00Z is before privacy@2018-05-19 was published (2018-05-19)",
        f"{path}:1507: method: method 'phone' is not one of clickwrap, signup, email-link",
        f"error: 6 bad row(s) in {path}: nothing imported",
        "  fix them and import the file again",
    ]
    assert run("--repo", privacy, "acceptances", "list").stderr == "0 acceptance(s)\n"
    assert import_rows(run, privacy, good).stdout == "imported 1500 acceptance(s)\n"
    assert must_accept(privacy) == {f"selentic {FIRST}": 0}


def test_export_reads_back_and_forget_erases_a_user_everywhere(privacy: Path, database: str, run: Callable[..., Result]) -> None:
    import_rows(run, privacy, ["u-1,privacy,2018-05-19,selentic,en,2019-01-01T10:00:00Z,clickwrap",
                               "u-2,privacy,2018-05-19,selentic,nl,2019-01-01T10:00:00Z,signup",
                               "u-2,privacy,2018-05-19,cavallo,en,2019-01-01T10:00:00Z,signup"])
    exported = run("--repo", privacy, "acceptances", "export").stdout
    assert exported.splitlines()[0] == "user,policy,version,site,language,accepted_at,method,content_hash,ip_hash,ip_key_version,source,recorded_at"
    assert exported.count("\n") == 4
    run("--repo", privacy, "acceptances", "forget", "u-2", "--site", "cavallo")
    assert run("--repo", privacy, "acceptances", "forget", "u-2").stdout == "forgot u-2: 1 acceptance record(s) erased\n"
    records = [json.loads(line) for line in run("--repo", privacy, "acceptances", "export", "--format", "jsonl").stdout.splitlines()]
    assert [(r["user"], r["site"]) for r in records] == [("u-1", "selentic")]
    assert "u-2" not in stored_values(privacy) and "u-1" in stored_values(privacy)
    assert must_accept(privacy) == {f"selentic {FIRST}": 0}
    with open_state(open_repo(privacy)) as state:
        assert needs_acceptance(state, "u-2", "privacy", "selentic", "nl")[0].needed  # nothing left of them: asked anew
    backup = privacy.parent / "export.csv"
    backup.write_text(exported, encoding="utf-8")
    assert run("--repo", privacy, "acceptances", "import", backup).stdout == "imported 3 acceptance(s)\n"


# ---------------------------------------------------------------------------------------------------------------
# The HTTP API on a real uvicorn


def test_sites_record_and_ask_over_http_with_their_own_keys(privacy: Path, database: str, run: Callable[..., Result]) -> None:
    key = run("--repo", privacy, "acceptances", "keys", "add", "selentic").stdout.strip()
    other = run("--repo", privacy, "acceptances", "keys", "add", "cavallo").stdout.strip()
    assert key.startswith("adk_") and key not in run("--repo", privacy, "acceptances", "keys", "list").stdout
    run("--repo", privacy, "acceptances", "keys", "add", "mars", expect=2)
    server = Served(privacy, "--public", "--no-watch")
    try:
        with httpx.Client(base_url=server.base, timeout=10, headers={"Authorization": f"Bearer {key}"}) as client:
            body = {"user": "u-7", "policy": "privacy", "version": FIRST, "language": "en", "method": "clickwrap",
                    "ip": "203.0.113.7", "accepted_at": "2019-02-01T09:00:00+01:00"}
            created = client.post("/api/acceptances", json=body)
            assert created.status_code == 201, created.text
            record = created.json()["acceptance"]
            assert (record["user"], record["site"], record["accepted_at"], record["source"]) == \
                ("u-7", "selentic", "2019-02-01T08:00:00Z", f"api:{key[4:16]}")
            assert record["ip_hash"] and "203.0.113.7" not in created.text and created.headers["cache-control"] == "no-store"
            again = client.post("/api/acceptances", json={**body, "accepted_at": None}).json()["acceptance"]
            assert again["ip_hash"] == record["ip_hash"]  # the same address, the same keyed hash

            listed = client.get("/api/acceptances/u-7", params={"policy": "privacy"}).json()
            assert [r["id"] for r in listed["acceptances"]] == [again["id"], record["id"]]
            answer = client.get("/api/needs-acceptance/u-7", params={"policy": "privacy", "lang": "en"}).json()
            assert (answer["needs_acceptance"], answer["version"]["id"], answer["accepted"]["version"]) == (False, FIRST, FIRST)
            nobody = client.get("/api/needs-acceptance/u-8", params={"policy": "privacy", "lang": "en"}).json()
            assert (nobody["needs_acceptance"], nobody["accepted"]) == (True, None)

            for request, status, error, field in [
                (client.post("/api/acceptances", json={**body, "method": "fax"}), 400, "method 'fax' is not one of", "method"),
                (client.post("/api/acceptances", json={**body, "user": "ann@example.org"}), 400, "looks like an e-mail", "user"),
                (client.post("/api/acceptances", json={**body, "extra": 1}), 400, "unknown field 'extra'", "extra"),
                (client.post("/api/acceptances", json={**body, "content_hash": "sha256:00"}), 400, "is not the hash", "content_hash"),
                (client.post("/api/acceptances", content=b"{not json"), 400, "not JSON", "body"),
                (client.post("/api/acceptances", json={**body, "site": "cavallo"}), 403, "for site 'selentic'", None),
                (client.get("/api/acceptances/u-7", params={"site": "cavallo"}), 403, "not 'cavallo'", None),
                (client.get("/api/needs-acceptance/u-7"), 400, "the policy is missing", "policy"),
                (client.get("/api/needs-acceptance/u-7", params={"policy": "nope"}), 400, "no policy 'nope'", "policy"),
                (client.get("/api/needs-acceptance/u-7", params={"policy": "privacy", "lang": "xx"}), 400, "no text for site", "lang"),
                (client.post("/api/acceptances", content=b"x" * 20_000), 413, "larger than 16384 bytes", None),
                (client.post("/api/acceptances", json=body, headers={"Authorization": ""}), 401, "missing or malformed", None),
                (client.get("/api/acceptances/u-7", headers={"Authorization": f"Bearer {key[:-2]}xx"}), 401, "not valid", None),
            ]:
                assert request.status_code == status, request.text
                assert error in request.json()["error"] and request.json().get("field") == field, request.text
            assert client.get("/api/acceptances/u-7", headers={"Authorization": ""}).headers["www-authenticate"] == "Bearer"

            assert client.get("/api/acceptances/u-7", headers={"Authorization": f"Bearer {other}"}).json()["acceptances"] == []
            assert not any("203.0.113.7" in value or key[17:] in value for value in stored_values(privacy))
            run("--repo", privacy, "acceptances", "keys", "revoke", other[4:16])
            refused = client.get("/api/acceptances/u-7", headers={"Authorization": f"Bearer {other}"})
            assert refused.status_code == 401 and "was revoked" in refused.json()["error"]
    finally:
        assert server.stop() == 0
