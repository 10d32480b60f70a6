//! Fuzzing the masked-diffusion `config.json` through `seqlab_diffusion::load_denoiser`: the
//! bundled MDLM configs (Transformer and Mamba backbones), mutated (wrong types, absurd sizes,
//! removed or renamed keys, deep nesting, byte damage) and loaded beside the model's own
//! weights: the load succeeds or is one clean error; never a panic, never an allocation out of
//! proportion to the files.
//! More cases: `SEQLAB_FUZZ_CASES=20000 cargo test -p seqlab-diffusion --test diffusion fuzz_`.

use seqlab_fuzz::{fuzz, Seed, Target};
use std::path::Path;

#[global_allocator]
static ALLOC: seqlab_fuzz::MeteredAlloc = seqlab_fuzz::MeteredAlloc;

#[test]
fn fuzz_mdlm_config_json() {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    let tmp = tempfile::tempdir().unwrap();
    let mut seeds = Vec::new();
    let mut dirs = Vec::new();
    for (i, model) in ["mdlm-little", "mdlm-mamba-little"].iter().enumerate() {
        let dir = tmp.path().join(format!("seed{i}"));
        std::fs::create_dir(&dir).unwrap();
        std::fs::copy(
            models.join(model).join("model.safetensors"),
            dir.join("model.safetensors"),
        )
        .unwrap();
        seeds.push(Seed::file(models.join(model).join("config.json")));
        dirs.push(dir);
    }
    let mut target = Target::new("mdlm-config", seeds, 300);
    target.cut_stride = 16;
    let report = fuzz(&target, |input| {
        let dir = &dirs[input.seed];
        std::fs::write(dir.join("config.json"), input.bytes).unwrap();
        // The error as its message: the fuzzer reports only its Display (and the error type is
        // large; clippy::result_large_err).
        seqlab_diffusion::load_denoiser(dir)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    assert!(report.refused > 0 && report.accepted >= 2, "{report:?}");
}
