//! No panic reaches the user as a Rust backtrace (docs/architecture.md#conventions):
//!
//! - **Broken pipes**: the Rust runtime ignores `SIGPIPE`, so `seqlab tokenizer encode … | head
//!   -c1` made every later `println!` panic with "failed printing to stdout: Broken pipe".
//!   [`install`] restores the default action, as every Unix filter has it: a write to a closed
//!   pipe ends the process quietly by the signal (status 141 in a shell), which is what `head`
//!   expects of the command before it.
//! - **Any other panic** (a bug: user input is checked and reported as an `error:` line) is
//!   printed by the hook as one `error: internal error …` line instead of the default
//!   multi-line report, and the process exits with status 101.

use std::panic::PanicHookInfo;

/// Restores the default `SIGPIPE` action and installs the one-line panic hook. Call first in
/// `main`.
pub fn install() {
    restore_default_sigpipe();
    std::panic::set_hook(Box::new(|info: &PanicHookInfo<'_>| {
        eprintln!("{}", panic_line(info));
    }));
}

#[cfg(unix)]
fn restore_default_sigpipe() {
    // SAFETY: `signal` with `SIG_DFL` only resets the disposition of SIGPIPE; it runs before
    // any other thread exists and installs no handler code.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
fn restore_default_sigpipe() {}

/// The panic as one `error:` line: its message (newlines folded) and where it happened.
fn panic_line(info: &PanicHookInfo<'_>) -> String {
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown cause".into());
    let at = info
        .location()
        .map(|l| format!(" at {}:{}", l.file(), l.line()))
        .unwrap_or_default();
    one_line(&message, &at)
}

/// `error: internal error{at}: {message}` on one line.
fn one_line(message: &str, at: &str) -> String {
    let folded: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    format!(
        "error: internal error{at}: {} (this is a bug in seqlab; please report it)",
        folded.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multi_line_message_becomes_one_error_line() {
        let line = one_line("capacity overflow\n  while\n\nsizing", " at a.rs:3");
        assert_eq!(
            line,
            "error: internal error at a.rs:3: capacity overflow while sizing \
             (this is a bug in seqlab; please report it)"
        );
        assert_eq!(line.lines().count(), 1);
    }
}
