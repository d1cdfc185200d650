//! The lock's token machine against a model of its slot queues, under thousands of seeded
//! schedules: contenders consume, advance, hold, release, give back and crash at every
//! step (between a publish and its acknowledgement, mid-genesis, while holding), queues
//! return tokens to their head or their tail, and a publish cut by a crash may still land
//! later. Every start is checked on the spot: its fence is larger than every fence used
//! before on its slot, its slot has no other holder, and no more than `limit` hold at once.
//! After the hostile part, a calm part must let every contender finish (no lost token).
//!
//! The model of a slot queue is what RabbitMQ promises and nothing more: one active
//! consumer at a time (the first registered; the next when it goes), prefetch 1 (one
//! unacknowledged token, in the active consumer's hands), a closed channel or connection
//! returns its token and removes its consumer in one step.
//!
//! A failure prints the seed; replay it with
//! `SIM_SEED=<seed> cargo test --test sim_lock replay -- --nocapture`.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::VecDeque;
use sync_run::algorithms::lock::token::{Action, Contender, Fence, Slot, Tag};

/// One slot queue.
#[derive(Default)]
struct Queue {
    ready: VecDeque<Fence>,
    /// Consumer ids in the order they registered: the first is the active one.
    consumers: Vec<u64>,
    /// The one token out (prefetch 1): consumer, tag, value.
    out: Option<(u64, Tag, Fence)>,
    next_tag: Tag,
}

/// A step a contender's driver takes, one per turn.
#[derive(Debug, Clone, Copy)]
enum Step {
    Act(Action),
    /// Passive declare before consuming: no token and no consumer → create token 0.
    Check(Slot),
    Genesis(Slot),
    Consume(Slot),
}

struct Member {
    machine: Contender,
    /// This incarnation's consumer id on each slot.
    consumer: Vec<Option<u64>>,
    inbox: VecDeque<(Slot, u64, Tag, Fence)>,
    steps: VecDeque<Step>,
    /// Holding (the command runs) on this slot.
    in_cs: Option<Slot>,
    done: u32,
}

struct World {
    rng: StdRng,
    limit: u32,
    rounds: u32,
    queues: Vec<Queue>,
    members: Vec<Member>,
    next_consumer: u64,
    /// Publishes cut by a crash that may still land.
    late: Vec<(Slot, Fence)>,
    last_fence: Vec<Option<Fence>>,
    starts: u64,
    crash_p: f64,
}

impl World {
    fn new(seed: u64) -> World {
        let mut rng = StdRng::seed_from_u64(seed);
        let limit = rng.random_range(1..=3);
        let n = rng.random_range(2..=5);
        let rounds = rng.random_range(1..=4);
        let crash_p = [0.0, 0.01, 0.05][rng.random_range(0..3)];
        let mut w = World {
            rng,
            limit,
            rounds,
            queues: (0..limit).map(|_| Queue::default()).collect(),
            members: Vec::new(),
            next_consumer: 1,
            late: Vec::new(),
            last_fence: vec![None; limit as usize],
            starts: 0,
            crash_p,
        };
        for _ in 0..n {
            let m = w.fresh_member(0);
            w.members.push(m);
        }
        w
    }

    fn fresh_member(&mut self, done: u32) -> Member {
        let machine = Contender::new(self.limit);
        let mut m = Member {
            machine,
            consumer: vec![None; self.limit as usize],
            inbox: VecDeque::new(),
            steps: VecDeque::new(),
            in_cs: None,
            done,
        };
        reopen(&mut m);
        m
    }

    fn holders(&self) -> usize {
        self.members.iter().filter(|m| m.in_cs.is_some()).count()
    }

    /// Returns a token to its queue: at the head or the tail (RabbitMQ's queue types
    /// differ; the machine must not care).
    fn give_back(&mut self, slot: Slot, consumer: u64) {
        let head = self.rng.random_bool(0.5);
        let q = &mut self.queues[slot as usize];
        q.consumers.retain(|&c| c != consumer);
        if let Some((c, _, f)) = q.out
            && c == consumer
        {
            q.out = None;
            if head {
                q.ready.push_front(f);
            } else {
                q.ready.push_back(f);
            }
        }
    }

    /// The broker delivers the head of `slot` to its active consumer.
    fn deliver(&mut self, slot: usize) {
        let q = &mut self.queues[slot];
        if q.out.is_some() {
            return;
        }
        let Some(&active) = q.consumers.first() else {
            return;
        };
        let Some(f) = q.ready.pop_front() else {
            return;
        };
        q.next_tag += 1;
        q.out = Some((active, q.next_tag, f));
        let tag = q.next_tag;
        for m in &mut self.members {
            if m.consumer[slot] == Some(active) {
                m.inbox.push_back((slot as Slot, active, tag, f));
            }
        }
    }

    fn crash(&mut self, k: usize) {
        let consumers: Vec<(Slot, u64)> = self.members[k]
            .consumer
            .iter()
            .enumerate()
            .filter_map(|(s, c)| c.map(|c| (s as Slot, c)))
            .collect();
        for (s, c) in consumers {
            self.give_back(s, c);
        }
        // A publish on its way when the connection died may still land.
        if let Some(Step::Act(Action::Publish { slot, fence })) = self.members[k].steps.front()
            && self.rng.random_bool(0.5)
        {
            self.late.push((*slot, *fence));
        }
        let done = self.members[k].done;
        self.members[k] = self.fresh_member(done);
    }

    fn act(&mut self, k: usize, step: Step) -> Result<(), String> {
        match step {
            Step::Check(slot) => {
                let q = &self.queues[slot as usize];
                if q.ready.is_empty() && q.consumers.is_empty() && q.out.is_none() {
                    self.members[k].steps.push_front(Step::Genesis(slot));
                }
            }
            Step::Genesis(slot) => self.queues[slot as usize].ready.push_back(0),
            Step::Consume(slot) => {
                let c = self.next_consumer;
                self.next_consumer += 1;
                self.queues[slot as usize].consumers.push(c);
                self.members[k].consumer[slot as usize] = Some(c);
            }
            Step::Act(Action::Publish { slot, fence }) => {
                self.queues[slot as usize].ready.push_back(fence)
            }
            Step::Act(Action::Ack { slot, tag }) => {
                let me = self.members[k].consumer[slot as usize];
                let q = &mut self.queues[slot as usize];
                if let Some((c, t, _)) = q.out
                    && Some(c) == me
                    && t == tag
                {
                    q.out = None;
                }
            }
            Step::Act(Action::Start { slot, fence }) => {
                if let Some(last) = self.last_fence[slot as usize]
                    && fence <= last
                {
                    return Err(format!(
                        "fence {fence} on slot {slot} after {last} was used"
                    ));
                }
                if self.members.iter().any(|m| m.in_cs == Some(slot)) {
                    return Err(format!("slot {slot} has two holders"));
                }
                self.last_fence[slot as usize] = Some(fence);
                self.members[k].in_cs = Some(slot);
                self.starts += 1;
                if self.holders() > self.limit as usize {
                    return Err(format!("{} holders, limit {}", self.holders(), self.limit));
                }
            }
            Step::Act(Action::GiveBack { slot }) => {
                if let Some(c) = self.members[k].consumer[slot as usize].take() {
                    self.give_back(slot, c);
                }
            }
        }
        Ok(())
    }

    /// One random event. `calm`: no crashes, no late publishes.
    fn turn(&mut self, calm: bool) -> Result<(), String> {
        let n = self.members.len();
        match self.rng.random_range(0..10) {
            0..=2 => {
                let s = self.rng.random_range(0..self.limit as usize);
                self.deliver(s);
            }
            3 if !calm && !self.late.is_empty() => {
                let i = self.rng.random_range(0..self.late.len());
                let (s, f) = self.late.swap_remove(i);
                self.queues[s as usize].ready.push_back(f);
            }
            4 if !calm && self.rng.random_bool(self.crash_p.min(1.0) * 4.0) => {
                let k = self.rng.random_range(0..n);
                self.crash(k);
            }
            _ => {
                let k = self.rng.random_range(0..n);
                self.member_turn(k)?;
            }
        }
        Ok(())
    }

    fn member_turn(&mut self, k: usize) -> Result<(), String> {
        if let Some(step) = self.members[k].steps.pop_front() {
            return self.act(k, step);
        }
        if let Some((slot, consumer, tag, fence)) = self.members[k].inbox.pop_front() {
            // A delivery to a channel closed since is gone with it.
            if self.members[k].consumer[slot as usize] != Some(consumer) {
                return Ok(());
            }
            let ready = self.queues[slot as usize].ready.len() as u64;
            let actions = self.members[k].machine.deliver(slot, tag, fence, ready);
            self.members[k]
                .steps
                .extend(actions.into_iter().map(Step::Act));
            return Ok(());
        }
        let m = &mut self.members[k];
        if m.in_cs.is_some() && self.rng.random_bool(0.3) {
            m.in_cs = None;
            m.done += 1;
            let gone = m.machine.release();
            m.steps.extend(gone.into_iter().map(Step::Act));
            if m.done < self.rounds {
                reopen(m);
            }
        }
        Ok(())
    }

    fn finished(&self) -> bool {
        self.members.iter().all(|m| m.done >= self.rounds)
    }
}

/// Consume again from every slot: check for a token, maybe create it, then register.
fn reopen(m: &mut Member) {
    for slot in m.machine.reopen() {
        m.steps.push_back(Step::Check(slot));
        m.steps.push_back(Step::Consume(slot));
    }
}

fn run(seed: u64) -> Result<u64, String> {
    let mut w = World::new(seed);
    for _ in 0..3_000 {
        w.turn(false)?;
    }
    for _ in 0..200_000 {
        if w.finished() {
            return Ok(w.starts);
        }
        w.turn(true)?;
    }
    Err(format!(
        "not finished after the calm part (limit {}, rounds {}): done {:?}",
        w.limit,
        w.rounds,
        w.members.iter().map(|m| m.done).collect::<Vec<_>>()
    ))
}

#[test]
fn ten_thousand_hostile_schedules() {
    let base: u64 = std::env::var("SIM_BASE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x10c4_0000);
    let mut starts = 0;
    for seed in base..base + 10_000 {
        match run(seed) {
            Ok(s) => starts += s,
            Err(e) => panic!("seed {seed}: {e}"),
        }
    }
    assert!(
        starts >= 10_000,
        "only {starts} acquisitions in 10,000 schedules"
    );
}

/// The model catches a machine that starts without advancing: the same broken rule the
/// invariant exists to prevent (a fence reused after a crash).
#[test]
fn the_model_catches_a_reused_fence() {
    let mut w = World::new(1);
    w.last_fence[0] = Some(3);
    let e = w.act(0, Step::Act(Action::Start { slot: 0, fence: 3 }));
    assert!(e.is_err_and(|e| e.contains("fence 3")));
    let mut w = World::new(1);
    w.act(0, Step::Act(Action::Start { slot: 0, fence: 1 }))
        .unwrap();
    let e = w.act(1, Step::Act(Action::Start { slot: 0, fence: 2 }));
    assert!(e.is_err_and(|e| e.contains("two holders")));
}

#[test]
fn replay() {
    if let Some(seed) = std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()) {
        match run(seed) {
            Ok(s) => println!("seed {seed}: {s} acquisitions, all safe"),
            Err(e) => panic!("seed {seed}: {e}"),
        }
    }
}
