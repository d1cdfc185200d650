//! The space-time diagram of a mutual-exclusion run: a lane per process, every message
//! (request, reply and `done`) as an arrow from its send to its receive, each end placed at
//! its Lamport time and labelled with its clocks, and a bar per critical section from entry
//! to exit. Two bars never overlap in Lamport time when the run is safe — the picture of
//! check 1. The `done`s are drawn because they are clock events like the others: without
//! them a lane's clocks would jump with nothing drawn between.

use super::report::{Event, Report, vc_text};
use crate::contract::PeerId;
use crate::verdict::spacetime::{Bar, DEvent, Diagram};
use std::collections::BTreeMap;

/// The diagram of these reports (one per process; a process that did not report has an
/// empty lane).
pub fn diagram(title: &str, processes: u32, reports: &[Report]) -> Diagram {
    let mut d = Diagram {
        title: title.to_owned(),
        lanes: (1..=processes).map(|k| format!("P{k}")).collect(),
        ..Diagram::default()
    };
    let lane = |id: PeerId| (id as usize).saturating_sub(1);
    type Key = (PeerId, PeerId, u64, &'static str);
    let key = |e: &Event| -> Key { (e.from, e.to, e.seq, e.kind.name()) };
    // (message, event index) of every send and every receive.
    let mut sends: Vec<(Key, usize)> = Vec::new();
    let mut receives: Vec<(Key, usize)> = Vec::new();
    for r in reports {
        for (events, arrow, ends) in [
            (&r.sent, "→", &mut sends),
            (&r.received, "←", &mut receives),
        ] {
            for e in events {
                ends.push((key(e), d.events.len()));
                d.events.push(DEvent {
                    lane: lane(r.id),
                    pos: e.lamport as f64,
                    label: format!(
                        "{} {arrow}P{} L={} {}",
                        e.kind.name(),
                        e.peer_of(r.id),
                        e.lamport,
                        vc_text(&e.vc)
                    ),
                });
            }
        }
        for x in &r.executions {
            d.bars.push(Bar {
                lane: lane(r.id),
                from_pos: x.enter_lamport as f64,
                to_pos: x.exit_lamport as f64,
                label: format!("CS #{} req ({},{})", x.index, x.request.0, x.request.1),
            });
        }
    }
    let sends: BTreeMap<Key, usize> = sends.into_iter().collect();
    d.arrows = receives
        .into_iter()
        .filter_map(|(k, to)| sends.get(&k).map(|from| (*from, to)))
        .collect();
    d
}
