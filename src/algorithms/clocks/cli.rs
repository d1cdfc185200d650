//! The options of `sync-run clocks` (a whole run, or some of its processes, here) and
//! `sync-run clocks-process` (one process alone, on any machine).

use super::process::MAX_PROCESSES;
use crate::cli::{Placement, parse_duration, parse_duration_or_zero, parse_svg_path};
use clap::Args;
use std::time::Duration;

/// What a run and each of its processes agree on.
#[derive(Debug, Args, Clone)]
pub struct Shape {
    /// N: processes in the run (2 to 1000).
    #[arg(long, short = 'n', value_parser = clap::value_parser!(u32).range(2..=MAX_PROCESSES as i64))]
    pub processes: u32,
    /// E: internal events of each process (1 to 100000).
    #[arg(long, short = 'e', value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub events: u32,
    /// Chance of a message to a random peer after each internal event (0 to 1).
    #[arg(long, default_value_t = 0.5, value_parser = parse_probability)]
    pub send_probability: f64,
    /// Internal events are spread out, one every 1..=STEP (drawn at random), so that
    /// receives fall between them; 0: all at once.
    #[arg(long, default_value = "20ms", value_parser = parse_duration_or_zero)]
    pub step: Duration,
    /// A process still waiting for a peer that sends nothing at all for this long ends
    /// and names it [default: 10 s, or 2 × events × step if longer: a live peer may send
    /// this process nothing for most of its own run].
    #[arg(long, value_parser = parse_duration)]
    pub peer_timeout: Option<Duration>,
    /// The whole run's limit.
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Seed of the processes' choices (when to send, to whom, the steps): the same seed
    /// gives every process the same script.
    #[arg(long)]
    pub seed: Option<u64>,
}

fn parse_probability(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!(
            "{s:?}: give a probability between 0 and 1, e.g. 0.5"
        )),
    }
}

#[derive(Debug, Args)]
pub struct ClocksArgs {
    #[command(flatten)]
    pub shape: Shape,
    #[command(flatten)]
    pub place: Placement,
    /// Write the space-time diagram (a lane per process, an arrow per message, both
    /// clocks at every event) to this SVG file.
    #[arg(long, value_parser = parse_svg_path)]
    pub report: Option<std::path::PathBuf>,
}

/// `sync-run clocks-process`.
pub type ProcessArgs = crate::cli::ProcessArgs<Shape>;

impl Shape {
    /// `--peer-timeout`, or its default for this run's length.
    pub fn peer_timeout(&self) -> Duration {
        self.peer_timeout.unwrap_or_else(|| {
            (self.step * self.events.saturating_mul(2)).max(Duration::from_secs(10))
        })
    }
}
