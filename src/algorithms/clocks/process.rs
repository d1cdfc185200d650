//! One process of the logical-clock exercise as a state machine: deliveries and the time
//! in, messages out (see [`crate::contract`]).
//!
//! The process does `events` internal events. After each it sends, with probability
//! `send_probability` (drawn from its injected RNG), a message to a random other process.
//! Sends and receives are events too, and every event is stamped with both clocks:
//!
//! * internal or send: `L += 1`, `VC[self] += 1`; a send carries the new `L` and `VC`;
//! * receive of `(Lm, VCm)`: `L = max(L, Lm) + 1`, `VC = max(VC, VCm)`, `VC[self] += 1`.
//!
//! **Pacing.** With `step_ms = 0` every internal event (and its send) happens at once in
//! [`Process::new`]: the clocks are still right, but no process can receive between its
//! own internal events, so causal chains stay one message long. With `step_ms > 0` the
//! internal events are spread out, one every 1..=`step_ms` ms (the gap drawn from the
//! RNG), so receives interleave with them and chains run across several processes. The
//! simulation tests use the latter: it is what gives the checker something to prove.
//!
//! **Exactly once, in order.** `msg` and `done` share the channel's sequence numbers and
//! pass through a [`Fifo`]: a duplicated or re-published delivery is dropped, an early one
//! held, so a message is received (and becomes an event) exactly once, in the order it
//! was sent.
//!
//! **Ending without a coordinator.** After its last internal event a process sends `done`
//! to each peer, the last message on that channel. It finishes when it has done its own
//! events and applied every peer's `done` (and so, by FIFO, everything before it). It then
//! publishes its [`Report`] on [`Route::Results`] and ends with it. A peer silent for
//! `peer_timeout_ms` while still awaited, the deadline, or an interrupt end it early; the
//! report says which.

use super::protocol::{Body, Message};
use super::report::{Counts, Event, EventKind, Outcome, Report};
use crate::contract::fifo::{Arrival, Fifo, Sequencer};
use crate::contract::{Millis, Output, PeerId, Rejection, Route, StateMachine, refused};
use rand::{Rng, RngCore};
use std::collections::{BTreeMap, VecDeque};

/// Most processes in one run: a vector clock is N numbers in every message and event.
pub const MAX_PROCESSES: u32 = 1000;
/// Most internal events per process: a report lists every event.
pub const MAX_EVENTS: u32 = 100_000;

#[derive(Debug, Clone)]
pub struct ClockConfig {
    pub run_id: String,
    /// This process: 1..=`processes`.
    pub id: PeerId,
    /// N: processes are 1..=N.
    pub processes: u32,
    /// E: internal events of this process.
    pub events: u32,
    /// Chance of a send after each internal event, in [0, 1].
    pub send_probability: f64,
    /// 0: every internal event at once; otherwise one every 1..=`step_ms` ms (see the
    /// module doc).
    pub step_ms: Millis,
    /// A peer we still wait for that is silent this long ends the process. Must exceed
    /// the time a peer may legitimately stay silent (about `events * step_ms`).
    pub peer_timeout_ms: Millis,
    /// The whole run's deadline, on the caller's clock.
    pub deadline: Option<Millis>,
}

impl ClockConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(2..=MAX_PROCESSES).contains(&self.processes) {
            return Err(format!(
                "processes must be 2 to {MAX_PROCESSES} (got {})",
                self.processes
            ));
        }
        if !(1..=self.processes).contains(&self.id) {
            return Err(format!(
                "process id must be 1 to {} (got {})",
                self.processes, self.id
            ));
        }
        if !(1..=MAX_EVENTS).contains(&self.events) {
            return Err(format!(
                "events must be 1 to {MAX_EVENTS} (got {})",
                self.events
            ));
        }
        if !(0.0..=1.0).contains(&self.send_probability) {
            return Err(format!(
                "send probability must be between 0 and 1 (got {})",
                self.send_probability
            ));
        }
        if self.peer_timeout_ms == 0 {
            return Err("the peer timeout must be at least 1 ms".into());
        }
        Ok(())
    }
}

/// What a channel delivers, once the FIFO lets it through.
#[derive(Debug)]
enum Applied {
    Msg { lamport: u64, vc: Vec<u64> },
    Done,
}

pub struct Process {
    cfg: ClockConfig,
    rng: Box<dyn RngCore + Send>,
    lamport: u64,
    vc: Vec<u64>,
    events: Vec<Event>,
    counts: Counts,
    seqs: Sequencer,
    fifo: Fifo<Applied>,
    /// Peers whose `done` was applied, with its sequence number.
    done_from: BTreeMap<PeerId, u64>,
    /// When each peer last sent something new (a duplicate is not a sign of life: the
    /// broker can redeliver a dead peer's message).
    last_heard: BTreeMap<PeerId, Millis>,
    internal: u32,
    next_step: Option<Millis>,
    rejected: u64,
    finished: bool,
    out: VecDeque<Output<Message, Report>>,
}

impl Process {
    /// A process that starts now. Refuses a config [`ClockConfig::validate`] refuses.
    pub fn new(
        cfg: ClockConfig,
        rng: Box<dyn RngCore + Send>,
        now: Millis,
    ) -> Result<Process, String> {
        cfg.validate()?;
        let n = cfg.processes as usize;
        let last_heard = (1..=cfg.processes)
            .filter(|p| *p != cfg.id)
            .map(|p| (p, now))
            .collect();
        let mut p = Process {
            rng,
            lamport: 0,
            vc: vec![0; n],
            events: Vec::new(),
            counts: Counts::default(),
            seqs: Sequencer::default(),
            // A channel carries at most E messages and a `done`: nothing legitimate is
            // further ahead than that, and memory stays bounded whatever arrives.
            fifo: Fifo::new(u64::from(cfg.events) + 1),
            done_from: BTreeMap::new(),
            last_heard,
            internal: 0,
            next_step: Some(now),
            rejected: 0,
            finished: false,
            out: VecDeque::new(),
            cfg,
        };
        p.run_steps(now);
        Ok(p)
    }

    pub fn id(&self) -> PeerId {
        self.cfg.id
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    fn me(&self) -> usize {
        self.cfg.id as usize - 1
    }

    /// Records an event with the clocks as they are now.
    fn record(&mut self, kind: EventKind) {
        let index = self.events.len() as u32 + 1;
        self.events.push(Event {
            index,
            kind,
            lamport: self.lamport,
            vc: self.vc.clone(),
        });
    }

    fn tick(&mut self) {
        let me = self.me();
        self.lamport = self.lamport.saturating_add(1);
        self.vc[me] = self.vc[me].saturating_add(1);
    }

    /// Every step due at `now` (all of them with `step_ms = 0`).
    fn run_steps(&mut self, now: Millis) {
        while let Some(at) = self.next_step
            && at <= now
            && !self.finished
        {
            self.step();
            self.next_step = if self.internal >= self.cfg.events {
                None
            } else if self.cfg.step_ms == 0 {
                Some(at)
            } else {
                Some(at + self.rng.random_range(1..=self.cfg.step_ms))
            };
        }
    }

    /// One internal event, perhaps a send; after the last one, the `done`s.
    fn step(&mut self) {
        self.tick();
        self.internal += 1;
        self.counts.internal += 1;
        self.record(EventKind::Internal);
        if self.rng.random_bool(self.cfg.send_probability) {
            let k = self.rng.random_range(1..self.cfg.processes);
            let to = if k >= self.cfg.id { k + 1 } else { k };
            self.tick();
            let seq = self.seqs.stamp(Route::Peer(to));
            self.counts.sent += 1;
            self.record(EventKind::Send { to, seq });
            let body = Body::Msg {
                to,
                seq,
                lamport: self.lamport,
                vc: self.vc.clone(),
            };
            self.publish(Route::Peer(to), body);
        }
        if self.internal == self.cfg.events {
            let me = self.cfg.id;
            for to in (1..=self.cfg.processes).filter(|p| *p != me) {
                let seq = self.seqs.stamp(Route::Peer(to));
                let sent = seq - 1;
                self.publish(Route::Peer(to), Body::Done { to, seq, sent });
            }
            self.finish_if_complete();
        }
    }

    fn publish(&mut self, route: Route, body: Body) {
        let msg = Message::new(&self.cfg.run_id, self.cfg.id, body);
        self.out.push_back(Output::Publish { route, msg });
    }

    /// One delivery. `Err`: refused (counted); duplicates are dropped silently.
    pub fn handle(&mut self, now: Millis, bytes: &[u8]) -> Result<(), Rejection> {
        if self.finished {
            return Ok(());
        }
        let result = Message::decode(bytes, &self.cfg.run_id).and_then(|m| self.on_message(now, m));
        if let Err(r) = &result {
            self.rejected += 1;
            tracing::warn!(process = self.cfg.id, rejection = %r, "process rejected a message");
        }
        result
    }

    fn on_message(&mut self, now: Millis, msg: Message) -> Result<(), Rejection> {
        let from = msg.from;
        if from == self.cfg.id || !(1..=self.cfg.processes).contains(&from) {
            return Err(refused(format!(
                "a {} from {from}, not a peer of process {} in a run of {}",
                msg.body.kind(),
                self.cfg.id,
                self.cfg.processes
            )));
        }
        let (to, seq, applied) = match msg.body {
            Body::Msg {
                to,
                seq,
                lamport,
                vc,
            } => {
                if vc.len() != self.cfg.processes as usize {
                    return Err(refused(format!(
                        "a vector clock of {} entries in a run of {}",
                        vc.len(),
                        self.cfg.processes
                    )));
                }
                // Nobody can know more of this process's history than it does itself.
                if vc[self.me()] > self.vc[self.me()] {
                    return Err(refused(format!(
                        "P{from} claims to have seen {} events of P{}, which has had {}",
                        vc[self.me()],
                        self.cfg.id,
                        self.vc[self.me()]
                    )));
                }
                (to, seq, Applied::Msg { lamport, vc })
            }
            Body::Done { to, seq, sent } => {
                if sent.checked_add(1) != Some(seq) {
                    return Err(refused(format!(
                        "done with seq {seq} after {sent} messages"
                    )));
                }
                (to, seq, Applied::Done)
            }
            Body::Report { .. } => {
                return Err(refused("a report in a process's inbox"));
            }
        };
        if to != self.cfg.id {
            return Err(refused(format!(
                "a message for P{to} in the inbox of P{}",
                self.cfg.id
            )));
        }
        if seq == 0 || seq > u64::from(self.cfg.events) + 1 {
            return Err(refused(format!(
                "seq {seq} on a channel that carries at most {} messages and a done",
                self.cfg.events
            )));
        }
        if let Some(last) = self.done_from.get(&from)
            && seq > *last
        {
            return Err(refused(format!(
                "seq {seq} from P{from} after its done (seq {last})"
            )));
        }
        match self.fifo.offer(from, seq, applied) {
            Arrival::Apply(list) => {
                self.last_heard.insert(from, now);
                let mut seq = self.fifo.applied(from) - list.len() as u64;
                for a in list {
                    seq += 1;
                    self.apply(from, seq, a);
                }
                self.finish_if_complete();
                Ok(())
            }
            Arrival::Held => {
                self.last_heard.insert(from, now);
                Ok(())
            }
            Arrival::Duplicate => Ok(()),
            Arrival::TooFarAhead => Err(refused(format!(
                "seq {seq} from P{from} is too far ahead of {}",
                self.fifo.applied(from) + 1
            ))),
        }
    }

    /// The next message on channel `from → self`, in order, exactly once.
    fn apply(&mut self, from: PeerId, seq: u64, a: Applied) {
        match a {
            Applied::Msg { lamport, vc } => {
                self.lamport = self.lamport.max(lamport).saturating_add(1);
                for (mine, theirs) in self.vc.iter_mut().zip(&vc) {
                    *mine = (*mine).max(*theirs);
                }
                let me = self.me();
                self.vc[me] = self.vc[me].saturating_add(1);
                self.counts.received += 1;
                self.record(EventKind::Receive { from, seq });
            }
            Applied::Done => {
                self.done_from.insert(from, seq);
            }
        }
    }

    /// Peers whose `done` has not been applied yet.
    fn waiting(&self) -> Vec<PeerId> {
        (1..=self.cfg.processes)
            .filter(|p| *p != self.cfg.id && !self.done_from.contains_key(p))
            .collect()
    }

    fn finish_if_complete(&mut self) {
        if self.internal >= self.cfg.events && self.waiting().is_empty() {
            self.finish(Outcome::Completed);
        }
    }

    fn finish(&mut self, outcome: Outcome) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.next_step = None;
        let report = Report {
            id: self.cfg.id,
            outcome,
            events: std::mem::take(&mut self.events),
            counts: self.counts,
            rejected: self.rejected,
        };
        self.publish(
            Route::Results,
            Body::Report {
                report: report.clone(),
            },
        );
        self.out.push_back(Output::Finished(report));
    }

    pub fn next_timeout(&self) -> Option<Millis> {
        if self.finished {
            return None;
        }
        let silence = self
            .waiting()
            .into_iter()
            .filter_map(|p| self.last_heard.get(&p))
            .map(|t| t.saturating_add(self.cfg.peer_timeout_ms))
            .min();
        [self.next_step, self.cfg.deadline, silence]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn handle_timeout(&mut self, now: Millis) {
        if self.finished {
            return;
        }
        if self.cfg.deadline.is_some_and(|d| now >= d) {
            let waiting = self.waiting();
            self.finish(Outcome::TimedOut { waiting });
            return;
        }
        self.run_steps(now);
        if self.finished {
            return;
        }
        let silent: Vec<PeerId> = self
            .waiting()
            .into_iter()
            .filter(|p| {
                self.last_heard
                    .get(p)
                    .is_some_and(|t| now.saturating_sub(*t) >= self.cfg.peer_timeout_ms)
            })
            .collect();
        if !silent.is_empty() {
            self.finish(Outcome::Silent { peers: silent });
        }
    }

    pub fn poll_output(&mut self) -> Option<Output<Message, Report>> {
        self.out.pop_front()
    }

    pub fn interrupt(&mut self, _now: Millis, reason: String) {
        self.finish(Outcome::Interrupted { reason });
    }
}

impl StateMachine for Process {
    type Msg = Message;
    type Finished = Report;
    fn handle(&mut self, now: Millis, bytes: &[u8]) -> Result<(), Rejection> {
        Process::handle(self, now, bytes)
    }
    fn next_timeout(&self) -> Option<Millis> {
        Process::next_timeout(self)
    }
    fn handle_timeout(&mut self, now: Millis) {
        Process::handle_timeout(self, now)
    }
    fn poll_output(&mut self) -> Option<Output<Message, Report>> {
        Process::poll_output(self)
    }
    fn interrupt(&mut self, now: Millis, reason: String) {
        Process::interrupt(self, now, reason)
    }
}

#[cfg(test)]
#[path = "process_tests.rs"]
mod tests;
