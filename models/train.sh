#!/usr/bin/env bash
# Rebuild the bundled models in models/ exactly as they were made (seed 0 everywhere):
# one byte-level BPE tokenizer (2048 ids) trained on Shakespeare's works, the token shards, and
# four models that share it — a big and a little Mamba, a big and a little Transformer — each
# trained with `seqlab train` for the steps in its config (models/configs/*.json), and a masked
# diffusion Transformer of transformer-little's size (mdlm-little) and a bidirectional Mamba
# (mdlm-mamba-little), both with `seqlab diffusion train`.
#
#   bash models/train.sh [MODEL...]     # default: all six; e.g. `bash models/train.sh mamba-little`
#
# Work files go to runs/bundle/; each finished model's config.json, model.safetensors and
# tokenizer.json are copied into models/<name>/ (what is committed), with its metrics.
set -euo pipefail
cd "$(dirname "$0")/.."
seqlab=${SEQLAB:-./target/release/seqlab}
work=runs/bundle
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(mamba-little mamba-big transformer-little transformer-big mdlm-little mdlm-mamba-little)

[ -n "${SEQLAB:-}" ] || cargo build --release
bash datasets/fetch_shakespeare.sh
mkdir -p "$work"
if [ ! -f "$work/data/meta.json" ]; then
    "$seqlab" tokenizer train --kind bpe --vocab-size 2048 datasets/downloads/shakespeare/*.txt \
        -o "$work/tokenizer.json"
    "$seqlab" prepare text -t "$work/tokenizer.json" datasets/downloads/shakespeare -o "$work/data"
fi
for name in "${models[@]}"; do
    family=${name%%-*}
    run="$work/$name"
    if [ -f "$run/checkpoint/trainer_state.json" ]; then resume=(--resume); else resume=(); fi
    # mdlm-*: masked diffusion LMs (`seqlab diffusion train`; the backbone is the config's model).
    if [ "$family" = mdlm ]; then cmd=(diffusion train); else cmd=(train --model "$family"); fi
    "$seqlab" "${cmd[@]}" --config "models/configs/$name.json" --data "$work/data" \
        -o "$run" "${resume[@]}"
    mkdir -p "models/$name"
    cp "$run/checkpoint/config.json" "$run/checkpoint/model.safetensors" "models/$name/"
    cp "$work/data/tokenizer.json" "models/$name/tokenizer.json"
    cp "$run/metrics.jsonl" "models/$name/metrics.jsonl"
    echo "models/$name: $(du -h "models/$name/model.safetensors" | cut -f1)"
done
