//! The options of `sync-run mutex` (a whole run, or some of its processes, here) and
//! `sync-run mutex-process` (one process alone, on any machine).

use crate::cli::{Placement, parse_duration, parse_duration_or_zero, parse_svg_path};
use clap::Args;
use std::time::Duration;

/// Most processes in one run: every entry costs 2(N−1) messages.
pub const MAX_PROCESSES: u32 = 100;

/// What a run and each of its processes agree on.
#[derive(Debug, Args, Clone)]
pub struct Shape {
    /// N: processes in the run (2 to 100).
    #[arg(long, short = 'n', value_parser = clap::value_parser!(u32).range(2..=MAX_PROCESSES as i64))]
    pub processes: u32,
    /// K: how many times each process enters the critical section (1 to 10000).
    #[arg(long, short = 'k', value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub entries: u32,
    /// Time spent inside the critical section (e.g. 0, 5ms, 1s).
    #[arg(long, default_value = "0ms", value_parser = parse_duration_or_zero)]
    pub hold: Duration,
    /// A process waiting on a peer that sends nothing at all for this long ends and names
    /// it: Ricart–Agrawala needs every process, so a crashed one stops the others.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub peer_timeout: Duration,
    /// The whole run's limit: past it every process stops, the run is cleaned up and
    /// the verdict says what did not finish.
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
pub struct MutexArgs {
    #[command(flatten)]
    pub shape: Shape,
    #[command(flatten)]
    pub place: Placement,
    /// Write the space-time diagram (a lane per process, an arrow per message, a bar per
    /// critical section) to this SVG file.
    #[arg(long, value_parser = parse_svg_path)]
    pub report: Option<std::path::PathBuf>,
}

/// `sync-run mutex-process`.
pub type ProcessArgs = crate::cli::ProcessArgs<Shape>;

/// `sync-run bench mutex`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Process counts to run, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "2,5,10,50", value_parser = clap::value_parser!(u32).range(2..=MAX_PROCESSES as i64))]
    pub sizes: Vec<u32>,
    /// Entries per process in each run.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub entries: u32,
    #[command(flatten)]
    pub runs: crate::cli::BenchRuns,
}
