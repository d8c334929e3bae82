//! Progress bars on stderr, shown only when stderr is a terminal, so that logs, pipes
//! and CI output never fill with control characters.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// A byte-count bar for `len` bytes labelled `what`; hidden unless stderr is a TTY.
pub fn bytes_bar(len: u64, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}
