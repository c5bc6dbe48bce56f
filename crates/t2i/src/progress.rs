//! Progress bars (indicatif) with rate and ETA; hidden when not wanted.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `len` steps labelled `what`; hidden unless `show`.
pub fn bar(len: u64, what: &str, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    let style = ProgressStyle::with_template(
        "{prefix:>14} [{bar:30}] {pos}/{len} {per_sec} ETA {eta} {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    pb.set_style(style);
    pb.set_prefix(what.to_string());
    pb
}

/// A bar for a run that stops after `seconds` (when `steps` is unbounded):
/// its length is the time, its message the step.
pub fn timed(steps: u64, seconds: u64, what: &str, show: bool) -> ProgressBar {
    if steps < i64::MAX as u64 || seconds == 0 {
        return bar(steps, what, show);
    }
    if !show {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(seconds);
    let style = ProgressStyle::with_template(
        "{prefix:>14} [{bar:30}] {elapsed_precise} of {len}s, ETA {eta} {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    pb.set_style(style);
    pb.set_prefix(what.to_string());
    pb
}
