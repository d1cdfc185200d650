//! What travels on a channel between two nodes, shared by the snapshot's messages and
//! its reports: money, markers, and the numbers that name snapshots.

use serde::{Deserialize, Serialize};

/// Money, in whole units.
pub type Money = u64;
/// A snapshot's number within the run: 1, 2, … in the order they were begun.
pub type SnapshotId = u32;

/// What travels on a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Content {
    /// Money moving from the sender to the receiver; deducted when sent, credited when
    /// taken.
    Transfer { amount: Money },
    /// Chandy–Lamport's marker of snapshot `snapshot`.
    Marker { snapshot: SnapshotId },
    /// Random mode: nothing more will come on this channel.
    Close,
}
