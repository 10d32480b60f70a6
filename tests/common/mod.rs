//! Helpers shared by the end-to-end tests: run the built `seqlab` binary and check the CLI's
//! contract (success, or exit status 1 with exactly one `error: …` line and no panic).
#![allow(dead_code)] // each test file uses a subset

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the built `seqlab` binary with `args`: `$SEQLAB_BIN` when set (a packaged test binary
/// on another machine, as `benches/cuda/device_check.sh` runs them), else the one cargo built.
pub fn seqlab<S: AsRef<OsStr>>(args: &[S]) -> Output {
    seqlab_with_env(args, &[])
}

/// [`seqlab`] with environment variables `env` set for it. Every run, whatever it tests, must
/// end without a panic ([`assert_no_panic`]).
pub fn seqlab_with_env<S: AsRef<OsStr>>(args: &[S], env: &[(&str, &str)]) -> Output {
    let mut cmd = seqlab_command();
    cmd.args(args).envs(env.iter().copied());
    let out = cmd.output().expect("run seqlab");
    assert_no_panic(&out, &shown(args));
    out
}

/// The `seqlab` binary as a `Command` with no arguments yet: `$SEQLAB_BIN` when set, else the
/// one cargo built. Runs made with it directly must call [`assert_no_panic`] themselves.
pub fn seqlab_command() -> Command {
    let bin = std::env::var_os("SEQLAB_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_seqlab").into());
    Command::new(bin)
}

/// The CLI's contract for every run: no panic reaches the user — neither Rust's default report
/// ("thread 'main' panicked at …", status 101) nor seqlab's own one-line report of one
/// ("error: internal error …").
#[track_caller]
pub fn assert_no_panic(out: &Output, what: &str) {
    let err = stderr(out);
    assert!(
        !err.contains("panicked") && !err.contains("error: internal error"),
        "seqlab {what} panicked: {err}"
    );
    assert_ne!(
        out.status.code(),
        Some(101),
        "seqlab {what}: status 101: {err}"
    );
}

/// The arguments as one printable string, for assertion messages.
fn shown<S: AsRef<OsStr>>(args: &[S]) -> String {
    let parts: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
    parts.join(" ")
}

/// Runs `seqlab` and asserts that it succeeded.
pub fn ok<S: AsRef<OsStr>>(args: &[S]) -> Output {
    let out = seqlab(args);
    assert!(
        out.status.success(),
        "seqlab {} failed: {}",
        shown(args),
        stderr(&out)
    );
    out
}

/// Standard output, which must be UTF-8.
pub fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8")
}

/// Standard error (lossy).
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the CLI's failure contract: exit status 1, no panic, exactly one stderr line, starting
/// `error: ` and containing every item of `names`. Returns stderr.
pub fn assert_one_line_error(out: &Output, names: &[&str]) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got {err:?}");
    assert!(lines[0].starts_with("error: "), "{err}");
    for name in names {
        assert!(lines[0].contains(name), "{name:?} not in {err:?}");
    }
    err
}

/// Runs `seqlab`, which must fail as [`assert_one_line_error`] describes.
pub fn fails<S: AsRef<OsStr>>(args: &[S], names: &[&str]) -> String {
    assert_one_line_error(&seqlab(args), names)
}

/// A path as `&str` for an argument list.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// The checkout: `$SEQLAB_REPO` when set (a packaged test binary on another machine), else the
/// one this test was built in.
pub fn repo() -> PathBuf {
    std::env::var_os("SEQLAB_REPO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// The bundled sample text, `datasets/sample/hamlet.txt`.
pub fn hamlet() -> PathBuf {
    repo().join("datasets/sample/hamlet.txt")
}

/// A character-level tokenizer trained on Hamlet (`dir/char.json`) and Hamlet prepared with it
/// into `dir/NAME`; returns (tokenizer, data directory).
pub fn char_hamlet(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (hamlet, tok, data) = (hamlet(), dir.join("char.json"), dir.join(name));
    if !tok.exists() {
        ok(&[
            "tokenizer",
            "train",
            "--kind",
            "char",
            s(&hamlet),
            "-o",
            s(&tok),
        ]);
    }
    ok(&["prepare", "text", "-t", s(&tok), s(&hamlet), "-o", s(&data)]);
    (tok, data)
}
