//! What the `seqlab diffusion` subcommands load besides their flags: the denoiser directory, the
//! tokenizer beside it, the AR model of EDLM's energy and gen-PPL, and an NCE energy head.
//! One file that `sample`, `eval`, `nelbo` and `energy-head` import, so that no subcommand
//! imports another.

use crate::flag_context::with_flag;
use anyhow::{bail, Context};
use seqlab_diffusion::energy_head::EnergyHead;
use seqlab_diffusion::{AnyDenoiser, Denoiser};
use seqlab_lm::{load_lm, AnyLm};
use seqlab_tokenizer::Tokenizer;
use std::path::{Path, PathBuf};

/// A model directory: `DIR` itself or, for a run directory, `DIR/checkpoint`.
pub(super) fn model_dir(p: &Path) -> PathBuf {
    if p.join("checkpoint").join("config.json").is_file() {
        p.join("checkpoint")
    } else {
        p.to_path_buf()
    }
}

/// Loads the denoiser `--model` names (a model directory or a run directory); returns the
/// directory the weights came from and the model.
pub(super) fn load_denoiser(model: &Path) -> anyhow::Result<(PathBuf, AnyDenoiser)> {
    let dir = model_dir(model);
    let den = AnyDenoiser::load(&dir).map_err(|e| with_flag(e, "--model"))?;
    Ok((dir, den))
}

/// The tokenizer.json beside the weights, when present.
pub(super) fn tokenizer_of(dir: &Path) -> anyhow::Result<Option<Box<dyn Tokenizer>>> {
    let p = dir.join("tokenizer.json");
    if p.is_file() {
        Ok(Some(seqlab_tokenizer::load(&p)?))
    } else {
        Ok(None)
    }
}

/// Loads an AR model on the denoiser's vocabulary (`den_dir` is the denoiser's directory,
/// `flag` names the option the path came from, for the error message). When both have a
/// tokenizer they must be the same vocabulary, id by id (`seqlab_tokenizer::same_vocabulary`,
/// the check `speculate` and `eval` make); otherwise the AR model's logits must be the
/// denoiser's data ids, possibly padded (`seqlab_tokenizer::check_model_vocabulary`).
pub(super) fn load_ar(
    path: &Path,
    den_dir: &Path,
    den: &AnyDenoiser,
    flag: &str,
) -> anyhow::Result<AnyLm> {
    let lm = load_lm(path)
        .with_context(|| format!("{flag}: loading the AR model {}", path.display()))?;
    let need = den.vocab_size() - 1;
    let have = seqlab_lm::CausalLm::vocab_size(&lm.model);
    if let (Some(ar_tok), Some(den_tok)) = (&lm.tokenizer, tokenizer_of(den_dir)?) {
        if let Err(diff) = seqlab_tokenizer::same_vocabulary(ar_tok.as_ref(), den_tok.as_ref()) {
            bail!(
                "{flag}: mismatched tokenizers: the AR model {} and the diffusion model {} \
                 have different vocabularies ({diff}); they must share a tokenizer",
                path.display(),
                den_dir.display()
            );
        }
    }
    if let Err(diff) = seqlab_tokenizer::check_model_vocabulary(have, need) {
        bail!(
            "{flag}: the AR model {} has {have} ids but the diffusion model's tokenizer {need} \
             ({diff}): they must share a tokenizer",
            path.display()
        );
    }
    Ok(lm.model)
}

/// Loads a head written by `seqlab diffusion energy-head` and checks that its vocabulary is the
/// denoiser's (the NCE density ratio is only meaningful against the denoiser it was trained on).
pub(super) fn load_head(dir: &Path, den: &AnyDenoiser) -> anyhow::Result<EnergyHead> {
    if !dir.join("energy_head.json").is_file() {
        bail!(
            "--energy-head: no energy head in {} (energy_head.json missing; train one with \
             `seqlab diffusion energy-head`)",
            dir.display()
        );
    }
    let head = EnergyHead::load(dir)
        .with_context(|| format!("--energy-head: loading the energy head {}", dir.display()))?;
    if head.config().vocab != den.vocab_size() {
        bail!(
            "--energy-head: the energy head {} has a vocabulary of {} but the denoiser {}: it \
             was trained against another model",
            dir.display(),
            head.config().vocab,
            den.vocab_size()
        );
    }
    Ok(head)
}
