//! One participant's queues as the simulator models them: a FIFO lane per publisher and
//! queue (RabbitMQ keeps one publisher's messages in order on one queue, and promises
//! nothing across publishers or across queues), plus a lane for redeliveries and one for
//! junk.

use crate::contract::PeerId;
use std::collections::{BTreeMap, VecDeque};

/// Where a queued body came from; the schedule picks among non-empty lanes at random.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Lane {
    /// The participant's own queue.
    Publisher(PeerId),
    /// The results queue, for the participant that reads it ([`crate::contract::Route::Results`]):
    /// a queue of its own, so a publisher's results are ordered only among themselves.
    Results(PeerId),
    /// Deliveries whose ack was lost: they come back at any later moment.
    Redelivery,
    /// Bytes nobody in the run published.
    Junk,
}

/// How many of a publisher's last messages a re-publish may repeat.
const UNCONFIRMED: usize = 3;

#[derive(Debug, Default)]
pub(super) struct Inbox {
    lanes: BTreeMap<Lane, VecDeque<Vec<u8>>>,
    /// Each publisher's last few messages to each queue (by lane), for re-publishes.
    recent: BTreeMap<Lane, VecDeque<Vec<u8>>>,
}

impl Inbox {
    pub(super) fn ready(&self) -> impl Iterator<Item = Lane> + '_ {
        self.lanes
            .iter()
            .filter(|(_, q)| !q.is_empty())
            .map(|(l, _)| *l)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.lanes.values().all(VecDeque::is_empty)
    }

    pub(super) fn pop(&mut self, lane: Lane) -> Option<Vec<u8>> {
        self.lanes.get_mut(&lane)?.pop_front()
    }

    pub(super) fn push(&mut self, lane: Lane, body: Vec<u8>) {
        self.lanes.entry(lane).or_default().push_back(body);
    }

    /// An unacked delivery returned by a lost connection: first again on its lane.
    pub(super) fn push_front(&mut self, lane: Lane, body: Vec<u8>) {
        self.lanes.entry(lane).or_default().push_front(body);
    }

    /// A publisher's message on its lane (`Lane::Publisher` or `Lane::Results`).
    pub(super) fn publish(&mut self, lane: Lane, body: Vec<u8>) {
        let recent = self.recent.entry(lane).or_default();
        if recent.len() == UNCONFIRMED {
            recent.pop_front();
        }
        recent.push_back(body.clone());
        self.push(lane, body);
    }

    /// The last `last` messages published on `lane` enqueued again, in their order, after
    /// what is queued: the publisher re-sent what it had no confirm for. Returns how many.
    pub(super) fn republish(&mut self, lane: Lane, last: usize) -> u64 {
        let again: Vec<Vec<u8>> = match self.recent.get(&lane) {
            Some(r) => r
                .iter()
                .skip(r.len().saturating_sub(last))
                .cloned()
                .collect(),
            None => return 0,
        };
        let n = again.len() as u64;
        for body in again {
            self.push(lane, body);
        }
        n
    }
}
