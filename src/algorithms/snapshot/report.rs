//! What a node reports at the end of a run (its whole history, in its own order), and what
//! it records for a snapshot. The checker ([`super::checks`]) works from these alone; they
//! travel on the broker, hence Serialize and Deserialize.

use super::channel::{Content, Money, SnapshotId};
use crate::contract::PeerId;
use serde::{Deserialize, Serialize};

/// One event of a node, in the order it happened there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "e", rename_all = "snake_case", deny_unknown_fields)]
pub enum Event {
    /// Created with this balance.
    Created { balance: Money },
    /// Put `content` on the channel to `to` as its message `seq`.
    Sent {
        to: PeerId,
        seq: u64,
        content: Content,
    },
    /// A transfer refused for want of money (`ERR_SEND`): nothing was sent.
    Refused { to: PeerId, amount: Money },
    /// Took message `seq` off the channel from `from`.
    Took {
        from: PeerId,
        seq: u64,
        content: Content,
    },
    /// Recorded its own state for snapshot `snapshot` (on `Begin`, or on its first marker
    /// of it, before relaying markers).
    Recorded {
        snapshot: SnapshotId,
        balance: Money,
    },
}

/// A channel's recorded state: the transfers (seq, amount) taken off it after the node
/// recorded and before that channel's marker came; `complete` once the marker came.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelRecord {
    pub from: PeerId,
    pub transfers: Vec<(u64, Money)>,
    pub complete: bool,
}

impl ChannelRecord {
    pub fn sum(&self) -> Money {
        self.transfers
            .iter()
            .fold(0, |sum: Money, (_, a)| sum.saturating_add(*a))
    }
}

/// A node's recorded state of one snapshot: its balance when it recorded, and each
/// incoming channel's record. `balance` none: it has not recorded yet (no marker came).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recorded {
    pub balance: Option<Money>,
    pub channels: Vec<ChannelRecord>,
}

impl Recorded {
    /// Recorded, and every incoming channel's marker has come.
    pub fn complete(&self) -> bool {
        self.balance.is_some() && self.channels.iter().all(|c| c.complete)
    }
}

/// How a node ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case", deny_unknown_fields)]
pub enum Outcome {
    /// Told to stop by the master (`KillAll`, the end of the script or of the run).
    Stopped,
    /// Its deadline passed first.
    DeadlineExpired,
    /// Stopped from outside (Ctrl-C).
    Interrupted { reason: String },
}

/// A node's final report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeReport {
    pub id: PeerId,
    pub outcome: Outcome,
    /// Its balance at the end.
    pub balance: Money,
    /// Everything it did, in order.
    pub events: Vec<Event>,
    /// Its recorded state of every snapshot it took part in, by snapshot id (a list of
    /// pairs: JSON objects cannot have number keys inside a tagged message).
    pub snapshots: Vec<(SnapshotId, Recorded)>,
    /// Messages at the end still on its incoming channels, unread (content in transit).
    pub unread: u64,
    /// Deliveries it rejected (malformed, another run, not for it).
    pub rejected: u64,
}

impl NodeReport {
    /// A report with nothing in it (tests).
    pub fn empty(id: PeerId) -> Self {
        NodeReport {
            id,
            outcome: Outcome::Stopped,
            balance: 0,
            events: Vec::new(),
            snapshots: Vec::new(),
            unread: 0,
            rejected: 0,
        }
    }

    /// Its record of snapshot `s`.
    pub fn snapshot(&self, s: SnapshotId) -> Option<&Recorded> {
        self.snapshots.iter().find(|(x, _)| *x == s).map(|(_, r)| r)
    }

    /// The balance it was created with (0 if never created).
    pub fn initial(&self) -> Money {
        self.events
            .iter()
            .find_map(|e| match e {
                Event::Created { balance } => Some(*balance),
                _ => None,
            })
            .unwrap_or(0)
    }
}
