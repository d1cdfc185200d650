//! The list agreement on the generic deterministic simulator ([`crate::sim`]).
//!
//! The master and the workers are the real state machines, wrapped in one [`Node`] type
//! because the simulator drives participants of one type. What this module adds is the
//! list's wiring as RabbitMQ has it (see [`route`]) and its knobs ([`SimConfig`]) mapped
//! onto the simulator's: reordering across publishers, redeliveries, re-publishes,
//! connection losses, workers crashing for good at random moments (the master's lease
//! must evict them), junk, and virtual time, so leases and timeouts fire at awkward
//! moments. A seed replays a run exactly.
//!
//! It is for simulation and property tests of the core, in addition to — never instead
//! of — the integration tests against a real RabbitMQ.

use super::master::{Master, MasterConfig, RunRecord};
use super::protocol::{Body, Message, Sender, WorkerId};
use super::worker::{Worker, WorkerConfig, WorkerOutcome};
use crate::contract::{Millis, PeerId, Route};
use crate::sim::{self, RandomCrashes, SimStats};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

/// The knobs of one simulated run. Every probability is per delivery (`republish`: per
/// published message).
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub workers: usize,
    pub rounds: u32,
    pub lease_ms: Millis,
    /// Probability that a delivered message is delivered again later (a lost ack).
    pub duplicate: f64,
    /// Probability that a publish is followed by a re-publish of the publisher's last 1–3
    /// messages to that queue, in order (confirms lost with the connection).
    pub republish: f64,
    /// Probability that a worker crashes for good at a given delivery (at most `max_crashes`).
    pub crash: f64,
    pub max_crashes: usize,
    /// Probability that a participant's connection drops at a given delivery; it comes
    /// back after up to `max_stall_ms` (0: never drops).
    pub stall: f64,
    pub max_stall_ms: Millis,
    /// Upper bound on virtual time advanced between two deliveries.
    pub max_step_ms: Millis,
    /// Garbage in every queue (malformed, wrong run, forged), at the start and now and then.
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
            republish: 0.0,
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
            republish: rng.random_range(0.0..0.2),
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

    /// The generic simulator's knobs for this run. Only workers crash: the master is the
    /// run's single point of truth, and its loss is the standby's business, not the lease's.
    fn schedule(&self) -> sim::SimConfig {
        let stalls = self.max_stall_ms > 0;
        sim::SimConfig {
            duplicate: self.duplicate,
            republish: self.republish,
            stall: if stalls { self.stall } else { 0.0 },
            max_stall_ms: self.max_stall_ms,
            max_step_ms: self.max_step_ms,
            junk: self.junk,
            extra_junk: if self.junk { junk() } else { Vec::new() },
            crash: Vec::new(),
            random_crashes: (self.crash > 0.0 && self.max_crashes > 0).then(|| RandomCrashes {
                among: (1..=self.workers as PeerId).collect(),
                rate: self.crash,
                max: self.max_crashes,
            }),
            batch: self.batch,
            max_steps: MAX_STEPS,
        }
    }
}

/// What happened in one simulated run.
#[derive(Debug)]
pub struct SimResult {
    pub seed: u64,
    /// The master's record (`None`: it never finished).
    pub record: Option<RunRecord>,
    /// How each worker that finished ended.
    pub outcomes: BTreeMap<WorkerId, WorkerOutcome>,
    pub crashed: Vec<WorkerId>,
    pub deliveries: u64,
    pub virtual_ms: Millis,
    /// What the schedule did (duplicates, stalls, junk, rejections, timeouts).
    pub stats: SimStats,
    /// The simulator gave up after its step limit (a livelock or a far too long schedule).
    pub step_limit_hit: bool,
}

/// The run id every simulated message carries.
const RUN: &str = "sim";
/// The master's participant id; workers are `1..=workers`, their own ids.
const MASTER: PeerId = 0;
/// Both roles' deadline: a run that reaches it did not end by itself.
const DEADLINE: Millis = 600_000;
/// Deliveries, timer rounds and idle jumps before the simulator gives up.
const MAX_STEPS: u64 = 2_000_000;

/// How a participant of a list run ended.
#[derive(Debug)]
pub enum Ended {
    Master(Box<RunRecord>),
    Worker(WorkerOutcome),
}

crate::contract::roles::roles! {
    /// A participant of a list run: the simulator drives participants of one type. The
    /// master batches (`pack`, as the broker adapter has it do); workers publish one by one.
    pub enum Node: Message => Ended {
        Master(Box<Master>) => Ended::Master,
        Worker(Box<Worker>) => Ended::Worker,
    }
}

/// The list's wiring for a run of `workers` workers. The fanout reaches every worker's
/// queue and the master's; the direct exchange's `master` key reaches the master's queue,
/// and its `results` key the results queue, which the master reads too. The list sends
/// nothing point to point.
pub fn route(workers: usize) -> impl Fn(PeerId, Route) -> Vec<PeerId> {
    move |_from, r| match r {
        Route::Broadcast => (MASTER..=workers as PeerId).collect(),
        Route::Coordinator | Route::Results => vec![MASTER],
        Route::Peer(_) | Route::Role(_) | Route::Client(_) => Vec::new(),
    }
}

/// Runs one simulated run to completion (or to the step limit) and returns what happened.
pub fn run(seed: u64, cfg: SimConfig) -> SimResult {
    let mut rng = StdRng::seed_from_u64(seed);
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
        deadline: Some(DEADLINE),
        pace_ms: cfg.pace_ms,
        window: cfg.window,
        relay: cfg.relay,
        topology: Default::default(),
        durable: false,
        queue_type: Default::default(),
    };
    let master = Master::new(mcfg, Box::new(StdRng::seed_from_u64(rng.random())), 0);
    let mut machines = vec![(MASTER, Node::Master(Box::new(master)))];
    for id in 1..=cfg.workers as WorkerId {
        let wcfg = WorkerConfig {
            run_id: RUN.into(),
            id,
            instance: 100 + u64::from(id),
            join_retry_ms: 50,
            deadline: Some(DEADLINE),
            topology: Default::default(),
            durable: false,
            queue_type: Default::default(),
            master_user: None,
        };
        let w = Worker::new(wcfg, Box::new(StdRng::seed_from_u64(rng.random())), 0);
        machines.push((id, Node::Worker(Box::new(w))));
    }
    let run = sim::run(machines, route(cfg.workers), &cfg.schedule(), rng.random());
    let mut record = None;
    let mut outcomes = BTreeMap::new();
    for (id, ended) in run.finished {
        match ended {
            Some(Ended::Master(r)) => record = Some(*r),
            Some(Ended::Worker(o)) => {
                outcomes.insert(id, o);
            }
            None => {}
        }
    }
    SimResult {
        seed,
        record,
        outcomes,
        crashed: run.crashed,
        deliveries: run.stats.deliveries,
        virtual_ms: run.now,
        stats: run.stats,
        step_limit_hit: run.step_limit_hit,
    }
}

/// The list's own junk, besides the simulator's generic garbage: a grant forged by another
/// master instance, a message of another run, and an append by a worker in another's name.
/// Each must be refused, never acted on.
fn junk() -> Vec<Vec<u8>> {
    let forged_grant = Message::new(
        RUN,
        Sender::Master { instance: 666 },
        Body::Grant {
            seq: 1,
            worker: 1,
            lease_ms: 1,
        },
    );
    let wrong_run = Message::new(
        "other",
        Sender::Master { instance: 1 },
        Body::Abort {
            reason: "not ours".into(),
        },
    );
    let forged_append = Message::new(
        RUN,
        Sender::Worker { id: 1, instance: 1 },
        Body::Append {
            seq: 1,
            worker: 2,
            value: 5,
        },
    );
    [forged_grant, wrong_run, forged_append]
        .iter()
        .filter_map(|m| m.encode().ok())
        .collect()
}
