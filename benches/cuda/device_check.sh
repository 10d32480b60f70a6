#!/usr/bin/env bash
# On the GPU machine: run the CUDA checks with the binaries benches/cuda/package.sh built.
# The logs and files of every step go to one archive, OUT_DIR/check.tar.gz, rewritten after each
# step (a device run returns at most 8 files, and a run stopped at its time limit keeps what its
# finished steps wrote); OUT_DIR/summary.txt and the last lines printed are the summary.
#
#   bash benches/cuda/device_check.sh OUT_DIR [SASHIMI_SECONDS]
#
# 1. cuda_kernels: every kernel against its CPU twin (poisoned outputs, odd shapes, long
#    sequences across tile/chunk boundaries), the candle scan op and its gradients;
# 2. cuda_models: one training step of the Mamba / Transformer / S4 / SaShiMi LMs on the GPU
#    against the CPU (loss and every gradient), greedy decoding of the device Mamba LM;
# 3. cli_cuda: the seqlab binary with --device cuda against --device cpu: greedy generation,
#    a few training steps of Mamba / Transformer / S4D / SaShiMi (losses and checkpoints);
# 4. cuda_scan: the scan against the memory-bandwidth floor and, side by side on the same inputs,
#    mamba_ssm's own kernels (outputs and gradients must agree); cuda_s4_conv: S4's long
#    convolution, our kernel vs the Toeplitz tensor ops vs the CPU FFT;
# 5. the CLI at a larger size: generate 200 tokens (vs --device cpu), train Mamba and S4 on the
#    prepared text, and SaShiMi trained on the GPU for SASHIMI_SECONDS (0 = skip).
set -uo pipefail
cd "$(dirname "$0")/../.."
RESULT=${1:?usage: device_check.sh OUT_DIR [SASHIMI_SECONDS]}
SASHIMI_SECONDS=${2:-0}
mkdir -p "$RESULT"
RESULT=$(cd "$RESULT" && pwd)
OUT=$(mktemp -d /tmp/seqlab-check.XXXXXX) # every log and file of the run; packed into $RESULT
BIN=.gpu/bin
# The binaries and datasets travel xz-compressed (candle's PTX makes the binaries large).
for f in .gpu/data/*.tar.xz; do [ -e "$f" ] && tar -C .gpu -xJf "$f"; done
[ -f .gpu/xz/bin.tar.xz ] && xz -dc .gpu/xz/bin.tar.xz | tar -C .gpu -xf -
summary=()
save() { # OUT as one archive beside the summary, replaced atomically
    printf '%s\n' "${summary[@]}" >"$RESULT/summary.txt"
    tar -C "$OUT" -czf "$RESULT/check.tar.gz.tmp" . && mv "$RESULT/check.tar.gz.tmp" "$RESULT/check.tar.gz"
}
note() { summary+=("$*"); echo "== $*"; save; }

# The test binaries find models/ and datasets/ here, and cli_cuda runs this seqlab binary, not
# the ones where they were built.
export SEQLAB_REPO=$PWD SEQLAB_BIN=$PWD/$BIN/seqlab
# The CUDA libraries the binaries link: the first folder found for each (one walk of /usr and
# /opt; /usr, where the image's toolkit is, comes first).
libdirs=$(find /usr /opt \( -name libcudart.so.13 -o -name libcublas.so.13 -o -name libcublasLt.so.13 \
    -o -name libcurand.so.10 -o -name libnvrtc.so.13 \) 2>/dev/null \
    | awk -F/ '{lib = $NF; sub("/[^/]*$", "")}
               !(lib in libs) {libs[lib]; if (!($0 in dirs)) {dirs[$0]; print}}' | paste -sd:)
export LD_LIBRARY_PATH="${libdirs:+$libdirs:}/usr/local/nvidia/lib64:${LD_LIBRARY_PATH:-}"
# SEQLAB_REQUIRE_GPU: a test that cannot open the GPU fails instead of skipping.
export SEQLAB_PTX_CACHE=/tmp/seqlab-ptx RAYON_NUM_THREADS=16 SEQLAB_REQUIRE_GPU=1
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
ldd $BIN/seqlab | grep -E "cuda|cublas|curand|nvrtc" | tee -a "$OUT/gpu.txt"

run() { # name timeout cmd...
    local name=$1 t=$2
    shift 2
    local t0=$SECONDS
    timeout "$t" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    note "$name: exit $rc in $((SECONDS - t0)) s"
    tail -n 25 "$OUT/$name.log"
    return $rc
}

run cuda_kernels 180 $BIN/ssm cuda_kernels:: --test-threads=1 --nocapture
run cuda_models 180 $BIN/lm cuda_models:: --test-threads=1 --nocapture
run cli_cuda 180 $BIN/end_to_end cli_cuda:: --test-threads=1 --nocapture
export SEQLAB_MAMBA_SSM_LIB=$PWD/$BIN/libmamba_ssm_scan.so
run cuda_scan 120 $BIN/cuda_scan
run cuda_s4_conv 120 $BIN/cuda_s4_conv

S=$BIN/seqlab
run info 30 $S info --device cuda
prompt="HAMLET. To be, or not to be"
for d in cpu cuda; do
    run "generate_$d" 120 $S generate --model models/mamba-big --prompt "$prompt" \
        --max-new-tokens 200 --greedy --json --device "$d"
done
ids() { grep -o '"generated_ids":\[[^]]*\]' "$1"; }
if [ -n "$(ids "$OUT/generate_cpu.log")" ] && [ "$(ids "$OUT/generate_cpu.log")" = "$(ids "$OUT/generate_cuda.log")" ]; then
    note "generate: cuda ids == cpu ids (200 greedy tokens, mamba-big)"
else
    note "generate: cuda ids DIFFER from cpu ids"
fi
run generate_transformer_cuda 120 $S generate --model models/transformer-big --prompt "$prompt" \
    --max-new-tokens 100 --greedy --json --device cuda

# The CPU references of these runs come from the same commands with --device cpu elsewhere
# (the CPU path does not depend on the cuda feature).
if [ -d .gpu/data-text ]; then
    for d in cuda; do
        run "train_mamba_$d" 120 $S train --model mamba --config models/configs/mamba-big.json \
            --data .gpu/data-text -o "/tmp/run-mamba-$d" --max-steps 40 --quiet --device "$d"
        cp "/tmp/run-mamba-$d/metrics.jsonl" "$OUT/train_mamba_$d.jsonl" 2>/dev/null
    done
    echo '{"model":"s4","ssm":"s4d","d_model":128,"n_layer":4,"d_state":64,"batch_size":16,"seq_len":512,"max_steps":40,"log_every":5,"eval_every":20,"eval_batches":4,"seed":0}' >/tmp/s4.json
    for d in cuda; do
        run "train_s4_$d" 120 $S train --model s4 --config /tmp/s4.json --data .gpu/data-text \
            -o "/tmp/run-s4-$d" --quiet --device "$d"
        cp "/tmp/run-s4-$d/metrics.jsonl" "$OUT/train_s4_$d.jsonl" 2>/dev/null
    done
    save
fi

if [ "$SASHIMI_SECONDS" -gt 0 ] && [ -d .gpu/data-audio ]; then
    cat >/tmp/sashimi.json <<'JSON'
{"model":"sashimi","ssm":"s4d","d_model":64,"n_layer":4,"d_state":64,"batch_size":16,"seq_len":2048,
 "max_steps":4000,"warmup_steps":100,"lr":0.004,"min_lr":0.0004,"weight_decay":0.0,"grad_clip":1.0,
 "eval_every":250,"eval_batches":16,"checkpoint_every":100,"log_every":25,"seed":0}
JSON
    cp /tmp/sashimi.json "$OUT/sashimi_config.json"
    run sashimi_train "$SASHIMI_SECONDS" $S audio train --data .gpu/data-audio -o /tmp/run-sashimi \
        --config /tmp/sashimi.json --quiet --device cuda
    mkdir -p "$OUT/sashimi"
    cp /tmp/run-sashimi/checkpoint/{config.json,model.safetensors} /tmp/run-sashimi/metrics.jsonl \
        "$OUT/sashimi/" 2>/dev/null
    tail -n 3 /tmp/run-sashimi/metrics.jsonl
    save
fi

echo
echo "==== summary"
printf '%s\n' "${summary[@]}"
