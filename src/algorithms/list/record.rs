//! The master's account of a run, as the verifier ([`super::checks`]), the report and the
//! timeline read it: every grant and how it ended, who was evicted or lost, what each
//! worker reported. Plain data, apart from the machine that fills it in.

use super::protocol::{Entry, Seq, WorkerId};
use crate::contract::Millis;
use serde::Serialize;
use std::collections::BTreeMap;

/// How a grant ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum GrantOutcome {
    Pending,
    Committed { value: i64, at_ms: Millis },
    Evicted { at_ms: Millis },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrantRecord {
    pub seq: Seq,
    pub worker: WorkerId,
    pub round: u32,
    pub granted_at_ms: Millis,
    #[serde(flatten)]
    pub outcome: GrantOutcome,
}

/// What a worker reported at the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerReport {
    pub entries: Vec<Entry>,
    pub rejected: u64,
    pub at_ms: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RunOutcome {
    /// `end` was sent; results were collected (maybe not all: the verifier says).
    Completed,
    /// The run stopped before `end`; `abort` was sent.
    Aborted { reason: String },
}

/// The master's account of a run: the input of [`super::checks`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    pub run_id: String,
    pub expected_workers: usize,
    pub members: Vec<WorkerId>,
    pub rounds: u32,
    pub min: i64,
    pub max: i64,
    pub grants: Vec<GrantRecord>,
    pub evicted: Vec<WorkerId>,
    /// Members that were not evicted but sent no result before the results deadline after
    /// `end`: they wrote, then crashed or left (a function or container that ended after its
    /// turn). Their entries are in every list; they are named, not waited for.
    pub lost: Vec<WorkerId>,
    pub results: BTreeMap<WorkerId, WorkerReport>,
    pub outcome: RunOutcome,
    /// Messages the master rejected, by reason label.
    pub rejected: BTreeMap<&'static str, u64>,
    pub started_at_ms: Option<Millis>,
    pub ended_at_ms: Option<Millis>,
    pub finished_at_ms: Millis,
    /// When each member's first join arrived (a standby that took over knows only the
    /// members, not their join times).
    pub joined_at_ms: BTreeMap<WorkerId, Millis>,
}

impl RunRecord {
    /// The committed entries in list order: what every surviving worker must hold.
    pub fn committed(&self) -> Vec<Entry> {
        self.grants
            .iter()
            .filter_map(|g| match g.outcome {
                GrantOutcome::Committed { value, .. } => Some(Entry {
                    seq: g.seq,
                    worker: g.worker,
                    value,
                }),
                _ => None,
            })
            .collect()
    }

    /// Members that must have reported: neither evicted nor lost.
    pub fn survivors(&self) -> Vec<WorkerId> {
        self.members
            .iter()
            .copied()
            .filter(|w| !self.evicted.contains(w) && !self.lost.contains(w))
            .collect()
    }
}
