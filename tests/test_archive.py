"""`addendum archive`: every version × site × language as HTML, PDF/A and JSON; incremental, parallel, deterministic."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from pypdf import PdfReader

from addendum import paths
from addendum.archive.manifest import plan_views
from addendum.config import open_repo
from addendum.history.ledger import read_ledger
from addendum.policy.model import Location
from addendum.policy.resolve import ResolvedSection, canonical_text, content_hash
from addendum.render.pdf import FONT_FACES
from tests_support import git_in, leave_shop_contact_pending, publish_terms

SITES = ("selentic", "cavallo", "equihealth")
LANGUAGES = ("en", "nl")


def archived_files(history: Path) -> dict[str, bytes]:
    """Every file the archive wrote (not the ledger, not the versions' sources); in the manifest, the time each file
    was built is left out (it is the one thing two builds do not share)."""
    return {p.relative_to(history).as_posix(): re.sub(rb'\n *"built": "[^"]*",', b"", p.read_bytes()) if p.name == "manifest.json"
            else p.read_bytes() for p in sorted(history.rglob("*"))
            if p.is_file() and p.name != "ledger.toml" and "source" not in p.relative_to(history).parts}


def manifest_of(history: Path) -> dict[str, dict[str, object]]:
    return dict(json.loads((history / "manifest.json").read_text(encoding="utf-8"))["files"])


class Page(HTMLParser):
    """Start tags with attributes, and the text, of an HTML page."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def links(self) -> list[str]:
        return [str(a["href"]) for t, a in self.tags if t == "a" and a.get("href")]


def side_of(redline: str, side: str) -> str:
    """The text of one side of a redline: without the insertions (old) or the deletions (new), tags removed."""
    other = "ins" if side == "old" else "del"
    kept = re.sub(rf"<{other}\b[^>]*>.*?</{other}>", "", redline, flags=re.DOTALL)
    return " ".join(re.sub(r"<[^>]+>", "", kept).split())


# ------------------------------------------------------------------------------------------- the shipped history


def test_every_shipped_version_site_and_language_is_archived(shipped_archive: Path) -> None:
    history = shipped_archive / "history"
    versions = read_ledger(history, "privacy")
    assert [v.id for v in versions][:1] == ["privacy@2018-05-19"] and len(versions) >= 2
    manifest = manifest_of(history)
    files = archived_files(history)
    for index, version in enumerate(versions):
        for site in SITES:
            for language in LANGUAGES:
                folder = paths.version_dir("privacy", version.slug, site, language)
                names = {"index.html", "policy.pdf", "policy.json"} | ({"redline.html", "redline.pdf"} if index else set())
                assert {p.rsplit("/", 1)[1] for p in files if p.startswith(folder + "/")} == names
                for name in names:
                    entry = manifest[f"{folder}/{name}"]
                    assert entry["version"] == version.id and entry["commit"] == version.commit
                    assert entry["content_hash"] == version.hashes[f"{site}/{language}"]
    for name in ("index.html", "index-en.html", "index-nl.html", "changelog-en.html", "changelog-nl.md", "feed-nl.atom"):
        assert f"privacy/{name}" in manifest
    # The manifest holds every archived file, with its SHA-256 and size, and nothing else.
    assert set(manifest) == set(files) - {"manifest.json"}
    for path, data in files.items():
        if path != "manifest.json":
            assert manifest[path]["sha256"] == hashlib.sha256(data).hexdigest() and manifest[path]["size"] == len(data)


def test_a_version_page_is_self_contained_and_links_its_neighbours(shipped_archive: Path) -> None:
    history = shipped_archive / "history"
    second = read_ledger(history, "privacy")[1]
    page_path = history / paths.version_page("privacy", second.slug, "cavallo", "nl")
    html = page_path.read_text(encoding="utf-8")
    page = Page(html)
    csp = [a["content"] for t, a in page.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in str(csp[0]) and "script-src" not in str(csp[0])
    assert not [t for t, a in page.tags if t in ("script", "link", "img", "iframe", "object", "embed")]
    assert html.count("src: url(data:font/woff;base64,") == len(FONT_FACES)  # every bundled font travel inside the page
    assert not re.search(r"(?:href|src)=\"(?:https?:)?//", html)  # nothing fetched from elsewhere
    text = " ".join(page.text)
    assert second.id in text and "privacy@2018-05-19" in text
    for href in page.links():
        target = (page_path.parent / href.split("#")[0]).resolve()
        assert target.is_file(), href
    links = page.links()
    assert "redline.html" in links and "policy.pdf" in links and "policy.json" in links
    assert "../../../2018-05-19/cavallo/nl/index.html" in links  # the previous version
    assert "../../../changelog-nl.html" in links and "../../../index-nl.html" in links  # "All versions"
    # A record kept unchanged cannot know what came after it: no "later versions" claim, no link into the index's rows.
    assert "Latere versies" not in text and not [href for href in links if "index-nl.html#" in href]
    assert "../en/index.html" in links and "../../selentic/nl/index.html" in links


def test_the_index_lists_versions_newest_first_with_every_sites_files(shipped_archive: Path) -> None:
    history = shipped_archive / "history"
    versions = read_ledger(history, "privacy")
    html = (history / "privacy" / "index-nl.html").read_text(encoding="utf-8")
    positions = [html.index(f'id="v-{v.slug}"') for v in versions]
    assert positions == sorted(positions, reverse=True)
    assert "19 mei 2018" in html and versions[0].summaries["nl"] in html
    links = Page(html).links()
    for version in versions:
        for site in SITES:
            assert f"{version.slug}/{site}/nl/index.html" in links and f"{version.slug}/{site}/nl/policy.pdf" in links
    assert (history / "privacy" / "index.html").read_bytes() == (history / "privacy" / "index-en.html").read_bytes()


def test_the_index_marks_each_text_that_shows_a_value_not_provided_yet(run, published_terms) -> None:
    root = published_terms(1)
    leave_shop_contact_pending(root)
    git_in(root, "commit", "-qam", "Shop contact to follow")
    warned = run("--repo", root, "publish", "terms", "--effective", "2024-02-01", "--published", "2023-12-01", "--editorial",
                 "--summary", "Shop contact to follow.", "--reason", "The shop's address changes.").stderr
    assert "shop/en §contact shows [to be provided: contact.email]" in warned
    run("--repo", root, "archive")
    history = root / "history" / "terms"
    second = read_ledger(root / "history", "terms")[1]
    english = (history / "index-en.html").read_text(encoding="utf-8")
    rows = {(version, site): row for version, site, row in
            re.findall(r'<tr>\n<th scope="row">(?:Main|Shop)</th>\n<td><a href="(2024-0\d-01)/(main|shop)/en/index.html">(.*?)</tr>', english, re.DOTALL)}
    assert len(rows) == 4
    marked = rows[("2024-02-01", "shop")]
    assert '<p class="incomplete">Incomplete: shows 1 value not provided yet\n(<a href="2024-02-01/shop/en/index.html#contact">§contact</a>)</p>' in marked
    assert [key for key, row in rows.items() if "incomplete" in row] == [("2024-02-01", "shop")]  # main, and the first version, are complete
    page = (root / "history" / paths.version_page("terms", second.slug, "shop", "en")).read_text(encoding="utf-8")
    assert 'id="contact"' in page and "[to be provided: contact.email]" in page  # what the mark points at
    dutch = (history / "index-nl.html").read_text(encoding="utf-8")
    assert "Onvolledig: toont 1 gegeven dat nog moet worden aangevuld" in dutch and 'href="2024-02-01/shop/nl/index.html#contact"' in dutch
    assert dutch.count('class="incomplete"') == 1


@pytest.mark.parametrize("language, date_text, sentence", [
    ("nl", "19 mei 2018", "Selentic"),
    ("en", "19 May 2018", "We believe privacy is of the utmost importance"),
])
def test_the_pdf_is_pdf_a_with_title_localised_date_and_text(shipped_archive: Path, language: str, date_text: str,
                                                            sentence: str) -> None:
    pdf = shipped_archive / "history" / paths.version_pdf("privacy", "2018-05-19", "selentic", language)
    reader = PdfReader(pdf)
    text = " ".join(page.extract_text() for page in reader.pages)
    assert date_text in text and "privacy@2018-05-19" in text
    assert sentence in " ".join(text.split())
    title = str(reader.metadata.title if reader.metadata else "")
    assert ("Privacyverklaring" if language == "nl" else "Privacy policy") in title and "Selentic" in title
    assert reader.xmp_metadata is not None
    xml = reader.trailer["/Root"]["/Metadata"].get_object().get_data().decode("utf-8")
    assert re.search(r"pdfaid:part(?:>|=\")3", xml) and re.search(r"pdfaid:conformance(?:>|=\")U", xml), xml
    assert str(reader.trailer["/Root"].get("/Lang", "")).startswith(language)


def test_the_json_holds_the_sections_and_hashes_to_the_ledger(shipped_archive: Path) -> None:
    history = shipped_archive / "history"
    for view in plan_views(read_ledger(history, "privacy")):
        document = json.loads((history / view.path("policy.json")).read_text(encoding="utf-8"))
        assert (document["version"], document["site"]["id"], document["language"]) == (view.version.id, view.site_id, view.language)
        sections = tuple(ResolvedSection(s["id"], s["heading"], s["level"], tuple(s["path"]), s["text"], s["language"],
                                         s["fallback"], s["site_override"], Location(s["source"]["file"], s["source"]["line"]))
                         for s in document["sections"])
        assert content_hash(canonical_text(sections)) == view.version.hashes[view.key] == document["content_hash"]
        assert any(s["id"] == "sharing" for s in document["sections"])


def test_the_redline_shows_the_example_revision(shipped_archive: Path) -> None:
    history = shipped_archive / "history"
    second = read_ledger(history, "privacy")[1]
    html = (history / paths.redline_page("privacy", second.slug, "selentic", "en")).read_text(encoding="utf-8")
    assert re.search(r"<del\b[^>]*>[^<]*Privacy Shield[^<]*</del>", html)
    new_text = json.loads((history / paths.version_json("privacy", second.slug, "selentic", "en")).read_text(encoding="utf-8"))
    assert "Privacy Shield" not in " ".join(s["text"] for s in new_text["sections"])
    reader = PdfReader(history / paths.redline_pdf("privacy", second.slug, "selentic", "en"))
    assert "Privacy Shield" in " ".join(page.extract_text() for page in reader.pages)


# ------------------------------------------------------------------------------------------- running it again


def test_a_second_run_writes_nothing_and_leaves_every_byte(run, archived_copy: Path) -> None:
    history = archived_copy / "history"
    before = archived_files(history)
    stamps = {p: (history / p).stat().st_mtime_ns for p in before}
    result = run("--repo", archived_copy, "archive")
    assert "wrote 0 file(s)" in result.stdout
    assert archived_files(history) == before
    assert {p: (history / p).stat().st_mtime_ns for p in before} == stamps  # not even rewritten with the same bytes


def test_one_worker_and_two_render_the_same_bytes(run, shipped_archive: Path, tmp_path: Path) -> None:
    """Rendering is deterministic: a rebuild from scratch, in one process, gives the archive byte for byte."""
    root = tmp_path / "again"
    shutil.copytree(shipped_archive, root)
    history = root / "history"
    expected = archived_files(history)
    for path in expected:
        (history / path).unlink()
    run("--repo", root, "archive", "--jobs", "1")
    assert archived_files(history) == expected


def test_a_deleted_record_is_restored_identically_and_a_changed_one_is_reported_not_overwritten(run, archived_copy: Path) -> None:
    history = archived_copy / "history"
    pdf = history / paths.version_pdf("privacy", "2018-05-19", "equihealth", "en")
    page = history / paths.version_page("privacy", "2018-05-19", "cavallo", "nl")
    original_pdf = pdf.read_bytes()
    pdf.unlink()
    changed = page.read_bytes().replace(b"Cavallo", b"Cavalo", 1)
    page.write_bytes(changed)
    result = run("--repo", archived_copy, "archive", expect=1)
    assert pdf.read_bytes() == original_pdf
    assert page.read_bytes() == changed
    assert f"changed: history/{paths.version_page('privacy', '2018-05-19', 'cavallo', 'nl')}: not as the manifest records it" in result.stdout


def test_a_lost_manifest_is_rebuilt_from_identical_files(run, archived_copy: Path) -> None:
    history = archived_copy / "history"
    manifest = (history / "manifest.json").read_bytes()
    (history / "manifest.json").unlink()
    result = run("--repo", archived_copy, "archive")
    assert "wrote 0 file(s)" in result.stdout
    # The same record of every file, except when it was built: that the lost manifest knew, and no file says.
    assert archived_files(history)["manifest.json"] == re.sub(rb'\n *"built": "[^"]*",', b"", manifest)
    assert not any("built" in entry for entry in manifest_of(history).values() if entry["kind"] != "listing")


def test_dry_run_lists_what_it_would_write_and_writes_nothing(run, archived_copy: Path) -> None:
    history = archived_copy / "history"
    target = paths.version_json("privacy", "2018-05-19", "selentic", "en")
    (history / target).unlink()
    before = archived_files(history)
    result = run("--repo", archived_copy, "archive", "--dry-run")
    assert result.stdout.splitlines()[0] == f"would write history/{target}"
    assert archived_files(history) == before


def test_progress_is_reported_on_stderr_in_tenths_when_not_a_terminal(run, archived_copy: Path) -> None:
    history = archived_copy / "history"
    for view in plan_views(read_ledger(history, "privacy")):
        (history / view.path("policy.json")).unlink()
    result = run("--repo", archived_copy, "archive", "--jobs", "2")
    lines = [line for line in result.stderr.splitlines() if line.startswith("archive: ")]
    assert lines[-1].startswith("archive: 100% (") and 2 <= len(lines) <= 11


def test_jobs_must_be_positive(run, archived_copy: Path) -> None:
    result = run("--repo", archived_copy, "archive", "--jobs", "0", expect=2)
    assert "--jobs" in result.stderr


# ------------------------------------------------------------------------------------------- a new version


def test_publishing_a_new_version_archives_only_it_and_refreshes_the_listings(run, published_terms) -> None:
    root = published_terms(2)
    history = root / "history"
    run("--repo", root, "archive")
    records = {p: d for p, d in archived_files(history).items() if p.count("/") == 4}
    assert len(records) == 2 * 2 * 3 + 2 * 2 * 5  # 2 sites × 2 languages × (v1: page, PDF, JSON; v2: and the redline, HTML and PDF)
    index_before = (history / "terms" / "index-en.html").read_bytes()
    publish_terms(root, 3)
    result = run("--repo", root, "archive")
    after = archived_files(history)
    new = {p for p in after if p.startswith("terms/2024-03-01/")}
    assert len(new) == 2 * 2 * 5
    assert all(after[p] == data for p, data in records.items())  # earlier versions untouched
    written = int(re.search(r"wrote (\d+) file", result.stdout)[1])  # type: ignore[index]
    assert written == len(new) + len([p for p in after if p.startswith("terms/") and p.count("/") == 1])
    index = (history / "terms" / "index-en.html").read_text(encoding="utf-8")
    assert index.encode() != index_before
    assert index.index('id="v-2024-03-01"') < index.index('id="v-2024-02-01"') < index.index('id="v-2024-01-01"')
    redline = (history / "terms" / "2024-03-01" / "shop" / "nl" / "redline.html").read_text(encoding="utf-8")
    assert "Revision 2." in side_of(redline, "old") and "Revision 3." in side_of(redline, "new")
    assert set(manifest_of(history)) == set(after) - {"manifest.json"}


def test_the_library_reports_what_it_did(published_terms) -> None:
    from addendum.archive.build import archive

    class Recorded:
        def __init__(self) -> None:
            self.phases: list[tuple[str, int]] = []
            self.advanced = 0
            self.finished = False

        def start(self, label: str, total: int) -> None:
            self.phases.append((label, total))

        def advance(self, count: int = 1) -> None:
            self.advanced += count

        def finish(self) -> None:
            self.finished = True

    root = published_terms(1)
    seen = Recorded()
    report = archive(open_repo(root), ["terms"], jobs=1, progress=seen)
    assert report.findings == () and report.kept == 0
    assert [plan.policy_id for plan in report.policies] == ["terms"]
    assert seen.phases == [("archive", seen.advanced)] and seen.advanced > 0 and seen.finished
    assert report.index_pages() == ["terms/index.html"]
    again = archive(open_repo(root), ["terms"], jobs=2)
    assert again.written == () and again.kept == len(report.written) - len([p for p in report.written if p.count("/") == 1])


# ------------------------------------------------------------------------------------------- true dates, reproducible


FALLBACK_ARCHIVE = """
import sys
import weasyprint.pdf.fonts
weasyprint.pdf.fonts.harfbuzz_subset = None  # as on a machine without libharfbuzz-subset0: WeasyPrint's fontTools fallback
from addendum.cli import cli
cli.main(["--repo", sys.argv[1], "archive", "--jobs", "1"], standalone_mode=True)
"""


def test_a_build_on_the_fallback_font_subsetter_is_byte_identical_and_verifies(run, shipped_archive: Path, tmp_path: Path) -> None:
    """The fonts of an archived PDF are subset by Addendum, not by whichever subsetter WeasyPrint finds, and no file
    holds the time it was built: a build on another machine, on another day, gives the same bytes."""
    import subprocess
    import sys

    root = tmp_path / "fallback"
    shutil.copytree(shipped_archive, root)
    history = root / "history"
    expected = archived_files(history)
    for path in expected:
        (history / path).unlink()
    script = tmp_path / "fallback.py"
    script.write_text(FALLBACK_ARCHIVE, encoding="utf-8")
    done = subprocess.run([sys.executable, str(script), str(root)], capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr
    rebuilt = archived_files(history)
    assert [p for p in expected if p != "manifest.json" and rebuilt.get(p) != expected[p]] == []
    assert {p: e["sha256"] for p, e in manifest_of(history).items()} == \
        {p: e["sha256"] for p, e in json.loads(expected["manifest.json"])["files"].items()}
    run("--repo", root, "verify", "--rebuild", "--jobs", "1")  # exit 0: nothing differs


def test_archived_renderings_say_what_they_are_and_carry_no_date_of_their_making(shipped_archive: Path) -> None:
    history = shipped_archive / "history"
    second = read_ledger(history, "privacy")[1]
    html = (history / paths.redline_page("privacy", second.slug, "selentic", "en")).read_text(encoding="utf-8")
    assert "Generated on" not in html and "Prepared" not in html and "Sign-off" not in html
    assert "Rendering of the published version privacy@2020-09-01, published 31 July 2020" in html
    for view in plan_views(read_ledger(history, "privacy")):
        for name in (paths.VERSION_PDF, paths.REDLINE_PDF) if view.previous else (paths.VERSION_PDF,):
            data = (history / view.path(name)).read_bytes()
            assert b"CreationDate" not in data and b"ModDate" not in data, view.path(name)
            reader = PdfReader(history / view.path(name))
            assert "/StructTreeRoot" in reader.trailer["/Root"] and str(reader.trailer["/Root"]["/Lang"]) == view.language
    built = {str(entry.get("built")) for entry in manifest_of(history).values()}
    assert built and all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", b) for b in built), built


def test_the_pdf_a_of_a_version_embeds_its_json_as_an_associated_file(shipped_archive: Path) -> None:
    history = shipped_archive / "history"
    view = plan_views(read_ledger(history, "privacy"))[-1]
    reader = PdfReader(history / view.path(paths.VERSION_PDF))
    assert reader.attachments["policy.json"] == [(history / view.path(paths.VERSION_JSON)).read_bytes()]
    assert reader.trailer["/Root"]["/AF"][0].get_object()["/AFRelationship"] == "/Source"


def _section_texts(html: str, prefix: str) -> dict[str, str]:
    """Per section id, the text a reader sees: headings, notes and deleted text left out, tags as spaces or nothing.
    A page wraps each section in a <section>; a redline marks where each begins with the id of its first element."""
    import html as html_module

    out = {}
    if prefix:
        body_html = html[html.index('<main class="text-body">'):html.index("</main>")]
        starts = list(re.finditer(rf'<[a-z0-9]+ id="{prefix}([a-z0-9-]+)"', body_html))
        chunks = [(m[1], body_html[m.start():n.start() if n else None]) for m, n in zip(starts, [*starts[1:], None], strict=True)]
    else:
        chunks = [(m[1], m[2]) for m in re.finditer(r'<section id="([a-z0-9-]+)"[^>]*>(.*?)</section>', html, flags=re.DOTALL)]
    for section_id, chunk in chunks:
        body = re.sub(r"<del\b[^>]*>.*?</del>", "", chunk, flags=re.DOTALL)
        body = re.sub(r"<h[1-6]\b.*?</h[1-6]>|<p class=\"(?:change-note|fallback-notice|breadcrumb)\".*?</p>|<ul class=\"reasons\">.*?</ul>",
                      "", body, flags=re.DOTALL)
        body = re.sub(r"<(?:br|/?p|/?li|/?ul|/?ol)\b[^>]*>", " ", body)
        out[section_id] = " ".join(html_module.unescape(re.sub(r"<[^>]+>", "", body)).split())
    return out


def test_the_redline_shows_the_text_the_archived_page_shows_section_by_section(shipped_archive: Path) -> None:
    """The redline's new side, deletions removed and markup stripped, is the archived page's text: hard line
    breaks are line breaks, list items items, never a backslash or a dash of Markdown syntax."""
    history = shipped_archive / "history"
    second = read_ledger(history, "privacy")[1]
    for site in SITES:
        for language in LANGUAGES:
            redline = (history / paths.redline_page("privacy", second.slug, site, language)).read_text(encoding="utf-8")
            page = (history / paths.version_page("privacy", second.slug, site, language)).read_text(encoding="utf-8")
            shown, expected = _section_texts(redline, "change-"), _section_texts(page, "")
            assert shown == expected, (site, language)
            assert "\\" not in " ".join(shown.values())


# ------------------------------------------------------------------------------------------- on many machines


def shard_in_a_process(root: Path, shard: str) -> subprocess.Popen[str]:
    """`addendum archive --shard K/N` as one CI job runs it: its own process, its own checkout."""
    return subprocess.Popen([sys.executable, "-m", "addendum", "--repo", str(root), "archive", "--shard", shard, "--jobs", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_three_shards_merged_are_byte_identical_to_one_build_and_conflicts_are_refused(run, published_terms, tmp_path: Path) -> None:
    root = published_terms(2)
    one_machine = tmp_path / "one-machine"
    shutil.copytree(root, one_machine)
    run("--repo", one_machine, "archive", "--jobs", "1")
    checkouts = [tmp_path / f"shard-{k}" for k in (1, 2, 3)]
    for checkout in checkouts:
        shutil.copytree(root, checkout)
    jobs = [shard_in_a_process(checkout, f"{k}/3") for k, checkout in enumerate(checkouts, 1)]
    for job in jobs:
        stdout, stderr = job.communicate(timeout=300)
        assert job.returncode == 0, stderr
        assert "addendum archive merge history/manifest-*-of-3.json" in stdout
    partials = [checkout / "history" / f"manifest-{k}-of-3.json" for k, checkout in enumerate(checkouts, 1)]
    shares = [set(json.loads(p.read_text(encoding="utf-8"))["files"]) for p in partials]
    assert not (shares[0] & shares[1] or shares[0] & shares[2] or shares[1] & shares[2])  # each file built once
    assert set().union(*shares) == set(manifest_of(one_machine / "history"))
    history = root / "history"
    before = archived_files(history)

    result = run("--repo", root, "archive", "merge", *partials[:2], expect=2)
    assert "shard(s) 3/3 missing" in result.stderr
    # The same path with different bytes: refused, naming the path, before anything is written.
    stolen, entry = next((p, e) for p, e in json.loads(partials[0].read_text(encoding="utf-8"))["files"].items())
    second = json.loads(partials[1].read_text(encoding="utf-8"))
    second["files"][stolen] = {**entry, "sha256": "0" * 64}
    tampered = tmp_path / "shard-2" / "history" / "manifest-2-of-3.json"
    original = tampered.read_bytes()
    tampered.write_text(json.dumps(second), encoding="utf-8")
    result = run("--repo", root, "archive", "merge", *partials, expect=2)
    assert f"error: history/{stolen}: conflict: " in result.stderr
    tampered.write_bytes(original)
    shard_file = checkouts[2] / "history" / sorted(shares[2])[0]
    shard_file.write_bytes(shard_file.read_bytes() + b" ")
    result = run("--repo", root, "archive", "merge", *partials, expect=2)
    assert f"{shard_file}: not the file" in result.stderr
    shard_file.write_bytes(shard_file.read_bytes()[:-1])
    assert archived_files(history) == before and not (history / "manifest.json").exists()

    result = run("--repo", root, "archive", "merge", *partials)
    assert result.stdout.startswith("merged 3 shard(s)")
    assert archived_files(history) == archived_files(one_machine / "history")
    run("--repo", root, "verify")
    assert "wrote 0 file(s)" in run("--repo", root, "archive").stdout


def test_shards_in_one_history_folder_merge_there(run, published_terms) -> None:
    root = published_terms(1)
    for k in (1, 2):
        run("--repo", root, "archive", "--shard", f"{k}/2", "--jobs", "1")
    partials = sorted((root / "history").glob("manifest-*-of-2.json"))
    result = run("--repo", root, "archive", "merge", *partials)
    assert "0 copied into history/" in result.stdout
    assert not list((root / "history").glob("manifest-*-of-2.json"))  # now part of manifest.json
    run("--repo", root, "verify")


@pytest.mark.parametrize("shard", ["0/3", "4/3", "3", "1/0", "a/b", "-1/3"])
def test_a_shard_that_is_not_k_of_n_is_refused_with_the_form_to_give(run, make_repo, shard: str) -> None:
    root = make_repo()
    result = run("--repo", root, "archive", f"--shard={shard}", expect=2)
    assert "give --shard K/N with 1 ≤ K ≤ N" in result.stderr and "e.g. --shard 1/3" in result.stderr
    assert not (root / "history" / "manifest.json").exists()
