"""PDF output read back with pypdf: the redline's words and dates, metadata, fonts, reproducible bytes, and a
fetcher that keeps every file outside the asset folder out of the PDF."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pypdf
import pytest

from addendum.compare.sections import compare
from addendum.render import pdf, render_policy
from addendum.render.pdf import FetchRefused, allowed_path, html_to_pdf
from addendum.render.redline import Preparation, VersionInfo, redline_html
from addendum.templates import assets_dir
from tests_support import MOVED_AND_EDITED_NEW, MOVED_AND_EDITED_OLD, policy_of, resolved, run_script, section

MARKER = "SECRET-7f3a9c"


def reader(pdf: bytes) -> pypdf.PdfReader:
    assert pdf.startswith(b"%PDF-")
    return pypdf.PdfReader(io.BytesIO(pdf))


def text_of(pdf: bytes) -> str:
    return re.sub(r"\s+", " ", " ".join(page.extract_text() for page in reader(pdf).pages))


def font_names(pdf: bytes) -> set[str]:
    names = set()
    for page in reader(pdf).pages:
        for font in (page["/Resources"].get("/Font") or {}).values():
            names.add(str(font.get_object()["/BaseFont"]).split("+")[-1].replace("-", ""))
    return names


def test_the_acceptance_redline_of_the_shipped_policy(run, shipped: Path) -> None:
    out = shipped / "r.pdf"
    run("--repo", shipped, "redline", "privacy", "privacy@2018-05-19", "privacy@2020-09-01", "--site", "selentic", "--lang", "en",
        "--format", "pdf", "--prepared-by", "Ann Lawyer", "-o", out)
    pdf = out.read_bytes()
    text = text_of(pdf)
    for fact in ("is certified in the EU-U.S. Privacy Shield Framework", "standard contractual clauses adopted by the European",
                 "in force from 19 May 2018", "in force from 1 September 2020", "Summary of changes",
                 "§collection.personal-", "Redline — Privacy policy —", "Page 1 of"):
        assert fact in text, fact
    document = reader(pdf)
    assert document.metadata is not None and document.metadata.title.startswith("Redline — Privacy policy:")
    assert document.trailer["/Root"]["/Lang"] == "en"
    assert font_names(pdf) >= {"AddendumSerif"}


def test_a_redline_pdf_holds_the_deleted_and_inserted_words_and_both_dates_in_dutch_too() -> None:
    from dataclasses import replace

    old, new = resolved(MOVED_AND_EDITED_OLD), resolved(MOVED_AND_EDITED_NEW)
    changeset = compare(replace(old, language="nl", locale="nl_BE"), replace(new, language="nl", locale="nl_BE"))
    html = redline_html(changeset, VersionInfo("terms@2018-05-19", date(2018, 5, 19)),
                        VersionInfo("terms@2024-06-01", date(2024, 6, 1)), layout="side-by-side",
                        prepared=Preparation(datetime(2024, 5, 2, 10, 0, tzinfo=UTC), "Ann Lawyer", "Addendum 1.0"))
    text = text_of(html_to_pdf(html, title="Redline", language="nl"))
    for fact in ("and our accountant", "Moneybird", "19 mei 2018", "1 juni 2024", "2 mei 2024", "verplaatst", "Pagina 1 van"):
        assert fact in text, fact


def test_a_fixed_identifier_gives_identical_bytes_also_as_pdf_a_with_no_date_inside() -> None:
    html = redline_html(compare(resolved(MOVED_AND_EDITED_OLD), resolved(MOVED_AND_EDITED_NEW)), VersionInfo("a"), VersionInfo("b"))
    first = html_to_pdf(html, title="T", language="en", pdf_variant="pdf/a-3u", identifier=b"0123456789abcdef",
                        attachments=[("policy.json", b'{"a": 1}\n', "the data")])
    second = html_to_pdf(html, title="T", language="en", pdf_variant="pdf/a-3u", identifier=b"0123456789abcdef",
                         attachments=[("policy.json", b'{"a": 1}\n', "the data")])
    assert first == second
    metadata = reader(first).metadata
    assert metadata is not None and metadata.creation_date is None and metadata.modification_date is None
    assert b"CreationDate" not in first and b"ModDate" not in first and b"Generated on" not in first
    xmp = reader(first).trailer["/Root"]["/Metadata"].get_object().get_data()
    assert b'pdfaid:part="3"' in xmp and b'pdfaid:conformance="U"' in xmp and b"CreateDate" not in xmp
    assert reader(first).attachments == {"policy.json": [b'{"a": 1}\n']}
    assert "/StructTreeRoot" in reader(first).trailer["/Root"]  # tagged


def test_a_pdf_made_on_demand_carries_its_true_time_with_its_zone() -> None:
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    metadata = reader(html_to_pdf("<p>x</p>", title="T", language="en", created=when)).metadata
    assert metadata is not None and metadata.creation_date == when
    with pytest.raises(ValueError, match="time zone"):
        html_to_pdf("<p>x</p>", title="T", language="en", created=datetime(2024, 1, 2))


def test_the_policy_page_renders_through_the_same_path() -> None:
    page = render_policy(resolved(MOVED_AND_EDITED_NEW), "html", date(2024, 6, 1))
    pdf = html_to_pdf(page, title="Terms — Main", language="en")
    assert "We share invoice details with Moneybird and our accountant." in text_of(pdf)
    assert "Last changed on 1 June 2024" in text_of(pdf)
    assert font_names(pdf) >= {"AddendumSerif"}


@pytest.fixture
def outside(tmp_path: Path) -> dict[str, Path]:
    """Files outside the asset folder a hostile document could point at: text, a stylesheet, an image."""
    secret = tmp_path / "secret.txt"
    secret.write_text(f"{MARKER} the key\n", encoding="utf-8")
    css = tmp_path / "evil.css"
    css.write_text(f'body::after {{ content: "{MARKER}-css"; }}', encoding="utf-8")
    image = tmp_path / "pixel.svg"
    image.write_text(f'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><text y="9">{MARKER}-svg</text></svg>',
                     encoding="utf-8")
    return {"secret": secret, "css": css, "image": image}


def hostile_page(files: dict[str, Path]) -> str:
    up = "../" * 12
    return f"""<!DOCTYPE html><html lang="en"><head><title>x</title>
<link rel="stylesheet" href="{files['css'].as_uri()}">
<link rel="attachment" href="file:///etc/hostname">
<style>@import url("{files['css'].as_uri()}"); p {{ background: url("{files['image'].as_uri()}"); }}</style></head>
<body><p>visible text</p>
<a rel="attachment" href="{files['secret'].as_uri()}">a</a>
<a rel="attachment" href="{up}etc/hostname">b</a>
<a rel="attachment" href="{up}{str(files['secret']).lstrip('/')}">c</a>
<a rel="attachment" href="fonts/../../../{up}etc/passwd">d</a>
<a rel="attachment" href="http://127.0.0.1:9/x">e</a>
<img src="{files['image'].as_uri()}" alt=""><img src="/etc/hostname" alt="">
<object data="{files['secret'].as_uri()}"></object><embed src="{files['secret'].as_uri()}">
</body></html>"""


def embedded_bytes(pdf: bytes) -> bytes:
    document = reader(pdf)
    found = b"".join(content for contents in document.attachments.values() for content in contents)
    for page in document.pages:
        for annotation in page.get("/Annots") or []:
            spec = annotation.get_object().get("/FS")
            if spec is not None:
                found += spec.get_object()["/EF"]["/F"].get_object().get_data()
    return found


def test_no_file_outside_the_assets_reaches_a_pdf(outside: dict[str, Path]) -> None:
    pdf = html_to_pdf(hostile_page(outside), title="x", language="en")
    assert "visible text" in text_of(pdf)
    assert MARKER not in text_of(pdf)
    assert embedded_bytes(pdf) == b""
    hostname = Path("/etc/hostname").read_bytes().strip() if Path("/etc/hostname").is_file() else b""
    assert not hostname or hostname not in embedded_bytes(pdf)
    assert not any(page["/Resources"].get("/XObject") for page in reader(pdf).pages)  # no image came in


def test_the_same_page_leaks_with_the_engines_default_fetcher(outside: dict[str, Path]) -> None:
    """The control: without our fetcher the hostile page does pull the files in, so the test above means something."""
    from weasyprint import HTML

    pdf = HTML(string=hostile_page(outside), base_url=str(assets_dir())).write_pdf()
    assert MARKER.encode() in embedded_bytes(pdf)
    assert f"{MARKER}-css" in text_of(pdf)


def test_allowed_paths_are_regular_files_inside_the_asset_folder(tmp_path: Path) -> None:
    font = assets_dir() / "fonts" / "DejaVuSerif.ttf"
    assert allowed_path(font.resolve().as_uri()) == font.resolve()
    assert allowed_path(font.resolve().as_uri().replace("fonts/", "fonts/../fonts/")) == font.resolve()
    root = tmp_path / "assets"
    root.mkdir()
    (root / "ok.css").write_text("p {}", encoding="utf-8")
    (tmp_path / "secret.txt").write_text(MARKER, encoding="utf-8")
    (root / "link.txt").symlink_to(tmp_path / "secret.txt")
    assert allowed_path((root / "ok.css").as_uri(), root) == root / "ok.css"
    for url in [(root / "link.txt").as_uri(), (tmp_path / "secret.txt").as_uri(), (root / "ok.css").as_uri().replace("ok.css", "../secret.txt"),
                root.as_uri(), "file://evil.example/etc/hostname", "http://127.0.0.1/x", "ftp://x/y", "file:///etc/hostname",
                (root / "%2e%2e" / "secret.txt").as_uri().replace("%252e", "%2e")]:
        with pytest.raises(FetchRefused):
            allowed_path(url, root)


def test_redline_command_writes_a_pdf(run, published_terms: Callable[[int], Path]) -> None:
    root = published_terms(2)
    out = root / "r.pdf"
    run("--repo", root, "redline", "terms", "terms@2024-01-01", "terms@2024-02-01", "--site", "shop", "--lang", "nl",
        "--format", "pdf", "-o", out)
    text = text_of(out.read_bytes())
    assert "Revision 2." in text and "1 januari 2024" in text and "1 februari 2024" in text
    assert reader(out.read_bytes()).trailer["/Root"]["/Lang"] == "nl"


WORKER_RENDERS = """
from concurrent.futures import ProcessPoolExecutor
from addendum.render.pdf import html_to_pdf

def render(n):
    return html_to_pdf(f"<p>page {n}</p>", title="t", language="en")[:5]

if __name__ == "__main__":
    html_to_pdf("<p>main</p>", title="t", language="en")
    with ProcessPoolExecutor(2) as pool:
        assert set(pool.map(render, range(4))) == {b"%PDF-"}
"""


def test_processes_that_rendered_pdfs_leave_no_font_copies_behind(tmp_path: Path) -> None:
    """The fonts are loaded once per process into a temporary folder, which must go when the process ends, also in
    the archive's worker processes."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    done = run_script(tmp_path, WORKER_RENDERS, TMPDIR=str(temp))
    assert done.returncode == 0, done.stderr
    assert "Exception ignored" not in done.stderr
    assert list(temp.iterdir()) == []


@pytest.mark.parametrize("counted_by", ["one layout", "the engine"])
def test_the_summary_gives_the_page_each_change_starts_on(counted_by: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The page column, numbered after a single layout (or by the engine's target-counter when the laid-out pages do
    not hold the placeholders looked for), against where the PDF's own destinations say each change is."""
    if counted_by == "the engine":
        monkeypatch.setattr(pdf, "PAGE_NUMBER_PLACEHOLDER", "no such text")
    long = " ".join(["Words of a long paragraph that fills the better part of a page."] * 60)
    old = policy_of(*(section(f"s{n}", f"Part {n}", f"{long}\n\n{long} old{n}") for n in range(1, 9)))
    new = policy_of(*(section(f"s{n}", f"Part {n}", f"{long}\n\n{long} new{n}") for n in range(1, 9)))
    html = redline_html(compare(old, new), VersionInfo("terms@1", date(2018, 5, 19)), VersionInfo("terms@2", date(2024, 6, 1)))
    document = reader(html_to_pdf(html, title="Redline", language="en"))
    starts = {name: document.get_destination_page_number(target) + 1 for name, target in document.named_destinations.items()}
    summary = document.pages[0].extract_text()
    shown = [int(number) for number in re.findall(r"1 inserted\s*\u2007*(\d+)", summary)]
    assert shown == [starts[f"change-s{n}"] for n in range(1, 9)]
    assert len(set(shown)) == 8 and shown[-1] > 9  # the changes are on pages of their own, two digits at the end
