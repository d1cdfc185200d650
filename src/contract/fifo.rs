//! Per-sender FIFO, exactly once: a sequence number per channel (sender → route) so a
//! reconnect, a redelivery or a re-publish never reorders or duplicates what a receiver
//! applies.
//!
//! RabbitMQ keeps one publisher's messages in order on one queue, but the drivers may
//! publish a message twice (its confirm was lost with the connection) and a delivery whose
//! ack was lost comes back. An algorithm that needs FIFO channels (Chandy–Lamport's marker
//! rule) or counts messages (Ricart–Agrawala's 2(N−1)) stamps each message with
//! [`Sequencer::stamp`] and passes what arrives through [`Fifo::offer`]: duplicates are
//! dropped, early arrivals held until the gap before them is filled.

use super::{PeerId, Route};
use std::collections::BTreeMap;

/// Numbers a sender's messages per route: 1, 2, 3, … on each.
#[derive(Debug, Default, Clone)]
pub struct Sequencer {
    next: BTreeMap<Route, u64>,
}

impl Sequencer {
    /// The sequence number of the next message on `route`.
    pub fn stamp(&mut self, route: Route) -> u64 {
        let n = self.next.entry(route).or_insert(0);
        *n += 1;
        *n
    }
}

/// What [`Fifo::offer`] made of one arrival.
#[derive(Debug, PartialEq, Eq)]
pub enum Arrival<T> {
    /// These messages, in order, are next from their sender (the arrival and any held
    /// ones it released).
    Apply(Vec<T>),
    /// Ahead of a gap: held until the messages before it arrive.
    Held,
    /// Already applied or already held: drop it.
    Duplicate,
    /// Too far ahead of the next expected one to hold: refuse it.
    TooFarAhead,
}

/// The receiving side of every channel into one participant: the next sequence number
/// expected from each sender and what arrived early.
#[derive(Debug, Clone)]
pub struct Fifo<T> {
    expected: BTreeMap<PeerId, u64>,
    held: BTreeMap<PeerId, BTreeMap<u64, T>>,
    window: u64,
}

impl<T> Default for Fifo<T> {
    fn default() -> Self {
        Fifo::new(100_000)
    }
}

impl<T> Fifo<T> {
    /// A receiver that holds at most `window` messages ahead of a gap per sender (memory
    /// stays bounded whatever a sender or an attacker publishes).
    pub fn new(window: u64) -> Self {
        Fifo {
            expected: BTreeMap::new(),
            held: BTreeMap::new(),
            window: window.max(1),
        }
    }

    /// Offers message `seq` (1, 2, …) from `from`.
    pub fn offer(&mut self, from: PeerId, seq: u64, msg: T) -> Arrival<T> {
        let next = self.expected.entry(from).or_insert(1);
        if seq < *next {
            return Arrival::Duplicate;
        }
        if seq > *next {
            if seq - *next > self.window {
                return Arrival::TooFarAhead;
            }
            let held = self.held.entry(from).or_default();
            if held.contains_key(&seq) {
                return Arrival::Duplicate;
            }
            held.insert(seq, msg);
            return Arrival::Held;
        }
        let mut out = vec![msg];
        *next += 1;
        if let Some(held) = self.held.get_mut(&from) {
            while let Some(m) = held.remove(next) {
                out.push(m);
                *next += 1;
            }
        }
        Arrival::Apply(out)
    }

    /// Messages held ahead of a gap, over every sender (a report counts them: at the end
    /// of a run there should be none).
    pub fn held(&self) -> usize {
        self.held.values().map(BTreeMap::len).sum()
    }

    /// How many messages from `from` were applied.
    pub fn applied(&self, from: PeerId) -> u64 {
        self.expected.get(&from).map_or(0, |n| n - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_duplicates_and_gaps() {
        let mut f = Fifo::new(10);
        assert_eq!(f.offer(1, 1, 'a'), Arrival::Apply(vec!['a']));
        assert_eq!(f.offer(1, 1, 'a'), Arrival::Duplicate);
        assert_eq!(f.offer(1, 3, 'c'), Arrival::Held);
        assert_eq!(f.offer(1, 3, 'c'), Arrival::Duplicate);
        assert_eq!(f.offer(2, 1, 'x'), Arrival::Apply(vec!['x']));
        assert_eq!(f.offer(1, 2, 'b'), Arrival::Apply(vec!['b', 'c']));
        assert_eq!(f.held(), 0);
        assert_eq!(f.applied(1), 3);
        assert_eq!(f.offer(1, 20, 'z'), Arrival::TooFarAhead);
    }

    #[test]
    fn a_sequencer_counts_per_route() {
        let mut s = Sequencer::default();
        assert_eq!(s.stamp(Route::Peer(2)), 1);
        assert_eq!(s.stamp(Route::Peer(2)), 2);
        assert_eq!(s.stamp(Route::Peer(3)), 1);
        assert_eq!(s.stamp(Route::Broadcast), 1);
    }
}
