//! The token machine: what one contender does with the tokens its slot queues deliver.
//! Pure: deliveries (and the queue's ready count) in, [`Action`]s out; the driver
//! (`command.rs` over `broker::lease`) and the model in `tests/sim_lock.rs` run the very
//! same code.
//!
//! Each slot queue is a single-active-consumer queue with prefetch 1, so only the active
//! consumer ever has a token of that slot in hand. The machine keeps one invariant per
//! slot, **the queue always holds a token at least as large as every fence ever used**
//! (ready or unacknowledged), because it acknowledges a token only once a copy of it (or a
//! larger one) is confirmed in the queue:
//!
//! * a token `v` while other tokens are ready (`ready > 0`): the largest this contender has
//!   seen so far is published again (confirmed) before `v` is acknowledged, so the queue
//!   never loses its maximum even if this contender crashes; a smaller one is acknowledged;
//! * a token `v` with nothing else ready: this contender has seen every token of the slot,
//!   so `f = max + 1` is larger than every fence ever used. It publishes `f` (confirmed),
//!   acknowledges `v`, and starts with fence `f`; the broker then hands it `f`, which it
//!   keeps unacknowledged for as long as it holds the slot.
//!
//! Releasing (or crashing) closes the slot's channel: the broker returns `f` to the queue
//! and activates the next consumer in the same step. Duplicates (two contenders creating
//! the first token at once, a crash between a publish and its acknowledgement) are
//! harmless: they are never larger than the maximum, and the maximum decides.

/// A fencing token's value: strictly increasing per slot across holders, crashes and
/// restarts.
pub type Fence = u64;
/// A slot of the lock: `0..limit` (one with no `--limit`).
pub type Slot = u32;
/// The broker's delivery tag of a token on its slot's channel.
pub type Tag = u64;

/// What the driver must do, in order, each step finished (a publish confirmed) before the
/// next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Publish token `fence` to `slot`'s queue, persistent, and wait for the confirm.
    Publish { slot: Slot, fence: Fence },
    /// Acknowledge delivery `tag` on `slot`'s channel.
    Ack { slot: Slot, tag: Tag },
    /// The lock is ours: run the command with this fence.
    Start { slot: Slot, fence: Fence },
    /// Close `slot`'s channel: its unacknowledged token goes back to the queue and the next
    /// consumer becomes active (a release, or a token given back unused).
    GiveBack { slot: Slot },
}

/// Where this contender stands on one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    /// Consuming, not holding: the largest token seen (and republished) so far.
    Waiting { max: Option<Fence> },
    /// Holding the slot with `fence`; `kept`: the broker delivered a token `≥ fence` that
    /// stays unacknowledged until the release.
    Holding { fence: Fence, kept: bool },
    /// Its channel is closed (given back, released or never opened).
    Closed,
}

/// One contender's view of its slots.
#[derive(Debug, Clone)]
pub struct Contender {
    slots: Vec<SlotState>,
    holding: Option<(Slot, Fence)>,
}

impl Contender {
    /// A contender of a lock with `limit` slots, consuming from none yet:
    /// [`Contender::reopen`] says which to consume from.
    pub fn new(limit: u32) -> Self {
        Contender {
            slots: vec![SlotState::Closed; limit.max(1) as usize],
            holding: None,
        }
    }

    /// The slot and fence held, if any.
    pub fn holding(&self) -> Option<(Slot, Fence)> {
        self.holding
    }

    /// Whether `slot`'s channel is open (consuming or holding).
    pub fn is_open(&self, slot: Slot) -> bool {
        !matches!(self.slots.get(slot as usize), Some(SlotState::Closed) | None)
    }

    /// Token `fence` arrived on `slot` with delivery `tag`; `ready` tokens wait behind it
    /// (the queue's ready count, asked after the delivery).
    pub fn deliver(&mut self, slot: Slot, tag: Tag, fence: Fence, ready: u64) -> Vec<Action> {
        let Some(state) = self.slots.get_mut(slot as usize) else {
            return Vec::new();
        };
        match *state {
            SlotState::Closed => Vec::new(),
            SlotState::Holding { fence: held, kept } => {
                if fence < held {
                    vec![Action::Ack { slot, tag }]
                } else {
                    // Our own token (or a duplicate of it): kept unacknowledged while we
                    // hold, so that a crash returns it to the queue.
                    if !kept {
                        *state = SlotState::Holding { fence: held, kept: true };
                    }
                    Vec::new()
                }
            }
            SlotState::Waiting { .. } if self.holding.is_some() => {
                *state = SlotState::Closed;
                vec![Action::GiveBack { slot }]
            }
            SlotState::Waiting { max } => {
                let top = max.map_or(fence, |m| m.max(fence));
                if ready > 0 {
                    if max.is_none_or(|m| fence > m) {
                        *state = SlotState::Waiting { max: Some(fence) };
                        vec![Action::Publish { slot, fence }, Action::Ack { slot, tag }]
                    } else {
                        vec![Action::Ack { slot, tag }]
                    }
                } else {
                    let next = top + 1;
                    *state = SlotState::Holding {
                        fence: next,
                        kept: false,
                    };
                    self.holding = Some((slot, next));
                    vec![
                        Action::Publish { slot, fence: next },
                        Action::Ack { slot, tag },
                        Action::Start { slot, fence: next },
                    ]
                }
            }
        }
    }

    /// Lets go of everything: every open channel is closed (the held token goes back to
    /// its queue). [`Contender::reopen`] consumes again.
    pub fn release(&mut self) -> Vec<Action> {
        self.holding = None;
        let mut out = Vec::new();
        for (k, s) in self.slots.iter_mut().enumerate() {
            if *s != SlotState::Closed {
                *s = SlotState::Closed;
                out.push(Action::GiveBack { slot: k as Slot });
            }
        }
        out
    }

    /// Marks a waiting `slot` closed: its channel was not opened after all (`--wait 0`
    /// found the slot held).
    pub fn close(&mut self, slot: Slot) {
        if let Some(s @ SlotState::Waiting { .. }) = self.slots.get_mut(slot as usize) {
            *s = SlotState::Closed;
        }
    }

    /// Consumes again from every closed slot (a new consumer, at the back of the line).
    /// Returns the slots to consume from.
    pub fn reopen(&mut self) -> Vec<Slot> {
        let mut out = Vec::new();
        for (k, s) in self.slots.iter_mut().enumerate() {
            if *s == SlotState::Closed {
                *s = SlotState::Waiting { max: None };
                out.push(k as Slot);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;

    #[test]
    fn a_lone_token_is_advanced_and_started() {
        let mut c = Contender::new(1);
        assert!(c.deliver(0, 1, 4, 0).is_empty(), "not consuming yet");
        assert_eq!(c.reopen(), vec![0]);
        let a = c.deliver(0, 1, 4, 0);
        assert_eq!(
            a,
            vec![
                Publish { slot: 0, fence: 5 },
                Ack { slot: 0, tag: 1 },
                Start { slot: 0, fence: 5 }
            ]
        );
        assert_eq!(c.holding(), Some((0, 5)));
        // Our own token comes back: kept, not acknowledged.
        assert!(c.deliver(0, 2, 5, 0).is_empty());
        // A stale duplicate behind it is dropped.
        assert_eq!(c.deliver(0, 3, 2, 0), vec![Ack { slot: 0, tag: 3 }]);
    }

    #[test]
    fn the_maximum_is_republished_before_it_is_acknowledged() {
        let mut c = Contender::new(1);
        c.reopen();
        // 7 first, with a 3 behind it: 7 is copied to the tail before its ack.
        assert_eq!(
            c.deliver(0, 1, 7, 1),
            vec![Publish { slot: 0, fence: 7 }, Ack { slot: 0, tag: 1 }]
        );
        // 3 is smaller: dropped.
        assert_eq!(c.deliver(0, 2, 3, 1), vec![Ack { slot: 0, tag: 2 }]);
        // The copy of 7, nothing behind: 8.
        assert_eq!(c.deliver(0, 3, 7, 0)[0], Publish { slot: 0, fence: 8 });
        assert_eq!(c.holding(), Some((0, 8)));
    }

    #[test]
    fn a_second_slot_is_given_back_while_holding() {
        let mut c = Contender::new(2);
        assert_eq!(c.reopen(), vec![0, 1]);
        c.deliver(0, 1, 0, 0);
        assert_eq!(c.deliver(1, 1, 9, 0), vec![GiveBack { slot: 1 }]);
        assert!(!c.is_open(1));
        assert_eq!(c.release(), vec![GiveBack { slot: 0 }]);
        assert_eq!(c.holding(), None);
        assert_eq!(c.reopen(), vec![0, 1]);
        assert!(c.is_open(0) && c.is_open(1));
    }

    #[test]
    fn deliveries_on_closed_or_unknown_slots_do_nothing() {
        let mut c = Contender::new(1);
        c.release();
        assert!(c.deliver(0, 1, 1, 0).is_empty());
        assert!(c.deliver(5, 1, 1, 0).is_empty());
    }
}
