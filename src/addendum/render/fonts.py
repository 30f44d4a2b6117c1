"""The bundled fonts inside an HTML page: @font-face rules subset to the characters the page uses."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from markupsafe import Markup

from addendum.render.pdf import FONT_FACES
from addendum.templates import assets_dir


def _subset(font_file: Path, characters: str, flavor: str | None) -> bytes:
    """One bundled font subset to `characters`: the same bytes for the same input on every machine and every day."""
    from fontTools import subset  # a tenth of a second to import: only archive pages need it
    from fontTools.ttLib import TTFont

    options = subset.Options()
    options.name_IDs = ["*"]  # keep the copyright and licence names of the font
    options.notdef_outline = True
    options.drop_tables = [*options.drop_tables, "FFTM"]  # FontForge's timestamps: nothing a browser reads
    # recalcTimestamp=False: fontTools would otherwise stamp the font with today's date, and no rebuild would match.
    font = TTFont(font_file, recalcTimestamp=False)
    subsetter = subset.Subsetter(options)
    subsetter.populate(text=characters)
    subsetter.subset(font)
    font.flavor = flavor
    buffer = io.BytesIO()
    font.save(buffer)
    return buffer.getvalue()


@lru_cache(maxsize=32)
def _font_faces(characters: str) -> str:
    rules = []
    for family, file, weight, style in FONT_FACES:  # the bundled fonts, as the PDFs embed them
        data = base64.b64encode(_subset(assets_dir() / "fonts" / file, characters, "woff")).decode("ascii")
        rules.append(f'@font-face {{ font-family: "{family}"; font-weight: {weight}; font-style: {style}; '
                     f'src: url(data:font/woff;base64,{data}) format("woff"); }}')
    return "\n".join(rules)


@lru_cache(maxsize=16)
def subset_font_data_url(file: str, characters: str) -> str:
    """A bundled font (a file name in templates/assets/fonts) as a `data:` URL of a TrueType font subset to
    `characters`: what an archived PDF embeds whole, so that no PDF engine's own subsetter decides its bytes."""
    data = base64.b64encode(_subset(assets_dir() / "fonts" / file, characters, None)).decode("ascii")
    return f"data:font/ttf;base64,{data}"


def embedded_fonts_css(text: str) -> Markup:
    """@font-face rules carrying the bundled fonts inside the page, subset to the characters `text` uses."""
    printable = "".join(chr(c) for c in range(0x20, 0x7F))
    return Markup(_font_faces("".join(sorted(set(text) | set(printable)))))


def with_fonts(render: Callable[[Markup], str]) -> str:
    """Render once to learn which characters the page uses, then again with fonts subset to exactly those."""
    return render(embedded_fonts_css(render(Markup(""))))
