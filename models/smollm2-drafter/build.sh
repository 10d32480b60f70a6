#!/usr/bin/env bash
# Rebuild models/smollm2-drafter: a 2-layer Mamba (d 64) drafter for SmolLM2-135M-Instruct
# (datasets/fetch_smollm2.sh), on SmolLM2's own tokenizer (49152 ids), for `seqlab speculate`.
#
#   bash models/smollm2-drafter/build.sh
#
# Steps (work files in runs/smollm2-drafter/, git-ignored):
#  1. tokenizer.json: the byte-level BPE embedded in the GGUF, exported as an HF tokenizer.json;
#  2. distillation text: SmolLM2's greedy continuations (96 tokens) of 16-token passages of the
#     State of the Union addresses 1790-2019 (newest first), for at most 540 s of generation
#     (sequence-level knowledge distillation, Kim & Rush 2016);
#  3. `seqlab prepare text` of the addresses (2020 and 2021 held out: the evaluation prompts in
#     crates/seqlab-speculative/data/prompts_smollm2.txt come from them) plus 25 copies of the
#     distillation text;
#  4. compact vocabulary (compact_vocab.py): the 8191 most frequent ids of the train split
#     (97% of its tokens) + one "rare" id, so training's softmax is 8192-way, not 49152-way
#     (10x faster steps on the CPU);
#  5. `seqlab train` (train_config.json, seed 0; stopped at the last checkpoint before the wall
#     budget when STOP_AFTER is set);
#  6. expand back to the 49152-id vocabulary (zero rows for the ids outside the compact set)
#     and store the weights in f16: 6.4 MB instead of 12.8 MB in f32 (the tied 49152 x 64
#     embedding is 98% of the parameters).
# Generation is timed, so step 2's text (and everything after it) depends on the machine's speed.
set -euo pipefail
cd "$(dirname "$0")/../.."
seqlab=${SEQLAB:-./target/release/seqlab}
work=runs/smollm2-drafter
out=models/smollm2-drafter
gguf=datasets/downloads/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
tool=./target/release/examples/smollm2_drafter

[ -n "${SEQLAB:-}" ] || cargo build --release --bin seqlab
cargo build --release -p seqlab-speculative --example smollm2_drafter
bash datasets/fetch_smollm2.sh
bash datasets/fetch_sotu.sh
mkdir -p "$work/text"
[ -f "$work/tokenizer.json" ] || "$tool" tokenizer --gguf "$gguf" -o "$work/tokenizer.json"

mapfile -t sotu < <(ls datasets/downloads/sotu/*.txt | grep -v -e '/2020_' -e '/2021_')
if [ ! -f "$work/distill.txt" ]; then
    mapfile -t newest_first < <(printf '%s\n' "${sotu[@]}" | sort -r)
    RAYON_NUM_THREADS=1 "$tool" distill --gguf "$gguf" --seconds 540 --prompt-tokens 16 \
        --new-tokens 96 -o "$work/distill.txt" "${newest_first[@]}"
fi
if [ ! -f "$work/data/meta.json" ]; then
    for i in $(seq -w 1 25); do cp "$work/distill.txt" "$work/text/distill_$i.txt"; done
    for f in "${sotu[@]}"; do cp "$f" "$work/text/"; done
    "$seqlab" prepare text -t "$work/tokenizer.json" "$work/text" -o "$work/data"
fi
[ -f "$work/data-compact/meta.json" ] ||
    python3 "$out/compact_vocab.py" "$work/data" "$work/data-compact" 8191

run="$work/run-compact"
if [ -f "$run/checkpoint/trainer_state.json" ]; then resume=(--resume); else resume=(); fi
stop=()
[ -z "${STOP_AFTER:-}" ] || stop=(--stop-after "$STOP_AFTER")
RAYON_NUM_THREADS=1 "$seqlab" train --config "$out/train_config.json" --data "$work/data-compact" \
    -o "$run" "${resume[@]}" "${stop[@]}"

"$tool" expand --compact "$run/checkpoint" --id-map "$work/data-compact/id_map.json" \
    --vocab 49152 -o "$out"
cp "$work/tokenizer.json" "$out/tokenizer.json"
cp "$run/metrics.jsonl" "$out/metrics.jsonl"
echo "$out: $(du -h "$out/model.safetensors" | cut -f1)"
