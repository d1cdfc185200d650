//! The caller's table of calls: request sent → reply in → matched, or the reply is a
//! duplicate, late (its call gave up already), unknown (no call of this caller has its
//! correlation id) or foreign (its correlation id is ours but it names another request's
//! SHA-256). Pure: the times are passed in, in microseconds of the caller's own clock (a
//! round trip is a fraction of a millisecond on a local broker).
//!
//! A direct reply-to address belongs to one channel, so a reply can only come from a
//! server that read one of this channel's requests; what can still go wrong is a server
//! answering twice (a redelivered request), too late, or with the wrong correlation id.

use super::protocol::ReplyMeta;
use std::collections::HashMap;

/// Microseconds on the caller's clock.
pub type Micros = u64;

/// What became of one reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// The first reply to a call still waiting, naming its request: the call is done.
    Matched { latency_us: Micros },
    /// A second reply to a call already answered.
    Duplicate,
    /// A reply to a call that gave up waiting (its `--timeout` passed).
    Late,
    /// No call of this caller has this correlation id.
    Unknown,
    /// Our correlation id, another request's SHA-256: not the reply to this call.
    Foreign,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    Answered,
    GaveUp,
}

#[derive(Debug, Clone)]
struct Call {
    sent_us: Micros,
    deadline_us: Micros,
    request_sha256: String,
    state: State,
}

/// How many replies of each kind arrived.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    pub matched: u64,
    pub duplicate: u64,
    pub late: u64,
    pub unknown: u64,
    pub foreign: u64,
    /// Calls that gave up: no reply within their timeout.
    pub gave_up: u64,
}

/// The calls of one caller, by correlation id.
#[derive(Debug, Default)]
pub struct Pending {
    calls: HashMap<String, Call>,
    pub counts: Counts,
}

impl Pending {
    pub fn new() -> Self {
        Self::default()
    }

    /// A request was published at `now` with this correlation id; it waits until
    /// `now + timeout_us`. A correlation id used before is refused (`false`): the caller
    /// must make each one unique, or replies could not be told apart.
    pub fn sent(
        &mut self,
        correlation_id: &str,
        request_sha256: &str,
        now: Micros,
        timeout_us: Micros,
    ) -> bool {
        if self.calls.contains_key(correlation_id) {
            return false;
        }
        self.calls.insert(
            correlation_id.to_owned(),
            Call {
                sent_us: now,
                deadline_us: now.saturating_add(timeout_us),
                request_sha256: request_sha256.to_owned(),
                state: State::Waiting,
            },
        );
        true
    }

    /// A valid reply arrived at `now`.
    pub fn arrived(&mut self, reply: &ReplyMeta, now: Micros) -> Arrival {
        let arrival = match self.calls.get_mut(&reply.correlation_id) {
            None => Arrival::Unknown,
            Some(c) if c.request_sha256 != reply.request_sha256 => Arrival::Foreign,
            Some(c) => match c.state {
                State::Answered => Arrival::Duplicate,
                State::GaveUp => Arrival::Late,
                State::Waiting => {
                    c.state = State::Answered;
                    Arrival::Matched {
                        latency_us: now.saturating_sub(c.sent_us),
                    }
                }
            },
        };
        let n = match arrival {
            Arrival::Matched { .. } => &mut self.counts.matched,
            Arrival::Duplicate => &mut self.counts.duplicate,
            Arrival::Late => &mut self.counts.late,
            Arrival::Unknown => &mut self.counts.unknown,
            Arrival::Foreign => &mut self.counts.foreign,
        };
        *n += 1;
        arrival
    }

    /// The calls whose deadline is at or before `now` give up; returns their correlation ids.
    pub fn expire(&mut self, now: Micros) -> Vec<String> {
        let mut gone: Vec<String> = self
            .calls
            .iter_mut()
            .filter(|(_, c)| c.state == State::Waiting && c.deadline_us <= now)
            .map(|(id, c)| {
                c.state = State::GaveUp;
                id.clone()
            })
            .collect();
        gone.sort();
        self.counts.gave_up += gone.len() as u64;
        gone
    }

    /// The earliest deadline of a call still waiting.
    pub fn next_deadline(&self) -> Option<Micros> {
        self.calls
            .values()
            .filter(|c| c.state == State::Waiting)
            .map(|c| c.deadline_us)
            .min()
    }

    /// How many calls still wait for their reply.
    pub fn waiting(&self) -> usize {
        self.calls
            .values()
            .filter(|c| c.state == State::Waiting)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::super::protocol::Status;
    use super::*;

    fn reply(id: &str, sha: &str) -> ReplyMeta {
        ReplyMeta {
            correlation_id: id.into(),
            request_sha256: sha.into(),
            server: "s".into(),
            status: Status::Ok,
            exit: None,
        }
    }

    #[test]
    fn matched_then_duplicate() {
        let mut p = Pending::new();
        assert!(p.sent("a", "h", 10, 100));
        assert!(!p.sent("a", "h", 11, 100), "a correlation id is used once");
        assert_eq!(p.waiting(), 1);
        assert_eq!(
            p.arrived(&reply("a", "h"), 15),
            Arrival::Matched { latency_us: 5 }
        );
        assert_eq!(p.arrived(&reply("a", "h"), 16), Arrival::Duplicate);
        assert_eq!(p.waiting(), 0);
        assert_eq!(p.counts.matched, 1);
        assert_eq!(p.counts.duplicate, 1);
    }

    #[test]
    fn unknown_and_foreign_do_not_answer_the_call() {
        let mut p = Pending::new();
        p.sent("a", "h", 0, 100);
        assert_eq!(p.arrived(&reply("b", "h"), 1), Arrival::Unknown);
        assert_eq!(p.arrived(&reply("a", "other"), 1), Arrival::Foreign);
        assert_eq!(p.waiting(), 1, "still waiting for its own reply");
        assert_eq!(
            p.arrived(&reply("a", "h"), 2),
            Arrival::Matched { latency_us: 2 }
        );
    }

    #[test]
    fn a_call_gives_up_at_its_deadline_and_a_reply_after_is_late() {
        let mut p = Pending::new();
        p.sent("a", "h", 0, 100);
        p.sent("b", "h2", 50, 100);
        assert_eq!(p.next_deadline(), Some(100));
        assert!(p.expire(99).is_empty());
        assert_eq!(p.expire(100), vec!["a".to_string()]);
        assert_eq!(p.next_deadline(), Some(150));
        assert_eq!(p.arrived(&reply("a", "h"), 120), Arrival::Late);
        assert_eq!(p.counts.gave_up, 1);
        assert_eq!(p.counts.late, 1);
    }
}
