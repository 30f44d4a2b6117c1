"""Adopting an existing policy with `import-document FILE --policy NEW_ID`: a saved web page and a .docx, both written
here as fixtures, become sections that `check` accepts; hostile input gives a clear error or inert output."""

from __future__ import annotations

import zipfile
from pathlib import Path

import docx

PAGE = """<!doctype html><html><head><title>Acme privacy</title><style>body { color: red }</style>
<script>document.cookie = "x"</script></head><body>
<nav><a href="/">Home</a> <a href="/about">About us</a></nav>
<div id="cookie-consent">We use cookies. <button>Accept</button></div>
<main><h1>Acme Privacy Policy</h1><p>We care about <strong>your</strong> <em>privacy</em>; {{ site.name }} is text here.</p>
<h2>What we collect</h2><ul><li>Your name</li><li>Your <a href="https://acme.example/mail">e-mail address</a><ul><li>when given</li></ul></li></ul>
<p>Click <a href="javascript:alert(1)">here</a>. <img src="https://tracker.example/pixel.png" alt="pixel"></p>
<h2>Who receives it</h2><table><tr><th>Recipient</th><th>Why</th></tr><tr><td>Bank</td><td>Payments</td></tr></table>
<h3>Your rights &amp; choices</h3><ol><li>Access</li><li>Erasure</li></ol>
<h2>What we collect</h2><p>Again, a heading of the same name.</p></main>
<footer>© Acme · <a href="/imprint">Imprint</a></footer></body></html>"""


def test_a_saved_web_page_becomes_a_policy_that_check_accepts(run, shipped: Path, tmp_path: Path) -> None:
    page = tmp_path / "privacy.html"
    page.write_text(PAGE, encoding="utf-8")
    result = run("--repo", shipped, "import-document", page, "--policy", "acme", "--lang", "en")
    for dropped in ("script", "style", "nav", "footer", "cookie banner or navigation", "image", "link target"):
        assert dropped in result.stderr
    text = (shipped / "policies/acme/en.md").read_text(encoding="utf-8")
    assert text.startswith("We care about **your** *privacy*; {{ \"{\" }}{ site.name }} is text here.\n")
    assert "## What we collect {#what-we-collect}\n\n- Your name\n- Your [e-mail address](<https://acme.example/mail>)\n  - when given\n" in text
    assert "Click here." in text and "javascript" not in text and "tracker" not in text and "cookie" not in text.lower()
    assert "| Recipient | Why |\n|---|---|\n| Bank | Payments |" in text
    assert "### Your rights & choices {#your-rights-choices}\n\n1. Access\n2. Erasure" in text
    assert "{#what-we-collect-2}" in text
    assert 'en = "Acme Privacy Policy"' in (shipped / "policies/acme/policy.toml").read_text(encoding="utf-8")
    assert "acme: 0 error(s)" in run("--repo", shipped, "check", "acme").stdout
    rendered = run("--repo", shipped, "render", "acme", "--format", "text").stdout
    assert "site.name" in rendered  # the page's braces are text, not a placeholder
    again = run("--repo", shipped, "import-document", page, "--policy", "acme", "--lang", "en", expect=2)
    assert "already exists" in again.stderr


def test_select_picks_the_element_holding_the_policy(run, shipped: Path, tmp_path: Path) -> None:
    page = tmp_path / "privacy.html"
    page.write_text(PAGE.replace("<main>", '<div class="wrapper"><p>Sidebar text</p></div><main id="policy">'), encoding="utf-8")
    run("--repo", shipped, "import-document", page, "--policy", "acme", "--lang", "en", "--select", "#policy")
    assert "Sidebar" not in (shipped / "policies/acme/en.md").read_text(encoding="utf-8")
    missing = run("--repo", shipped, "import-document", page, "--policy", "other", "--lang", "en", "--select", "#nothing", expect=2)
    assert "matches nothing" in missing.stderr
    assert not (shipped / "policies/other").exists()


def test_a_docx_policy_becomes_sections_and_its_images_and_external_links_are_not_followed(run, shipped: Path, tmp_path: Path) -> None:
    source = tmp_path / "policy.docx"
    document = docx.Document()
    document.add_heading("Shop Terms", level=1)
    document.add_paragraph("These terms apply to every order.")
    document.add_heading("Orders", level=2)
    document.add_paragraph("You order online.", style="List Bullet")
    document.add_paragraph("We confirm by e-mail.", style="List Bullet")
    para = document.add_paragraph("Payment is ")
    para.add_run("due at once").bold = True
    para.add_run(".")
    document.add_heading("Returns", level=2)
    document.add_paragraph("Within 14 days.")
    # An external (linked, not embedded) image: a reader that followed it would fetch the URL.
    rel = document.part.relate_to("https://tracker.example/pixel.png", "http://schemas.openxmlformats.org/officeDocument/2006/relationships/image",
                                  is_external=True)
    assert rel
    document.save(str(source))
    result = run("--repo", shipped, "import-document", source, "--policy", "shop-terms", "--lang", "en")
    assert "external relationship (not followed)" in result.stderr
    text = (shipped / "policies/shop-terms/en.md").read_text(encoding="utf-8")
    assert text == ("These terms apply to every order.\n\n## Orders {#orders}\n\n- You order online.\n- We confirm by e-mail.\n\n"
                    "Payment is **due at once**.\n\n## Returns {#returns}\n\nWithin 14 days.\n")
    assert 'en = "Shop Terms"' in (shipped / "policies/shop-terms/policy.toml").read_text(encoding="utf-8")
    assert "shop-terms: 0 error(s)" in run("--repo", shipped, "check", "shop-terms").stdout


def test_a_zip_bomb_a_huge_file_and_a_bad_id_are_refused_and_nothing_is_written(run, shipped: Path, tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.docx"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as package:
        package.writestr("[Content_Types].xml", b"<Types/>")
        package.writestr("word/document.xml", b"<" + b" " * 80_000_000 + b"/>")
    assert bomb.stat().st_size < 1_000_000
    refused = run("--repo", shipped, "import-document", bomb, "--policy", "bomb", "--lang", "en", expect=2)
    assert "zip bomb" in refused.stderr
    huge = tmp_path / "huge.html"
    with huge.open("wb") as handle:
        handle.write(b"<html><body><p>" + b"a" * 50_000_000 + b"</p></body></html>")
    refused = run("--repo", shipped, "import-document", huge, "--policy", "huge", "--lang", "en", expect=2)
    assert "more than a policy document" in refused.stderr
    page = tmp_path / "p.html"
    page.write_text(PAGE, encoding="utf-8")
    escape = run("--repo", shipped, "import-document", page, "--policy", "../outside", "--lang", "en", expect=2)
    assert "error:" in escape.stderr
    assert not (shipped / "policies/bomb").exists() and not (shipped / "policies/huge").exists()
    assert not (shipped / "outside").exists() and not (tmp_path / "outside").exists()


DUTCH = """<html><body><main><h1>Acme Privacyverklaring</h1><p>Wij geven om uw privacy.</p>
<h2>Wat wij verzamelen</h2><ul><li>Uw naam</li></ul><h2>Wie het ontvangt</h2><p>De bank.</p>
<h3>Uw rechten</h3><ol><li>Inzage</li></ol><h2>Extra</h2><p>Alleen in het Nederlands.</p></main></body></html>"""


def test_a_second_language_aligns_to_the_existing_ids_by_structure(run, shipped: Path, tmp_path: Path) -> None:
    page = tmp_path / "privacy.html"
    page.write_text(PAGE.replace("<h2>What we collect</h2><p>Again, a heading of the same name.</p>", ""), encoding="utf-8")
    run("--repo", shipped, "import-document", page, "--policy", "acme", "--lang", "en")
    dutch = tmp_path / "privacy-nl.html"
    dutch.write_text(DUTCH, encoding="utf-8")
    result = run("--repo", shipped, "import-document", dutch, "--into", "acme", "--lang", "nl")
    assert "could not align (given a new id): Extra" in result.stderr
    nl = (shipped / "policies/acme/nl.md").read_text(encoding="utf-8")
    assert "## Wat wij verzamelen {#what-we-collect}" in nl and "## Wie het ontvangt {#who-receives-it}" in nl
    assert "### Uw rechten {#your-rights-choices}" in nl and "## Extra {#extra}" in nl
    config = (shipped / "policies/acme/policy.toml").read_text(encoding="utf-8")
    assert 'nl = "Acme Privacyverklaring"' in config
    assert "Wij geven om uw privacy." in run("--repo", shipped, "render", "acme", "--lang", "nl", "--format", "text").stdout
    assert "acme:" in run("--repo", shipped, "check", "acme", expect=None).stdout
    again = run("--repo", shipped, "import-document", dutch, "--into", "acme", "--lang", "nl", expect=2)
    assert "is not an export" in again.stderr


# ---------------------------------------------------------------------------------------------------------------
# The .docx's XML parts: read by lxml into the very tree mammoth's own reader builds.

HOSTILE_PARTS = [
    b'<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
    b'<w:body><w:p><w:r><w:t xml:space="preserve"> two  spaces </w:t></w:r></w:p>\n  <!-- a comment -->\n'
    b'<w:p>before<?pi data?>after &amp; &#233;&#x1F600;<!--c-->tail</w:p></w:body></w:document>',
    b'<root xmlns="urn:unknown" xmlns:x="urn:other" x:attr="a&#10;b\tc" plain="v"><x:child/>text<child/></root>',
    b'<!DOCTYPE root [<!ENTITY e "expanded">]><root>&e;</root>',  # entities: mammoth's own reader
    b'<root><![CDATA[dropped by minidom]]>kept</root>',  # CDATA: mammoth's own reader
    b"<root>" + b"<a>" * 300 + b"deep" + b"</a>" * 300 + b"</root>",  # deeper than lxml reads: mammoth's own
]


def test_every_part_reads_as_mammoths_own_reader_reads_it(tmp_path: Path) -> None:
    import io

    from mammoth.docx.office_xml import _namespaces
    from mammoth.docx.xmlparser import parse_xml as mammoths_own

    from addendum.history.office_xml import parse_xml

    document = docx.Document()
    document.add_heading("Terms & <conditions>", level=1)
    para = document.add_paragraph("Plain, ")
    para.add_run("bold").bold = True
    para.add_run(" and ").italic = True
    document.add_paragraph("A point.", style="List Number")
    document.add_paragraph("Ünïcödé \u200b and\ttabs", style="List Bullet 2")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "cell"
    document.add_page_break()
    source = tmp_path / "rich.docx"
    document.save(str(source))
    with zipfile.ZipFile(source) as package:
        parts = [package.read(name) for name in package.namelist() if name.endswith((".xml", ".rels"))]
    for data in [*parts, *HOSTILE_PARTS]:
        assert parse_xml(io.BytesIO(data), _namespaces) == mammoths_own(io.BytesIO(data), _namespaces), data[:200]


def test_a_docx_converts_to_the_html_mammoth_alone_gives(tmp_path: Path) -> None:
    import io

    import mammoth
    from mammoth.docx import office_xml
    from mammoth.docx.xmlparser import parse_xml as mammoths_own

    from addendum.history.office_xml import parse_xml, read_with_lxml

    document = docx.Document()
    for number in range(1, 4):
        document.add_heading(f"Part {number}", level=min(number, 3))
        para = document.add_paragraph("Text with ")
        para.add_run("emphasis").italic = True
        document.add_paragraph(f"Item {number}", style="List Bullet")
    data = io.BytesIO()
    document.save(data)
    read_with_lxml()
    assert office_xml.parse_xml is parse_xml
    ours = mammoth.convert_to_html(io.BytesIO(data.getvalue()))
    office_xml.parse_xml = mammoths_own
    try:
        theirs = mammoth.convert_to_html(io.BytesIO(data.getvalue()))
    finally:
        office_xml.parse_xml = parse_xml
    assert (ours.value, ours.messages) == (theirs.value, theirs.messages)
