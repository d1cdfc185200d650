//! What each participant reports at the end, on the results route: the checker's only
//! input. A branch reports the log of what it applied (the order, each result and the
//! balance after it); a customer reports each call it made, what came back and when; the
//! sequencer reports what it ordered. `--no-record` drops the logs and the calls (for long
//! runs: memory then stays flat in the number of operations) and the checks that need
//! them are skipped, saying so.

use super::ops::{Mode, Op, Outcome};
use crate::contract::PeerId;
use serde::{Deserialize, Serialize};

/// One operation a branch applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogEntry {
    /// Its place in the total order (`--mode propagate`: in this branch's own order).
    pub seq: u64,
    /// The branch the customer called.
    pub origin: PeerId,
    pub customer: PeerId,
    pub req: u64,
    pub op: Op,
    pub money: u64,
    pub result: Outcome,
    /// The balance after it (a query's answer).
    pub balance: i64,
}

/// How a branch ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "how", rename_all = "snake_case")]
pub enum BranchEnd {
    /// It applied the sequencer's `end` (ordered) or every peer's `fin` (propagate).
    Completed,
    /// The run's `--run-timeout` passed first.
    DeadlineExpired,
    Interrupted {
        reason: String,
    },
}

/// A branch's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BranchReport {
    pub id: PeerId,
    pub mode: Mode,
    pub outcome: BranchEnd,
    /// The state it started from: the operations before `synced_seq + 1` came in the
    /// sequencer's `state`, not one by one (0 for a branch that started with the run; more
    /// for one that started late or restarted).
    pub synced_seq: u64,
    /// The last operation it applied.
    pub last_seq: u64,
    pub balance: i64,
    /// The lowest balance it ever held.
    pub min_balance: i64,
    /// Successful deposits and withdrawals, in money, since the start of the run.
    pub deposited: u64,
    pub withdrawn: u64,
    /// Requests it answered again from its table (retries, duplicates).
    pub answered_again: u64,
    /// Deliveries it refused.
    pub rejected: u64,
    /// Whether `log` holds every operation it applied (`--no-record`: empty).
    pub recorded: bool,
    pub log: Vec<LogEntry>,
}

/// One call a customer made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Call {
    pub req: u64,
    /// The input's event id, if it had one.
    pub event: Option<u64>,
    pub op: Op,
    pub money: u64,
    pub branch: PeerId,
    /// What came back (`None`: no answer).
    pub result: Option<Outcome>,
    /// A query's balance.
    pub balance: Option<i64>,
    /// The operation's place in the order, as the branch said.
    pub seq: Option<u64>,
    /// When it was first sent and when the answer came, in ms on the customer's `clock`.
    pub sent_at: u64,
    pub answered_at: Option<u64>,
    /// How many times it was sent again.
    pub retries: u32,
}

/// How a customer ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "how", rename_all = "snake_case")]
pub enum CustomerEnd {
    Completed,
    /// Its branch did not answer request `req` within `--timeout`.
    GaveUp {
        req: u64,
        branch: PeerId,
        after_ms: u64,
    },
    /// The run's `--run-timeout` passed before it was told to start or had finished.
    DeadlineExpired,
    Interrupted {
        reason: String,
    },
}

/// A customer's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerReport {
    pub id: PeerId,
    /// Which clock `sent_at` / `answered_at` read: customers with the same clock can be
    /// compared in real time (those of one `sync-run bank` process share one).
    pub clock: String,
    pub outcome: CustomerEnd,
    /// Calls made and answered.
    pub calls: u64,
    pub answered: u64,
    /// Successful deposits and withdrawals, in money.
    pub deposited: u64,
    pub withdrawn: u64,
    /// Deliveries (or packed bodies) it refused.
    pub rejected: u64,
    pub recorded: bool,
    pub log: Vec<Call>,
}

/// The sequencer's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SequencerReport {
    pub mode: Mode,
    /// Operations placed in the order.
    pub sequenced: u64,
    /// Orders for a request already placed (a retry, a duplicate), dropped.
    pub duplicates: u64,
    /// States sent to branches that (re)started.
    pub syncs: u64,
    pub customers_done: Vec<PeerId>,
    /// Why it ended the run: `"every customer is done"` or the deadline.
    pub end_reason: String,
    pub end_seq: u64,
    pub balance: i64,
    pub rejected: u64,
}
