"""A notice is refused while what it points readers to is not there: an archived page it links to that was not built
yet, or a site's text that still shows a "[to be provided: …]" marker; --archive builds the archive first and --site
notifies only the sites whose text is complete."""

from __future__ import annotations

from pathlib import Path

from smtp_server import SmtpServer

VERSION = "privacy@2020-09-01"
LATE = ("--yes", "--late", "--reason", "a test of a past version")


def subscribe(run, repo: Path, csv_text: str) -> None:
    path = repo.parent / "people.csv"
    path.write_text(csv_text, encoding="utf-8")
    run("--repo", repo, "subscribers", "import", path)


def test_a_missing_archived_page_is_refused_naming_it_and_archive_builds_it(run, notify_repo, smtp: SmtpServer):
    subscribe(run, notify_repo, "email,name,language,sites,audience\nann@example.org,Ann,en,selentic,subscriber\n"
                                "cleo@example.org,Cleo,nl,selentic,subscriber\n")
    page = notify_repo / "history/privacy/2020-09-01/selentic/nl/redline.html"
    changelog = notify_repo / "history/privacy/changelog-nl.html"
    page.unlink()
    changelog.unlink()
    refused = run("--repo", notify_repo, "notify", "privacy", VERSION, *LATE, expect=2)
    assert ("error: privacy@2020-09-01: a notice sent now would point readers to text that is not there yet:\n"
            "  - site selentic, language nl: history/privacy/2020-09-01/selentic/nl/redline.html does not exist\n"
            "  - site selentic, language nl: history/privacy/changelog-nl.html does not exist\n") in refused.stderr
    assert "build the archive first: addendum archive privacy (or pass --archive to build what is missing)" in refused.stderr
    assert "language en" not in refused.stderr and "Traceback" not in refused.stderr
    assert smtp.handler.received == []
    sent = run("--repo", notify_repo, "notify", "privacy", VERSION, *LATE, "--archive")
    assert "sent 2, retry 0, failed 0, unknown 0" in sent.stdout
    assert page.is_file() and changelog.is_file()


def test_a_dry_run_or_preview_refuses_nothing(run, notify_repo, smtp: SmtpServer, tmp_path: Path):
    subscribe(run, notify_repo, "email,name,language,sites,audience\nann@example.org,Ann,en,selentic,subscriber\n")
    (notify_repo / "history/privacy/2020-09-01/selentic/en/index.html").unlink()
    assert "1 notice(s)" in run("--repo", notify_repo, "notify", "privacy", VERSION, "--dry-run").stdout


def test_a_site_showing_a_pending_marker_is_refused_and_site_notifies_only_the_complete_ones(run, archived_copy: Path,
                                                                                            smtp: SmtpServer, monkeypatch):
    for name in ("ADDENDUM_DATABASE_URL", "ADDENDUM_NOTIFY_KEYS"):
        monkeypatch.delenv(name, raising=False)
    shipped = archived_copy  # the shipped policy, archived: its cavallo and equihealth sites still lack their contact
    subscribe(run, shipped, "email,name,language,sites,audience\nann@example.org,Ann,en,selentic,subscriber\n"
                            "carla@example.org,Carla,nl,cavallo,account\n")
    refused = run("--repo", shipped, "notify", "privacy", VERSION, *LATE, expect=2)
    assert "error: privacy@2020-09-01: a notice sent now would point readers to text that is not there yet:" in refused.stderr
    assert ("  - site cavallo, language nl: §contact shows [nog aan te vullen: contact.name], "
            "[nog aan te vullen: contact.address], [nog aan te vullen: contact.email]") in refused.stderr
    assert "site selentic, language" not in refused.stderr and "does not exist" not in refused.stderr
    assert ("give the values under [sites.cavallo] in policies/privacy/policy.toml (and take them off its pending list), "
            "then publish a version with them and notify that one; or notify only the sites whose text is complete for "
            "now: --site equihealth --site selentic") in refused.stderr
    assert smtp.handler.received == [], refused.stderr
    sent = run("--repo", shipped, "notify", "privacy", VERSION, *LATE, "--site", "selentic")
    assert "sent 1, retry 0, failed 0, unknown 0" in sent.stdout
    assert list(smtp.handler.by_recipient()) == ["ann@example.org"]
    unknown = run("--repo", shipped, "notify", "privacy", VERSION, *LATE, "--site", "selentc", expect=2)
    assert "selentc" in unknown.stderr and "selentic" in unknown.stderr
