#!/usr/bin/env python3
"""PyTorch-CPU reference for the Mamba LM benchmark of issue 3 (HF transformers' MambaForCausalLM).

1. Builds a random-init HF Mamba LM (vocab 50280, d_model 256, 4 layers, d_state 16, seed 0) and
   saves it with `save_pretrained(DIR, safe_serialization=True)`: config.json + model.safetensors,
   the shared weights that the Rust benches (seqlab, candle-transformers) load.
2. Dumps a parity reference next to it: logits of a small (2 x 16) input (ref_logits.f32, raw
   little-endian f32, shape in ref_meta.json) and the greedy tokens of `generate`.
3. Times, with torch threads = 2 and under torch.inference_mode():
   - forward logits of batch 4 x length 1024 (warmup, median of --runs), and the backbone alone
     (no lm_head), to show where the time goes;
   - decode at batch 1: greedy `generate` with the cache (prompt of 16 tokens), decode tokens/s
     = (N-1) / (t(N new tokens) - t(1 new token)), so the prompt prefill is excluded.
   HF's CPU path is the sequential torch scan (no mamba_ssm / causal_conv1d kernels on CPU).
Prints one JSON object on stdout.

Environment (what worked on the dev VM; there is no CPU-only torch on PyPI, so this pulls the
CUDA wheel and its nvidia-* deps, about 5.6 GB in the venv; nothing uses a GPU):
    python3 -m venv benches/compare/.venv
    . benches/compare/.venv/bin/activate
    pip install torch transformers safetensors numpy      # torch 2.15.0, transformers 5.24.0
    (`pip install --no-deps torch` alone does not import: libtorch_global_deps needs libcudart,
     cublas, cudnn, nccl, ... from the nvidia-* wheels)
Run:
    HF_HUB_OFFLINE=1 python benches/compare/mamba_pytorch.py --out benches/compare/weights/mamba-256x4
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np
import torch
import transformers
from transformers import MambaConfig, MambaForCausalLM

VOCAB = 50280


def build_or_load(out_dir: str, seed: int) -> MambaForCausalLM:
    if os.path.exists(os.path.join(out_dir, "model.safetensors")):
        return MambaForCausalLM.from_pretrained(out_dir, torch_dtype=torch.float32).eval()
    torch.manual_seed(seed)
    cfg = MambaConfig(
        vocab_size=VOCAB,
        hidden_size=256,
        num_hidden_layers=4,
        state_size=16,
        expand=2,
        conv_kernel=4,
        use_bias=False,
        use_conv_bias=True,
        time_step_rank="auto",
        layer_norm_epsilon=1e-5,
        tie_word_embeddings=True,
        pad_vocab_size_multiple=8,
    )
    model = MambaForCausalLM(cfg).float().eval()
    # HF's init leaves the embedding at std 0.02, which makes every logit ~0 and greedy decoding
    # a coin toss between near-ties; std 0.1 gives logits of std ~1.6 (|max| ~11), peaked enough
    # for a meaningful greedy-token check and small enough that f32 rounding stays well below the
    # 1e-4 max-abs tolerance. Same weights for every implementation either way.
    with torch.no_grad():
        model.backbone.embeddings.weight.normal_(0.0, 0.1)
    model.save_pretrained(out_dir, safe_serialization=True)
    return model


def median_time(fn, runs: int, warmup: int):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), ts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benches/compare/weights/mamba-256x4")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--len", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--decode-new", type=int, default=128)
    ap.add_argument("--decode-runs", type=int, default=3)
    ap.add_argument("--skip-timing", action="store_true")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    model = build_or_load(args.out, args.seed)

    # ---- parity reference ----
    g = torch.Generator().manual_seed(1)
    small = torch.randint(0, VOCAB, (2, 16), generator=g)
    prompt = torch.randint(0, VOCAB, (1, 16), generator=g)
    with torch.inference_mode():
        ref = model(small).logits.float().contiguous()
        gen = model.generate(
            prompt, max_new_tokens=32, min_new_tokens=32, do_sample=False, use_cache=True,
            pad_token_id=0, eos_token_id=None,
        )
    ref.numpy().astype("<f4").tofile(os.path.join(args.out, "ref_logits.f32"))
    meta = {
        "input_ids": small.tolist(),
        "logits_shape": list(ref.shape),
        "prompt_ids": prompt[0].tolist(),
        "greedy_ids": gen[0, prompt.shape[1]:].tolist(),
    }
    with open(os.path.join(args.out, "ref_meta.json"), "w") as f:
        json.dump(meta, f)

    result = {
        "impl": "pytorch-hf",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "weights": os.path.abspath(args.out),
    }
    if not args.skip_timing:
        tokens = torch.randint(0, VOCAB, (args.batch, args.len), generator=g)
        with torch.inference_mode():
            fwd, fwd_all = median_time(lambda: model(tokens).logits, args.runs, args.warmup)
            bb, bb_all = median_time(lambda: model.backbone(tokens), args.runs, args.warmup)

            def gen_n(n):
                return model.generate(
                    prompt, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                    use_cache=True, pad_token_id=0, eos_token_id=None,
                )

            t1, _ = median_time(lambda: gen_n(1), args.decode_runs, 1)
            tn, _ = median_time(lambda: gen_n(args.decode_new), args.decode_runs, 1)
        result.update(
            {
                "forward_shape": [args.batch, args.len],
                "forward_ms": fwd * 1e3,
                "forward_ms_all": [t * 1e3 for t in fwd_all],
                "backbone_ms": bb * 1e3,
                "backbone_ms_all": [t * 1e3 for t in bb_all],
                "forward_tokens_per_s": args.batch * args.len / fwd,
                "decode_prompt_len": prompt.shape[1],
                "decode_new_tokens": args.decode_new,
                "generate_1_ms": t1 * 1e3,
                "generate_n_ms": tn * 1e3,
                "decode_tokens_per_s": (args.decode_new - 1) / (tn - t1),
            }
        )
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
