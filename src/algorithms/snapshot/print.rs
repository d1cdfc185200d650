//! The printed snapshot: the course's format, exactly.
//!
//! ```text
//! ---Node states
//! node 1 = 300
//! node 2 = 1100
//! ---Channel states
//! channel (1 -> 2) = 0
//! channel (2 -> 1) = 100
//! ```
//!
//! Nodes by id; channels by source, then destination; a channel's state is the sum of
//! the money recorded on it. A node that had not recorded when the state was collected
//! prints `?`, and so does a channel whose marker had not come: the snapshot was collected
//! too early (and the checker says so).

use super::report::Recorded;
use crate::contract::PeerId;

/// The lines of `PrintSnapshot` for `states` (every node of the snapshot, by id).
pub fn snapshot_block(states: &[(PeerId, Recorded)]) -> Vec<String> {
    let mut states: Vec<&(PeerId, Recorded)> = states.iter().collect();
    states.sort_by_key(|(k, _)| *k);
    let mut lines = vec!["---Node states".to_owned()];
    for (k, r) in &states {
        match r.balance {
            Some(b) => lines.push(format!("node {k} = {b}")),
            None => lines.push(format!("node {k} = ?")),
        }
    }
    lines.push("---Channel states".to_owned());
    for (a, _) in &states {
        for (b, rb) in &states {
            if a == b {
                continue;
            }
            let sum = rb.balance.and_then(|_| {
                rb.channels
                    .iter()
                    .find(|c| c.from == *a && c.complete)
                    .map(|c| c.sum())
            });
            match sum {
                Some(s) => lines.push(format!("channel ({a} -> {b}) = {s}")),
                None => lines.push(format!("channel ({a} -> {b}) = ?")),
            }
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithms::snapshot::report::ChannelRecord;

    #[test]
    fn the_issue_example_prints_exactly() {
        let states = vec![
            (
                2,
                Recorded {
                    balance: Some(1100),
                    channels: vec![ChannelRecord {
                        from: 1,
                        transfers: vec![],
                        complete: true,
                    }],
                },
            ),
            (
                1,
                Recorded {
                    balance: Some(300),
                    channels: vec![ChannelRecord {
                        from: 2,
                        transfers: vec![(2, 100)],
                        complete: true,
                    }],
                },
            ),
        ];
        assert_eq!(
            snapshot_block(&states).join("\n"),
            "---Node states\nnode 1 = 300\nnode 2 = 1100\n---Channel states\nchannel (1 -> 2) = 0\nchannel (2 -> 1) = 100"
        );
    }
}
