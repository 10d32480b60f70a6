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

/// Prints each config change a resume made, once (the trainer appended them to
/// `RUN_DIR/config_changes.jsonl` before its first step).
pub fn print_config_changes(run_dir: &std::path::Path, changes: &[seqlab_train::ConfigChange]) {
    for c in changes {
        eprintln!(
            "resume: {} changed from {} to {} at step {} (recorded in {})",
            c.key,
            c.from,
            c.to,
            c.step,
            run_dir.join(seqlab_train::CONFIG_CHANGES_FILE).display()
        );
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
