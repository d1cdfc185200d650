//! The space-time diagram of a market run (`--report run.svg`): a lane per peer (the
//! first [`LANES`]), an arrow per lookup from its forward to its arrival, per reply hop
//! back, and per buy and answer. Events are placed by their order on the peers' clocks
//! (one clock for the peers of one process: a run with external peers is drawn as their
//! clocks say), sends before receives at the same millisecond.

use super::report::{Ledger, PeerReport};
use crate::contract::{Millis, PeerId};
use crate::verdict::spacetime::{DEvent, Diagram};
use std::collections::HashMap;

/// Lanes drawn at most (a bigger market is drawn in part, and the title says so).
pub const LANES: usize = 12;
/// Events drawn at most (the earliest).
const EVENTS: usize = 400;

/// Where an arrow starts or ends before positions are known.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Key {
    Forward(PeerId, super::protocol::LookupId),
    Arrival(PeerId, super::protocol::LookupId, Vec<PeerId>),
    ReplyAt(PeerId, super::protocol::LookupId, PeerId),
    Buy(PeerId, u64),
    Sale(PeerId, PeerId, u64),
    Answer(PeerId, u64),
}

struct Ev {
    lane: usize,
    at: Millis,
    receive: bool,
    label: String,
    key: Key,
}

/// The diagram of these reports.
pub fn diagram(title: &str, peers: &[PeerReport]) -> Diagram {
    let shown: Vec<&PeerReport> = peers.iter().take(LANES).collect();
    let mut evs: Vec<Ev> = Vec::new();
    let mut arrows: Vec<(Key, Key)> = Vec::new();
    for (i, r) in shown.iter().enumerate() {
        let ev = |at, receive, label: String, key| Ev {
            lane: i,
            at,
            receive,
            label,
            key,
        };
        for f in &r.forwards {
            evs.push(ev(
                f.at,
                false,
                format!("lookup {}", f.id),
                Key::Forward(r.id, f.id),
            ));
            for t in &f.to {
                arrows.push((
                    Key::Forward(r.id, f.id),
                    Key::Arrival(*t, f.id, f.path.clone()),
                ));
            }
        }
        for a in &r.arrivals {
            let label = format!("{} ({} left)", a.id, a.hops);
            evs.push(ev(
                a.at,
                true,
                label,
                Key::Arrival(r.id, a.id, a.path.clone()),
            ));
        }
        for x in &r.replied {
            let key = Key::ReplyAt(r.id, x.id, r.id);
            evs.push(ev(x.at, false, format!("reply {}", x.id), key.clone()));
            if let Some(to) = x.path.last() {
                arrows.push((key, Key::ReplyAt(*to, x.id, r.id)));
            }
        }
        for x in &r.relayed {
            let key = Key::ReplyAt(r.id, x.id, x.seller);
            evs.push(ev(x.at, true, format!("relay {}", x.id), key.clone()));
            arrows.push((key, Key::ReplyAt(x.to, x.id, x.seller)));
        }
        if let Some(b) = &r.buyer {
            for round in &b.rounds {
                for g in &round.replies {
                    let label = format!("from {}", g.seller);
                    evs.push(ev(
                        g.at,
                        true,
                        label,
                        Key::ReplyAt(r.id, round.id, g.seller),
                    ));
                }
            }
            for x in &b.buys {
                let label = format!("buy {} from {}", x.product, x.seller);
                evs.push(ev(x.sent_at, false, label, Key::Buy(r.id, x.req)));
                arrows.push((Key::Buy(r.id, x.req), Key::Sale(x.seller, r.id, x.req)));
                if let (Some(at), Some(sold)) = (x.answered_at, x.sold) {
                    let label = if sold { "yes" } else { "no" }.to_string();
                    evs.push(ev(at, true, label, Key::Answer(r.id, x.req)));
                    arrows.push((Key::Sale(x.seller, r.id, x.req), Key::Answer(r.id, x.req)));
                }
            }
        }
        if let Some(s) = &r.stall {
            for e in &s.ledger {
                let (buyer, req, at, label) = match e {
                    Ledger::Sold {
                        buyer,
                        req,
                        product,
                        at,
                    } => (buyer, req, at, format!("sold {product}")),
                    Ledger::Refused { buyer, req, at, .. } => (buyer, req, at, "no".into()),
                    Ledger::Stocked { .. } => continue,
                };
                evs.push(ev(*at, true, label, Key::Sale(r.id, *buyer, *req)));
            }
        }
    }
    evs.sort_by_key(|e| (e.at, e.receive));
    evs.truncate(EVENTS);
    let mut at: HashMap<Key, usize> = HashMap::new();
    for (i, e) in evs.iter().enumerate() {
        at.entry(e.key.clone()).or_insert(i);
    }
    let mut title = title.to_owned();
    if peers.len() > LANES {
        title += &format!(" (peers {} of {})", LANES, peers.len());
    }
    Diagram {
        title,
        lanes: shown
            .iter()
            .map(|r| format!("{} {:?}", r.id, r.role).to_lowercase())
            .collect(),
        arrows: arrows
            .iter()
            .filter_map(|(a, b)| Some((*at.get(a)?, *at.get(b)?)))
            .collect(),
        events: evs
            .into_iter()
            .enumerate()
            .map(|(i, e)| DEvent {
                lane: e.lane,
                pos: i as f64,
                label: e.label,
            })
            .collect(),
        bars: Vec::new(),
    }
}
