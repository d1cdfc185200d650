//! Command-line options and their validation. Every usage error exits with code 2 and a
//! message that says what to do instead.

use crate::algorithms::list::protocol::{WorkerId, validate_run_id};
use crate::broker::BrokerUrl;
pub use crate::contract::Topology;
use clap::{Args, Parser, Subcommand};
use std::time::Duration;

/// Largest `--slaves` accepted. Every worker receives every entry, so a run moves and holds
/// N² entries in all (1000 workers: seconds and about 300 MiB in one process); beyond
/// this, one broker on a small machine spends minutes per run.
pub const MAX_SLAVES: usize = 2000;

pub const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

const AFTER_HELP: &str = "\
Examples:
  sync-run --slaves 10                      master + 10 workers in one process
  sync-run --slaves 50 --seed 7 --json      reproducible run, one JSON document on stdout
  sync-run master --slaves 3 --run-id demo  the master alone (start workers anywhere)
  sync-run worker --run-id demo --id 1      one worker (repeat with --id 2, 3)
  sync-run --slaves 20 --report run.svg     and a timeline picture of the run
  sync-run --slaves 100 --window 1          strictly turn by turn (no pipelining)
  sync-run bench --sizes 10,100             measure against the broker and the original
  sync-run completions bash                 shell completions

Exit codes:
  0    verified: all lists identical and every check passed
  1    a check failed (lists differ, entries missing) or the run did not finish
  2    usage error (bad option or value; a worker not started with the run's options)
  3    broker error: unreachable, not AMQP, credentials refused, or lost mid-run
  4    verified for the surviving workers, but some workers were evicted or lost
  5    conflict: another master holds the run id, or another worker has this --id
  129  stopped by SIGHUP, 130 by Ctrl-C (SIGINT), 143 by SIGTERM: the run's queues and
       exchanges are deleted first";

#[derive(Debug, Parser)]
#[command(
    name = "sync-run",
    version,
    about = "A master and N workers agree on one list over RabbitMQ, and prove it.",
    long_about = "A master and N workers agree on one list over RabbitMQ, and prove it.\n\n\
        Workers join; turn by turn the master grants one worker that has not written yet, \
        chosen at random; the granted worker publishes a random number and every worker \
        places it by its sequence number. At the end every worker reports its list and \
        sync-run checks that all lists are identical and match the grant order.",
    after_help = AFTER_HELP,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Run the master and the workers in this process (the default command).
    #[command(flatten)]
    pub all: AllArgs,

    #[command(flatten)]
    pub global: GlobalArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run only the master: wait for --slaves workers, run the turns, verify their lists.
    Master(MasterArgs),
    /// Run only one worker of the run named by --run-id.
    Worker(WorkerArgs),
    /// Measure: full runs for several N against the broker's round trip, its raw fanout
    /// rate and the original protocol; prints a table, optionally JSON and an SVG plot.
    Bench(BenchArgs),
    /// Print a shell completion script, e.g. `sync-run completions bash > /etc/bash_completion.d/sync-run`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Worker counts to run, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000", value_parser = parse_slaves)]
    pub sizes: Vec<usize>,
    /// --window values to run each N with, comma-separated (1 = turn by turn).
    #[arg(long, value_delimiter = ',', default_value = "64", value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub windows: Vec<u32>,
    /// Topologies to run each N with, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        value_enum,
        default_value = "queues,stream"
    )]
    pub topologies: Vec<Topology>,
    /// Also run with --no-relay (workers broadcast their own appends, the original
    /// protocol's shape; per-worker queues, the first window) up to this N.
    #[arg(long, default_value_t = 300)]
    pub no_relay_max: usize,
    /// The original protocol (Python + pika) to run side by side. Default:
    /// bench/original_protocol.py in the current directory, else in the repository whose
    /// target/ holds this binary; skipped, saying why, if absent or python3 lacks pika.
    #[arg(long, default_value_os_t = crate::algorithms::list::bench::default_original_script())]
    pub seed_script: std::path::PathBuf,
    /// Run the original protocol only up to this N (it starts one Python process per worker).
    #[arg(long, default_value_t = 100)]
    pub seed_max: usize,
    /// Broker round-trip samples.
    #[arg(long, default_value_t = 1000)]
    pub rtt_samples: usize,
    /// Write an SVG plot of wall time against N here.
    #[arg(long)]
    pub plot: Option<std::path::PathBuf>,
    /// Each run's time limit.
    #[arg(long, default_value = "600s", value_parser = parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Broker URL (the password is never printed).
    #[arg(long, env = "AMQP_URL", default_value = DEFAULT_URL, global = true, hide_env_values = true)]
    pub amqp_url: String,
    /// How long to wait for the broker to answer a connection attempt (e.g. 5s, 500ms).
    #[arg(long, default_value = "5s", value_parser = parse_duration, global = true)]
    pub connect_timeout: Duration,
    /// Durable exchanges and queues and persistent messages, so a run survives a broker
    /// restart. Every participant of a run must agree on it.
    #[arg(long, global = true)]
    pub durable: bool,
    /// How the run's broadcasts reach the workers: `queues`, one queue per worker bound to
    /// the fanout exchange; or `stream`, one RabbitMQ stream bound to it that every worker
    /// reads (one stored copy; a reconnecting worker replays it from the start; faster to
    /// start; RabbitMQ 3.9+ and a file descriptor in the broker per worker). Every
    /// participant of a run must agree on it.
    #[arg(long, global = true, value_enum, default_value_t = Topology::Queues)]
    pub topology: Topology,
    /// Print one JSON document on stdout instead of the table.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only the verdict line (and errors).
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// More log output on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(long, short, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

#[derive(Debug, Args)]
pub struct AllArgs {
    /// Number of workers (1 to 2000).
    #[arg(long, short = 'n', value_parser = parse_slaves)]
    pub slaves: Option<usize>,
    /// The workers share at most this many connections to the broker (each worker has a
    /// channel of its own); with fewer workers, each has its own connection.
    #[arg(long, default_value_t = crate::algorithms::list::run::DEFAULT_CONNECTIONS as u32, value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub connections: u32,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct MasterArgs {
    /// Number of workers to wait for (1 to 2000).
    #[arg(long, short = 'n', value_parser = parse_slaves)]
    pub slaves: usize,
    /// Follow the active master of the run and take over if its connection is gone.
    #[arg(long)]
    pub standby: bool,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run id: names every exchange and queue of the run [default: random].
    #[arg(long, value_parser = parse_run_id)]
    pub run_id: Option<String>,
    /// Seed for the grant order and the values: same seed and N give the same list.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Smallest value a worker writes.
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    pub min: i64,
    /// Largest value a worker writes.
    #[arg(long, default_value_t = 100, allow_negative_numbers = true)]
    pub max: i64,
    /// How many times each worker writes.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub rounds: u32,
    /// The whole run's limit: past it the run stops, cleans up and exits 1.
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// A granted worker that has not written after this long is evicted.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub grant_timeout: Duration,
    /// How long the master waits for all workers to join.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub join_timeout: Duration,
    /// After --join-timeout, start anyway if at least this many joined [default: all].
    #[arg(long)]
    pub min_workers: Option<usize>,
    /// Pause between turns (e.g. 200ms), to watch a run in the management UI.
    #[arg(long, default_value = "0s", value_parser = parse_pace)]
    pub pace: Duration,
    /// Grants outstanding at once: 1 is strictly turn by turn; more pipelines the turns
    /// (safe: entries are placed by sequence number; the grant order is the same).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub window: u32,
    /// Workers broadcast their own appends on the fanout, as the original protocol did,
    /// instead of sending them to the master, which relays them batched with its grants.
    /// Costs about N times more deliveries; kept to measure the difference.
    #[arg(long)]
    pub no_relay: bool,
    /// Write a timeline of the run (joins, grants, appends, evictions) to this SVG file.
    #[arg(long, value_parser = parse_svg_path)]
    pub report: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The run to join (as given to `sync-run master --run-id`).
    #[arg(long, value_parser = parse_run_id)]
    pub run_id: String,
    /// This worker's id, unique within the run [default: random].
    #[arg(long)]
    pub id: Option<WorkerId>,
    /// Seed for this worker's values.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Give up after this long: the worker stops, deletes what it created and exits 1.
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Accept messages that claim to come from the master only when the broker validated
    /// them as published by this broker user (their AMQP `user_id`). Run the master as a
    /// user of its own and give it here: then a worker's credentials cannot forge a grant.
    #[arg(long, value_name = "USER")]
    pub master_user: Option<String>,
}

fn parse_slaves(s: &str) -> Result<usize, String> {
    let n: i64 = s.trim().parse().map_err(|_| {
        format!("{s:?} is not a number; give the number of workers, e.g. --slaves 10")
    })?;
    if n < 1 || n as usize > MAX_SLAVES {
        return Err(format!(
            "{n} workers is out of range: use 1 to {MAX_SLAVES}"
        ));
    }
    Ok(n as usize)
}

fn parse_svg_path(s: &str) -> Result<std::path::PathBuf, String> {
    if !s.to_ascii_lowercase().ends_with(".svg") {
        return Err(format!(
            "{s:?}: the report is an SVG picture; give a file name ending in .svg"
        ));
    }
    Ok(std::path::PathBuf::from(s))
}

fn parse_run_id(s: &str) -> Result<String, String> {
    validate_run_id(s).map(|_| s.to_owned())
}

fn parse_pace(s: &str) -> Result<Duration, String> {
    if s.trim().parse::<f64>().is_ok_and(|x| x == 0.0) || s.trim() == "0s" {
        return Ok(Duration::ZERO);
    }
    parse_duration(s)
}

/// `30s`, `500ms`, `2m`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = if let Ok(secs) = s.trim().parse::<f64>() {
        if !(secs.is_finite() && secs > 0.0) {
            return Err(format!("{s:?} must be a positive duration"));
        }
        Duration::from_secs_f64(secs)
    } else {
        humantime::parse_duration(s.trim())
            .map_err(|e| format!("{s:?} is not a duration ({e}); write e.g. 30s, 500ms or 2m"))?
    };
    if d.is_zero() {
        return Err(format!("{s:?} must be a positive duration"));
    }
    Ok(d)
}

impl RunArgs {
    /// Checks that need more than one option at a time.
    pub fn validate(&self, slaves: usize) -> Result<(), String> {
        if self.min > self.max {
            return Err(format!(
                "--min {} is greater than --max {}: the value range would be empty",
                self.min, self.max
            ));
        }
        if let Some(m) = self.min_workers
            && (m == 0 || m > slaves)
        {
            return Err(format!(
                "--min-workers {m} must be between 1 and --slaves {slaves}"
            ));
        }
        Ok(())
    }
}

impl GlobalArgs {
    pub fn broker_url(&self) -> Result<BrokerUrl, String> {
        BrokerUrl::parse(&self.amqp_url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_and_slaves_parse() {
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_slaves("0").is_err());
        assert!(parse_slaves("-3").is_err());
        assert!(parse_slaves("ten").is_err());
        assert!(parse_slaves("2001").is_err());
        assert_eq!(parse_slaves("2000").unwrap(), 2000);
    }
}
