//! Progress bars: the one shared by the `prepare_*` functions, and the step bar of every
//! training loop.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `len` units on stderr drawn with `style`; a hidden bar when `show` is false.
fn styled_bar(show: bool, len: u64, style: ProgressStyle) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    ProgressBar::new(len).with_style(style)
}

/// A bar of `len` units drawn on stderr (only when stderr is a terminal) with the indicatif
/// `template`, its `{bar}` filled as `==>  `; a hidden bar when `show` is false.
pub(crate) fn progress_bar(show: bool, len: u64, template: &str) -> ProgressBar {
    let style = ProgressStyle::with_template(template).expect("valid progress template");
    styled_bar(show, len, style.progress_chars("=> "))
}

/// The bar of a loop of `len` steps (training, evaluation): `{bar:30} {pos}/{len}
/// [{elapsed}<{eta}] {msg}` on stderr; a hidden bar when `show` is false.
pub fn step_bar(show: bool, len: u64) -> ProgressBar {
    let style = ProgressStyle::with_template("{bar:30} {pos}/{len} [{elapsed}<{eta}] {msg}")
        .expect("valid progress template");
    styled_bar(show, len, style)
}
