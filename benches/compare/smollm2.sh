#!/usr/bin/env bash
# SmolLM2-135M-Instruct (GGUF Q4_1) decode at batch 1 (issue 5): seqlab's GGUF Transformer LM vs
# candle-transformers' quantized Llama on the same file and the same token ids, one after the
# other in one go, then the ratio. Both also report the perplexity of the same prose paragraph
# (a cross-check of the two implementations) and their greedy tokens.
# Usage (from the repository root): benches/compare/smollm2.sh
# Needs datasets/fetch_smollm2.sh to have run. Writes benches/compare/results/smollm2-{seqlab,
# candle}.json and prints a summary JSON. Both run on RAYON_NUM_THREADS (default 2) threads.
# Knobs: STEPS (greedy decode steps, 128), RUNS (timed runs, median, 3), GGUF.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
GGUF=${GGUF:-$ROOT/datasets/downloads/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf}
STEPS=${STEPS:-128}
RUNS=${RUNS:-3}
RES=$ROOT/benches/compare/results
mkdir -p "$RES"
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-2}
[[ -f "$GGUF" ]] || { echo "error: $GGUF not found; run datasets/fetch_smollm2.sh" >&2; exit 1; }

echo "== building (no timing) ==" >&2
cargo build --release -p seqlab-lm --example smollm2_decode >&2
# The candle side is its own workspace; its build goes under the git-ignored /target.
CANDLE_TARGET=$ROOT/target/candle-smollm2
cargo build --release --manifest-path benches/compare/candle-smollm2/Cargo.toml \
    --target-dir "$CANDLE_TARGET" >&2

echo "== uptime before: $(uptime)" >&2
echo "== seqlab ==" >&2
"$ROOT/target/release/examples/smollm2_decode" --gguf "$GGUF" --steps "$STEPS" --runs "$RUNS" \
    --ids-out "$RES/smollm2-ids.json" | tail -n1 > "$RES/smollm2-seqlab.json"
echo "== candle-transformers ==" >&2
"$CANDLE_TARGET/release/candle-smollm2-bench" "$GGUF" "$RES/smollm2-ids.json" "$STEPS" "$RUNS" \
    | tail -n1 > "$RES/smollm2-candle.json"
echo "== uptime after: $(uptime)" >&2

python3 - "$RES" <<'PY'
import json, os, sys
d = sys.argv[1]
s, c = (json.load(open(os.path.join(d, f"smollm2-{n}.json"))) for n in ("seqlab", "candle"))
same = 0
for a, b in zip(s["greedy_ids"], c["greedy_ids"]):
    if a != b:
        break
    same += 1
print(json.dumps({
    "model": "SmolLM2-135M-Instruct Q4_1 (GGUF)",
    "threads": int(os.environ.get("RAYON_NUM_THREADS", "2")),
    "decode_b1_tokens_per_s": {"seqlab": s["decode_tokens_per_s"], "candle": c["decode_tokens_per_s"]},
    "ratio_decode_seqlab_vs_candle": s["decode_tokens_per_s"] / c["decode_tokens_per_s"],
    "prefill_ms": {"seqlab": s["prefill_ms"], "candle": c["prefill_ms"], "prompt_tokens": s["prompt_tokens"]},
    "perplexity": {"seqlab": s["perplexity"], "candle": c["perplexity"], "tokens": s["perplexity_tokens"]},
    "greedy_tokens_identical_prefix": f"{same}/{len(s['greedy_ids'])}",
    "seqlab_greedy_text": s["greedy_text"],
}, indent=1, ensure_ascii=False))
PY
