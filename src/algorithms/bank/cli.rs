//! The options of `sync-run bank` (a whole run from the course's input file),
//! `sync-run bank-branch` and `sync-run bank-customer` (one participant alone, on any
//! machine) and `sync-run bench bank`.

use super::protocol::Mode;
use crate::cli::{parse_duration, parse_run_id};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// What every participant of a run must agree on.
#[derive(Debug, Args, Clone)]
pub struct Shape {
    /// The course's input: a JSON list of customers (with their events) and branches
    /// (with their balance). `-` reads standard input.
    #[arg(value_name = "INPUT.json")]
    pub input: PathBuf,
    /// `ordered`: every operation in one total order (linearizable, never overdrawn).
    /// `propagate`: the course's original (apply locally, then tell the others), kept for
    /// comparison: the checker counts its anomalies.
    #[arg(long, value_enum, default_value_t = Mode::Ordered)]
    pub mode: Mode,
    /// Start every customer at once [default: one after another, in input order].
    #[arg(long)]
    pub concurrent: bool,
    /// Keep no per-operation record (long runs: memory stays flat); the checks that need
    /// one (linearizable, session guarantees, exactly once) are skipped, and said so.
    #[arg(long)]
    pub no_record: bool,
    /// A customer sends a request again after this long without an answer.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub retry: Duration,
    /// A customer gives up on a request its branch has not answered within this long,
    /// and the run fails naming the branch.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// The whole run's limit: past it the sequencer ends the run and every branch
    /// reports where it is.
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    pub run_timeout: Duration,
}

#[derive(Debug, Args)]
pub struct BankArgs {
    #[command(flatten)]
    pub shape: Shape,
    /// How standard output shows the customers' answers: `json`, the course's output
    /// file; `lines`, as the course's first (gRPC) version printed them, one line per
    /// answer in customer order (`id 1 query True money 400`). `-o` and `--json` are
    /// not affected.
    #[arg(long, value_enum, default_value_t = Print::Json, value_name = "FORMAT")]
    pub print: Print,
    /// Also write the output (the customers' answers, the course's format) to this file.
    #[arg(short = 'o', long = "output", value_name = "OUTPUT.json")]
    pub output: Option<PathBuf>,
    /// Run id: names every exchange and queue of the run [default: random].
    #[arg(long, value_parser = parse_run_id)]
    pub run_id: Option<String>,
    /// Branches that run elsewhere (`sync-run bank-branch --run-id R --id B INPUT.json`),
    /// comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    pub external_branches: Vec<u32>,
    /// Customers that run elsewhere (`sync-run bank-customer --run-id R --id C
    /// INPUT.json`), comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    pub external_customers: Vec<u32>,
}

/// The two ways the course printed its customers' answers: kept both because graders
/// and old scripts of either version read them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Print {
    /// The course's output file: a JSON list, one entry per customer.
    Json,
    /// The first (gRPC) version's printout: `id C INTERFACE True|False [money M]`.
    Lines,
}

/// `sync-run bank-branch` and `sync-run bank-customer`.
#[derive(Debug, Args)]
pub struct AloneArgs {
    #[command(flatten)]
    pub shape: Shape,
    /// The run to join (as given to `sync-run bank --run-id`).
    #[arg(long, value_parser = parse_run_id)]
    pub run_id: String,
    /// This branch's (or customer's) id, as in the input.
    #[arg(long)]
    pub id: u32,
    /// Fault tests: a branch aborts its process (as `kill -9` would: no report, nothing
    /// acknowledged after) when it is about to send its N-th answer.
    #[arg(long, hide = true)]
    pub crash_after_replies: Option<u64>,
}

/// `sync-run bench bank`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Branch counts to run, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "3,10", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub branches: Vec<u32>,
    /// Concurrent customers.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub customers: u32,
    /// Operations in all (split evenly over the customers).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub ops: u32,
    /// Also run the first branch count with --no-record and this many operations, to
    /// show memory flat in the number of operations (0: skip).
    #[arg(long, default_value_t = 100_000)]
    pub long_ops: u32,
    #[command(flatten)]
    pub runs: crate::cli::BenchRuns,
    /// The workload's seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Also write the figures as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json_out: Option<PathBuf>,
}
