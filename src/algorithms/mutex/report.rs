//! What a process reports at the end of a run: how it ended, every critical section it
//! executed with its clocks, and every message (request, reply, `done`) it sent and
//! received with theirs.
//! The checker ([`super::checks`]) works from these reports alone; they travel on the
//! results route inside a `report` message, hence Serialize and Deserialize.

use super::clock::{Lamport, VectorClock};
use crate::contract::PeerId;
use serde::{Deserialize, Serialize};

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case", deny_unknown_fields)]
pub enum Outcome {
    /// K entries done, every deferred reply sent, every peer's `done` applied.
    Completed,
    /// It waited on these peers (a reply or their `done`) and they sent nothing at all for
    /// `peer_timeout_ms`.
    Stalled { silent: Vec<PeerId> },
    /// The overall deadline passed first.
    DeadlineExpired,
    /// Stopped from outside (Ctrl-C).
    Interrupted { reason: String },
}

/// One critical section this process executed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Execution {
    /// 1, 2, …, K: the process's own count.
    pub index: u32,
    /// The request's timestamp `(lamport, id)`: requests are served in this order.
    pub request: (Lamport, PeerId),
    pub request_vc: VectorClock,
    pub enter_lamport: Lamport,
    pub enter_vc: VectorClock,
    pub exit_lamport: Lamport,
    pub exit_vc: VectorClock,
    /// The driver's clock at entry and exit (ms since the process started; one clock for
    /// the processes of one `sync-run mutex`). For the benchmark's handover time only:
    /// no check uses wall-clock time.
    #[serde(default)]
    pub enter_ms: u64,
    #[serde(default)]
    pub exit_ms: u64,
}

/// The algorithm's message kinds as a report logs them. Requests and replies are the
/// 2(N−1) messages an entry costs; `done` is logged too (it is a send and a receive event:
/// without it a process's clocks would jump with nothing logged between), but no check
/// counts it as either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Request,
    Reply,
    Done,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Request => "request",
            Kind::Reply => "reply",
            Kind::Done => "done",
        }
    }

    /// A request or a reply: what the algorithm's cost, 2(N−1) per entry, counts.
    pub fn per_entry(self) -> bool {
        matches!(self, Kind::Request | Kind::Reply)
    }
}

/// One message as its sender stamped it (in `sent`) or as its receiver applied it (in
/// `received`: the clocks after the receive rule).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub kind: Kind,
    pub from: PeerId,
    pub to: PeerId,
    /// The message's number on its channel `from → to`.
    pub seq: u64,
    pub lamport: Lamport,
    pub vc: VectorClock,
}

impl Event {
    /// The other end of the message, seen from process `me`.
    pub fn peer_of(&self, me: PeerId) -> PeerId {
        if self.from == me { self.to } else { self.from }
    }
}

/// Requests and replies of a log, without its `done`s: what the message and clock checks
/// match, and the print counts.
pub fn requests_and_replies(events: &[Event]) -> impl Iterator<Item = &Event> {
    events.iter().filter(|e| e.kind.per_entry())
}

/// `[3,4,1,0,0]`: a vector clock as the protocol writes it.
pub fn vc_text(v: &[u64]) -> String {
    let parts: Vec<String> = v.iter().map(u64::to_string).collect();
    format!("[{}]", parts.join(","))
}

/// Messages sent and received, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    pub requests_sent: u64,
    pub replies_sent: u64,
    pub done_sent: u64,
    pub requests_received: u64,
    pub replies_received: u64,
    pub done_received: u64,
    /// Deliveries dropped as duplicates (a redelivery or a re-publish).
    pub duplicates: u64,
}

impl Counts {
    /// Counts one message of `kind`, sent by this process (`sent`) or applied by it.
    pub fn add(&mut self, kind: Kind, sent: bool) {
        let counter = match (kind, sent) {
            (Kind::Request, true) => &mut self.requests_sent,
            (Kind::Reply, true) => &mut self.replies_sent,
            (Kind::Done, true) => &mut self.done_sent,
            (Kind::Request, false) => &mut self.requests_received,
            (Kind::Reply, false) => &mut self.replies_received,
            (Kind::Done, false) => &mut self.done_received,
        };
        *counter += 1;
    }
}

/// A process's final report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub id: PeerId,
    pub outcome: Outcome,
    pub executions: Vec<Execution>,
    pub sent: Vec<Event>,
    pub received: Vec<Event>,
    pub counts: Counts,
    /// Deliveries refused (malformed, another run, not for this process…).
    pub rejected: u64,
    /// Messages still held ahead of a gap when it ended (none in a complete run).
    pub held_at_end: u64,
}

impl Report {
    /// A report with nothing in it yet.
    pub fn empty(id: PeerId, outcome: Outcome) -> Self {
        Report {
            id,
            outcome,
            executions: Vec::new(),
            sent: Vec::new(),
            received: Vec::new(),
            counts: Counts::default(),
            rejected: 0,
            held_at_end: 0,
        }
    }
}
