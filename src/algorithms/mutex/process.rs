//! One Ricart–Agrawala process as a pure state machine ([`crate::contract::StateMachine`]):
//! deliveries and the time in, requests, replies, `done` and its report out.

use super::protocol::{Body, Lamport, Message, VectorClock};
use super::report::{Event, Execution, Kind, Outcome, Report};
use crate::contract::fifo::{Arrival, Fifo, Sequencer};
use crate::contract::{Millis, Output, PeerId, Rejection, Route, StateMachine};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// One process's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessConfig {
    pub run_id: String,
    /// 1..=processes.
    pub id: PeerId,
    /// N, at least 2.
    pub processes: u32,
    /// K: how many times this process enters the critical section, at least 1.
    pub entries: u32,
    /// Time spent inside the critical section (0: enter, then exit at once).
    pub hold_ms: Millis,
    /// A peer this process waits on that sends nothing at all for this long is reported
    /// silent and the process ends `Stalled`.
    pub peer_timeout_ms: Millis,
    /// The process ends `DeadlineExpired` at this time if it has not finished.
    pub deadline: Option<Millis>,
    /// Deliberately broken: reply at once, never defer. Only for showing that the checker
    /// catches an unsafe process.
    #[doc(hidden)]
    pub never_defer: bool,
}

impl ProcessConfig {
    /// Process `id` of `processes`, entering `entries` times; no hold, a 30 s peer timeout,
    /// no deadline.
    pub fn new(run_id: &str, id: PeerId, processes: u32, entries: u32) -> Self {
        ProcessConfig {
            run_id: run_id.to_owned(),
            id,
            processes,
            entries,
            hold_ms: 0,
            peer_timeout_ms: 30_000,
            deadline: None,
            never_defer: false,
        }
    }

    /// What the CLI checks before starting: N ≥ 2, K ≥ 1, id in 1..=N, a peer timeout.
    pub fn validate(&self) -> Result<(), String> {
        if self.processes < 2 {
            return Err(format!(
                "mutual exclusion needs at least 2 processes, got {}",
                self.processes
            ));
        }
        if self.entries < 1 {
            return Err("each process must enter at least once (entries ≥ 1)".into());
        }
        if !(1..=self.processes).contains(&self.id) {
            return Err(format!(
                "process id {} is not in 1..={}",
                self.id, self.processes
            ));
        }
        if self.peer_timeout_ms == 0 {
            return Err("the peer timeout must be positive".into());
        }
        Ok(())
    }
}

/// Where the process is in its cycle request → enter → exit.
#[derive(Debug)]
enum State {
    /// Asked; waiting for the replies of every peer.
    Wanting {
        request: (Lamport, PeerId),
        request_vc: VectorClock,
        replies: BTreeSet<PeerId>,
    },
    /// Inside the critical section until `until`.
    Holding {
        until: Millis,
        entered_at: Millis,
        request: (Lamport, PeerId),
        request_vc: VectorClock,
        enter_lamport: Lamport,
        enter_vc: VectorClock,
    },
    /// K entries done and `done` sent: waiting for the peers' `done`.
    Idle,
    /// Finished; nothing more in or out.
    Over,
}

/// Counts per peer that `done` announces and its receiver checks.
#[derive(Debug, Default, Clone, Copy)]
struct Channel {
    requests: u64,
    replies: u64,
}

impl Channel {
    /// One more message of `kind` on the channel (a `done` counts nothing: it is what
    /// announces the counts).
    fn add(&mut self, kind: Kind) {
        match kind {
            Kind::Request => self.requests += 1,
            Kind::Reply => self.replies += 1,
            Kind::Done => {}
        }
    }
}

/// What every message between processes carries, with its kind; `None` for a report.
struct Stamp<'a> {
    kind: Kind,
    to: PeerId,
    seq: u64,
    lamport: Lamport,
    vc: &'a [u64],
}

fn stamp(body: &Body) -> Option<Stamp<'_>> {
    let (kind, to, seq, lamport, vc) = match body {
        Body::Request {
            to,
            seq,
            lamport,
            vc,
        } => (Kind::Request, to, seq, lamport, vc),
        Body::Reply {
            to,
            seq,
            lamport,
            vc,
        } => (Kind::Reply, to, seq, lamport, vc),
        Body::Done {
            to,
            seq,
            lamport,
            vc,
            ..
        } => (Kind::Done, to, seq, lamport, vc),
        Body::Report { .. } => return None,
    };
    Some(Stamp {
        kind,
        to: *to,
        seq: *seq,
        lamport: *lamport,
        vc,
    })
}

/// A Ricart–Agrawala process.
#[derive(Debug)]
pub struct Process {
    cfg: ProcessConfig,
    lamport: Lamport,
    vc: VectorClock,
    state: State,
    /// Peers whose requests wait for this process's exit.
    deferred: Vec<PeerId>,
    seq: Sequencer,
    fifo: Fifo<Body>,
    last_heard: BTreeMap<PeerId, Millis>,
    /// Peers whose `done` was applied.
    done_from: BTreeSet<PeerId>,
    to: BTreeMap<PeerId, Channel>,
    from: BTreeMap<PeerId, Channel>,
    report: Report,
    out: VecDeque<Output<Message, Report>>,
}

impl Process {
    /// A process that starts now: it sends its first request at once.
    pub fn new(cfg: ProcessConfig, now: Millis) -> Result<Self, String> {
        cfg.validate()?;
        let n = cfg.processes as usize;
        let mut p = Process {
            lamport: 0,
            vc: vec![0; n],
            state: State::Idle,
            deferred: Vec::new(),
            seq: Sequencer::default(),
            fifo: Fifo::default(),
            last_heard: BTreeMap::new(),
            done_from: BTreeSet::new(),
            to: BTreeMap::new(),
            from: BTreeMap::new(),
            report: Report::empty(cfg.id, Outcome::Completed),
            out: VecDeque::new(),
            cfg,
        };
        for j in p.peers() {
            p.last_heard.insert(j, now);
        }
        p.request();
        Ok(p)
    }

    pub fn config(&self) -> &ProcessConfig {
        &self.cfg
    }

    fn peers(&self) -> impl Iterator<Item = PeerId> + use<> {
        let me = self.cfg.id;
        (1..=self.cfg.processes).filter(move |j| *j != me)
    }

    fn me(&self) -> usize {
        self.cfg.id as usize - 1
    }

    /// A local event: a send, an entry, an exit.
    fn tick(&mut self) {
        self.lamport += 1;
        let me = self.me();
        self.vc[me] += 1;
    }

    /// The receive rule: L = max(L, Lm) + 1; VC = max(VC, VCm), then VC[self] += 1.
    fn receive(&mut self, lamport: Lamport, vc: &[u64]) {
        self.lamport = self.lamport.max(lamport) + 1;
        for (mine, theirs) in self.vc.iter_mut().zip(vc) {
            *mine = (*mine).max(*theirs);
        }
        let me = self.me();
        self.vc[me] += 1;
    }

    /// Sends one message of `kind` to `to` with the clocks as they are (the caller ticked:
    /// the copies of a request share one send event) and logs it. A `done` carries what
    /// was sent to `to` before it.
    fn send(&mut self, to: PeerId, kind: Kind) {
        let (lamport, vc) = (self.lamport, self.vc.clone());
        let seq = self.seq.stamp(Route::Peer(to));
        let before = self.record(true, kind, to, seq);
        let body = match kind {
            Kind::Request => Body::Request {
                to,
                seq,
                lamport,
                vc,
            },
            Kind::Reply => Body::Reply {
                to,
                seq,
                lamport,
                vc,
            },
            Kind::Done => Body::Done {
                to,
                seq,
                lamport,
                vc,
                requests: before.requests,
                replies: before.replies,
            },
        };
        self.publish(Route::Peer(to), body);
    }

    /// Logs and counts one message sent to `peer` (`sent`) or applied from it, with the
    /// clocks as they are now: the send's stamp, or the receiver's after the receive rule.
    /// Returns what its channel had carried before it (what a `done` announces or is
    /// checked against).
    fn record(&mut self, sent: bool, kind: Kind, peer: PeerId, seq: u64) -> Channel {
        let me = self.cfg.id;
        let (from, to, log, channels) = if sent {
            (me, peer, &mut self.report.sent, &mut self.to)
        } else {
            (peer, me, &mut self.report.received, &mut self.from)
        };
        log.push(Event {
            kind,
            from,
            to,
            seq,
            lamport: self.lamport,
            vc: self.vc.clone(),
        });
        self.report.counts.add(kind, sent);
        let ch = channels.entry(peer).or_default();
        let before = *ch;
        ch.add(kind);
        before
    }

    fn publish(&mut self, route: Route, body: Body) {
        let msg = Message::new(&self.cfg.run_id, self.cfg.id, body);
        self.out.push_back(Output::Publish { route, msg });
    }

    /// Asks every peer: one send event, the same stamp on every copy (the request's
    /// timestamp is what orders it against the others).
    fn request(&mut self) {
        self.tick();
        let request = (self.lamport, self.cfg.id);
        for j in self.peers() {
            self.send(j, Kind::Request);
        }
        self.state = State::Wanting {
            request,
            request_vc: self.vc.clone(),
            replies: BTreeSet::new(),
        };
    }

    fn reply(&mut self, to: PeerId) {
        self.tick();
        self.send(to, Kind::Reply);
    }

    fn enter(&mut self, now: Millis, request: (Lamport, PeerId), request_vc: VectorClock) {
        self.tick();
        self.state = State::Holding {
            until: now.saturating_add(self.cfg.hold_ms),
            entered_at: now,
            request,
            request_vc,
            enter_lamport: self.lamport,
            enter_vc: self.vc.clone(),
        };
        if self.cfg.hold_ms == 0 {
            self.exit(now);
        }
    }

    fn exit(&mut self, now: Millis) {
        let State::Holding {
            entered_at,
            request,
            request_vc,
            enter_lamport,
            enter_vc,
            ..
        } = std::mem::replace(&mut self.state, State::Idle)
        else {
            return;
        };
        self.tick();
        self.report.executions.push(Execution {
            index: self.report.executions.len() as u32 + 1,
            request,
            request_vc,
            enter_lamport,
            enter_vc,
            exit_lamport: self.lamport,
            exit_vc: self.vc.clone(),
            enter_ms: entered_at,
            exit_ms: now,
        });
        for j in std::mem::take(&mut self.deferred) {
            self.reply(j);
        }
        if self.report.executions.len() < self.cfg.entries as usize {
            self.request();
            return;
        }
        for j in self.peers() {
            self.tick();
            self.send(j, Kind::Done);
        }
        self.maybe_finish();
    }

    fn maybe_finish(&mut self) {
        if matches!(self.state, State::Idle)
            && self.done_from.len() + 1 == self.cfg.processes as usize
        {
            self.finish(Outcome::Completed);
        }
    }

    fn finish(&mut self, outcome: Outcome) {
        if matches!(self.state, State::Over) {
            return;
        }
        self.state = State::Over;
        self.report.outcome = outcome;
        self.report.held_at_end = self.fifo.held() as u64;
        let report = self.report.clone();
        self.publish(
            Route::Results,
            Body::Report {
                report: report.clone(),
            },
        );
        self.out.push_back(Output::Finished(report));
    }

    /// Applies one message from `from`, next in its channel's order: the receive rule, the
    /// log and the counts, then what its kind asks.
    fn apply(&mut self, now: Millis, from: PeerId, body: Body) {
        let Some(Stamp {
            kind,
            seq,
            lamport,
            vc,
            ..
        }) = stamp(&body)
        else {
            return;
        };
        self.receive(lamport, vc);
        let before = self.record(false, kind, from, seq);
        match body {
            Body::Request { lamport, .. } => {
                let defer = !self.cfg.never_defer
                    && match &self.state {
                        State::Holding { .. } => true,
                        State::Wanting { request, .. } => *request < (lamport, from),
                        State::Idle | State::Over => false,
                    };
                if defer {
                    self.deferred.push(from);
                } else {
                    self.reply(from);
                }
            }
            Body::Reply { .. } => {
                let State::Wanting {
                    request,
                    request_vc,
                    replies,
                } = &mut self.state
                else {
                    // A reply to no request: the sender is broken. Counted, not acted on.
                    self.report.rejected += 1;
                    return;
                };
                replies.insert(from);
                if replies.len() + 1 == self.cfg.processes as usize {
                    let (request, request_vc) = (*request, std::mem::take(request_vc));
                    self.enter(now, request, request_vc);
                }
            }
            Body::Done {
                requests, replies, ..
            } => {
                if (before.requests, before.replies) != (requests, replies) {
                    // Everything before `done` on the channel was applied (FIFO): a
                    // mismatch means the sender miscounted. Counted, the run goes on.
                    self.report.rejected += 1;
                }
                self.done_from.insert(from);
                self.maybe_finish();
            }
            Body::Report { .. } => {}
        }
    }

    /// Peers this process waits on: a reply to its request, or their `done`.
    fn waiting_on(&self) -> Vec<PeerId> {
        let replies = match &self.state {
            State::Wanting { replies, .. } => Some(replies),
            _ => None,
        };
        self.peers()
            .filter(|j| !self.done_from.contains(j) || replies.is_some_and(|r| !r.contains(j)))
            .collect()
    }

    /// The peers it waits on, when every one of them has been silent for the peer
    /// timeout. Not the first silent one: a peer blocked behind a crashed one is as silent
    /// as the crashed one, and may simply have been heard last a moment earlier. Waiting
    /// until all are silent always names the crashed peer (everyone waits on it and it
    /// never speaks again); while something it waits on still speaks, the run moves.
    fn stalled(&self, now: Millis) -> Option<Vec<PeerId>> {
        let waiting = self.waiting_on();
        let silent = |j: &PeerId| {
            self.last_heard
                .get(j)
                .is_none_or(|t| t.saturating_add(self.cfg.peer_timeout_ms) <= now)
        };
        (!waiting.is_empty() && waiting.iter().all(silent)).then_some(waiting)
    }

    fn refuse(&mut self, why: Rejection) -> Result<(), Rejection> {
        self.report.rejected += 1;
        Err(why)
    }
}

impl StateMachine for Process {
    type Msg = Message;
    type Finished = Report;

    fn handle(&mut self, now: Millis, bytes: &[u8]) -> Result<(), Rejection> {
        if matches!(self.state, State::Over) {
            return Ok(());
        }
        let msg = match Message::decode(bytes, &self.cfg.run_id) {
            Ok(m) => m,
            Err(e) => return self.refuse(e),
        };
        let from = msg.from;
        let Some((to, seq, vc_len)) = stamp(&msg.body).map(|s| (s.to, s.seq, s.vc.len())) else {
            return self.refuse(Rejection::Refused("a report in a process's inbox".into()));
        };
        if from == self.cfg.id || !(1..=self.cfg.processes).contains(&from) {
            return self.refuse(Rejection::Refused(format!("from {from}: not a peer")));
        }
        if to != self.cfg.id {
            return self.refuse(Rejection::Refused(format!("for process {to}")));
        }
        if vc_len != self.cfg.processes as usize {
            return self.refuse(Rejection::Refused(format!(
                "a vector clock of {vc_len} entries (N = {})",
                self.cfg.processes
            )));
        }
        if seq == 0 {
            // Channels count from 1: a 0 is not a copy of anything, it is malformed.
            return self.refuse(Rejection::Refused("seq 0 (channels count from 1)".into()));
        }
        match self.fifo.offer(from, seq, msg.body) {
            Arrival::Apply(bodies) => {
                self.last_heard.insert(from, now);
                for body in bodies {
                    self.apply(now, from, body);
                }
            }
            Arrival::Held => {
                self.last_heard.insert(from, now);
            }
            Arrival::Duplicate => self.report.counts.duplicates += 1,
            Arrival::TooFarAhead => {
                return self.refuse(Rejection::Refused(format!("seq {seq} far ahead")));
            }
        }
        Ok(())
    }

    fn next_timeout(&self) -> Option<Millis> {
        if matches!(self.state, State::Over) {
            return None;
        }
        let hold = match self.state {
            State::Holding { until, .. } => Some(until),
            _ => None,
        };
        // Stuck: every peer it waits on silent for the peer timeout (see `stalled`).
        let silence = self
            .waiting_on()
            .into_iter()
            .filter_map(|j| self.last_heard.get(&j))
            .max()
            .map(|t| t.saturating_add(self.cfg.peer_timeout_ms));
        [hold, silence, self.cfg.deadline]
            .into_iter()
            .flatten()
            .min()
    }

    fn handle_timeout(&mut self, now: Millis) {
        if matches!(self.state, State::Over) {
            return;
        }
        if self.cfg.deadline.is_some_and(|d| d <= now) {
            self.finish(Outcome::DeadlineExpired);
            return;
        }
        if matches!(self.state, State::Holding { until, .. } if until <= now) {
            self.exit(now);
        }
        if let Some(silent) = self.stalled(now) {
            self.finish(Outcome::Stalled { silent });
        }
    }

    fn poll_output(&mut self) -> Option<Output<Message, Report>> {
        self.out.pop_front()
    }

    fn interrupt(&mut self, _now: Millis, reason: String) {
        self.finish(Outcome::Interrupted { reason });
    }
}

#[cfg(test)]
#[path = "process_tests.rs"]
mod tests;
