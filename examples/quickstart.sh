#!/usr/bin/env bash
# The main job on bundled data, no download: train a character-level Mamba LM on Hamlet and
# sample from it.
#   1. build the release binary
#   2. char tokenizer from the text            -> runs/quickstart/char.json
#   3. token shards + meta.json (95/5 split)   -> runs/quickstart/data/
#   4. train (examples/configs/mamba-char-hamlet.json; AdamW, warmup + cosine, val loss,
#      metrics.jsonl, loss.png, atomic checkpoints) -> runs/quickstart/mamba/
#   5. generate 300 characters from the checkpoint
# Takes a few minutes on a 2-core laptop. Re-running retrains from scratch.
set -euo pipefail
cd "$(dirname "$0")/.."
out=runs/quickstart
seqlab=./target/release/seqlab

cargo build --release
mkdir -p "$out"
rm -rf "$out/data" "$out/mamba"
"$seqlab" tokenizer train --kind char datasets/sample/hamlet.txt -o "$out/char.json"
"$seqlab" prepare text -t "$out/char.json" datasets/sample/hamlet.txt -o "$out/data"
"$seqlab" train --model mamba --config examples/configs/mamba-char-hamlet.json \
    --data "$out/data" -o "$out/mamba"
echo
"$seqlab" generate --model "$out/mamba/checkpoint" --prompt "HAMLET. " \
    --max-new-tokens 300 --temperature 0.8 --seed 1
echo
echo "loss curve: $out/mamba/loss.png   metrics: $out/mamba/metrics.jsonl"
