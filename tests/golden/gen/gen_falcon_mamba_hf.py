"""Writes the falcon-mamba-tiny golden set: a random-weight HF `FalconMambaForCausalLM` (the
Mamba-1 block with RMS norms on Δ, B and C; Falcon-Mamba, Zuo et al. 2024) with its logits,
hidden states, prefill caches and greedy generation, in the layout of tests/golden/mamba-tiny.

Usage: python tests/golden/gen/gen_falcon_mamba_hf.py OUT_DIR
   or: python tests/golden/gen/gen_falcon_mamba_hf.py OUT_DIR --plain-mamba VOCAB LAYERS STATE PROMPT NEW
       (a plain `MambaForCausalLM` of other sizes in the same layout: a second golden set for
       checking that the tests read every dimension from the files, SEQLAB_GOLDEN_DIR)
Needs torch, transformers, safetensors, numpy (benches/compare/README.md's venv). CPU, float32,
transformers' torch-only path (no mamba_ssm kernels).
"""
import json
import os
import sys

import numpy as np
import torch
import transformers
from safetensors.torch import save_file
from transformers import FalconMambaConfig, FalconMambaForCausalLM, MambaConfig, MambaForCausalLM

SEED = 0
PROMPT_LEN = 64
NEW_TOKENS = 32


def main(out, plain=None):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(SEED)
    vocab, layers, state, prompt_len, new_tokens = plain or (256, 2, 16, PROMPT_LEN, NEW_TOKENS)
    config_cls, model_cls = (MambaConfig, MambaForCausalLM) if plain else (FalconMambaConfig, FalconMambaForCausalLM)
    extra = {} if plain else {"mixer_rms_eps": 1e-6}
    cfg = config_cls(
        vocab_size=vocab,
        hidden_size=64,
        state_size=state,
        num_hidden_layers=layers,
        expand=2,
        conv_kernel=4,
        time_step_rank=4,
        use_bias=False,
        use_conv_bias=True,
        initializer_range=0.1,
        tie_word_embeddings=True,
        use_mambapy=False,
        **extra,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
    )
    model = model_cls(cfg).eval()
    # Random init leaves norms at 1, D at 1 and the conv bias at 0: perturb them so a wrong
    # reading of any of them shows in the logits; scale out_proj up so the blocks matter.
    perturbed = []
    scale = 8.0
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("norm.weight", "norm_f.weight", "mixer.A_log", "mixer.D", "conv1d.bias")):
                p.add_(0.3 * torch.randn_like(p))
                perturbed.append(name)
            if name.endswith("out_proj.weight"):
                p.mul_(scale)
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    if cfg.tie_word_embeddings:
        sd.pop("lm_head.weight", None)
    save_file(sd, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    model.config.save_pretrained(out)
    model.generation_config.save_pretrained(out)

    g = torch.Generator().manual_seed(SEED + 1)
    ids = torch.randint(0, cfg.vocab_size, (1, prompt_len), generator=g)
    with torch.no_grad():
        fwd = model(ids, use_cache=False, output_hidden_states=True)
        logits = fwd.logits
        gen = model.generate(
            ids,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
        )
        pre = model(ids, use_cache=True)
    full = gen.sequences
    new = full[:, prompt_len:]
    step_logits = torch.stack(gen.logits, dim=1)
    tensors = {
        "input_ids": ids,
        "logits": logits,
        "generated_ids": new,
        "full_sequence": full,
        "step_logits": step_logits,
    }
    # transformers' Mamba models return the residual stream after each block, then norm_f's
    # output (n_layer + 1 tensors; the embedding output is not among them).
    hs = fwd.hidden_states
    assert len(hs) == cfg.num_hidden_layers + 1, len(hs)
    for i, h in enumerate(hs):
        tensors[f"hidden_states.{i}"] = h
    cache = pre.cache
    for l in range(cfg.num_hidden_layers):
        tensors[f"prefill_conv_state.{l}"] = cache.get_conv_state(l)
        tensors[f"prefill_ssm_state.{l}"] = cache.get_recurrent_state(l)
    tensors = {k: v.detach().clone().contiguous() for k, v in tensors.items()}
    save_file(tensors, os.path.join(out, "golden.safetensors"))

    top2 = torch.topk(step_logits[0], 2, dim=-1).values
    ptop2 = torch.topk(logits[0], 2, dim=-1).values
    with torch.no_grad():
        par = model(full[:, :-1], use_cache=False).logits[0, prompt_len - 1:]
    meta = {
        "model": "mamba-other-sizes" if plain else "falcon-mamba-tiny",
        "seed": SEED,
        "generator": "tests/golden/gen/gen_falcon_mamba_hf.py",
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "python": sys.version.split()[0],
            "numpy": np.__version__,
        },
        "code_path": "transformers torch-only path (no mamba_ssm/causal_conv1d/kernels), CPU, float32",
        "config": json.load(open(os.path.join(out, "config.json"))),
        "params_perturbed_after_init": perturbed,
        "out_proj_weight_scale_after_init": scale,
        "checkpoint_tensors": {k: {"dtype": "F32", "shape": list(v.shape)} for k, v in sd.items()},
        "checkpoint_metadata": {"format": "pt"},
        "golden_tensors": {
            k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)}
            for k, v in tensors.items()
        },
        "notes": {
            "logits": "model(input_ids, use_cache=False).logits, parallel/full-sequence path",
            "hidden_states.i": "output_hidden_states: i < n_layer is the residual stream after block i (before norm_f); i == n_layer is the output of norm_f. The embedding output itself is NOT included.",
            "prefill_conv_state.l": "cache conv state after prefilling the prompt: the last conv_kernel pre-convolution inputs (x branch of in_proj), layout [batch, channels, conv_kernel], oldest first",
            "prefill_ssm_state.l": "cache recurrent state after the prompt: [batch, d_inner, d_state]",
            "step_logits": "generate(do_sample=False, output_logits=True): raw logits for each new token; step 0 comes from the prefill (full-sequence scan), steps 1.. from the single-token recurrent cached path",
            "generated_ids": "greedy continuation (argmax of step_logits)",
        },
        "checks": {
            "greedy_ids_equal_argmax_of_parallel_forward": bool((par.argmax(-1) == new[0]).all()),
            "max_abs_diff_recurrent_step_logits_vs_parallel_logits": float((par - step_logits[0]).abs().max().detach()),
            "min_top1_minus_top2_logit_over_generated_steps": float((top2[:, 0] - top2[:, 1]).min()),
            "min_top1_minus_top2_logit_over_prompt_positions": float((ptop2[:, 0] - ptop2[:, 1]).min()),
            "distinct_generated_tokens": int(new.unique().numel()),
        },
    }
    with open(os.path.join(out, "golden.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(json.dumps(meta["checks"]))


if __name__ == "__main__":
    if len(sys.argv) == 8 and sys.argv[2] == "--plain-mamba":
        main(sys.argv[1], tuple(int(a) for a in sys.argv[3:]))
    else:
        main(sys.argv[1])
