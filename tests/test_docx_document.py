"""A policy as a Word document: `render`/`show --format docx` for reading and filing, proved with pandoc and LibreOffice."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from addendum.render.word.validate import validate_package
from office import Job, Office, soffice

needs_office = pytest.mark.skipif(soffice() is None, reason="LibreOffice is not installed: run scripts/check-system")


def pandoc_text(path: Path) -> str:
    done = subprocess.run(["pandoc", "-f", "docx", "-t", "plain", "--wrap=none", str(path)], capture_output=True, text=True,
                          timeout=60, check=True)
    return done.stdout


def test_render_docx_is_the_text_readers_see_with_filled_placeholders(run, shipped: Path, tmp_path: Path) -> None:
    out = tmp_path / "cavallo-nl.docx"
    run("--repo", shipped, "render", "privacy", "--site", "cavallo", "--lang", "nl", "--format", "docx", "-o", out)
    data = out.read_bytes()
    assert validate_package(data) == []
    with zipfile.ZipFile(out) as package:
        xml = package.read("word/document.xml").decode()
        custom = package.read("docProps/custom.xml").decode()
    assert 'w:val="nl-BE"' in xml or 'w:val="nl"' in xml
    assert "{{" not in xml and "w:sdt" not in xml
    assert 'name="addendum.kind"' in custom and ">render<" in custom
    text = pandoc_text(out)
    plain = run("--repo", shipped, "render", "privacy", "--site", "cavallo", "--lang", "nl", "--format", "text").stdout
    # Every heading and every paragraph's words of the plain-text rendering are in the document, in order.
    words = [next(w for w in line.split() if w[0].isalnum()) for line in plain.splitlines()[3:]
             if any(c.isalnum() for c in line)]
    position = 0
    for word in words:
        found = text.find(word, position)
        assert found >= 0, word
        position = found
    assert 'w:name="s_collection"' in xml


def test_show_docx_writes_a_published_version(run, shipped: Path, tmp_path: Path) -> None:
    out = tmp_path / "old.docx"
    result = run("--repo", shipped, "show", "privacy", "--version", "privacy@2018-05-19", "--format", "docx", "-o", out)
    assert "superseded by privacy@2020-09-01" in result.stderr
    assert validate_package(out.read_bytes()) == []
    assert "Google Analytics" in pandoc_text(out)


def test_a_docx_goes_to_a_pipe_but_never_to_a_terminal(run, shipped: Path, tmp_path: Path) -> None:
    piped = run("--repo", shipped, "render", "privacy", "--format", "docx")
    assert piped.stdout_bytes.startswith(b"PK")
    primary, secondary = os.openpty()
    try:
        done = subprocess.run([sys.executable, "-m", "addendum", "--repo", str(shipped), "show", "privacy", "--format", "docx"],
                              stdout=secondary, stderr=subprocess.PIPE, timeout=60, check=False)
    finally:
        os.close(secondary)
        os.close(primary)
    assert done.returncode == 2
    assert b"not written to a terminal" in done.stderr and b"-o FILE.docx" in done.stderr


@needs_office
def test_libreoffice_opens_the_rendered_docx_without_repair(run, shipped: Path, tmp_path: Path) -> None:
    out = tmp_path / "en.docx"
    run("--repo", shipped, "render", "privacy", "--format", "docx", "-o", out)
    outcome = Office(tmp_path / "office").run([Job("open", out, tmp_path / "saved.docx")])
    assert all(o.ok for o in outcome), outcome
    assert "Google Analytics" in pandoc_text(tmp_path / "saved.docx")
