//! The bank's vocabulary, shared by its messages and its reports: the operations, how
//! they come out, and how the branches apply writes.

use serde::{Deserialize, Serialize};

/// A customer's operation (the course's `interface`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Query,
    Deposit,
    Withdraw,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Query => "query",
            Op::Deposit => "deposit",
            Op::Withdraw => "withdraw",
        }
    }
}

/// How an operation came out (the course's `result`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    /// A withdraw beyond the balance: nothing changed anywhere.
    Fail,
}

/// How the branches apply writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Every operation, queries too, in one total order set by the sequencer; every branch
    /// applies that order. Linearizable.
    #[default]
    Ordered,
    /// The course's original design, kept for comparison: a branch applies a request at
    /// once and then tells the other branches, which apply it blindly. Double-spends under
    /// concurrency; the checker counts how.
    Propagate,
}
