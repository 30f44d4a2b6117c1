"""The archive on a generated policy: 50 versions × 3 sites × 2 languages, built with one worker and with all,
then re-run with nothing new; what one PDF costs; whether HarfBuzz subsetting is there.

Runs alone (`python benchmarks/bench_archive.py`) or from benchmarks/run.py. ADDENDUM_BENCH_VERSIONS=N
makes a smaller history for a quick look.
"""

from __future__ import annotations

import ctypes.util
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from addendum.archive.build import archive
from addendum.archive.manifest import plan_policy, toolchain, toolchain_id
from addendum.archive.pages import resolved_view, version_page
from addendum.config import open_repo
from addendum.publish.record import publish
from addendum.render.pdf import html_to_pdf

VERSIONS = int(os.environ.get("ADDENDUM_BENCH_VERSIONS", "50"))
SITES = ("alpha", "beta", "gamma")
SECTIONS = ("collection", "purposes", "recipients", "transfers", "retention", "security", "rights", "complaints", "contact")
WORDS = ("data", "personal", "process", "service", "account", "consent", "purpose", "request", "provider", "storage", "period",
         "contract", "legal", "basis", "transfer", "country", "security", "access", "erasure", "object", "withdraw", "complaint")
TARGET_SPEEDUP = 1.8
TARGET_RERUN_SECONDS = 1.0
GIT_ENV = {"GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.org", "GIT_COMMITTER_NAME": "Bench",
           "GIT_COMMITTER_EMAIL": "bench@example.org"}

POLICY_TOML = """\
id = "bench"
default_language = "en"
languages = ["en", "nl"]
default_site = "alpha"
notice_days = 30

[title]
en = "Generated policy"
nl = "Gegenereerde verklaring"

[controller]
name = "Example BV"
address = "Main Street 1, 1000 Brussels"
email = "privacy@example.org"
""" + "".join(f'\n[sites.{site}]\nname = "{site.title()}"\ncontact = {{ email = "{site}@example.org" }}\n' for site in SITES)


def _paragraph(rng: random.Random, words: int) -> str:
    text = " ".join(rng.choice(WORDS) for _ in range(words))
    return text[0].upper() + text[1:] + "."


def _document(language: str, revision: int) -> str:
    """About two A4 pages: nine sections of two paragraphs; section `revision % 9` reworded at each revision."""
    rng = random.Random(f"{language}")
    parts = [_paragraph(rng, 40) + " Contact: {{ site.contact.email }}.\n"]
    for index, section in enumerate(SECTIONS):
        changed = random.Random(f"{language}-{section}-{revision if index == revision % len(SECTIONS) else 0}")
        heading = section.title() if language == "en" else f"{section.title()} (nl)"
        parts.append(f"## {heading} {{#{section}}}\n\n{_paragraph(changed, 60)}\n\n{_paragraph(rng, 50)}\n")
    return "\n".join(parts)


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, env={**os.environ, **GIT_ENV}, check=True, capture_output=True)


def generate(root: Path, versions: int) -> None:
    """A git repository whose policy `bench` is published `versions` times by the real publish."""
    folder = root / "policies" / "bench"
    folder.mkdir(parents=True)
    (root / "addendum.toml").write_text("", encoding="utf-8")
    (folder / "policy.toml").write_text(POLICY_TOML, encoding="utf-8")
    _git(root, "init", "-q")
    for env_name, value in GIT_ENV.items():
        os.environ.setdefault(env_name, value)
    repo = open_repo(root)
    start = date(2015, 1, 1)
    for n in range(versions):
        for language in ("en", "nl"):
            (folder / f"{language}.md").write_text(_document(language, n), encoding="utf-8")
        _git(root, "add", "-A")
        _git(root, "commit", "-q", "-m", f"Revision {n}")
        effective = start + timedelta(days=40 * n + 35)
        publish(repo, "bench", effective=effective, published=effective - timedelta(days=35), classification="material",
                summaries={"en": f"Revision {n}.", "nl": f"Herziening {n}."}, reason="generated")


def _timed_build(template: Path, target: Path, jobs: int) -> tuple[float, int]:
    """`addendum archive --jobs N` on a fresh copy, in its own process: what a user waits for, start-up included."""
    shutil.copytree(template, target)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "addendum", "--repo", str(target), "archive", "--jobs", str(jobs)],
                   check=True, capture_output=True)
    elapsed = time.perf_counter() - started
    return elapsed, len(json.loads((target / "history" / "manifest.json").read_text(encoding="utf-8"))["files"])


def _pdf_cost(root: Path) -> tuple[float, float]:
    """Median seconds for one version page, and for its PDF, in a warm process."""
    repo = open_repo(root)
    view = plan_policy(repo, "bench", toolchain_id(toolchain(repo))).views[-1]
    resolved = resolved_view(repo, view)
    html_to_pdf(version_page(repo, view, resolved, print_copy=True), title="warm-up", language="en")
    pages, pdfs = [], []
    for _ in range(5):
        started = time.perf_counter()
        html = version_page(repo, view, resolved, print_copy=True)
        pages.append(time.perf_counter() - started)
        started = time.perf_counter()
        pdf = html_to_pdf(html, title="bench", language="en", pdf_variant="pdf/a-3u")
        pdfs.append(time.perf_counter() - started)
    assert pdf.startswith(b"%PDF")
    return statistics.median(pages), statistics.median(pdfs)


def _same_files(a: Path, b: Path) -> bool:
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    return files_a == files_b and all((a / p).read_bytes() == (b / p).read_bytes() for p in files_a)


def harfbuzz_subset() -> str:
    found = ctypes.util.find_library("harfbuzz-subset")
    return f"available ({found}): WeasyPrint subsets fonts with HarfBuzz" if found else \
        "MISSING: WeasyPrint falls back to fontTools (≈2× slower PDF writes); apt-get install libharfbuzz-subset0"


def main() -> None:
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="addendum-bench-archive-") as folder:
        base = Path(folder)
        template = base / "generated"
        started = time.perf_counter()
        generate(template, VERSIONS)
        generated = time.perf_counter() - started
        views = VERSIONS * len(SITES) * 2
        one, files = _timed_build(template, base / "one", 1)
        many, _ = _timed_build(template, base / "many", cores)
        started = time.perf_counter()
        again = archive(open_repo(base / "many"), ["bench"], jobs=cores)  # in this process: the work, not the start-up
        rerun = time.perf_counter() - started
        identical = _same_files(base / "one" / "history", base / "many" / "history")
        page, pdf = _pdf_cost(template)
    speedup = one / many
    pdfs = views * 2 - len(SITES) * 2
    rows = [
        ("generated history (real publish)", f"{VERSIONS} versions × {len(SITES)} sites × 2 languages = {views} views, "
                                             f"{generated:.1f} s", ""),
        ("files archived by a first build", f"{files} ({pdfs} PDFs)", ""),
        ("first build, 1 worker", f"{one:.1f} s", ""),
        (f"first build, {cores} workers", f"{many:.1f} s", ""),
        ("speed-up", f"{speedup:.2f}×", f"≥ {TARGET_SPEEDUP}× {'ok' if speedup >= TARGET_SPEEDUP else 'MISSED'}"),
        ("re-run, nothing new", f"{rerun:.2f} s (wrote {len(again.written)})",
         f"≤ {TARGET_RERUN_SECONDS} s {'ok' if rerun <= TARGET_RERUN_SECONDS else 'MISSED'}"),
        ("1 worker and all workers: same bytes", "yes" if identical else "NO", "yes"),
        ("one version page, print copy (warm)", f"{page * 1000:.0f} ms", ""),
        ("one PDF/A of it (warm)", f"{pdf * 1000:.0f} ms", ""),
        ("HarfBuzz subset", harfbuzz_subset(), ""),
    ]
    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    print(f"{'archive':<{width}}  {'result':<{value_width}}  target")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:<{value_width}}  {target}")


if __name__ == "__main__":
    main()
