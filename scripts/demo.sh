#!/usr/bin/env bash
# The main job on the shipped policy, into build/demo/ (tracked files are never modified).
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/demo
rm -rf "$out" && mkdir -p "$out/render"

echo "== addendum check privacy"
addendum check privacy | tail -n 1

echo "== addendum render: every site x language"
for site in selentic cavallo equihealth; do
  for lang in en nl; do
    addendum render privacy --site "$site" --lang "$lang" -o "$out/render/$site-$lang.html" 2>/dev/null
    echo "  $out/render/$site-$lang.html"
  done
done
echo "done: open $out/render/selentic-nl.html in a browser"
