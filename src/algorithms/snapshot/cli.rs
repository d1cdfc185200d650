//! The options of `sync-run snapshot` (a script, or the random mode), `sync-run
//! snapshot-node` (one node alone, on any machine) and `sync-run bench snapshot`.

use crate::cli::{parse_duration, parse_duration_or_zero, parse_run_id, parse_svg_path};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// A duration of at most a minute (the random mode's pace: larger ones are surely typos,
/// and keep the run's arithmetic far from overflowing).
fn parse_minute(s: &str) -> Result<Duration, String> {
    at_most_a_minute(parse_duration(s)?)
}

fn parse_minute_or_zero(s: &str) -> Result<Duration, String> {
    at_most_a_minute(parse_duration_or_zero(s)?)
}

fn at_most_a_minute(d: Duration) -> Result<Duration, String> {
    if d > Duration::from_secs(60) {
        return Err(format!(
            "{} is over a minute",
            humantime::format_duration(d)
        ));
    }
    Ok(d)
}

/// Most nodes in a random-mode run: a complete graph of N(N−1) channels.
pub const MAX_NODES: u32 = 200;

#[derive(Debug, Args)]
#[command(group(
    clap::ArgGroup::new("mode").required(true).args(["script", "nodes"])
))]
pub struct SnapshotArgs {
    /// The command script (`-` reads standard input). Standard output then carries exactly
    /// the script's lines; the verdict goes to standard error.
    #[arg(value_name = "SCRIPT")]
    pub script: Option<PathBuf>,
    /// Random mode: N nodes (2 to 200) on a complete graph, transferring on their own.
    #[arg(long, conflicts_with = "script", value_parser = clap::value_parser!(u32).range(2..=MAX_NODES as i64))]
    pub nodes: Option<u32>,
    /// Random mode: transfers each node makes.
    #[arg(long, default_value_t = 20, requires = "nodes", value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub transfers: u32,
    /// Random mode: snapshots taken while the transfers go on.
    #[arg(long, default_value_t = 2, requires = "nodes", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub snapshots: u32,
    /// Random mode: begin the snapshots close together, so several run at once (each
    /// waits for the previous one to be collected otherwise).
    #[arg(long, requires = "nodes")]
    pub concurrent: bool,
    /// Random mode: each node's starting balance (up to 10^12).
    #[arg(long, default_value_t = 1000, requires = "nodes", value_parser = clap::value_parser!(u64).range(0..=super::script::MAX_MONEY))]
    pub balance: u64,
    /// Random mode: the largest transfer.
    #[arg(long, default_value_t = 300, requires = "nodes", value_parser = clap::value_parser!(u64).range(1..=super::script::MAX_MONEY))]
    pub max_amount: u64,
    /// Random mode: time between two transfers of a node (at most 60s).
    #[arg(long, default_value = "2ms", requires = "nodes", value_parser = parse_minute)]
    pub step: Duration,
    /// Random mode: longest time a message waits on its channel before its receiver
    /// takes it (each draws its own delay), so snapshots catch money in transit.
    #[arg(long, default_value = "20ms", requires = "nodes", value_parser = parse_minute_or_zero)]
    pub max_delay: Duration,
    /// Seeds the random picks (`Receive TO`, `ReceiveAll`, the random mode): the same seed
    /// and script print the same lines [default: random, logged on stderr].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Run id: names every exchange and queue of the run [default: random].
    #[arg(long, value_parser = parse_run_id)]
    pub run_id: Option<String>,
    /// Script mode: these nodes run elsewhere (`sync-run snapshot-node --run-id R --id K`),
    /// comma-separated; the others run here.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "IDS",
        conflicts_with = "nodes"
    )]
    pub external: Vec<u32>,
    /// A participant that does not answer a command for this long stops the run (a node
    /// started elsewhere must be up by then).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub peer_timeout: Duration,
    /// The whole run's limit.
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Write the space-time diagram (a lane per node, an arrow per message, each
    /// snapshot's cut drawn through the points where the nodes recorded) to this SVG file.
    #[arg(long, value_parser = parse_svg_path)]
    pub report: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct NodeArgs {
    /// The run to join (as given to `sync-run snapshot --run-id`).
    #[arg(long, value_parser = parse_run_id)]
    pub run_id: String,
    /// This node's id (as the script's CreateNode names it).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=super::script::MAX_NODE_ID as i64))]
    pub id: u32,
    /// Give up after this long.
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// `sync-run bench snapshot`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Node counts, comma-separated (complete graphs: N(N−1) channels each).
    #[arg(long, value_delimiter = ',', default_value = "4,10,50,100", value_parser = clap::value_parser!(u32).range(2..=MAX_NODES as i64))]
    pub sizes: Vec<u32>,
    /// Snapshots per run (one after another, transfers going on).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub snapshots: u32,
    #[command(flatten)]
    pub runs: crate::cli::BenchRuns,
}
