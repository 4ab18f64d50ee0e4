//! A spinner for long waits, drawn only on a terminal (CI logs stay clean).

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

pub struct Spinner(ProgressBar);

impl Spinner {
    pub fn new(message: &str) -> Self {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("template is valid"),
        );
        bar.set_message(message.to_owned());
        Spinner(bar)
    }

    /// Show that the wait goes on; the first tick makes the spinner appear.
    pub fn tick(&self) {
        if self.0.is_hidden() {
            return;
        }
        self.0.enable_steady_tick(Duration::from_millis(120));
    }

    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
}

/// A count of items read so far, for reads of unknown length (table scans, bucket listings).
pub struct Counter(ProgressBar);

impl Counter {
    pub fn new(message: &str) -> Self {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg}: {pos} items ({elapsed})")
                .expect("template is valid"),
        );
        bar.set_message(message.to_owned());
        if !bar.is_hidden() {
            bar.enable_steady_tick(Duration::from_millis(120));
        }
        Counter(bar)
    }

    pub fn set(&self, items: u64) {
        self.0.set_position(items);
    }

    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
}
