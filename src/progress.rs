//! The progress bar on stderr: turns done out of the total, the rate and the ETA.
//!
//! Shown only where it helps: stderr is a terminal, neither `--quiet` nor `--json`, and
//! the run has been going for a moment (a 50 ms run needs no bar). indicatif draws it and
//! leaves the terminal clean when the run ends.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// How long a run goes on before the bar appears.
const SHOW_AFTER: Duration = Duration::from_millis(300);

pub struct Progress {
    enabled: bool,
    started: Instant,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar that will appear on stderr if stderr is a terminal and `quiet` is false.
    pub fn new(quiet: bool) -> Self {
        Self::with_terminal(!quiet && std::io::stderr().is_terminal())
    }

    pub fn with_terminal(enabled: bool) -> Self {
        Progress {
            enabled,
            started: Instant::now(),
            bar: None,
        }
    }

    /// Called after each delivery the master handles.
    pub fn update(&mut self, done: usize, total: usize) {
        if !self.enabled || total == 0 {
            return;
        }
        if self.bar.is_none() {
            if self.started.elapsed() < SHOW_AFTER || done >= total {
                return;
            }
            let bar = ProgressBar::with_draw_target(
                Some(total as u64),
                ProgressDrawTarget::stderr_with_hz(10),
            );
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} turns {pos}/{len} [{wide_bar}] {per_sec} ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            self.bar = Some(bar);
        }
        if let Some(bar) = &self.bar {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        }
    }

    /// Removes the bar (before the report is printed).
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
