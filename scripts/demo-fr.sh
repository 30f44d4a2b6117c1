#!/usr/bin/env bash
# The French side of `make demo`: a small terms-of-use policy in French and German, published twice, its
# changelog, redline and change notice in French (the product's words from the French catalogue, dates and
# country names from CLDR). Everything is written under build/demo/fr/.
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/demo/fr
rm -rf "$out" && mkdir -p "$out/repo/policies/terms"
repo="$out/repo"
cat > "$repo/addendum.toml" <<'TOML'
[archive]
base_url = "https://example.org/legal/history/"

[notify]
from_address = "legal@example.org"
from_name = "Acme SAS"
unsubscribe_url = "https://example.org/legal/unsubscribe"
TOML
cat > "$repo/policies/terms/policy.toml" <<'TOML'
id = "terms"
kind = "terms"                        # notices speak of the reader's options, not of personal data
default_language = "fr"
languages = ["fr", "de"]
default_site = "acme"

[title]
fr = "Conditions d'utilisation"
de = "Nutzungsbedingungen"

[controller]
name = "Acme SAS"
address = "1 rue de la Paix, 75002 Paris"
email = "legal@example.org"
country = "FR"

[options]
apply = ["object", "terminate", "continued-use"]

[sites.acme]
name = "Acme"
contact = { email = "legal@example.org" }

[sites.boutique]
name = "Acme Boutique"
contact = { email = "boutique@example.org" }
TOML
cat > "$repo/policies/terms/fr.md" <<'MD'
Les présentes conditions régissent l'utilisation de {{ site.name }}.

## Résiliation {#termination}

Vous pouvez résilier votre compte à tout moment, avec un préavis de 30 jours.

## Nous joindre {#contact}

Écrivez-nous à {{ site.contact.email }}.
MD
cat > "$repo/policies/terms/de.md" <<'MD'
Diese Bedingungen regeln die Nutzung von {{ site.name }}.

## Kündigung {#termination}

Sie können Ihr Konto jederzeit mit einer Frist von 30 Tagen kündigen.

## Kontakt {#contact}

Schreiben Sie an {{ site.contact.email }}.
MD
export GIT_AUTHOR_NAME="Demo Editor" GIT_AUTHOR_EMAIL="editor@example.org" GIT_COMMITTER_NAME="Demo Editor" GIT_COMMITTER_EMAIL="editor@example.org"
# The story's commits are dated when they were made, before each version was announced (publish refuses a
# published date earlier than the text's commit).
git -C "$repo" init -q && printf '.addendum/\n' > "$repo/.gitignore" && git -C "$repo" add -A
GIT_AUTHOR_DATE="2025-11-20T10:00:00+01:00" GIT_COMMITTER_DATE="2025-11-20T10:00:00+01:00" git -C "$repo" commit -q -m "Conditions"
addendum --repo "$repo" publish terms --effective 2026-01-01 --published 2025-12-01 --material \
  --summary "Première version." --summary-de "Erste Fassung." >/dev/null 2>&1
sed -i 's/avec un préavis de 30 jours/avec un préavis de 60 jours/' "$repo/policies/terms/fr.md"
sed -i 's/mit einer Frist von 30 Tagen/mit einer Frist von 60 Tagen/' "$repo/policies/terms/de.md"
GIT_AUTHOR_DATE="2026-11-25T10:00:00+01:00" GIT_COMMITTER_DATE="2026-11-25T10:00:00+01:00" git -C "$repo" commit -q -am "Préavis de 60 jours"
addendum --repo "$repo" publish terms --effective 2026-12-31 --published 2026-11-30 --material \
  --summary "Le préavis de résiliation passe de 30 à 60 jours." --summary-de "Die Kündigungsfrist steigt von 30 auf 60 Tage." >/dev/null 2>&1

echo "== addendum changelog terms --lang fr: a French policy, in French throughout"
addendum --repo "$repo" changelog terms --lang fr | sed -n '1,16p'
addendum --repo "$repo" redline terms terms@2026-01-01 latest --lang fr -o "$out/redline-acme-fr.html" 2>/dev/null
echo "  $out/redline-acme-fr.html"
printf 'email,name,language,sites,audience,consent_source\nalice@example.org,Alice Martin,fr,acme,subscriber,demo\n' > "$out/subscribers.csv"
ADDENDUM_DATABASE_URL="sqlite:///$PWD/$out/state.db" addendum --repo "$repo" subscribers import "$out/subscribers.csv" >/dev/null
ADDENDUM_DATABASE_URL="sqlite:///$PWD/$out/state.db" addendum --repo "$repo" notify terms terms@2026-12-31 --preview "$out/notices" >/dev/null 2>&1
echo "-- the French notice (a terms notice: options, no rights or authority)"
python - "$out/notices" <<'PY'
import sys
from email import message_from_bytes, policy
from pathlib import Path
path = sorted(Path(sys.argv[1]).glob("*.eml"))[0]
message = message_from_bytes(path.read_bytes(), policy=policy.default)
print("Subject:", message["Subject"])
print("\n".join(message.get_body(("plain",)).get_content().splitlines()[:14]))
PY
