//! The master's logic as a state machine: bytes in (plus the current time), messages out.
//!
//! The master is the run's sequencer. It admits workers, then hands out turns one at a
//! time: grant `seq` names one worker that has not written in this round yet, chosen
//! uniformly at random with the injected RNG. The granted worker's append (published on
//! the fanout, which the master's queue is bound to as well) commits the turn, and the
//! next grant goes out. A grant whose lease runs out is voided by an `evict`, which fences
//! the late append everywhere, whatever order it arrives in. Finally `end` lists the
//! committed turns, the workers report their lists and the master hands a [`RunRecord`]
//! to the verifier.
//!
//! No I/O, no clock, no global RNG: [`super::broker`] drives it against RabbitMQ and
//! [`super::sim`] on the generic simulator ([`crate::sim`]), with the same code.

use super::protocol::{
    Body, Commit, Entry, Message, QueueType, Rejection, Sender, Seq, Topology, WorkerId,
};
use crate::contract::{Millis, Route, StateMachine, earliest, refused};
use rand::{Rng, RngCore};
use std::collections::{BTreeMap, VecDeque};

pub use super::record::{GrantOutcome, GrantRecord, RunOutcome, RunRecord, WorkerReport};

#[path = "master_standby.rs"]
mod standby;

/// Everything the master needs to know before the run starts.
#[derive(Debug, Clone)]
pub struct MasterConfig {
    pub run_id: String,
    /// Distinguishes this master from a stale or stray one in the `from` field.
    pub instance: u64,
    /// How many workers the run waits for.
    pub workers: usize,
    /// After `join_timeout_ms`, start with the workers that joined if there are at least
    /// this many; otherwise abort.
    pub min_workers: usize,
    /// How many times each worker writes.
    pub rounds: u32,
    pub min: i64,
    pub max: i64,
    pub join_timeout_ms: Millis,
    /// A granted worker that has not appended after this long is evicted.
    pub lease_ms: Millis,
    /// How long to wait for the workers' results after `end`.
    pub result_timeout_ms: Millis,
    /// The whole run's deadline (`--timeout`), on the caller's clock.
    pub deadline: Option<Millis>,
    /// Pause between a commit and the next grant (`--pace`): slows a run down to watch it
    /// (or to hit it with faults). Zero in normal runs.
    pub pace_ms: Millis,
    /// How many grants may be outstanding at once (`--window`). One is the classic
    /// turn-by-turn protocol; more pipelines turns: grant k+1 goes out before append k has
    /// come back. Safe because every entry is placed by its sequence number, and the grant
    /// order (the master's random picks) does not depend on the window. With `pace_ms`
    /// the window is one.
    pub window: usize,
    /// Workers send appends to the master, which re-broadcasts each committed one batched
    /// with what it publishes anyway (`--no-relay` turns it off: workers broadcast their
    /// own appends, as the original protocol did). Announced in `start`.
    pub relay: bool,
    /// How broadcasts reach the workers, and whether the run is durable: announced in
    /// `start` so that a worker started with other options says so instead of joining.
    pub topology: Topology,
    pub durable: bool,
    pub queue_type: QueueType,
}

/// What the master wants done; it finishes with the run's record.
pub type Output = crate::contract::Output<Message, Box<RunRecord>>;

#[derive(Debug)]
enum Phase {
    Joining { until: Millis },
    Granting,
    Collecting { until: Millis },
    Done,
}

#[derive(Debug, Default, Clone)]
struct Member {
    joined_at_ms: Option<Millis>,
    writes: u32,
    /// Grants to this worker not yet appended (at most one per round).
    pending: u32,
    evicted: bool,
}

pub struct Master {
    cfg: MasterConfig,
    rng: Box<dyn RngCore + Send>,
    phase: Phase,
    members: BTreeMap<WorkerId, Member>,
    round: u32,
    grants: Vec<GrantRecord>,
    /// Outstanding grants and their lease deadlines (at most `window` of them).
    leases: BTreeMap<Seq, Millis>,
    /// With `pace_ms`, when the next grant goes out.
    next_grant_at: Option<Millis>,
    results: BTreeMap<WorkerId, WorkerReport>,
    rejected: BTreeMap<&'static str, u64>,
    started_at: Option<Millis>,
    ended_at: Option<Millis>,
    out: VecDeque<Output>,
    /// A standby follows the active master's messages and publishes nothing until
    /// [`Master::take_over`].
    following: bool,
    /// Leadership generation: 0 for the first master, +1 per takeover.
    epoch: u32,
    /// The active master this standby follows, and masters it replaced (their stale
    /// messages, still queued, are ignored rather than counted as rejections).
    followed: Option<u64>,
    retired: Vec<u64>,
}

impl Master {
    pub fn new(cfg: MasterConfig, rng: Box<dyn RngCore + Send>, now: Millis) -> Self {
        let until = now.saturating_add(cfg.join_timeout_ms);
        Master {
            cfg,
            rng,
            phase: Phase::Joining { until },
            members: BTreeMap::new(),
            round: 1,
            grants: Vec::new(),
            leases: BTreeMap::new(),
            next_grant_at: None,
            results: BTreeMap::new(),
            rejected: BTreeMap::new(),
            started_at: None,
            ended_at: None,
            out: VecDeque::new(),
            following: false,
            epoch: 0,
            followed: None,
            retired: Vec::new(),
        }
    }

    fn me(&self) -> Sender {
        Sender::Master {
            instance: self.cfg.instance,
        }
    }

    pub fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    /// Grants committed so far (for progress displays).
    pub fn progress(&self) -> (usize, usize) {
        let done = self
            .grants
            .iter()
            .filter(|g| matches!(g.outcome, GrantOutcome::Committed { .. }))
            .count();
        let total = if self.members.is_empty() {
            self.cfg.workers
        } else {
            self.members.len()
        } * self.cfg.rounds as usize;
        (done, total)
    }

    fn join_shortfall(&self) -> String {
        format!(
            "only {} of {} workers joined within {} ms (at least {} needed)",
            self.members.len(),
            self.cfg.workers,
            self.cfg.join_timeout_ms,
            self.cfg.min_workers.max(1)
        )
    }

    /// Stops the run now (Ctrl-C, or the driver lost the broker): `abort` goes out and the
    /// record is finished.
    pub fn abort(&mut self, now: Millis, reason: String) {
        if self.is_done() {
            return;
        }
        tracing::error!(%reason, "aborting the run");
        self.publish(
            Route::Broadcast,
            Body::Abort {
                reason: reason.clone(),
            },
        );
        self.finish(now, RunOutcome::Aborted { reason });
    }

    fn count_rejection(&mut self, r: &Rejection) {
        *self.rejected.entry(r.label()).or_default() += 1;
        tracing::warn!(rejection = %r, "master rejected a message");
    }

    fn on_message(&mut self, now: Millis, msg: Message) -> Result<(), Rejection> {
        let sender = msg.from;
        let from = match msg.from {
            Sender::Master { instance } if instance == self.cfg.instance => return Ok(()), // our own echo
            Sender::Master { instance } if self.following => {
                return self.observe(now, instance, msg.body);
            }
            Sender::Master { instance } if self.retired.contains(&instance) => return Ok(()),
            Sender::Master { instance } => {
                return Err(refused(format!(
                    "{} from another master (instance {instance})",
                    msg.body.kind()
                )));
            }
            Sender::Worker { id, .. } => id,
        };
        match msg.body {
            Body::Join { worker } if worker == from => self.on_join(now, worker),
            Body::Append { seq, worker, value } if worker == from => {
                self.on_append(now, seq, worker, value, sender)
            }
            Body::Result {
                worker,
                entries,
                rejected,
            } if worker == from => self.on_result(now, worker, entries, rejected),
            Body::Join { .. } | Body::Append { .. } | Body::Result { .. } => Err(refused(format!(
                "worker {from} sent a {} on behalf of another worker",
                msg.body.kind()
            ))),
            other => Err(refused(format!(
                "a worker may not send {} messages",
                other.kind()
            ))),
        }
    }

    fn on_join(&mut self, now: Millis, worker: WorkerId) -> Result<(), Rejection> {
        if self.following {
            return Ok(());
        }
        match self.phase {
            Phase::Joining { .. } => {
                if self.members.contains_key(&worker) {
                    return Ok(()); // joins are re-sent until `start`: idempotent
                }
                self.members.insert(
                    worker,
                    Member {
                        joined_at_ms: Some(now),
                        ..Member::default()
                    },
                );
                tracing::debug!(worker, joined = self.members.len(), "worker joined");
                if self.members.len() >= self.cfg.workers {
                    self.start(now);
                }
                Ok(())
            }
            _ if self.members.contains_key(&worker) => Ok(()),
            Phase::Done => Err(refused(format!("join from {worker} after the run ended"))),
            _ => {
                // Tell the latecomer the membership so it can leave instead of waiting.
                self.publish_start();
                Err(refused(format!(
                    "join from {worker} after the run started; not admitted"
                )))
            }
        }
    }

    fn on_append(
        &mut self,
        now: Millis,
        seq: Seq,
        worker: WorkerId,
        value: i64,
        sender: Sender,
    ) -> Result<(), Rejection> {
        let Some(idx) = seq.checked_sub(1).map(|i| i as usize) else {
            return Err(refused("append for seq 0"));
        };
        let (min, max) = (self.cfg.min, self.cfg.max);
        let Some(grant) = self.grants.get_mut(idx) else {
            return Err(refused(format!(
                "append for seq {seq}, which was never granted"
            )));
        };
        if grant.worker != worker {
            return Err(refused(format!(
                "append for seq {seq} from worker {worker}, but it was granted to {}",
                grant.worker
            )));
        }
        match grant.outcome {
            GrantOutcome::Committed { value: v, .. } if v == value => Ok(()), // redelivery
            GrantOutcome::Committed { .. } => Err(refused(format!(
                "second, different append for seq {seq} from worker {worker}"
            ))),
            GrantOutcome::Evicted { .. } => Err(refused(format!(
                "late append for seq {seq}: worker {worker} was evicted (fenced)"
            ))),
            GrantOutcome::Pending if !(min..=max).contains(&value) => Err(refused(format!(
                "append for seq {seq}: value {value} outside {min}..={max}"
            ))),
            GrantOutcome::Pending => {
                grant.outcome = GrantOutcome::Committed { value, at_ms: now };
                self.leases.remove(&seq);
                if let Some(m) = self.members.get_mut(&worker) {
                    m.writes += 1;
                    m.pending = m.pending.saturating_sub(1);
                }
                if self.cfg.relay && !self.following {
                    // Every worker learns the value from the master, in the same batch as
                    // the grants this commit frees up.
                    let msg = Message::new(
                        &self.cfg.run_id,
                        sender,
                        Body::Append { seq, worker, value },
                    );
                    self.out.push_back(Output::Publish {
                        route: Route::Broadcast,
                        msg,
                    });
                }
                if self.following {
                    // The active master grants the next turn.
                } else if self.cfg.pace_ms > 0 {
                    self.next_grant_at = Some(now.saturating_add(self.cfg.pace_ms));
                } else {
                    self.fill_window(now);
                }
                Ok(())
            }
        }
    }

    fn on_result(
        &mut self,
        now: Millis,
        worker: WorkerId,
        entries: Vec<Entry>,
        rejected: u64,
    ) -> Result<(), Rejection> {
        if !matches!(self.phase, Phase::Collecting { .. }) {
            return Err(refused(format!("result from {worker} before the end")));
        }
        match self.members.get(&worker) {
            None => return Err(refused(format!("result from non-member {worker}"))),
            Some(m) if m.evicted => {
                return Err(refused(format!("result from evicted worker {worker}")));
            }
            Some(_) => {}
        }
        self.results.entry(worker).or_insert(WorkerReport {
            entries,
            rejected,
            at_ms: now,
        });
        let survivors = self.members.values().filter(|m| !m.evicted).count();
        if self.results.len() >= survivors {
            self.finish(now, RunOutcome::Completed);
        }
        Ok(())
    }

    fn start(&mut self, now: Millis) {
        self.phase = Phase::Granting;
        self.started_at = Some(now);
        tracing::info!(workers = self.members.len(), "all workers joined; starting");
        self.publish_start();
        self.fill_window(now);
    }

    fn publish_start(&mut self) {
        let body = Body::Start {
            epoch: self.epoch,
            workers: self.members.keys().copied().collect(),
            rounds: self.cfg.rounds,
            min: self.cfg.min,
            max: self.cfg.max,
            relay: self.cfg.relay,
            topology: self.cfg.topology,
            durable: self.cfg.durable,
            queue_type: self.cfg.queue_type,
        };
        self.publish(Route::Broadcast, body);
    }

    /// Grants turns until `window` are outstanding; ends the run when every live worker
    /// has written `rounds` times. A round is finished (its outstanding grants settled)
    /// before the next one starts, so "each worker once per round" holds at any window.
    fn fill_window(&mut self, now: Millis) {
        let window = if self.cfg.pace_ms > 0 {
            1
        } else {
            self.cfg.window.max(1)
        };
        while self.leases.len() < window {
            let round = self.round;
            let eligible: Vec<WorkerId> = self
                .members
                .iter()
                .filter(|(_, m)| !m.evicted && m.writes + m.pending < round)
                .map(|(id, _)| *id)
                .collect();
            if eligible.is_empty() {
                if !self.leases.is_empty() {
                    return; // the round's last grants are still out
                }
                if self.round < self.cfg.rounds && self.members.values().any(|m| !m.evicted) {
                    self.round += 1;
                    continue;
                }
                self.end(now);
                return;
            }
            let worker = eligible[self.rng.random_range(0..eligible.len())];
            let seq = self.grants.len() as Seq + 1;
            self.grants.push(GrantRecord {
                seq,
                worker,
                round,
                granted_at_ms: now,
                outcome: GrantOutcome::Pending,
            });
            if let Some(m) = self.members.get_mut(&worker) {
                m.pending += 1;
            }
            self.leases
                .insert(seq, now.saturating_add(self.cfg.lease_ms));
            self.publish(
                Route::Broadcast,
                Body::Grant {
                    seq,
                    worker,
                    lease_ms: self.cfg.lease_ms,
                },
            );
        }
    }

    /// Voids every grant whose lease has run out and evicts its worker; the turns go to
    /// others.
    fn evict_expired(&mut self, now: Millis) {
        let expired: Vec<Seq> = self
            .leases
            .iter()
            .filter(|(_, l)| now >= **l)
            .map(|(s, _)| *s)
            .collect();
        for seq in expired {
            self.leases.remove(&seq);
            let Some(grant) = seq
                .checked_sub(1)
                .and_then(|i| self.grants.get_mut(i as usize))
            else {
                continue;
            };
            if grant.outcome != GrantOutcome::Pending {
                continue;
            }
            grant.outcome = GrantOutcome::Evicted { at_ms: now };
            let worker = grant.worker;
            if let Some(m) = self.members.get_mut(&worker) {
                m.evicted = true;
                m.pending = 0;
            }
            let reason = format!("no append within the {} ms lease", self.cfg.lease_ms);
            tracing::warn!(seq, worker, %reason, "evicting worker");
            self.publish(
                Route::Broadcast,
                Body::Evict {
                    seq,
                    worker,
                    reason,
                },
            );
        }
        self.fill_window(now);
    }

    fn end(&mut self, now: Millis) {
        let commits = self
            .grants
            .iter()
            .filter(|g| matches!(g.outcome, GrantOutcome::Committed { .. }))
            .map(|g| Commit {
                seq: g.seq,
                worker: g.worker,
            })
            .collect();
        self.ended_at = Some(now);
        self.publish(Route::Broadcast, Body::End { commits });
        if self.members.values().all(|m| m.evicted) {
            self.finish(now, RunOutcome::Completed);
        } else {
            self.phase = Phase::Collecting {
                until: now.saturating_add(self.cfg.result_timeout_ms),
            };
        }
    }

    fn finish(&mut self, now: Millis, outcome: RunOutcome) {
        self.phase = Phase::Done;
        self.leases.clear();
        // After `end`, a member that is still silent at the results deadline is lost: it
        // wrote its turns (they are committed), then went away before reporting.
        let lost: Vec<WorkerId> = match outcome {
            RunOutcome::Completed if self.ended_at.is_some() => self
                .members
                .iter()
                .filter(|(id, m)| !m.evicted && !self.results.contains_key(id))
                .map(|(id, _)| *id)
                .collect(),
            _ => Vec::new(),
        };
        if !lost.is_empty() {
            tracing::warn!(
                ?lost,
                "no result from these workers before the results deadline: named as lost"
            );
        }
        let record = RunRecord {
            run_id: self.cfg.run_id.clone(),
            expected_workers: self.cfg.workers,
            members: self.members.keys().copied().collect(),
            rounds: self.cfg.rounds,
            min: self.cfg.min,
            max: self.cfg.max,
            grants: self.grants.clone(),
            evicted: self
                .members
                .iter()
                .filter(|(_, m)| m.evicted)
                .map(|(id, _)| *id)
                .collect(),
            lost,
            results: std::mem::take(&mut self.results),
            outcome,
            rejected: self.rejected.clone(),
            started_at_ms: self.started_at,
            ended_at_ms: self.ended_at,
            finished_at_ms: now,
            joined_at_ms: self
                .members
                .iter()
                .filter_map(|(id, m)| m.joined_at_ms.map(|t| (*id, t)))
                .collect(),
        };
        self.out.push_back(Output::Finished(Box::new(record)));
    }

    fn publish(&mut self, route: Route, body: Body) {
        if self.following {
            return;
        }
        let msg = Message::new(&self.cfg.run_id, self.me(), body);
        self.out.push_back(Output::Publish { route, msg });
    }
}

impl StateMachine for Master {
    type Msg = Message;
    type Finished = Box<RunRecord>;
    /// One delivery from the master's queue or the results queue. `Err` means: reject the
    /// delivery (it has been counted); the run goes on either way.
    fn handle(&mut self, now: Millis, bytes: &[u8]) -> Result<(), Rejection> {
        let result = crate::algorithms::list::protocol::decode(bytes, &self.cfg.run_id)
            .and_then(|m| self.on_message(now, m));
        if let Err(r) = &result {
            self.count_rejection(r);
        }
        result
    }
    /// When [`Master::handle_timeout`] must be called next, if ever.
    fn next_timeout(&self) -> Option<Millis> {
        if self.following {
            let collecting = match self.phase {
                Phase::Collecting { until } => Some(until),
                _ => None,
            };
            return earliest([collecting, self.cfg.deadline]);
        }
        let phase = match self.phase {
            Phase::Joining { until } | Phase::Collecting { until } => Some(until),
            Phase::Granting => self
                .leases
                .values()
                .min()
                .copied()
                .into_iter()
                .chain(self.next_grant_at)
                .min(),
            Phase::Done => return None,
        };
        earliest([phase, self.cfg.deadline])
    }
    /// Acts on every deadline that has passed at `now`.
    fn handle_timeout(&mut self, now: Millis) {
        if self.is_done() {
            return;
        }
        if self.following {
            // Leases and joins are the active master's business; a standby only stops at
            // the run's deadline or when the results it saw are all it will see.
            let collected = matches!(self.phase, Phase::Collecting { until } if now >= until);
            if self.cfg.deadline.is_some_and(|d| now >= d) || collected {
                let outcome = if collected {
                    RunOutcome::Completed
                } else {
                    RunOutcome::Aborted {
                        reason: "the run's deadline passed while in standby".into(),
                    }
                };
                self.finish(now, outcome);
            }
            return;
        }
        if self.cfg.deadline.is_some_and(|d| now >= d) {
            match self.phase {
                Phase::Collecting { .. } => self.finish(now, RunOutcome::Completed),
                Phase::Joining { .. } => {
                    let reason = self.join_shortfall();
                    self.abort(now, reason)
                }
                _ => self.abort(
                    now,
                    format!(
                        "the run did not finish within its timeout ({} of {} turns done)",
                        self.progress().0,
                        self.progress().1
                    ),
                ),
            }
            return;
        }
        match self.phase {
            Phase::Joining { until } if now >= until => {
                let joined = self.members.len();
                if joined >= self.cfg.min_workers.max(1) {
                    tracing::warn!(
                        joined,
                        expected = self.cfg.workers,
                        "join timeout: starting with the workers that joined"
                    );
                    self.start(now);
                } else {
                    let reason = self.join_shortfall();
                    self.abort(now, reason);
                }
            }
            Phase::Granting if self.leases.values().any(|&l| now >= l) => {
                self.evict_expired(now);
            }
            Phase::Granting if self.next_grant_at.is_some_and(|t| now >= t) => {
                self.next_grant_at = None;
                self.fill_window(now);
            }
            Phase::Collecting { until } if now >= until => {
                self.finish(now, RunOutcome::Completed);
            }
            _ => {}
        }
    }
    /// The next message to publish or the final record, in order.
    fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }
    fn interrupt(&mut self, now: Millis, reason: String) {
        self.abort(now, reason)
    }
    /// The master packs a step's messages into `batch` messages under its own sender:
    /// N workers get one delivery for the lot instead of one per message.
    fn pack(&self, step: Vec<(Route, Message)>, max: usize) -> Vec<(Route, Message)> {
        super::protocol::coalesce(step, self.me(), max)
    }
}

#[cfg(test)]
#[path = "master_tests.rs"]
mod tests;
