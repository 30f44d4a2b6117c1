"""Where every archived file lives under history/: the one place that spells the archive's stable, permanent paths."""

from __future__ import annotations

import posixpath
import re

from addendum.errors import UsageError
from addendum.ids import require_id, require_language

# A published version's folder name: its effective date and the optional ".n" of a second version that day.
SLUG_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}(?:\.(?:[2-9]|[1-9][0-9]{1,3}))?$")

MANIFEST = "manifest.json"
VERSION_PAGE = "index.html"
VERSION_PDF = "policy.pdf"
VERSION_JSON = "policy.json"
REDLINE_PAGE = "redline.html"
REDLINE_PDF = "redline.pdf"
# The manifest's SSH signature and RFC 3161 timestamp token, beside it; each ledger entry's token in TIMESTAMPS.
MANIFEST_SIGNATURE = "manifest.json.sig"
MANIFEST_TIMESTAMP = "manifest.json.tsr"
MANIFEST_TIMESTAMP_SIGNATURE = "manifest.json.tsr.sig"  # the SSH signature of that token's bytes
TIMESTAMPS = "timestamps"


def require_slug(slug: str) -> str:
    if not SLUG_PATTERN.fullmatch(slug):
        raise UsageError(f"version folder {slug!r} is not a version date", "version folders look like 2018-05-19 or 2018-05-19.2")
    return slug


def version_dir(policy_id: str, slug: str, site_id: str, language: str) -> str:
    """The folder of one version as one site's readers saw it in one language, e.g. privacy/2018-05-19/selentic/en."""
    return "/".join((require_id(policy_id, "policy"), require_slug(slug), require_id(site_id, "site"), require_language(language)))


def ledger_timestamp(policy_id: str, slug: str) -> str:
    """The timestamp token of a version's ledger entry, e.g. privacy/timestamps/2018-05-19.tsr."""
    return f"{require_id(policy_id, 'policy')}/{TIMESTAMPS}/{require_slug(slug)}.tsr"


def version_page(policy_id: str, slug: str, site_id: str, language: str) -> str:
    return f"{version_dir(policy_id, slug, site_id, language)}/{VERSION_PAGE}"


def version_pdf(policy_id: str, slug: str, site_id: str, language: str) -> str:
    return f"{version_dir(policy_id, slug, site_id, language)}/{VERSION_PDF}"


def version_json(policy_id: str, slug: str, site_id: str, language: str) -> str:
    return f"{version_dir(policy_id, slug, site_id, language)}/{VERSION_JSON}"


def redline_page(policy_id: str, slug: str, site_id: str, language: str) -> str:
    """The redline of this version against the previous one (the first version has none)."""
    return f"{version_dir(policy_id, slug, site_id, language)}/{REDLINE_PAGE}"


def redline_pdf(policy_id: str, slug: str, site_id: str, language: str) -> str:
    return f"{version_dir(policy_id, slug, site_id, language)}/{REDLINE_PDF}"


def policy_index(policy_id: str, language: str | None = None) -> str:
    """The list of a policy's versions: index.html in the default language, index-<lang>.html in each language."""
    name = f"index-{require_language(language)}.html" if language else "index.html"
    return f"{require_id(policy_id, 'policy')}/{name}"


def changelog(policy_id: str, language: str, fmt: str = "html") -> str:
    if fmt not in ("html", "md"):
        raise UsageError(f"changelog format {fmt!r} is not html or md")
    return f"{require_id(policy_id, 'policy')}/changelog-{require_language(language)}.{fmt}"


def feed(policy_id: str, language: str) -> str:
    return f"{require_id(policy_id, 'policy')}/feed-{require_language(language)}.atom"


def link(from_path: str, to_path: str) -> str:
    """A relative link from one archived file to another, so the archive works from file:// and on any host."""
    return posixpath.relpath(to_path, posixpath.dirname(from_path) or ".")


def url(base_url: str, path: str) -> str:
    """The public address of an archived file, from the archive's base URL (archive.base_url)."""
    return base_url.rstrip("/") + "/" + path if base_url else path
