//! The progress bar long runs show on a terminal (`replay`, the demo's
//! seeded workload): nothing when standard error is not a terminal or the
//! run is short, so pipes, logs and tests see the same output as before.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// A bar over `len` `unit`s labelled `what`, shown only when `long` and
/// standard error is a terminal (hidden otherwise: updating it costs
/// nothing then).
pub fn bar(len: usize, long: bool, what: &str, unit: &str) -> ProgressBar {
    if !long || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    let template = format!("{{msg}} [{{bar:40}}] {{pos}}/{{len}} {unit}, {{eta}} left");
    let style = ProgressStyle::with_template(&template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(what.to_string());
    bar
}
