//! The deterministic simulator: any algorithm's machines under hostile schedules.
//!
//! It models what RabbitMQ promises and no more. Each participant has one inbox queue;
//! the messages of one publisher to one queue stay in order, those of different
//! publishers interleave arbitrarily (every inbox keeps one FIFO lane per publisher and the
//! schedule picks a lane at random). On top of that, everything drawn from one seeded RNG
//! so that a seed replays a run exactly, the schedule can
//!
//! * deliver a message again later (its ack was lost: a redelivery),
//! * enqueue the last few messages of a publisher a second time, in their order (their
//!   confirms were lost with the connection: a re-publish),
//! * drop a participant's connection for a while: it stops consuming, the delivery in
//!   flight (handled or not) comes back first, its timers wait, its state stays,
//! * crash chosen participants for good after some number of deliveries, or random ones
//!   of a given set at random moments,
//! * put junk bytes into inboxes,
//! * advance virtual time by random steps, so timeouts fire at awkward moments.
//!
//! The machines are the real ones ([`crate::contract::StateMachine`]), and each step's
//! messages are packed ([`crate::contract::drain`]) and published as the broker adapter
//! does: the simulator exercises the very code the adapter drives. It is for simulation
//! and property tests, in addition to — never instead of — the tests against a real
//! RabbitMQ.

mod inbox;

use crate::contract::{HoldId, Millis, PACK_LIMIT, PeerId, Route, StateMachine, Wire};
use inbox::{Inbox, Lane};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

/// A participant that stops for good after handling `after` deliveries (0: right after it
/// started and published its first messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crash {
    pub peer: PeerId,
    pub after: u64,
}

/// Crashes drawn as the schedule goes: after each delivery, with probability `rate`, one
/// participant of `among` that is still running crashes for good, `max` at most. A
/// [`Crash`] counts its moment in the victim's own deliveries, and a count drawn blindly
/// often falls after the victim finished, when there is nothing left to crash; these strike
/// at any moment of the whole run (while the others wait on the victim, say) and only
/// whoever is still running.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomCrashes {
    pub among: Vec<PeerId>,
    pub rate: f64,
    pub max: usize,
}

/// The knobs of one simulated schedule. Probabilities are per delivery (`republish`: per
/// published message).
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// A handled delivery comes back later (lost ack).
    pub duplicate: f64,
    /// A publish is followed by a re-publish of the publisher's last 1–3 messages to that
    /// queue, in order (lost confirms).
    pub republish: f64,
    /// The participant handling a delivery loses its connection for up to `max_stall_ms`.
    pub stall: f64,
    pub max_stall_ms: Millis,
    /// Virtual time advanced after a delivery: uniform in `0..=max_step_ms`.
    pub max_step_ms: Millis,
    /// Junk bytes in every inbox at the start, and now and then later.
    pub junk: bool,
    /// Algorithm-specific junk (wrong run, wrong version, forged shapes) added to the
    /// generic junk when `junk` is on.
    pub extra_junk: Vec<Vec<u8>>,
    /// Participants that crash for good.
    pub crash: Vec<Crash>,
    /// More crashes, at random moments (none if `None`).
    pub random_crashes: Option<RandomCrashes>,
    /// Most messages a machine may pack into one publish per step
    /// ([`crate::contract::StateMachine::pack`]); 1: every message on its own.
    pub batch: usize,
    /// Steps (deliveries, timer rounds and idle jumps) before the simulator gives up.
    pub max_steps: u64,
}

impl SimConfig {
    /// A benign schedule: interleaving between publishers only, 1 ms steps.
    pub fn calm() -> Self {
        SimConfig {
            duplicate: 0.0,
            republish: 0.0,
            stall: 0.0,
            max_stall_ms: 0,
            max_step_ms: 1,
            junk: false,
            extra_junk: Vec::new(),
            crash: Vec::new(),
            random_crashes: None,
            batch: PACK_LIMIT,
            max_steps: 1_000_000,
        }
    }

    /// Draws hostile knobs from `rng` (no crashes: a test chooses those).
    pub fn hostile(rng: &mut impl Rng) -> Self {
        SimConfig {
            duplicate: rng.random_range(0.0..0.3),
            republish: rng.random_range(0.0..0.2),
            stall: rng.random_range(0.0..0.05),
            max_stall_ms: rng.random_range(1..=300),
            max_step_ms: rng.random_range(0..=30),
            junk: rng.random_bool(0.5),
            extra_junk: Vec::new(),
            crash: Vec::new(),
            random_crashes: None,
            batch: PACK_LIMIT,
            max_steps: 1_000_000,
        }
    }
}

/// What the schedule did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Deliveries handed to a machine (junk and duplicates included).
    pub deliveries: u64,
    /// Copies the schedule added: redeliveries, re-publishes, in-flight returns.
    pub duplicates: u64,
    /// Connection losses.
    pub stalls: u64,
    /// Junk bodies put into inboxes.
    pub junk: u64,
    /// Deliveries a machine refused (`Err(Rejection)`).
    pub rejected: u64,
    /// `handle_timeout` calls.
    pub timeouts: u64,
}

/// How one simulated run ended.
#[derive(Debug)]
pub struct SimRun<F> {
    pub seed: u64,
    /// Every participant, with how it finished (`None`: it never did).
    pub finished: BTreeMap<PeerId, Option<F>>,
    /// Participants that crashed for good.
    pub crashed: Vec<PeerId>,
    /// Everything published on [`Route::Results`], in order: (publisher, body).
    pub results: Vec<(PeerId, Vec<u8>)>,
    pub stats: SimStats,
    /// Virtual time at the end.
    pub now: Millis,
    pub steps: u64,
    /// The step limit ended the run (a livelock or a far too long schedule).
    pub step_limit_hit: bool,
}

impl<F> SimRun<F> {
    /// Every participant that did not crash finished.
    pub fn all_survivors_finished(&self) -> bool {
        self.finished
            .iter()
            .all(|(p, f)| f.is_some() || self.crashed.contains(p))
    }
}

struct Participant<M: StateMachine> {
    id: PeerId,
    machine: M,
    inbox: Inbox,
    finished: Option<M::Finished>,
    crash_after: Option<u64>,
    crashed: bool,
    handled: u64,
    stalled_until: Millis,
    /// Deliveries the machine holds unacknowledged, by hold id (in arrival order): a lost
    /// connection gives them back to the inbox.
    held: BTreeMap<HoldId, (Lane, Vec<u8>)>,
}

impl<M: StateMachine> Participant<M> {
    fn over(&self) -> bool {
        self.crashed || self.finished.is_some()
    }
}

struct Sim<'r, M: StateMachine, R> {
    rng: StdRng,
    cfg: &'r SimConfig,
    route: R,
    now: Millis,
    parts: Vec<Participant<M>>,
    /// Participant id → index in `parts`.
    index: BTreeMap<PeerId, usize>,
    results: Vec<(PeerId, Vec<u8>)>,
    stats: SimStats,
    /// Crashes drawn from `cfg.random_crashes` so far.
    random_crashes: usize,
}

/// Runs `machines` under the schedule `cfg` draws with `seed`, until every surviving
/// participant finished, nothing more can happen, or `cfg.max_steps`.
///
/// `route(from, route)` names the participants a message published by `from` on `route`
/// reaches. Ids it names that are not participants are ignored. [`Route::Results`] is
/// collected into [`SimRun::results`]; participants `route` names for it (one that reads
/// the results queue, like the list agreement's master) also get it, on lanes apart from
/// their own queue's: on the broker it is another queue.
pub fn run<M: StateMachine>(
    machines: Vec<(PeerId, M)>,
    route: impl Fn(PeerId, Route) -> Vec<PeerId>,
    cfg: &SimConfig,
    seed: u64,
) -> SimRun<M::Finished> {
    let mut sim = Sim {
        rng: StdRng::seed_from_u64(seed),
        cfg,
        route,
        now: 0,
        parts: Vec::new(),
        index: BTreeMap::new(),
        results: Vec::new(),
        stats: SimStats::default(),
        random_crashes: 0,
    };
    for (id, machine) in machines {
        sim.index.insert(id, sim.parts.len());
        sim.parts.push(Participant {
            id,
            machine,
            inbox: Inbox::default(),
            finished: None,
            crash_after: cfg.crash.iter().find(|c| c.peer == id).map(|c| c.after),
            crashed: false,
            handled: 0,
            stalled_until: 0,
            held: BTreeMap::new(),
        });
    }
    if cfg.junk {
        for i in 0..sim.parts.len() {
            for _ in 0..2 {
                sim.inject_junk(i);
            }
        }
    }
    for i in 0..sim.parts.len() {
        sim.drain(i);
        sim.maybe_crash(i);
    }
    let mut steps = 0;
    let mut step_limit_hit = true;
    while steps < cfg.max_steps {
        steps += 1;
        if sim.parts.iter().all(Participant::over) {
            step_limit_hit = false;
            break;
        }
        sim.fire_timers();
        let ready = sim.ready();
        if ready.is_empty() {
            match sim.next_wake() {
                Some(t) => sim.now = t.max(sim.now.saturating_add(1)),
                None => {
                    step_limit_hit = false;
                    break; // stuck: the caller's liveness check says so
                }
            }
            continue;
        }
        let (i, lane) = ready[sim.rng.random_range(0..ready.len())];
        sim.deliver(i, lane);
        if cfg.max_step_ms > 0 {
            sim.now += sim.rng.random_range(0..=cfg.max_step_ms);
        }
    }
    SimRun {
        seed,
        crashed: sim
            .parts
            .iter()
            .filter(|p| p.crashed)
            .map(|p| p.id)
            .collect(),
        finished: sim.parts.into_iter().map(|p| (p.id, p.finished)).collect(),
        results: sim.results,
        stats: sim.stats,
        now: sim.now,
        steps,
        step_limit_hit,
    }
}

impl<M: StateMachine, R: Fn(PeerId, Route) -> Vec<PeerId>> Sim<'_, M, R> {
    fn live(&self, i: usize) -> bool {
        let p = &self.parts[i];
        !p.over() && p.stalled_until <= self.now
    }

    /// Every (participant, lane) that can deliver now.
    fn ready(&self) -> Vec<(usize, Lane)> {
        let mut v = Vec::new();
        for i in 0..self.parts.len() {
            if self.live(i) {
                v.extend(self.parts[i].inbox.ready().map(|l| (i, l)));
            }
        }
        v
    }

    /// The next moment something can happen without a delivery: a timer, no earlier than
    /// the end of its owner's stall, or the end of a stall with deliveries waiting.
    fn next_wake(&self) -> Option<Millis> {
        self.parts
            .iter()
            .filter(|p| !p.over())
            .filter_map(|p| {
                let timer = p.machine.next_timeout().map(|t| t.max(p.stalled_until));
                let backlog = (!p.inbox.is_empty()).then_some(p.stalled_until);
                [timer, backlog].into_iter().flatten().min()
            })
            .min()
    }

    fn fire_timers(&mut self) {
        for i in 0..self.parts.len() {
            let due = self.parts[i]
                .machine
                .next_timeout()
                .is_some_and(|t| t <= self.now);
            if self.live(i) && due {
                self.stats.timeouts += 1;
                self.parts[i].machine.handle_timeout(self.now);
                self.drain(i);
            }
        }
    }

    fn deliver(&mut self, i: usize, lane: Lane) {
        let Some(bytes) = self.parts[i].inbox.pop(lane) else {
            return;
        };
        let lost_connection = self.rng.random_bool(self.cfg.stall);
        // A connection lost before the delivery was handled returns it unhandled.
        if lost_connection && self.rng.random_bool(0.5) {
            self.lose_connection(i, lane, bytes);
            return;
        }
        self.stats.deliveries += 1;
        if self.parts[i].machine.handle(self.now, &bytes).is_err() {
            self.stats.rejected += 1;
        } else if let Some(h) = self.parts[i].machine.take_hold() {
            self.parts[i].held.insert(h, (lane, bytes.clone()));
        }
        self.parts[i].handled += 1;
        self.drain(i);
        if lost_connection {
            // Handled, but the ack was lost with the connection: it comes back first.
            self.stats.duplicates += 1;
            self.lose_connection(i, lane, bytes);
        } else if self.rng.random_bool(self.cfg.duplicate) {
            self.stats.duplicates += 1;
            self.parts[i].inbox.push(Lane::Redelivery, bytes);
        }
        self.maybe_crash(i);
        self.maybe_crash_at_random();
        if self.cfg.junk && self.rng.random_bool(0.01) {
            let j = self.rng.random_range(0..self.parts.len());
            self.inject_junk(j);
        }
    }

    fn lose_connection(&mut self, i: usize, lane: Lane, bytes: Vec<u8>) {
        self.stats.stalls += 1;
        let stall = self.rng.random_range(1..=self.cfg.max_stall_ms.max(1));
        let p = &mut self.parts[i];
        // The delivery in hand comes back (unless the machine holds it: then it comes
        // back below with everything held, once).
        if !p.held.values().any(|(l, b)| *l == lane && *b == bytes) {
            p.inbox.push_front(lane, bytes);
        }
        // Everything held comes back too, ahead of the rest of its lane, in its order.
        if !p.held.is_empty() {
            for (_, (lane, bytes)) in std::mem::take(&mut p.held).into_iter().rev() {
                p.inbox.push_front(lane, bytes);
            }
            p.machine.link_lost();
        }
        p.stalled_until = self.now + stall;
    }

    fn maybe_crash(&mut self, i: usize) {
        let p = &mut self.parts[i];
        if p.crash_after.is_some_and(|n| p.handled >= n) && !p.over() {
            p.crashed = true;
        }
    }

    /// One crash drawn from `cfg.random_crashes`, if the draw says so and any is left.
    fn maybe_crash_at_random(&mut self) {
        let Some(rc) = &self.cfg.random_crashes else {
            return;
        };
        if self.random_crashes >= rc.max || !self.rng.random_bool(rc.rate) {
            return;
        }
        let running: Vec<usize> = rc
            .among
            .iter()
            .filter_map(|id| self.index.get(id).copied())
            .filter(|&i| !self.parts[i].over())
            .collect();
        if running.is_empty() {
            return;
        }
        let victim = running[self.rng.random_range(0..running.len())];
        self.parts[victim].crashed = true;
        self.random_crashes += 1;
    }

    /// Publishes everything participant `i` has to say, packed as the machine packs it.
    fn drain(&mut self, i: usize) {
        let p = &mut self.parts[i];
        let mut released = Vec::new();
        let step = crate::contract::drain_with_releases(
            &mut p.machine,
            &mut p.finished,
            self.cfg.batch,
            &mut released,
        );
        for h in released {
            p.held.remove(&h);
        }
        for (route, msg) in step {
            // A message that cannot be written is a bug in the machine under test: the
            // simulator stops on it rather than deliver an empty body.
            match msg.encode() {
                Ok(bytes) => self.publish(i, route, bytes),
                Err(e) => panic!("simulator: participant {i}: {e}"),
            }
        }
    }

    fn publish(&mut self, i: usize, route: Route, bytes: Vec<u8>) {
        let from = self.parts[i].id;
        let lane = if route == Route::Results {
            if self.rng.random_bool(self.cfg.republish) {
                self.stats.duplicates += 1;
                self.results.push((from, bytes.clone()));
            }
            self.results.push((from, bytes.clone()));
            Lane::Results(from)
        } else {
            Lane::Publisher(from)
        };
        for to in (self.route)(from, route) {
            let Some(&j) = self.index.get(&to) else {
                continue;
            };
            let inbox = &mut self.parts[j].inbox;
            inbox.publish(lane, bytes.clone());
            if self.rng.random_bool(self.cfg.republish) {
                let last = self.rng.random_range(1..=3);
                self.stats.duplicates += inbox.republish(lane, last);
            }
        }
    }

    fn inject_junk(&mut self, i: usize) {
        const GENERIC: [&[u8]; 6] = [
            b"{oops",
            b"",
            b"null",
            b"[1,2,3]",
            b"{\"v\":99}",
            b"{\"v\":1,\"run\":\"\",\"type\":\"nothing\"}",
        ];
        let pick = self
            .rng
            .random_range(0..GENERIC.len() + 1 + self.cfg.extra_junk.len());
        let body = match pick {
            k if k < GENERIC.len() => GENERIC[k].to_vec(),
            k if k == GENERIC.len() => {
                let len = self.rng.random_range(0..64);
                (0..len).map(|_| self.rng.random()).collect()
            }
            k => self.cfg.extra_junk[k - GENERIC.len() - 1].clone(),
        };
        self.stats.junk += 1;
        self.parts[i].inbox.push(Lane::Junk, body);
    }
}

#[cfg(test)]
mod tests;
