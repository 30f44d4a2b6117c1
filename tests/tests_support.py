"""Small policies that tests build repositories from, and a runner for scripts that need a process of their own."""

import os
import subprocess
import sys
from pathlib import Path

MINIMAL_POLICY_TOML = """\
id = "terms"
default_language = "en"
languages = ["en", "nl"]
default_site = "main"

[title]
en = "Terms"
nl = "Voorwaarden"

[controller]
name = "Example BV"
address = "Main Street 1, 1000 Brussels"
email = "privacy@example.org"

[sites.main]
name = "Main"
contact = { email = "privacy@example.org" }

[sites.shop]
name = "Shop"
contact = { email = "shop@example.org" }
"""

MINIMAL_EN = """\
Intro text.

## Scope {#scope}

These terms apply to {{ site.name }}.

## Contact {#contact}

Write to {{ site.contact.email }}.
"""

MINIMAL_NL = """\
Inleiding.

## Toepassing {#scope}

Deze voorwaarden gelden voor {{ site.name }}.

## Contact {#contact}

Schrijf naar {{ site.contact.email }}.
"""


def run_script(folder: Path, source: str, **environment: str) -> subprocess.CompletedProcess[str]:
    """Run `source` as a Python script in a fresh interpreter (for what only a whole process shows: forks, exit)."""
    script = folder / "script.py"
    script.write_text(source, encoding="utf-8")
    return subprocess.run([sys.executable, str(script)], env={**os.environ, **environment}, capture_output=True, text=True,
                          timeout=60, check=False)
