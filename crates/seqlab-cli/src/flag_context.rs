//! Library errors say what went wrong in the library's terms; the CLI says which flag the
//! offending value came from. [`with_flag`] adds that flag to an error as context.

/// `err` with `flag` in front of its message (`--resume: no checkpoint in …`), unless the
/// message already names the flag.
pub fn with_flag(err: impl Into<anyhow::Error>, flag: &str) -> anyhow::Error {
    let err = err.into();
    if format!("{err:#}").contains(flag) {
        err
    } else {
        err.context(flag.to_string())
    }
}

/// With `--resume`, fails unless `run_dir` holds a complete checkpoint (`checkpoint/`, else
/// `checkpoint.old/`), naming the flag; the training loop would refuse too, in its own words.
pub fn check_resume(resume: bool, run_dir: &std::path::Path) -> anyhow::Result<()> {
    if resume && seqlab_lm::train::find_checkpoint(run_dir).is_none() {
        anyhow::bail!(
            "--resume: no checkpoint in {} (expected {}/checkpoint/trainer_state.json)",
            run_dir.display(),
            run_dir.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_is_named_once() {
        let e = with_flag(anyhow::anyhow!("no checkpoint in run"), "--resume");
        assert_eq!(format!("{e:#}"), "--resume: no checkpoint in run");
        let e = with_flag(
            anyhow::anyhow!("--resume: no checkpoint in run"),
            "--resume",
        );
        assert_eq!(format!("{e:#}"), "--resume: no checkpoint in run");
    }
}
