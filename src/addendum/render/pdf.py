"""HTML to PDF with WeasyPrint (the only module that imports it): bundled fonts, metadata, and a locked-down fetcher."""

from __future__ import annotations

import gc
import mimetypes
import threading
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from multiprocessing.util import Finalize
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from addendum.errors import RenderError
from addendum.templates import assets_dir

# The bundled fonts (templates/assets/fonts): (family, file, weight, style). Under a family name of their own: a font
# installed on the machine under the same name as an @font-face would compete with it (Fontconfig may pick either),
# and a PDF must not depend on what a machine has installed.
FONT_FACES = (("Addendum Serif", "DejaVuSerif.ttf", "normal", "normal"), ("Addendum Serif", "DejaVuSerif-Bold.ttf", "bold", "normal"),
              ("Addendum Serif", "DejaVuSerif-Italic.ttf", "normal", "italic"),
              ("Addendum Mono", "DejaVuSansMono.ttf", "normal", "normal"))


class FetchRefused(ValueError):
    """A document asked for a resource outside the asset folder, or by a scheme other than file or data."""


def allowed_path(url: str, root: Path | None = None) -> Path:
    """The file a `file:` URL names, if it is a regular file inside the asset folder (symlinks resolved)."""
    root = (root or assets_dir()).resolve()
    parts = urlsplit(url)
    if parts.scheme.lower() != "file" or parts.netloc not in ("", "localhost"):
        raise FetchRefused(f"refused to fetch {url[:200]}: only files inside {root} may be used")
    path = Path(url2pathname(unquote(parts.path))).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise FetchRefused(f"refused to fetch {url[:200]}: only files inside {root} may be used")
    return path


@lru_cache(maxsize=1)
def _fetcher_class() -> type[Any]:
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class SafeURLFetcher(URLFetcher):  # type: ignore[misc]
        """`data:` URLs, and `file:` URLs of files inside the asset folder; nothing else, no network, no redirects."""

        def __init__(self) -> None:
            super().__init__(allowed_protocols=("file", "data"), allow_redirects=False, timeout=1)

        def fetch(self, url: str, headers: Any = None) -> Any:
            if url[:5].lower() == "data:":
                return super().fetch(url, headers)
            path = allowed_path(url)
            content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            return URLFetcherResponse(path.as_uri(), path.read_bytes(), {"Content-Type": content_type})

    return SafeURLFetcher


def safe_url_fetcher() -> Any:
    """A WeasyPrint URL fetcher limited to `data:` URLs and files inside templates/assets/ (every render uses one)."""
    return _fetcher_class()()


def fonts_css() -> str:
    """@font-face rules for the bundled fonts, relative to the asset folder."""
    return "\n".join(f'@font-face {{ font-family: "{family}"; src: url("fonts/{name}"); font-weight: {weight}; '
                     f"font-style: {style}; }}" for family, name, weight, style in FONT_FACES)


@lru_cache(maxsize=1)
def _bundled_fonts(base_url: str) -> tuple[Any, Any]:
    """The font configuration and @font-face stylesheet, loaded once per process: every PDF uses the same fonts."""
    from weasyprint import CSS
    from weasyprint.text.fonts import FontConfiguration

    font_config = FontConfiguration()
    Finalize(None, _release_fonts, exitpriority=10)  # also run by archive worker processes, unlike atexit
    return font_config, CSS(string=fonts_css(), base_url=base_url, url_fetcher=safe_url_fetcher(), font_config=font_config)


def _release_fonts() -> None:
    """Drop the font configuration while the interpreter is still whole: its finaliser removes the temporary copies
    of the fonts, and it sits in reference cycles, so only a collection reaches it."""
    _bundled_fonts.cache_clear()
    gc.collect()


# Characters a stylesheet or the PDF engine may show that the document's own text need not hold: page numbers (and
# the figure spaces they are padded with), list bullets, the pilcrow of a changed line break, quotes and dashes of
# generated content.
GENERATED_CHARACTERS = "".join(chr(c) for c in range(0x20, 0x7F)) + "\u00a0\u2007¶•–—…→›‹“”‘’·×"


def _own_fonts(html: str, base_url: str) -> tuple[Any, Any]:
    """A font configuration and @font-face stylesheet carrying the bundled fonts subset here, by fontTools, to the
    characters the document uses. WeasyPrint's own subsetting gives different bytes with HarfBuzz-Subset than with
    its fontTools fallback (which also stamps the font with the current time); fonts subset here and embedded whole
    give the same bytes on every machine and at every run."""
    from weasyprint import CSS
    from weasyprint.text.fonts import FontConfiguration

    from addendum.render.fonts import subset_font_data_url

    characters = "".join(sorted(set(html) | set(GENERATED_CHARACTERS)))
    rules = "\n".join(f'@font-face {{ font-family: "{family}"; src: url("{subset_font_data_url(name, characters)}"); '
                      f"font-weight: {weight}; font-style: {style}; }}" for family, name, weight, style in FONT_FACES)
    font_config = FontConfiguration()
    return font_config, CSS(string=rules, base_url=base_url, url_fetcher=safe_url_fetcher(), font_config=font_config)


def _without_dates(document: Any, pdf: Any) -> None:
    """No date inside an archived PDF: none in its information dictionary, none on an embedded file (both optional
    in PDF and in PDF/A-3). When the file was built is recorded in the archive's manifest."""
    pdf.info.pop("CreationDate", None)
    pdf.info.pop("ModDate", None)
    for pdf_object in pdf.objects:
        if isinstance(pdf_object, dict) and isinstance(pdf_object.get("Params"), dict):
            pdf_object["Params"].pop("CreationDate", None)
            pdf_object["Params"].pop("ModDate", None)
        params = getattr(pdf_object, "extra", {}).get("Params") if hasattr(pdf_object, "extra") else None
        if isinstance(params, dict):
            params.pop("CreationDate", None)
            params.pop("ModDate", None)


# A link of this class shows the number of the page its target is on (the summary's page column). The stylesheet gives
# it PAGE_NUMBER_PLACEHOLDER as content; the number is written over it once the document is laid out. WeasyPrint's
# own target-counter() would lay the pages holding such links out again, twice, until the numbers settle: on a
# 15-page redline that is a fifth of the whole time.
PAGE_REFERENCE_CLASS = "page-ref"
FIGURE_SPACE = "\u2007"  # as wide as a digit: the number, padded with it, takes the placeholder's place exactly
PAGE_NUMBER_PLACEHOLDER = FIGURE_SPACE * 3
TARGET_COUNTER_CSS = f"a.{PAGE_REFERENCE_CLASS}::after {{ content: target-counter(attr(href), page) !important; }}"


def _number_page_references(document: Any) -> bool:
    """Write into each page-reference link the number of the page its target starts on (the first page holding that
    anchor, as target-counter() counts). False when the laid-out pages do not look as expected (another version of
    the engine): the caller then lets the engine count."""
    from weasyprint.formatting_structure.boxes import TextBox

    first_page: dict[str, int] = {}
    for page_number, page in enumerate(document.pages, 1):
        for anchor in page.anchors:
            first_page.setdefault(anchor, page_number)
    placeholders: dict[int, tuple[Any, str]] = {}  # each text box once: a link and its ::after both list it
    references: set[int] = set()
    numbered: set[int] = set()
    try:
        for page in document.pages:
            for link_type, target, _, box in page.links:
                element = getattr(box, "element", None)
                if link_type != "internal" or element is None or PAGE_REFERENCE_CLASS not in (element.get("class") or "").split():
                    continue
                references.add(id(element))
                for child in box.descendants():
                    if isinstance(child, TextBox) and child.text == PAGE_NUMBER_PLACEHOLDER:
                        placeholders[id(child)] = child, unquote(target)
                        numbered.add(id(element))
        # A page number wider than the space kept for it (page 1,000 on) would overrun its cell.
        widest = max((len(str(first_page.get(target, ""))) for _, target in placeholders.values()), default=0)
        if numbered != references or widest > len(PAGE_NUMBER_PLACEHOLDER):
            return False
        for text_box, target in placeholders.values():
            number = first_page.get(target)
            text = str(number).rjust(len(PAGE_NUMBER_PLACEHOLDER), FIGURE_SPACE) if number else PAGE_NUMBER_PLACEHOLDER
            text_box.text = text_box.pango_layout.text = text
    except AttributeError:
        return False
    return True


def html_to_pdf(html: str, *, title: str, language: str, pdf_variant: str | None = None, identifier: bytes | None = None,
                created: datetime | None = None, attachments: Sequence[tuple[str, bytes, str]] = ()) -> bytes:
    """Render any of our HTML documents as a tagged A4 PDF with the bundled fonts, a title and a language.

    Relative URLs resolve inside templates/assets/, and nothing outside it can be fetched. With a fixed
    `identifier` the output is reproducible: the same input gives the same bytes on any machine (fonts subset
    here, no date anywhere in the file); `created` (time-zone aware) is the true time a document made on demand
    was made, written as its creation and modification date. `pdf_variant` e.g. "pdf/a-3u" for archives;
    `attachments` are (file name, bytes, description), embedded as the PDF/A-3's associated files (relationship
    Source: the data the document shows).
    """
    if created is not None and created.tzinfo is None:
        raise ValueError("a PDF's date must say its time zone")
    with COLLECTION_PAUSE:
        return _render_pdf(html, title, language, pdf_variant, identifier, created, attachments)


class _CollectionPause:
    """Python's cycle collector held off while PDFs are rendered, and run once over what the renders left.

    A render allocates some hundred thousand objects, enough to set off several full collections that walk every
    object of the process, a tenth of a render's time. Held off, everything a render makes stays in the youngest
    generation, so one collection of that generation alone frees its garbage (the font configuration's temporary
    files with it). Counted, so that concurrent renders in threads resume collection only when the last one ends."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.renders = 0
        self.was_enabled = False

    def __enter__(self) -> None:
        with self.lock:
            if self.renders == 0:
                self.was_enabled = gc.isenabled()
                gc.disable()
            self.renders += 1

    def __exit__(self, *_: object) -> None:
        with self.lock:
            self.renders -= 1
            if self.renders or not self.was_enabled:
                return
            gc.enable()
        gc.collect(0)


COLLECTION_PAUSE = _CollectionPause()  # one for the process: the collector is the process's


def _render_pdf(html: str, title: str, language: str, pdf_variant: str | None, identifier: bytes | None,
                created: datetime | None, attachments: Sequence[tuple[str, bytes, str]]) -> bytes:
    """html_to_pdf's work, inside a pause of the cycle collector."""
    try:
        from weasyprint import CSS, HTML, Attachment
    except OSError as exc:  # Pango or HarfBuzz missing
        raise RenderError(f"the PDF engine cannot start: {exc}",
                          "install Pango and HarfBuzz (Debian: apt-get install libpango-1.0-0 libpangoft2-1.0-0)") from None
    base_url = assets_dir().resolve().as_uri() + "/"
    fetcher = safe_url_fetcher()
    reproducible = identifier is not None
    font_config, fonts = _own_fonts(html, base_url) if reproducible else _bundled_fonts(base_url)
    options: dict[str, Any] = {"pdf_variant": pdf_variant, "pdf_identifier": identifier, "pdf_tags": True,
                               "full_fonts": reproducible}
    try:
        document = HTML(string=html, base_url=base_url, url_fetcher=fetcher).render(
            stylesheets=[fonts], font_config=font_config, **options)
        if not _number_page_references(document):
            document = HTML(string=html, base_url=base_url, url_fetcher=fetcher).render(
                stylesheets=[fonts, CSS(string=TARGET_COUNTER_CSS)], font_config=font_config, **options)
        document.metadata.title = title
        document.metadata.lang = language
        document.metadata.created = document.metadata.modified = created.isoformat(timespec="seconds") if created else None
        files = [Attachment(string=data, base_url=base_url, url_fetcher=fetcher, name=name, description=description,
                            relationship="Source") for name, data, description in attachments]
        pdf = document.write_pdf(attachments=files, finisher=_without_dates if reproducible else None, **options)
    except Exception as exc:  # WeasyPrint raises many kinds; the boundary needs one
        raise RenderError(f"the PDF could not be rendered: {type(exc).__name__}: {exc}",
                          "check the template's HTML and CSS; run with --debug for the traceback") from exc
    finally:
        if reproducible:
            del font_config, fonts  # its temporary copies of the fonts go with it
    assert isinstance(pdf, bytes)
    return pdf
