//! sync-run: coordination algorithms over RabbitMQ, each proven by a checker at the end of
//! every run.
//!
//! The house (docs/ARCHITECTURE.md says what may import what):
//!
//! * [`contract`] — what every role of every algorithm is: a state machine, bytes and the
//!   current time in, messages out (no sockets, no clock reads, the RNG injected); routes,
//!   outputs, rejections; per-sender FIFO.
//! * [`broker`] — the algorithm-agnostic RabbitMQ adapter: URL and redaction, connect,
//!   declaring and deleting a run's wiring, the drive loop, reconnect, the connection pool.
//! * [`sim`] — the deterministic simulator: any algorithm's machines under hostile
//!   schedules.
//! * [`verdict`] — named checks → human table, JSON, exit code.
//! * [`algorithms`] — one folder per algorithm.
//! * [`cli`] and [`progress`] — the options every command shares, the session, usage
//!   errors; what the user sees while a run goes. They name no algorithm.
//! * [`app`] — the dispatcher: the one place that names every algorithm.

pub mod algorithms;
pub mod app;
pub mod bench;
pub mod broker;
pub mod cli;
pub mod contract;
pub mod progress;
pub mod sim;
pub mod verdict;

/// Process exit codes, documented in the README and `--help`.
pub mod exit {
    /// Every check passed.
    pub const VERIFIED: i32 = 0;
    /// A check failed: lists disagree, an entry is missing, or the run did not finish.
    pub const FAILED: i32 = 1;
    /// The command line was wrong.
    pub const USAGE: i32 = 2;
    /// The broker could not be reached, refused the credentials or failed mid-run.
    pub const BROKER: i32 = 3;
    /// Every check passed for the surviving workers; some workers were evicted or lost
    /// (silent after `end`).
    pub const VERIFIED_WITH_EVICTIONS: i32 = 4;
    /// The run id is taken: another active master holds the run, or another worker of the
    /// run has this worker's id.
    pub const CONFLICT: i32 = 5;
    /// Interrupted by SIGHUP (after cleaning up): 128 + 1.
    pub const HANGUP: i32 = 129;
    /// Interrupted by Ctrl-C / SIGINT (after cleaning up): 128 + 2.
    pub const INTERRUPTED: i32 = 130;
    /// Stopped by SIGTERM (`timeout`, `docker stop`, systemd), after cleaning up: 128 + 15.
    pub const TERMINATED: i32 = 143;
}
