"""A policy's source as an editable .docx and back: export → import without an edit changes nothing (`diff` exit 0),
for the base text and a site's overrides; edits, new and removed headings, tracked changes and comments."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import docx
import pytest
from lxml import etree

from addendum.render.word.validate import validate_package
from office import Job, Office, soffice

W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


@pytest.fixture
def repo(shipped: Path) -> Path:
    """The shipped policies in a git repository, committed, so that `diff` compares the working tree with HEAD."""
    env = {"GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "T",
           "GIT_COMMITTER_EMAIL": "t@example.org", "PATH": "/usr/bin:/bin", "HOME": str(shipped)}
    for command in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "policies"]):
        subprocess.run(command, cwd=shipped, env=env, check=True, timeout=60)
    return shipped


@pytest.mark.parametrize(("language", "site"), [("en", None), ("nl", None), ("en", "cavallo"), ("en", "equihealth")])
def test_export_then_import_without_an_edit_changes_nothing(run, repo: Path, tmp_path: Path, language: str, site: str | None) -> None:
    out = tmp_path / "p.docx"
    site_args = ["--site", site] if site else []
    run("--repo", repo, "export-document", "privacy", "--lang", language, *site_args, "-o", out)
    assert validate_package(out.read_bytes()) == []
    result = run("--repo", repo, "import-document", out, "--into", "privacy", "--lang", language, *site_args)
    assert "nothing changed" in result.stderr
    run("--repo", repo, "diff", "privacy", expect=0)


def test_the_export_bookmarks_sections_locks_placeholders_marks_overrides_and_records_its_origin(run, repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.docx"
    run("--repo", repo, "export-document", "privacy", "--lang", "en", "--site", "cavallo", "-o", out)
    with zipfile.ZipFile(out) as package:
        root = etree.fromstring(package.read("word/document.xml"))
        custom = package.read("docProps/custom.xml").decode()
    names = {b.get(f"{W}name") for b in root.iter(f"{W}bookmarkStart")}
    assert {"s_collection", "s_google_analytics", "s_sharing"} <= names
    controls = list(root.iter(f"{W}sdt"))
    assert {c.find(f"{W}sdtPr/{W}tag").get(f"{W}val") for c in controls} >= {"{{ site.contact.name }}", "{{ site.contact.email }}"}
    assert all(c.find(f"{W}sdtPr/{W}lock").get(f"{W}val") == "sdtContentLocked" for c in controls)
    assert "".join(controls[0].itertext()).startswith("{{")
    notes = [p for p in root.iter(f"{W}p") if (s := p.find(f"{W}pPr/{W}pStyle")) is not None and s.get(f"{W}val") == "AddendumSiteNote"]
    assert len(notes) == 1 and "Cavallo" in "".join(notes[0].itertext())
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()
    for value in ("source", "privacy", "en", "cavallo", head):
        assert f">{value}<" in custom


def _paragraph(document: docx.document.Document, starts: str) -> docx.text.paragraph.Paragraph:
    return next(p for p in document.paragraphs if p.text.startswith(starts))


def test_edits_new_and_removed_headings_tracked_changes_and_comments_come_back(run, repo: Path, tmp_path: Path) -> None:
    out, edited = tmp_path / "p.docx", tmp_path / "edited.docx"
    run("--repo", repo, "export-document", "privacy", "--lang", "en", "-o", out)
    document = docx.Document(str(out))
    pixel = _paragraph(document, "We use the Facebook Pixel")
    for run_ in pixel.runs[1:]:
        run_._r.getparent().remove(run_._r)
    pixel.runs[0].text = "We no longer use the Facebook Pixel."
    document.add_comment(pixel.runs[0], text="Checked with marketing.", author="Lawyer")
    hotjar = _paragraph(document, "Hotjar")
    hotjar_text = _paragraph(document, "We use the tool Hotjar")
    for gone in (hotjar, hotjar_text):
        gone._p.getparent().remove(gone._p)
    added = document.add_paragraph("Retention periods", style="Heading 2")
    assert added.style is not None
    document.add_paragraph("We keep invoices for *seven* years.", style="Body Text")
    # A tracked insertion, as Word writes one when Track Changes is on.
    target = _paragraph(document, "We keep invoices")
    insertion = etree.SubElement(target._p, f"{W}ins", {f"{W}id": "9001", f"{W}author": "Lawyer", f"{W}date": "2026-01-01T00:00:00Z"})
    new_run = etree.SubElement(insertion, f"{W}r")
    etree.SubElement(new_run, f"{W}t").text = " By law."
    document.save(str(edited))

    refused = run("--repo", repo, "import-document", edited, "--into", "privacy", "--lang", "en", expect=2)
    assert "1 unresolved tracked change" in refused.stderr and "--accept-changes" in refused.stderr
    result = run("--repo", repo, "import-document", edited, "--into", "privacy", "--lang", "en", "--accept-changes")
    assert "new section: retention-periods" in result.stderr
    assert "removed section: hotjar" in result.stderr
    assert "changed section: facebook-pixel" in result.stderr
    assert "comment by Lawyer: Checked with marketing." in result.stderr
    text = (repo / "policies/privacy/en.md").read_text(encoding="utf-8")
    assert "We no longer use the Facebook Pixel." in text
    assert "## Retention periods {#retention-periods}\n\nWe keep invoices for \\*seven\\* years. By law.\n" in text
    assert "{#hotjar}" not in text
    assert "{{ site.contact.name }}\\\n{{ site.contact.address }}\\\n{{ site.contact.email }}" in text
    diff = run("--repo", repo, "diff", "privacy", "--lang", "en", expect=1)
    assert "facebook" in diff.stdout.lower()


def test_a_rendered_docx_and_a_zip_bomb_are_refused(run, repo: Path, tmp_path: Path) -> None:
    rendered = tmp_path / "r.docx"
    run("--repo", repo, "render", "privacy", "--format", "docx", "-o", rendered)
    refused = run("--repo", repo, "import-document", rendered, "--into", "privacy", "--lang", "en", expect=2)
    assert "rendered text for readers" in refused.stderr and "export-document" in refused.stderr
    bomb = tmp_path / "bomb.docx"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as package:
        package.writestr("word/document.xml", b"<" + b" " * 60_000_000 + b"/>")
    refused = run("--repo", repo, "import-document", bomb, "--into", "privacy", "--lang", "en", expect=2)
    assert "zip bomb" in refused.stderr
    run("--repo", repo, "diff", "privacy", expect=0)


@pytest.mark.skipif(soffice() is None, reason="LibreOffice is not installed: run scripts/check-system")
def test_an_export_saved_again_by_libreoffice_imports_without_a_change(run, repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.docx"
    run("--repo", repo, "export-document", "privacy", "--lang", "en", "--site", "cavallo", "-o", out)
    outcome = Office(tmp_path / "office").run([Job("open", out, tmp_path / "saved.docx")])
    assert all(o.ok for o in outcome), outcome
    run("--repo", repo, "import-document", tmp_path / "saved.docx", "--into", "privacy", "--lang", "en", "--site", "cavallo")
    run("--repo", repo, "diff", "privacy", expect=0)
