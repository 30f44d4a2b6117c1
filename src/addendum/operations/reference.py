"""The references `addendum help` prints: the policy format (docs/format.md, shipped in the package) and every setting."""

from __future__ import annotations

import json
from pathlib import Path

from addendum.config import CONFIG_NAME, SCHEMA
from addendum.errors import UsageError

PACKAGE_DIR = Path(__file__).resolve().parents[1]
FORMAT_FILE = "format.md"
TOPICS = {
    "format": "the policy format: policies/<id>/, policy.toml, the Markdown files, site overrides",
    "config": f"every {CONFIG_NAME} key, with its type, default and meaning",
}


def docs_dir() -> Path:
    """The shipped reference documents: inside the installed package, or docs/ at the top of a source checkout."""
    packaged = PACKAGE_DIR / "docs"
    return packaged if packaged.is_dir() else PACKAGE_DIR.parents[1] / "docs"


def format_reference() -> str:
    path = docs_dir() / FORMAT_FILE
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"the format reference {path} cannot be read: {exc.strerror or exc}",
                         "this installation of addendum is incomplete; reinstall it (pip install --force-reinstall addendum)") from None


def config_reference() -> str:
    """Every key of config.SCHEMA: dotted key, type, default, choices and meaning."""
    lines = [f"{CONFIG_NAME}: every key is optional; a key `a.b.c` is written `c = …` under the table `[a.b]`.", ""]
    for option in SCHEMA:
        kind = option.type.__name__ + (f", one of {' | '.join(option.choices)}" if option.choices else "") \
            + (f", or a table of language = {option.type.__name__}" if option.per_language else "")
        lines.append(f"{option.key} ({kind}, default {json.dumps(option.default, ensure_ascii=False)})")
        lines.append(f"    {option.doc}")
    return "\n".join(lines) + "\n"


def topics_overview() -> str:
    width = max(map(len, TOPICS))
    lines = ["addendum help TOPIC prints a reference. Topics:"]
    lines += [f"  {name:<{width}}  {summary}" for name, summary in TOPICS.items()]
    lines += ["", "Commands: `addendum --help` lists them, `addendum COMMAND --help` explains one."]
    return "\n".join(lines) + "\n"


def reference(topic: str | None) -> str:
    """The text of one help topic; the list of topics when `topic` is None."""
    if topic is None:
        return topics_overview()
    if topic == "format":
        return format_reference()
    if topic == "config":
        return config_reference()
    raise UsageError(f"no help topic {topic!r}", f"the topics are: {', '.join(TOPICS)}")
