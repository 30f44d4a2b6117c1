"""Each published version's suggested class: as its ledger entry records it, or worked out again and kept in a cache.

A version published before the ledger recorded suggestions has its class worked out again from its text and its
predecessor's: that means building the materiality matchers and classifying every site × language, most of what
`addendum log` would spend. The answer depends on nothing but those two versions' source files, their ledger hashes,
the word lists and the code that classifies, so it is kept keyed by a digest of all of them: an edit to any one of
them is a new key, never a stale answer, and the same answer in every repository. It is kept in the user's cache
folder (~/.cache/addendum/suggestions/, or under XDG_CACHE_HOME), never in the work tree, where a commit could plant
an answer. The cache is only ever a shortcut: a file that cannot be read or written, or does not hold what it
should, is worked out again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

from addendum import __version__
from addendum.compare.reasons import FIRST_VERSION_REASON
from addendum.config import Repo
from addendum.errors import AddendumError
from addendum.files import user_cache, write_atomic
from addendum.history.ledger import PublishedVersion
from addendum.history.versions import published_versions, verified_policy, version_files
from addendum.publish.log import VersionLog, version_log

CACHE_FORMAT = "addendum-suggestion/1"
PACKAGE = Path(__file__).resolve().parents[1]
# The code and data a suggestion is worked out with: the stages that read, resolve, compare and classify a policy.
CLASSIFYING_CODE = ("compare", "policy")
# The libraries whose behaviour shapes it: Markdown parsing, placeholders, Babel's country names.
CLASSIFYING_LIBRARIES = ("markdown_it", "jinja2", "babel")


Suggestion = tuple[str, tuple[str, ...]]


def suggestions(repo: Repo, policy_id: str) -> dict[str, Suggestion]:
    """Each published version's suggested class and reasons: as recorded when it was published, or worked out again."""
    versions = published_versions(repo, policy_id)
    found: dict[str, Suggestion] = {}
    for index, version in enumerate(versions):
        if version.extra.get("suggested"):
            found[version.id] = (str(version.extra["suggested"]), tuple(version.extra.get("reasons", ())))
        elif index == 0:
            found[version.id] = ("material", (FIRST_VERSION_REASON,))
        else:
            found[version.id] = worked_out(repo, versions[index - 1], version)
    return found


def version_log_with_suggestions(repo: Repo, policy_id: str) -> VersionLog:
    """`addendum log`: the versions with their suggested class and its reasons next to the editor's."""
    return replace(version_log(repo, policy_id), suggestions=suggestions(repo, policy_id))


def worked_out(repo: Repo, old: PublishedVersion, new: PublishedVersion) -> Suggestion:
    """The suggested class of `new` against `old`, from the cache when the same inputs were classified before."""
    old_files, old_where = version_files(repo, old)
    new_files, new_where = version_files(repo, new)
    key = cache_key(old, old_files, new, new_files)
    path = user_cache("suggestions") / f"{key}.json"
    cached = _read(path, key)
    if cached is not None:
        return cached
    # Imported here: with the answer cached, `log` never builds the classifier (word lists, matchers, Babel's names).
    from addendum.compare.classify import assess

    assessment = assess(verified_policy(old, old_files, old_where), verified_policy(new, new_files, new_where))
    found = (assessment.level, tuple(assessment.reasons))
    _write(path, key, found)
    return found


def cache_key(old: PublishedVersion, old_files: Mapping[str, str], new: PublishedVersion,
              new_files: Mapping[str, str]) -> str:
    """A digest of everything the suggestion of `new` against `old` depends on."""
    digest = hashlib.sha256(CACHE_FORMAT.encode())
    digest.update(code_digest().encode())
    for version, files in ((old, old_files), (new, new_files)):
        _update(digest, [version.id, *(f"{k}={v}" for k, v in sorted(version.hashes.items()))])
        for name in sorted(files):
            _update(digest, [name, files[name]])
    return digest.hexdigest()


@lru_cache(maxsize=1)
def code_digest() -> str:
    """A digest of the classifying code, its word lists and data files, and the versions of the libraries it uses."""
    digest = hashlib.sha256(f"addendum {__version__}; python {sys.version_info[:2]}".encode())
    for library in CLASSIFYING_LIBRARIES:
        module = sys.modules.get(library) or __import__(library)
        _update(digest, [library, str(getattr(module, "__version__", ""))])
    for path in classifying_files():
        _update(digest, [path.relative_to(PACKAGE).as_posix()])
        digest.update(path.read_bytes())
    return digest.hexdigest()


def classifying_files() -> list[Path]:
    """The modules and data files (word lists, authorities) of the stages a suggestion is worked out with."""
    return [path for folder in CLASSIFYING_CODE for path in sorted((PACKAGE / folder).rglob("*"))
            if path.suffix in (".py", ".toml") and "__pycache__" not in path.parts]


def _update(digest: hashlib._Hash, parts: Iterable[str]) -> None:
    for part in parts:  # each part with its length, so that no two sequences of parts run together alike
        data = part.encode("utf-8", "surrogatepass")
        digest.update(f"{len(data)}:".encode())
        digest.update(data)


def _read(path: Path, key: str) -> Suggestion | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT or data.get("key") != key:
        return None
    level, reasons = data.get("level"), data.get("reasons")
    if not isinstance(level, str) or not level or not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        return None
    return level, tuple(reasons)


def _write(path: Path, key: str, found: Suggestion) -> None:
    """Keep the answer for next time; a repository that cannot be written to only misses the shortcut."""
    data = {"format": CACHE_FORMAT, "key": key, "level": found[0], "reasons": list(found[1])}
    with contextlib.suppress(AddendumError, OSError):
        write_atomic(path, json.dumps(data, ensure_ascii=False, indent=1) + "\n")
