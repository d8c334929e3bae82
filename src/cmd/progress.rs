//! Progress bars for the library's long tasks: indicatif bars on stderr, drawn only when
//! stderr is a terminal, so that logs, pipes and CI output never fill with control
//! characters. Each bar is cleared when its task ends.

use std::io::IsTerminal;

use gguf_gate::progress::{Counter, Progress};
use indicatif::{ProgressBar, ProgressStyle};

/// Bars on a terminal, nothing elsewhere.
pub struct Bars;

/// A bar that clears itself when the task's counter is dropped.
struct ClearOnDrop(ProgressBar);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

impl Progress for Bars {
    fn task(&self, label: &str, total: u64) -> Counter<'_> {
        if !std::io::stderr().is_terminal() {
            return Box::new(|_| {});
        }
        let bar = ProgressBar::new(total);
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(label.to_string());
        let bar = ClearOnDrop(bar);
        Box::new(move |n| bar.0.inc(n))
    }
}
