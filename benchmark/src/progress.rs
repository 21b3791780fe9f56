//! One progress bar for the whole run: a step per measurement, the current activity as its
//! message. Hidden when stderr is not a terminal (CI logs stay clean).

use indicatif::{ProgressBar, ProgressStyle};
use std::time::Duration;

/// The run's progress bar.
pub struct Steps {
    bar: ProgressBar,
}

impl Steps {
    /// A bar of `total` steps.
    pub fn new(total: u64) -> Self {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Self { bar }
    }

    /// Says what is being measured now.
    pub fn doing(&self, what: impl Into<String>) {
        self.bar.set_message(what.into());
    }

    /// One step done.
    pub fn tick(&self) {
        self.bar.inc(1);
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
