"""Page images of the shipped redline for the README (docs/images/redline-N.png), the same bytes on every run.

The redline states when it was prepared: here, the time of the commit it is made from (SOURCE_DATE_EPOCH when set,
as reproducible builds do), so a rerun on the same commit gives the same images and the date it shows is true of
the text it shows. `make docs-images` runs it; pdftoppm (poppler-utils) draws the pages.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from addendum.config import open_repo
from addendum.operations.changes import make_redline

ROOT = Path(__file__).resolve().parents[1]
PREPARED_BY = "Selentic privacy team (documentation example)"
PIXELS = 640  # the longer side of each page image: small, and the changes still readable


def prepared_at(root: Path) -> datetime:
    """SOURCE_DATE_EPOCH, else the time of the repository's last commit."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH") or subprocess.run(
        ["git", "-C", str(root), "log", "-1", "--format=%ct"], capture_output=True, text=True, check=True).stdout.strip()
    return datetime.fromtimestamp(int(epoch), UTC)


def page_images(root: Path, out: Path, when: datetime) -> list[Path]:
    """Render the redline of the shipped policy (first version → latest, selentic, English) and draw its pages."""
    pdf = make_redline(open_repo(root), "privacy", "privacy@2018-05-19", "latest", "selentic", "en", fmt="pdf",
                       prepared_by=PREPARED_BY, now=when)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("redline-*.png"):
        old.unlink()
    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / "redline.pdf"
        source.write_bytes(pdf)
        subprocess.run(["pdftoppm", "-png", "-scale-to", str(PIXELS), str(source), str(out / "redline")], check=True)
    return sorted(out.glob("redline-*.png"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=ROOT, help="the policy repository (default: this project)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images", help="where the PNGs go")
    args = parser.parse_args()
    for image in page_images(args.repo, args.out, prepared_at(args.repo)):
        print(f"{image} ({image.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
