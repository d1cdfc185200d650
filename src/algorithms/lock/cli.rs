//! The options of `sync-run lock NAME [OPTIONS] -- CMD [ARGS…]` (like `flock`, `etcdctl
//! lock` and `consul lock -n N`) and `sync-run bench lock`.

use crate::cli::{QueueType, parse_duration, parse_duration_or_zero, parse_run_id};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// Most slots a lock may have (`--limit`): each is a queue and a channel per contender.
pub const MAX_LIMIT: u32 = 100;

#[derive(Debug, Args)]
pub struct LockArgs {
    /// The lock's name (letters, digits, '-', '_'; up to 64): every contender that names it
    /// shares it, on every machine that reaches the broker.
    #[arg(value_parser = parse_run_id, value_name = "NAME")]
    pub name: String,
    /// At most N holders at once (a semaphore); every contender of a lock must give the
    /// same N.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=MAX_LIMIT as i64))]
    pub limit: u32,
    /// Give up waiting after this long (exit 75); 0: try once, give up at once if held
    /// [default: wait for as long as it takes].
    #[arg(long, value_parser = parse_duration_or_zero, conflicts_with = "check")]
    pub wait: Option<Duration>,
    /// When the lock is lost, the command gets SIGTERM (its whole process group), then
    /// SIGKILL after this long.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub grace: Duration,
    /// Append this holding's report (one JSON line: slot, fence, monotonic start and end)
    /// to FILE, for `--check --reports`.
    #[arg(long, value_name = "FILE", conflicts_with = "check")]
    pub report: Option<PathBuf>,
    /// Say whether the lock is held, by whom (host, pid), since when, its fence, how many
    /// wait; nothing is taken.
    #[arg(long, conflicts_with_all = ["delete", "check", "report", "wait"])]
    pub status: bool,
    /// Delete the lock's queues (refused while anyone holds or waits). Its fences start
    /// again from 1 afterwards.
    #[arg(long, conflicts_with_all = ["check", "report", "wait"])]
    pub delete: bool,
    /// Prove the lock: C contenders here, K acquisitions each, on a lock named NAME-RUNID
    /// (deleted at the end); or, with --reports, check the reports of holders started
    /// separately.
    #[arg(long)]
    pub check: bool,
    /// C: contenders in this process, each with its own connection (with --check).
    #[arg(long, default_value_t = 4, requires = "check", value_parser = clap::value_parser!(u32).range(1..=200))]
    pub contenders: u32,
    /// K: acquisitions per contender (with --check).
    #[arg(long, default_value_t = 5, requires = "check", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub rounds: u32,
    /// The built-in critical section's length (with --check and no command).
    #[arg(long, default_value = "0ms", requires = "check", value_parser = parse_duration_or_zero)]
    pub hold: Duration,
    /// Check these report files (written by `--report`) instead of running contenders.
    #[arg(long, num_args = 1.., requires = "check", value_name = "FILE")]
    pub reports: Vec<PathBuf>,
    /// The check run's id: its lock is NAME-RUNID [default: random].
    #[arg(long, requires = "check", value_parser = parse_run_id)]
    pub run_id: Option<String>,
    /// The check run's limit: past it the contenders stop and the verdict says what is
    /// missing.
    #[arg(long, default_value = "300s", requires = "check", value_parser = parse_duration)]
    pub timeout: Duration,
    /// The command to run while holding the lock (after `--`).
    #[arg(last = true, value_name = "CMD")]
    pub cmd: Vec<String>,
}

/// `sync-run bench lock`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Acquisitions measured, for each figure.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(2..=100_000))]
    pub rounds: u32,
    /// Contenders taking turns for the handover figure.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(2..=200))]
    pub contenders: u32,
    #[command(flatten)]
    pub runs: crate::cli::BenchRuns,
}

/// The lock's queue type: quorum (a lock outlives a cluster node) unless `--queue-type` was
/// given before the command's `--`. Read from the command line because the global option's
/// default (classic) is right for every run but this long-lived one.
pub fn queue_type(given: QueueType) -> QueueType {
    let explicit = std::env::args()
        .take_while(|a| a != "--")
        .any(|a| a == "--queue-type" || a.starts_with("--queue-type="));
    if explicit { given } else { QueueType::Quorum }
}
