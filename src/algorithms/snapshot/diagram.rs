//! The space-time diagram of a snapshot run: a lane per node, an arrow per transfer and
//! marker from the send to the take, each event placed at a Lamport time computed from
//! the reports, and per snapshot a bar on each lane from where the node recorded (the cut)
//! to where its last marker came (its channels recorded meanwhile).

use super::protocol::Content;
use super::report::{Event, NodeReport};
use crate::contract::PeerId;
use crate::verdict::spacetime::{Bar, DEvent, Diagram};
use std::collections::BTreeMap;

/// Lamport times of every node's events: a take comes after its send. `None` for an
/// event whose send is missing from the reports (it is placed after its predecessor).
fn lamport(reports: &[NodeReport]) -> Vec<Vec<u64>> {
    let mut at: Vec<Vec<u64>> = reports.iter().map(|_| Vec::new()).collect();
    let mut sent: BTreeMap<(PeerId, PeerId, u64), u64> = BTreeMap::new();
    let mut progress = true;
    while progress {
        progress = false;
        for (i, r) in reports.iter().enumerate() {
            while at[i].len() < r.events.len() {
                let prev = at[i].last().copied().unwrap_or(0);
                let t = match &r.events[at[i].len()] {
                    Event::Took { from, seq, .. } => {
                        let Some(s) = sent.get(&(*from, r.id, *seq)) else {
                            // Wait for the sender, unless it never reported.
                            if reports.iter().any(|x| x.id == *from) {
                                break;
                            }
                            at[i].push(prev + 1);
                            continue;
                        };
                        prev.max(*s) + 1
                    }
                    Event::Sent { to, seq, .. } => {
                        sent.insert((r.id, *to, *seq), prev + 1);
                        prev + 1
                    }
                    _ => prev + 1,
                };
                at[i].push(t);
                progress = true;
            }
        }
    }
    // Whatever could not be placed (a take whose send is not in the reports) follows on.
    for (i, r) in reports.iter().enumerate() {
        while at[i].len() < r.events.len() {
            let prev = at[i].last().copied().unwrap_or(0);
            at[i].push(prev + 1);
        }
    }
    at
}

/// The diagram of these reports.
pub fn diagram(title: &str, reports: &[NodeReport]) -> Diagram {
    let mut d = Diagram {
        title: title.to_owned(),
        lanes: reports.iter().map(|r| format!("node {}", r.id)).collect(),
        ..Diagram::default()
    };
    let times = lamport(reports);
    let mut sends: BTreeMap<(PeerId, PeerId, u64), usize> = BTreeMap::new();
    let mut takes: Vec<((PeerId, PeerId, u64), usize)> = Vec::new();
    for (lane, r) in reports.iter().enumerate() {
        let mut recorded_at: BTreeMap<u32, f64> = BTreeMap::new();
        let mut last_marker: BTreeMap<u32, f64> = BTreeMap::new();
        for (e, t) in r.events.iter().zip(&times[lane]) {
            let pos = *t as f64;
            let label = match e {
                Event::Created { balance } => format!("created {balance}"),
                Event::Sent { to, seq, content } => {
                    sends.insert((r.id, *to, *seq), d.events.len());
                    format!("{} → {to}", content_text(content))
                }
                Event::Took { from, seq, content } => {
                    takes.push(((*from, r.id, *seq), d.events.len()));
                    if let Content::Marker { snapshot } = content {
                        last_marker.insert(*snapshot, pos);
                    }
                    format!("{} ← {from}", content_text(content))
                }
                Event::Refused { to, amount } => format!("ERR_SEND {amount} → {to}"),
                Event::Recorded { snapshot, balance } => {
                    recorded_at.insert(*snapshot, pos);
                    format!("cut S{snapshot}: {balance}")
                }
            };
            d.events.push(DEvent { lane, pos, label });
        }
        for (s, from) in recorded_at {
            let to = last_marker.get(&s).copied().unwrap_or(from).max(from);
            d.bars.push(Bar {
                lane,
                from_pos: from,
                to_pos: to,
                label: format!("S{s} recording"),
            });
        }
    }
    d.arrows = takes
        .into_iter()
        .filter_map(|(k, to)| sends.get(&k).map(|from| (*from, to)))
        .collect();
    d
}

fn content_text(c: &Content) -> String {
    match c {
        Content::Transfer { amount } => format!("{amount}"),
        Content::Marker { snapshot } => format!("marker S{snapshot}"),
        Content::Close => "close".into(),
    }
}
