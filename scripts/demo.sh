#!/usr/bin/env bash
# The main job on the shipped policy, into build/demo/ (tracked files are never modified).
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/demo
rm -rf "$out" && mkdir -p "$out/render"
# Every server the demo starts is stopped when it ends, however it ends.
started=()
trap 'for pid in "${started[@]}"; do kill "$pid" 2>/dev/null || true; done' EXIT

echo "== addendum check privacy: every problem at once (the shipped policy has warnings, no errors)"
addendum check privacy | tail -n 1

echo "== addendum log privacy: published versions, newest first, then what is not yet published"
addendum log privacy

echo "== addendum show privacy --at 2019-03-01 --site equihealth --lang nl: the text in force that day"
addendum show privacy --at 2019-03-01 --site equihealth --lang nl | sed -n '1,6p'

echo "== addendum status privacy: sections x languages"
addendum status privacy | grep -E "^(section|§collection.statistics.hotjar|§sharing) |missing,"

first=$(addendum log privacy --json | python -c 'import json, sys; print(json.load(sys.stdin)["versions"][-1]["id"])')
echo "== addendum diff privacy $first latest --site selentic --lang en"
addendum diff privacy "$first" latest --site selentic --lang en --no-color || [ $? -eq 1 ]
echo "-- diff --json: each reason as data, with its sentence in the language compared (--lang nl)"
{ addendum diff privacy "$first" latest --site selentic --lang nl --json || [ $? -eq 1 ]; } | python -c '
import json, sys
reason = next(r for r in json.load(sys.stdin)["changesets"][0]["reasons"] if r["kind"] == "evidence-changed")
print("  " + json.dumps({k: reason[k] for k in ("kind", "section", "category", "terms", "sentence")}, ensure_ascii=False))'

echo "== addendum redline: the PDF a reviewer signs off"
addendum redline privacy "$first" latest --site selentic --lang en --format pdf -o "$out/redline-selentic-en.pdf"
echo "  $out/redline-selentic-en.pdf"
addendum redline privacy "$first" latest --site selentic --lang en --format docx -o "$out/redline-selentic-en.docx"
echo "  $out/redline-selentic-en.docx (every change a tracked change: Accept All gives the latest text)"

echo "== addendum changelog privacy --lang nl"
addendum changelog privacy --lang nl | sed -n '1,12p'
bash scripts/demo-fr.sh   # a French (and German) terms policy: changelog, redline and notice in French

echo "== addendum render: every site x language"
for site in selentic cavallo equihealth; do
  for lang in en nl; do
    addendum render privacy --site "$site" --lang "$lang" -o "$out/render/$site-$lang.html" 2>/dev/null
    echo "  $out/render/$site-$lang.html"
  done
done

echo "== addendum archive: every published version as HTML, PDF/A and JSON, in a copy of the repository"
if [ ! -d "$out/repo" ]; then
  mkdir -p "$out/repo"
  cp -r policies history templates addendum.toml "$out/repo/"
fi
addendum --repo "$out/repo" archive
echo "== addendum verify"
addendum --repo "$out/repo" verify
echo "== the index marks texts that show a value not provided yet; the feed says until when a version was in force"
grep -c 'class="incomplete"' "$out/repo/history/privacy/index-en.html" | sed 's/$/ archived texts marked/; s/^/  /'
grep -o -m 1 '<p class="incomplete">[^<]*' "$out/repo/history/privacy/index-en.html" | sed 's/<p class="incomplete">/  /'
grep "^In force until" "$out/repo/history/privacy/feed-en.atom" | sed 's/^/  /'
echo "== addendum archive --shard K/2, then merge: the same archive as two shares (one per CI job)"
rm -rf "$out/sharded" && mkdir -p "$out/sharded" && cp -r policies history templates addendum.toml "$out/sharded/"
for k in 1 2; do addendum --repo "$out/sharded" archive --shard "$k/2" | sed -n 1p; done
addendum --repo "$out/sharded" archive merge "$out/sharded"/history/manifest-*-of-2.json
diff -r -x manifest.json "$out/repo/history" "$out/sharded/history" && echo "  byte for byte the archive of one run"

echo "== evidence: the manifest signed with an SSH key, it and the ledger timestamped by an RFC 3161 TSA"
# The key lives in build/demo/, never in the repository; allowed_signers (public keys) and the TSA's CA are committed.
ssh-keygen -q -t ed25519 -N "" -C demo@example.org -f "$out/signing-key"
echo "demo@example.org namespaces=\"addendum\" $(cat "$out/signing-key.pub")" > "$out/repo/allowed_signers"
rm -f "$out/tsa-url"
python scripts/tsa_server.py --folder "$out/tsa" --url-file "$out/tsa-url" &
tsa=$!
started+=("$tsa")
for _ in $(seq 100); do [ -s "$out/tsa-url" ] && break; sleep 0.1; done
cp "$out/tsa/ca.pem" "$out/repo/tsa-ca.pem"
cat >> "$out/repo/addendum.toml" <<TOML

[evidence]
tsa_url = "$(cat "$out/tsa-url")"
tsa_ca_file = "tsa-ca.pem"
TOML
sed -i "s|^\[archive\]\$|[archive]\nsigning_key = \"$PWD/$out/signing-key\"|" "$out/repo/addendum.toml"
addendum --repo "$out/repo" archive | grep -E "^(signed|timestamped)" | sed 's/^/  /'
addendum --repo "$out/repo" verify | sed 's/^/  /'
echo "-- in a copy, one byte of the manifest and one of a ledger entry changed: verify names what no longer holds"
rm -rf "$out/tampered" && cp -r "$out/repo" "$out/tampered"
sed -i '0,/"size": 1/s//"size": 2/' "$out/tampered/history/manifest.json"
sed -i 's/^en = "Example revision: transfers/en = "Example revision: Transfers/' "$out/tampered/history/privacy/ledger.toml"
addendum --repo "$out/tampered" verify | grep -E "^(signature|timestamp|chain)" | sed 's/^/  /' || true
echo "-- in another copy, the CMS version in the manifest's token changed: a byte the TSA does not sign, named too"
rm -rf "$out/tampered" && cp -r "$out/repo" "$out/tampered"
# TimeStampResp → timeStampToken (ContentInfo) → [0] → SignedData → version: its one content byte, 3, becomes 2.
python -c '
import sys
from addendum.seal.der import read
path = sys.argv[1]
data = bytearray(open(path, "rb").read())
version = read(bytes(data)).children[1].children[1].children[0].children[0]
data[version.start + version.header] = 2
open(path, "wb").write(data)' "$out/tampered/history/manifest.json.tsr"
addendum --repo "$out/tampered" verify | grep -E "^(signature|timestamp)" | sed 's/^/  /' || true

echo "== change notices: a local SMTP server, example.org subscribers, addendum notify"
mail="$out/mail"
rm -rf "$mail" "$out/state.db"* "$out/smtp-port" && mkdir -p "$mail"
python scripts/mail_sink.py --folder "$mail" --port-file "$out/smtp-port" &
sink=$!
started+=("$sink")
for _ in $(seq 100); do [ -s "$out/smtp-port" ] && break; sleep 0.1; done
# Subscribers and keys live in build/demo/, never in the repository or its .addendum/.
export ADDENDUM_DATABASE_URL="sqlite:///$PWD/$out/state.db"
export ADDENDUM_NOTIFY_KEYS="1:$(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
export ADDENDUM_SMTP_HOST=127.0.0.1 ADDENDUM_SMTP_PORT="$(cat "$out/smtp-port")" ADDENDUM_SMTP_SECURITY=none
cat > "$out/subscribers.csv" <<'CSV'
email,name,language,sites,audience,consent_source
anna@example.org,Anna Jansen,nl,selentic,subscriber,demo sign-up form
ben@example.org,Ben Smith,en,selentic,subscriber,demo sign-up form
carla@example.org,Carla Peeters,nl,cavallo,account,demo account
dev@example.org,Dev Patel,en,cavallo,account,demo account
CSV
addendum subscribers import "$out/subscribers.csv"
revision=$(addendum log privacy --json | python -c '
import json, sys
versions = json.load(sys.stdin)["versions"]  # newest first
print(next(v["id"] for v in versions[:-1] if v["classification"] == "material"))')
# Notices link to the archive: they are sent from the archived copy, where every linked page exists.
archived=(--repo "$out/repo")
echo "-- addendum notify privacy $revision: it took effect years ago, so a notice cannot announce it"
addendum "${archived[@]}" notify privacy "$revision" --yes 2>&1 | sed 's/^/  /' || true
late=(--late --reason "demo: the subscribers were never told of this revision")
echo "-- addendum notify privacy $revision --late …: refused while cavallo's pages show \"[to be provided: …]\""
addendum "${archived[@]}" notify privacy "$revision" --yes "${late[@]}" 2>&1 | head -n 3 | cut -c1-150 | sed 's/^/  /' || true
echo "-- addendum notify privacy $revision --yes --late --reason … --site selentic: the notice says the change took effect"
addendum "${archived[@]}" notify privacy "$revision" --yes "${late[@]}" --site selentic 2>/dev/null
echo "-- again: nothing is sent twice"
addendum "${archived[@]}" notify privacy "$revision" --yes "${late[@]}" --site selentic 2>/dev/null
addendum "${archived[@]}" notices privacy "$revision" | cut -c1-110
kill "$sink" && wait "$sink" 2>/dev/null || true
echo "mail: $(ls "$mail" | wc -l) message(s) received, copies in $mail/"
ls "$mail" | sed 's/^/  /'
echo "-- each notice names its sender in the reader's language ([notify] from_name = { en = …, nl = … }):"
python - "$mail" <<'PY' | sort -u
import pathlib, sys
from email import message_from_binary_file, policy
for path in pathlib.Path(sys.argv[1]).iterdir():
    with path.open("rb") as file:
        message = message_from_binary_file(file, policy=policy.default)
    print(f"  {message['Content-Language']}: From: {message['From']}")
PY

echo "== webhooks: a local receiver verifies each delivery with the standardwebhooks package"
hooks="$out/webhooks" && rm -rf "$hooks" && mkdir -p "$hooks"
python scripts/webhook_receiver.py --secrets "$hooks/secrets" --log "$hooks/verified.jsonl" --port-file "$hooks/port" &
receiver=$!
started+=("$receiver")
for _ in $(seq 100); do [ -s "$hooks/port" ] && break; sleep 0.1; done
scratch="$out/repo"  # publishing needs git: the scratch copy becomes a repository of its own
if [ ! -d "$scratch/.git" ]; then
  git -C "$scratch" init -q && git -C "$scratch" add -A
  git -C "$scratch" -c user.name=Demo -c user.email=demo@example.org commit -q -m "Demo copy"
fi
addendum --repo "$scratch" webhooks add "http://127.0.0.1:$(cat "$hooks/port")/addendum" \
  --events version.published,version.effective 2>/dev/null | tee "$hooks/add.txt" | sed 's/whsec_.*/whsec_… (shown once)/'
grep -o 'whsec_[^ ]*' "$hooks/add.txt" > "$hooks/secrets"
sed -i 's/no longer which to receive/no longer wish to receive/' "$scratch/policies/privacy/en.md"
git -C "$scratch" -c user.name=Demo -c user.email=demo@example.org commit -q -am "Fix a typo"
effective=$(python -c 'import datetime; print(datetime.date.today() + datetime.timedelta(days=30))')
echo "-- addendum publish privacy --effective $effective --material …: emits version.published and delivers it"
addendum --repo "$scratch" publish privacy --effective "$effective" --material --summary "A typo fixed; contact details updated." 2>&1 \
  | grep -E "^(published|webhooks)" | sed 's/^/  /'
addendum --repo "$scratch" archive > /dev/null  # the new version joins the archive, signed and timestamped
echo "-- addendum tick (cron, a systemd timer or serve's background task): nothing is due before $effective"
addendum --repo "$scratch" tick 2>/dev/null | sed 's/^/  /'
echo "-- addendum tick --today $effective: version.effective, once"
addendum --repo "$scratch" tick --today "$effective" 2>/dev/null | cut -c1-100 | sed 's/^/  /'
addendum --repo "$scratch" tick --today "$effective" 2>/dev/null | sed 's/^/  again: /'
echo "-- addendum webhooks deliveries: the record"
addendum --repo "$scratch" webhooks deliveries 2>/dev/null | cut -c1-110 | sed 's/^/  /'
kill "$receiver" && wait "$receiver" 2>/dev/null || true
echo "the receiver verified:"
sed 's/^/  /' "$hooks/verified.jsonl"

echo
echo "done. Open in a browser: $out/repo/history/privacy/index.html (the archive), $out/render/selentic-nl.html;"
echo "the redline: $out/redline-selentic-en.pdf; the notices received: $mail/"

echo
echo "== addendum serve: the workspace and the public endpoints, against the notices just sent"
addendum serve --port 0 > "$out/serve.log" 2>&1 &
server=$!
started+=("$server")
for _ in $(seq 300); do grep -q "/history/" "$out/serve.log" 2>/dev/null && break; sleep 0.1; done
base=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$out/serve.log" | head -n 1)
eml=$(grep -l "^List-Unsubscribe:" "$mail"/* | head -n 1)
read -r who link < <(python - "$eml" <<'PY'
import re, sys
from email import message_from_binary_file, policy
with open(sys.argv[1], "rb") as file:
    message = message_from_binary_file(file, policy=policy.default)
print(message["To"].addresses[0].addr_spec, re.search(r"<(https://[^>]+)>", message["List-Unsubscribe"])[1])
PY
)
echo "-- $(basename "$eml") to $who: List-Unsubscribe <$link>"
addendum subscribers list 2>/dev/null | grep -F "$who" | sed "s/^/  before: /"
python - "$base/unsubscribe/${link##*/}" <<'PY'
import sys, urllib.request
request = urllib.request.Request(sys.argv[1], data=b"List-Unsubscribe=One-Click", method="POST",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
with urllib.request.urlopen(request, timeout=10) as answer:  # RFC 8058: 200, no redirect, no cookie
    print(f"-- POST /unsubscribe/…: {answer.status}, redirect: {answer.url != sys.argv[1]}, cookie: {answer.headers.get('Set-Cookie') is not None}")
PY
addendum subscribers list 2>/dev/null | grep -F "$who" | sed "s/^/  after:  /"
echo "-- the version in force on 2020-08-15 for selentic/nl (GET $base/api/policies/privacy/at/2020-08-15?site=selentic&lang=nl):"
python - "$base/api/policies/privacy/at/2020-08-15?site=selentic&lang=nl" <<'PY'
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=10) as answer:
    body = json.load(answer)
print(f"  in force: {body['in_force']['id']} ({body['in_force']['content_hash'][:19]}…); upcoming: {body['upcoming']['id']}")
PY
kill -INT "$server" && wait "$server" 2>/dev/null || true
echo
echo "addendum serve printed (the login link works once; run addendum serve again for a new one):"
grep -v "Ctrl+C" "$out/serve.log" | sed "s/^/  /"

echo
echo "== addendum acceptances: which version each user accepted, and who must accept again (in $out/state.db)"
cat > "$out/acceptances.csv" <<'CSV'
user,policy,version,site,language,accepted_at,method
u-1001,privacy,privacy@2018-05-19,selentic,nl,2019-02-11T09:30:00+01:00,signup
u-1002,privacy,privacy@2018-05-19,selentic,en,2019-06-03T14:05:00Z,clickwrap
u-2001,privacy,privacy@2018-05-19,cavallo,nl,2020-01-20T08:00:00Z,clickwrap
u-2002,privacy,privacy@2020-09-01,cavallo,en,2020-09-14T17:45:00Z,email-link
CSV
acc=(addendum --repo "$out/repo" acceptances)
"${acc[@]}" import "$out/acceptances.csv"
echo "-- who must accept again after the material revision privacy@2020-09-01 (addendum acceptances needs USER …):"
tail -n +2 "$out/acceptances.csv" | while IFS=, read -r user _ _ site _; do
  "${acc[@]}" needs "$user" --policy privacy --site "$site" | cut -c1-140 | sed 's/^/  /' || true
done
echo "-- addendum acceptances pending privacy: everyone who must accept again"
"${acc[@]}" pending privacy 2>&1 | sed 's/^/  /'
key=$("${acc[@]}" keys add selentic 2>/dev/null)
addendum --repo "$out/repo" serve --public --port 0 > "$out/serve-public.log" 2>&1 &
server=$!
started+=("$server")
for _ in $(seq 300); do grep -q "/history/" "$out/serve-public.log" 2>/dev/null && break; sleep 0.1; done
echo "-- u-1001 accepts privacy@2020-09-01 on selentic: POST /api/acceptances, then GET /api/needs-acceptance/u-1001"
python - "$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$out/serve-public.log" | head -n 1)" "$key" <<'PY'
import json, sys, urllib.request
base, key = sys.argv[1], sys.argv[2]
def call(path, body=None):
    request = urllib.request.Request(base + path, data=json.dumps(body).encode() if body else None,
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.status, json.load(answer)
status, body = call("/api/acceptances", {"user": "u-1001", "policy": "privacy", "version": "privacy@2020-09-01",
                                         "language": "nl", "method": "clickwrap", "ip": "203.0.113.7"})
print(f"  {status}: recorded {body['acceptance']['version']} at {body['acceptance']['accepted_at']} (IP kept as a keyed hash only)")
status, body = call("/api/needs-acceptance/u-1001?policy=privacy&lang=nl")
print(f"  {status}: needs_acceptance = {json.dumps(body['needs_acceptance'])}, accepted {body['accepted']['version']}")
PY
kill -INT "$server" && wait "$server" 2>/dev/null || true
"${acc[@]}" stats privacy

echo
echo "== addendum evidence anna@example.org: what was in force for her, what she was told, and the proof"
addendum --repo "$out/repo" evidence anna@example.org -o "$out/dossier.pdf" 2>/dev/null | cut -c1-160
echo "  $out/dossier.pdf"
echo "-- addendum subscribers forget anna@example.org --yes: the address goes, the proof stays under a keyed hash"
forgot=$(addendum subscribers forget anna@example.org --yes)
echo "$forgot" | sed 's/^/  /' | cut -c1-160
hash=${forgot##*keyed hash }
hash=${hash%%;*}
echo "-- addendum evidence ${hash:0:16}…: the notification record, without the address"
addendum --repo "$out/repo" evidence "$hash" 2>/dev/null | cut -c1-160
