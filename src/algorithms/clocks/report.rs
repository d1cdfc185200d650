//! What a process reports at the end: every event it took part in, in its own order, with
//! the clocks it gave each one. The report travels on the results queue (serde both ways)
//! and is all the checker ([`super::checks`]) looks at: the proof is rebuilt from what the
//! processes say happened, not from the driver's bookkeeping.
//!
//! [`diagram`] turns a set of reports into a space-time diagram
//! ([`crate::verdict::spacetime`]).

use crate::contract::PeerId;
use crate::verdict::spacetime::{DEvent, Diagram};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case", deny_unknown_fields)]
pub enum Outcome {
    /// It did its E internal events and applied every message every peer sent it.
    Completed,
    /// The run's deadline passed while it still waited for these peers' messages.
    TimedOut { waiting: Vec<PeerId> },
    /// These peers were silent for `peer_timeout_ms` while it still waited for them.
    Silent { peers: Vec<PeerId> },
    /// Stopped from outside (Ctrl-C).
    Interrupted { reason: String },
}

/// What an event was. A send names its channel's sequence number, a receive the sender
/// and that number: (from, to, seq) identifies a message, which is how the checker pairs
/// each send with its receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum EventKind {
    Internal,
    Send { to: PeerId, seq: u64 },
    Receive { from: PeerId, seq: u64 },
}

/// One event of a process, with the clocks it got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// 1, 2, 3, … in the process's own order.
    pub index: u32,
    pub kind: EventKind,
    pub lamport: u64,
    /// `vc[k - 1]` is the entry of process k.
    pub vc: Vec<u64>,
}

/// How many events of each kind (derivable from `events`; a reader of the JSON sees them
/// without counting).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    pub internal: u64,
    pub sent: u64,
    pub received: u64,
}

/// A process's final record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub id: PeerId,
    pub outcome: Outcome,
    pub events: Vec<Event>,
    pub counts: Counts,
    /// Deliveries refused (malformed, foreign, misrouted); none stopped the process.
    pub rejected: u64,
}

/// `P1 e3`: how every output names an event.
pub fn name(process: PeerId, index: u32) -> String {
    format!("P{process} e{index}")
}

/// `[3,1,0]`.
pub fn vc_text(vc: &[u64]) -> String {
    let parts: Vec<String> = vc.iter().map(u64::to_string).collect();
    format!("[{}]", parts.join(","))
}

/// A space-time diagram of the reports: a lane per process (by id), each event placed at
/// its Lamport time (an order consistent with happened-before whenever the Lamport clock
/// condition holds) and labelled with its clocks, an arrow from each send to its receive.
pub fn diagram(title: &str, reports: &[Report]) -> Diagram {
    let mut sorted: Vec<&Report> = reports.iter().collect();
    sorted.sort_by_key(|r| r.id);
    sorted.dedup_by_key(|r| r.id);
    let mut d = Diagram {
        title: title.to_owned(),
        lanes: sorted.iter().map(|r| format!("P{}", r.id)).collect(),
        ..Diagram::default()
    };
    let mut sends: BTreeMap<(PeerId, PeerId, u64), usize> = BTreeMap::new();
    let mut receives: Vec<((PeerId, PeerId, u64), usize)> = Vec::new();
    for (lane, r) in sorted.iter().enumerate() {
        for e in &r.events {
            let at = d.events.len();
            let what = match e.kind {
                EventKind::Internal => format!("e{}", e.index),
                EventKind::Send { to, seq } => {
                    sends.insert((r.id, to, seq), at);
                    format!("e{} →P{to}", e.index)
                }
                EventKind::Receive { from, seq } => {
                    receives.push(((from, r.id, seq), at));
                    format!("e{} ←P{from}", e.index)
                }
            };
            d.events.push(DEvent {
                lane,
                pos: e.lamport as f64,
                label: format!("{what} L={} {}", e.lamport, vc_text(&e.vc)),
            });
        }
    }
    d.arrows = receives
        .into_iter()
        .filter_map(|(key, to)| sends.get(&key).map(|from| (*from, to)))
        .collect();
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithms::clocks::testing;
    use crate::verdict::spacetime::render;

    /// A run's diagram has a dot per event and an arrow per message, and is valid XML.
    #[test]
    fn the_diagram_shows_every_event_and_message() {
        let reports = testing::good(3, 4, 5);
        let d = diagram("clocks <run t>", &reports);
        let m: usize = reports.iter().map(|r| r.events.len()).sum();
        let sent: u64 = reports.iter().map(|r| r.counts.sent).sum();
        assert_eq!(d.events.len(), m);
        assert_eq!(d.arrows.len() as u64, sent);
        assert!(sent > 0);
        let svg = render(&d);
        let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
        let count = |tag: &str| doc.descendants().filter(|n| n.has_tag_name(tag)).count();
        assert_eq!(count("circle"), m);
        assert!(svg.contains("clocks &lt;run t&gt;"));
        assert!(svg.contains("e1 L=1 [1,0,0]"), "{svg}");
        // Every arrow goes forward in Lamport time (the clock condition, drawn).
        for (s, r) in &d.arrows {
            assert!(d.events[*s].pos < d.events[*r].pos);
        }
    }
}
