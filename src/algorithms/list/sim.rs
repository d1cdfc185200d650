//! A deterministic in-memory broker that drives the real master and worker state machines.
//!
//! It is a model of what RabbitMQ promises and no more: a queue delivers the messages of
//! one publisher in order, but messages of different publishers interleave arbitrarily,
//! and every queue is scheduled independently. On top of that the schedule (all drawn
//! from one seeded RNG, so a seed replays a run exactly) can
//!
//! * deliver a message twice (redelivery after a lost ack),
//! * stall a participant for a while (a dropped connection that comes back: its queue keeps
//!   filling and it catches up),
//! * crash a worker for good (it stops consuming; the master's lease must evict it),
//! * advance virtual time by random amounts, so leases and timeouts fire at awkward moments.
//!
//! It is for simulation and property tests of the core, in addition to — never instead
//! of — the integration tests against a real RabbitMQ.

use super::master::{Master, MasterConfig, RunRecord};
use super::protocol::WorkerId;
use super::worker::{Worker, WorkerConfig, WorkerOutcome};
use crate::contract::{Millis, Route};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, VecDeque};

/// The knobs of one simulated run. Every probability is per delivery.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub workers: usize,
    pub rounds: u32,
    pub lease_ms: Millis,
    /// Probability that a delivered message is delivered again later.
    pub duplicate: f64,
    /// Probability that a worker crashes for good at a given delivery (at most `max_crashes`).
    pub crash: f64,
    pub max_crashes: usize,
    /// Probability that a participant's connection drops at a given delivery; it comes
    /// back after up to `max_stall_ms`.
    pub stall: f64,
    pub max_stall_ms: Millis,
    /// Upper bound on virtual time advanced between two deliveries.
    pub max_step_ms: Millis,
    /// Garbage published onto every queue at the start (malformed, wrong run, forged).
    pub junk: bool,
    /// The master's pause between a commit and the next grant.
    pub pace_ms: Millis,
    /// Grants the master may have outstanding at once.
    pub window: usize,
    /// The master relays appends (workers send them to it alone).
    pub relay: bool,
    /// Most messages the master packs into one batch per step (1: no batches).
    pub batch: usize,
}

impl SimConfig {
    /// A benign schedule: reordering only.
    pub fn calm(workers: usize) -> Self {
        SimConfig {
            workers,
            rounds: 1,
            lease_ms: 1_000,
            duplicate: 0.0,
            crash: 0.0,
            max_crashes: 0,
            stall: 0.0,
            max_stall_ms: 0,
            max_step_ms: 1,
            junk: false,
            pace_ms: 0,
            window: 1,
            relay: true,
            batch: 16,
        }
    }

    /// Draws a hostile schedule's knobs from `rng`.
    pub fn random(rng: &mut impl Rng) -> Self {
        let workers = rng.random_range(1..=9);
        SimConfig {
            workers,
            rounds: rng.random_range(1..=2),
            lease_ms: rng.random_range(20..=200),
            duplicate: rng.random_range(0.0..0.3),
            crash: if rng.random_bool(0.5) {
                rng.random_range(0.0..0.05)
            } else {
                0.0
            },
            max_crashes: rng.random_range(0..=workers.saturating_sub(1)),
            stall: rng.random_range(0.0..0.05),
            max_stall_ms: rng.random_range(0..=300),
            max_step_ms: rng.random_range(0..=30),
            junk: rng.random_bool(0.3),
            pace_ms: if rng.random_bool(0.2) {
                rng.random_range(0..=50)
            } else {
                0
            },
            window: if rng.random_bool(0.5) {
                1
            } else {
                rng.random_range(2..=workers.max(2))
            },
            relay: rng.random_bool(0.5),
            batch: rng.random_range(1..=8),
        }
    }
}

/// What happened in one simulated run.
#[derive(Debug)]
pub struct SimResult {
    pub seed: u64,
    pub record: Option<RunRecord>,
    pub outcomes: BTreeMap<WorkerId, WorkerOutcome>,
    pub crashed: Vec<WorkerId>,
    pub deliveries: u64,
    pub virtual_ms: Millis,
}

/// Participant index 0 is the master; `i >= 1` is worker `i`.
type Pid = usize;

struct Queue {
    owner: Pid,
    /// One FIFO lane per publisher (plus lane `usize::MAX` for redeliveries).
    lanes: BTreeMap<usize, VecDeque<Vec<u8>>>,
}

struct Sim {
    rng: StdRng,
    cfg: SimConfig,
    now: Millis,
    master: Master,
    workers: BTreeMap<WorkerId, Worker>,
    /// Queue name → queue. Names: "master", "results", "w<id>".
    queues: BTreeMap<String, Queue>,
    crashed: Vec<WorkerId>,
    stalled_until: BTreeMap<Pid, Millis>,
    outcomes: BTreeMap<WorkerId, WorkerOutcome>,
    record: Option<RunRecord>,
    deliveries: u64,
}

const REDELIVERY_LANE: usize = usize::MAX;
const RUN: &str = "sim";

/// Runs one simulated run to completion (or to the step limit) and returns what happened.
pub fn run(seed: u64, cfg: SimConfig) -> SimResult {
    let mut rng = StdRng::seed_from_u64(seed);
    let deadline = 600_000;
    let mcfg = MasterConfig {
        run_id: RUN.into(),
        instance: 1,
        workers: cfg.workers,
        min_workers: cfg.workers,
        rounds: cfg.rounds,
        min: 1,
        max: 100,
        join_timeout_ms: 10_000,
        lease_ms: cfg.lease_ms,
        result_timeout_ms: 10_000,
        deadline: Some(deadline),
        pace_ms: cfg.pace_ms,
        window: cfg.window,
        relay: cfg.relay,
        topology: Default::default(),
        durable: false,
    };
    let master = Master::new(mcfg, Box::new(StdRng::seed_from_u64(rng.random())), 0);
    let mut queues = BTreeMap::new();
    queues.insert(
        "master".to_string(),
        Queue {
            owner: 0,
            lanes: BTreeMap::new(),
        },
    );
    queues.insert(
        "results".to_string(),
        Queue {
            owner: 0,
            lanes: BTreeMap::new(),
        },
    );
    let mut sim = Sim {
        rng,
        cfg: cfg.clone(),
        now: 0,
        master,
        workers: BTreeMap::new(),
        queues,
        crashed: vec![],
        stalled_until: BTreeMap::new(),
        outcomes: BTreeMap::new(),
        record: None,
        deliveries: 0,
    };
    for i in 1..=cfg.workers as WorkerId {
        // As in the adapter: the worker's queue is bound before it sends its join.
        sim.queues.insert(
            format!("w{i}"),
            Queue {
                owner: i as Pid,
                lanes: BTreeMap::new(),
            },
        );
        let wcfg = WorkerConfig {
            run_id: RUN.into(),
            id: i,
            instance: 100 + i as u64,
            join_retry_ms: 50,
            deadline: Some(deadline),
            topology: Default::default(),
            durable: false,
            master_user: None,
        };
        let w = Worker::new(wcfg, Box::new(StdRng::seed_from_u64(sim.rng.random())), 0);
        sim.workers.insert(i, w);
        sim.drain_worker(i);
    }
    if cfg.junk {
        sim.inject_junk();
    }
    sim.drive();
    SimResult {
        seed,
        record: sim.record,
        outcomes: sim.outcomes,
        crashed: sim.crashed,
        deliveries: sim.deliveries,
        virtual_ms: sim.now,
    }
}

impl Sim {
    fn route(&mut self, from: Pid, route: Route, bytes: Vec<u8>) {
        let targets: Vec<String> = match route {
            Route::Broadcast => self
                .queues
                .keys()
                .filter(|q| q.as_str() != "results")
                .cloned()
                .collect(),
            Route::Coordinator => vec!["master".into()],
            Route::Results => vec!["results".into()],
            // The list agreement sends nothing point to point.
            Route::Peer(_) => vec![],
        };
        for t in targets {
            if let Some(q) = self.queues.get_mut(&t) {
                q.lanes.entry(from).or_default().push_back(bytes.clone());
            }
        }
    }

    fn inject_junk(&mut self) {
        use super::protocol::{Body, Message, Sender};
        let forged_grant = Message::new(
            RUN,
            Sender::Master { instance: 666 },
            Body::Grant {
                seq: 1,
                worker: 1,
                lease_ms: 1,
            },
        )
        .encode();
        let wrong_run = Message::new(
            "other",
            Sender::Master { instance: 1 },
            Body::Abort {
                reason: "not ours".into(),
            },
        )
        .encode();
        let forged_append = Message::new(
            RUN,
            Sender::Worker { id: 1, instance: 1 },
            Body::Append {
                seq: 1,
                worker: 2,
                value: 5,
            },
        )
        .encode();
        for junk in [b"{oops".to_vec(), forged_grant, wrong_run, forged_append] {
            self.route(9_999, Route::Broadcast, junk.clone());
            self.route(9_999, Route::Results, junk);
        }
    }

    fn drain_worker(&mut self, id: WorkerId) {
        while let Some(o) = self.workers.get_mut(&id).and_then(|w| w.poll_output()) {
            match o {
                crate::contract::Output::Publish { route, msg } => {
                    self.route(id as Pid, route, msg.encode())
                }
                crate::contract::Output::Finished(outcome) => {
                    self.outcomes.insert(id, outcome);
                    // The adapter deletes a finished worker's queue.
                    self.queues.remove(&format!("w{id}"));
                }
            }
        }
    }

    /// Everything the master published in one step, packed into batches as the adapter does.
    fn drain_master(&mut self) {
        let mut record = None;
        let packed = crate::contract::drain(&mut self.master, &mut record, self.cfg.batch);
        if let Some(r) = record {
            self.record = Some(*r);
        }
        for (route, msg) in packed {
            self.route(0, route, msg.encode());
        }
    }

    fn alive(&self, pid: Pid) -> bool {
        let up = self.stalled_until.get(&pid).is_none_or(|t| self.now >= *t);
        let done = if pid == 0 {
            self.master.is_done()
        } else {
            self.workers
                .get(&(pid as WorkerId))
                .is_none_or(|w| w.is_done())
                || self.crashed.contains(&(pid as WorkerId))
        };
        up && !done
    }

    fn all_done(&self) -> bool {
        self.master.is_done()
            && self
                .workers
                .iter()
                .all(|(id, w)| w.is_done() || self.crashed.contains(id))
    }

    /// Every (queue, lane) pair that can deliver right now.
    fn ready(&self) -> Vec<(String, usize)> {
        let mut v = vec![];
        for (name, q) in &self.queues {
            if !self.alive(q.owner) {
                continue;
            }
            for (lane, msgs) in &q.lanes {
                if !msgs.is_empty() {
                    v.push((name.clone(), *lane));
                }
            }
        }
        v
    }

    /// The next moment something can happen without a delivery: a timer of a participant,
    /// no earlier than the end of its stall.
    fn next_timer(&self) -> Option<Millis> {
        let stall = |pid: Pid| self.stalled_until.get(&pid).copied().unwrap_or(0);
        let mut t: Vec<Millis> = vec![];
        if !self.master.is_done() {
            t.extend(self.master.next_timeout().map(|x| x.max(stall(0))));
        }
        for (id, w) in &self.workers {
            if !self.crashed.contains(id) {
                t.extend(w.next_timeout().map(|x| x.max(stall(*id as Pid))));
            }
        }
        // A stalled queue owner with deliveries waiting wakes when its stall ends.
        for q in self.queues.values() {
            if q.lanes.values().any(|l| !l.is_empty()) && stall(q.owner) > self.now {
                t.push(stall(q.owner));
            }
        }
        t.into_iter().filter(|x| *x > self.now).min()
    }

    fn fire_timers(&mut self) {
        let now = self.now;
        if self.alive(0) && self.master.next_timeout().is_some_and(|t| t <= now) {
            self.master.handle_timeout(now);
            self.drain_master();
        }
        let ids: Vec<WorkerId> = self.workers.keys().copied().collect();
        for id in ids {
            if self.alive(id as Pid) && self.workers[&id].next_timeout().is_some_and(|t| t <= now) {
                if let Some(w) = self.workers.get_mut(&id) {
                    w.handle_timeout(now);
                }
                self.drain_worker(id);
            }
        }
    }

    fn drive(&mut self) {
        for _ in 0..2_000_000u32 {
            if self.all_done() {
                return;
            }
            self.fire_timers();
            let ready = self.ready();
            if ready.is_empty() {
                match self.next_timer() {
                    Some(t) => self.now = t.max(self.now),
                    None => return, // stuck: the caller's liveness check will say so
                }
                continue;
            }
            let (qname, lane) = ready[self.rng.random_range(0..ready.len())].clone();
            let Some(q) = self.queues.get_mut(&qname) else {
                continue;
            };
            let owner = q.owner;
            let Some(bytes) = q.lanes.get_mut(&lane).and_then(|l| l.pop_front()) else {
                continue;
            };
            if self.rng.random_bool(self.cfg.duplicate) {
                q.lanes
                    .entry(REDELIVERY_LANE)
                    .or_default()
                    .push_back(bytes.clone());
            }
            self.deliveries += 1;
            if owner == 0 {
                let _ = self.master.handle(self.now, &bytes);
                self.drain_master();
            } else {
                let id = owner as WorkerId;
                if let Some(w) = self.workers.get_mut(&id) {
                    let _ = w.handle(self.now, &bytes);
                }
                self.drain_worker(id);
            }
            self.perturb();
            if self.cfg.max_step_ms > 0 {
                self.now += self.rng.random_range(0..=self.cfg.max_step_ms);
            }
        }
    }

    fn perturb(&mut self) {
        if self.crashed.len() < self.cfg.max_crashes && self.rng.random_bool(self.cfg.crash) {
            let live: Vec<WorkerId> = self
                .workers
                .iter()
                .filter(|(id, w)| !w.is_done() && !self.crashed.contains(id))
                .map(|(id, _)| *id)
                .collect();
            if !live.is_empty() {
                let victim = live[self.rng.random_range(0..live.len())];
                self.crashed.push(victim);
            }
        }
        if self.cfg.max_stall_ms > 0 && self.rng.random_bool(self.cfg.stall) {
            let pid = self.rng.random_range(0..=self.cfg.workers);
            let until = self.now + self.rng.random_range(1..=self.cfg.max_stall_ms);
            self.stalled_until.insert(pid, until);
        }
    }
}
