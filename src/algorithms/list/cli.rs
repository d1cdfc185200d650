//! The list agreement's options: the default command (master and workers in one
//! process), `master`, `worker` and `bench`.

use super::protocol::WorkerId;
use crate::cli::{parse_duration, parse_run_id, parse_svg_path};
use crate::contract::Topology;
use clap::Args;
use std::time::Duration;

/// Largest `--slaves` accepted. Every worker receives every entry, so a run moves and holds
/// N² entries in all (1000 workers: seconds and about 300 MiB in one process); beyond
/// this, one broker on a small machine spends minutes per run.
pub const MAX_SLAVES: usize = 2000;

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
    #[arg(long, default_value_os_t = super::bench::default_original_script())]
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
    /// What replication costs: each size on one node (`--single-url`) with classic queues
    /// and with the stream, and on the cluster (`--amqp-url`, two URLs or more) with quorum
    /// queues and with the stream, in one session; cluster ÷ one node as a ratio.
    #[arg(long)]
    pub cluster: bool,
    /// The single node `--cluster` compares with (the password is never printed).
    #[arg(long, default_value = crate::cli::DEFAULT_URL, hide_default_value = true)]
    pub single_url: String,
}

#[derive(Debug, Args)]
pub struct AllArgs {
    /// Number of workers (1 to 2000).
    #[arg(long, short = 'n', value_parser = parse_slaves, allow_negative_numbers = true)]
    pub slaves: Option<usize>,
    /// The workers share at most this many connections to the broker (each worker has a
    /// channel of its own); with fewer workers, each has its own connection.
    #[arg(long, default_value_t = super::run::DEFAULT_CONNECTIONS as u32, value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub connections: u32,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct MasterArgs {
    /// Number of workers to wait for (1 to 2000).
    #[arg(long, short = 'n', value_parser = parse_slaves, allow_negative_numbers = true)]
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
    /// How the run's broadcasts reach the workers: `queues`, one queue per worker bound to
    /// the fanout exchange; or `stream`, one RabbitMQ stream bound to it that every worker
    /// reads (one stored copy; a reconnecting worker replays it from the start; faster to
    /// start; RabbitMQ 3.9+ and a file descriptor in the broker per worker). Every
    /// participant of a run must agree on it.
    #[arg(long, value_enum, default_value_t = Topology::Queues)]
    pub topology: Topology,
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
    /// How the run's broadcasts reach the workers: `queues`, one queue per worker bound to
    /// the fanout exchange; or `stream`, one RabbitMQ stream bound to it that every worker
    /// reads (one stored copy; a reconnecting worker replays it from the start; faster to
    /// start; RabbitMQ 3.9+ and a file descriptor in the broker per worker). Every
    /// participant of a run must agree on it.
    #[arg(long, value_enum, default_value_t = Topology::Queues)]
    pub topology: Topology,
}

fn parse_slaves(s: &str) -> Result<usize, String> {
    let n: i64 = s.trim().parse().map_err(|_| {
        format!("{s:?} is not a number; give the number of workers, e.g. --slaves 10")
    })?;
    if n < 1 || n as usize > MAX_SLAVES {
        return Err(format!(
            "{n} is out of range: the number of workers is 1 to {MAX_SLAVES}"
        ));
    }
    Ok(n as usize)
}

fn parse_pace(s: &str) -> Result<Duration, String> {
    if s.trim().parse::<f64>().is_ok_and(|x| x == 0.0) || s.trim() == "0s" {
        return Ok(Duration::ZERO);
    }
    parse_duration(s)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slaves_parse() {
        for bad in ["0", "-3", "ten", "2001"] {
            assert!(parse_slaves(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_slaves("2000").ok(), Some(2000));
    }
}
