"""The README's page images of the shipped redline: every page, small, linked, and redrawn byte for byte by
`make docs-images` (scripts/redline_images.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pypdf import PdfReader

from conftest import PROJECT

IMAGES = PROJECT / "docs" / "images"
README = (PROJECT / "README.md").read_text(encoding="utf-8")


def draw(out: Path) -> dict[str, bytes]:
    """Run the script as `make docs-images` does, dated as a fixed commit would date it."""
    environment = {**os.environ, "SOURCE_DATE_EPOCH": "1764547200", "PYTHONPATH": str(PROJECT / "src")}
    subprocess.run([sys.executable, str(PROJECT / "scripts" / "redline_images.py"), "--out", str(out)], env=environment,
                   check=True, capture_output=True, timeout=300)
    return {path.name: path.read_bytes() for path in sorted(out.glob("redline-*.png"))}


def test_the_redline_page_images_are_every_page_small_linked_and_redrawn_identically(tmp_path: Path) -> None:
    first, second = draw(tmp_path / "first"), draw(tmp_path / "second")
    assert first == second  # deterministic: the same commit gives the same images
    shipped = sorted(path.name for path in IMAGES.glob("redline-*.png"))
    assert sorted(first) == shipped, "run `make docs-images` and commit docs/images/"
    for name in shipped:
        assert (IMAGES / name).read_bytes().startswith(b"\x89PNG") and (IMAGES / name).stat().st_size < 150_000
        assert f"docs/images/{name}" in README
    # One image per page of the redline the tour makes.
    pdf = tmp_path / "redline.pdf"
    subprocess.run([sys.executable, "-m", "addendum", "--repo", str(PROJECT), "redline", "privacy", "privacy@2018-05-19", "latest",
                    "--site", "selentic", "--lang", "en", "--format", "pdf", "--prepared-by", "Test", "-o", str(pdf)],
                   env={**os.environ, "PYTHONPATH": str(PROJECT / "src")}, check=True, capture_output=True, timeout=300)
    assert len(PdfReader(pdf).pages) == len(shipped)
