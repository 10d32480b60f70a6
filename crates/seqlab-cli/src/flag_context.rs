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

/// A training error with `--resume` as context when the run was resumed and its directory has no
/// complete checkpoint (what a failed `--resume` means); other errors unchanged.
pub fn resume_context(
    err: impl Into<anyhow::Error>,
    resume: bool,
    run_dir: &std::path::Path,
) -> anyhow::Error {
    let err = err.into();
    if resume && seqlab_lm::train::find_checkpoint(run_dir).is_none() {
        with_flag(err, "--resume")
    } else {
        err
    }
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
