"""Small policies that tests build repositories from."""

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
