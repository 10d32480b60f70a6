#!/usr/bin/env bash
# Mamba LM benchmark of issue 3, all three implementations on the same weights, one after the
# other in one go, then the ratios:
#   forward (batch 4 x 1024, logits at every position): seqlab vs PyTorch/HF  (goal >= 10x)
#   decode tokens/s at batch 1:                          seqlab vs candle      (goal >= 2x)
# Usage (from the repository root): benches/compare/run.sh
# Needs the venv of benches/compare/README.md. Writes benches/compare/results/{pytorch,seqlab,
# candle}.json and prints a summary JSON. Every implementation runs on 2 threads.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
VENV=${VENV:-$ROOT/benches/compare/.venv}
WEIGHTS=${WEIGHTS:-$ROOT/benches/compare/weights/mamba-256x4}
RES=$ROOT/benches/compare/results
mkdir -p "$RES"
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-2} HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error
# shellcheck disable=SC1091
. "$VENV/bin/activate"

echo "== building (no timing) ==" >&2
cargo bench --bench mamba_lm --no-run >&2
cargo build --release --manifest-path benches/compare/candle-mamba/Cargo.toml >&2

echo "== uptime before: $(uptime)" >&2
echo "== pytorch / HF transformers ==" >&2
python benches/compare/mamba_pytorch.py --out "$WEIGHTS" --threads 2 | tail -n1 > "$RES/pytorch.json"
echo "== seqlab ==" >&2
SEQLAB_MAMBA_BENCH_DIR=$WEIGHTS cargo bench --bench mamba_lm | tail -n1 > "$RES/seqlab.json"
echo "== candle-transformers ==" >&2
benches/compare/candle-mamba/target/release/candle-mamba-bench "$WEIGHTS" | tail -n1 > "$RES/candle.json"
echo "== uptime after: $(uptime)" >&2

python - "$RES" <<'PY'
import json, sys, os
d = sys.argv[1]
p, s, c = (json.load(open(os.path.join(d, f + ".json"))) for f in ("pytorch", "seqlab", "candle"))
out = {
    "versions": {"torch": p["torch"], "transformers": p["transformers"], "candle": c["candle"]},
    "parity": {"seqlab": s["parity"], "candle": c["parity"]},
    "forward_b4_l1024_ms": {"seqlab": s["forward_ms"], "pytorch": p["forward_ms"],
                            "candle_stepwise": c["forward_ms"]},
    "backbone_no_lm_head_ms": {"seqlab": s["backbone_ms"], "pytorch": p["backbone_ms"]},
    "decode_b1_tokens_per_s": {"seqlab": s["decode_tokens_per_s"], "candle": c["decode_tokens_per_s"],
                               "pytorch": p["decode_tokens_per_s"]},
    "ratio_forward_seqlab_vs_pytorch": p["forward_ms"] / s["forward_ms"],
    "ratio_backbone_seqlab_vs_pytorch": p["backbone_ms"] / s["backbone_ms"],
    "ratio_forward_seqlab_vs_candle_stepwise": c["forward_ms"] / s["forward_ms"],
    "ratio_decode_seqlab_vs_candle": s["decode_tokens_per_s"] / c["decode_tokens_per_s"],
    "ratio_decode_seqlab_vs_pytorch": s["decode_tokens_per_s"] / p["decode_tokens_per_s"],
    "goals": {"forward_vs_pytorch": 10.0, "decode_vs_candle": 2.0},
}
print(json.dumps(out, indent=1))
PY
