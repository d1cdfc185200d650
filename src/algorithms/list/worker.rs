//! The worker's logic as a state machine: bytes in (plus the current time), messages out.
//!
//! A worker joins (re-sending its join until the master's `start` arrives, so it may start
//! before or after the master), writes a random value when granted a turn, and places every
//! append it receives by its grant's sequence number. Nothing depends on the order in
//! which the broker delivers messages from different publishers:
//!
//! * an append may arrive before its grant: it is held, and checked when the grant comes;
//! * an append may arrive twice: the second copy is recognised and ignored;
//! * an append may arrive after its grant was voided by `evict`: it is fenced out, and an
//!   append accepted earlier for a voided grant is dropped when the `evict` comes;
//! * `end` may arrive before the last appends: the worker waits for them.
//!
//! Grants, evictions and the end come from the master alone, so they reach every worker
//! in the same order; that and the sequence numbers are what make the lists identical.

use super::protocol::{
    Body, Commit, Entry, Message, QueueType, Rejection, Sender, Seq, Topology, WorkerId,
};
use crate::contract::{Millis, Route, StateMachine, earliest, refused};
use rand::{Rng, RngCore};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub run_id: String,
    pub id: WorkerId,
    /// Random per process: tells a restarted worker from a duplicate id.
    pub instance: u64,
    /// How often the join is re-sent until `start` arrives.
    pub join_retry_ms: Millis,
    /// The whole run's deadline (`--timeout`), on the caller's clock.
    pub deadline: Option<Millis>,
    /// What this worker was started with; `start` says what the run uses, and a
    /// difference ends the worker with [`WorkerOutcome::Mismatch`].
    pub topology: Topology,
    pub durable: bool,
    pub queue_type: QueueType,
    /// `--master-user`: accept messages that claim to come from the master only when the
    /// broker-validated AMQP `user_id` of their delivery is this user.
    pub master_user: Option<String>,
}

/// How a worker's run ended. Serialised (tag `outcome`) in the worker's `--json` document.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum WorkerOutcome {
    /// The run ended; this is the worker's final list (also sent to the results queue).
    Completed { entries: Vec<Entry> },
    /// The master evicted this worker (it missed its lease for grant `seq`).
    Evicted { seq: Seq },
    /// The run started without this worker.
    NotAdmitted,
    /// The master aborted the run.
    Aborted { reason: String },
    /// The run's deadline passed first; `entries` appends had arrived.
    TimedOut { entries: usize },
    /// The run's `start` announced options this worker was not started with (topology,
    /// durability): it leaves instead of taking part with the wrong ones.
    Mismatch { reason: String },
}

/// What the worker wants done; it finishes with its outcome.
pub type Output = crate::contract::Output<Message, WorkerOutcome>;

#[derive(Debug, Clone, Copy)]
struct Rules {
    master: u64,
    epoch: u32,
    min: i64,
    max: i64,
    /// Where this worker's appends go: the master (which relays them) or the fanout.
    relay: bool,
}

pub struct Worker {
    cfg: WorkerConfig,
    rng: Box<dyn RngCore + Send>,
    /// Set by `start`.
    rules: Option<Rules>,
    next_join: Option<Millis>,
    grants: BTreeMap<Seq, WorkerId>,
    voided: BTreeSet<Seq>,
    /// Evicted workers and the grant they lost: nothing of theirs after it is valid.
    evicted: BTreeMap<WorkerId, Seq>,
    /// Appends received, by seq; each checked against its grant when both are known.
    appends: BTreeMap<Seq, (WorkerId, i64)>,
    /// Values this worker wrote, so a redelivered grant never produces a second value.
    written: BTreeMap<Seq, i64>,
    end: Option<Vec<Commit>>,
    rejected: u64,
    heard_master: bool,
    done: bool,
    out: VecDeque<Output>,
}

impl Worker {
    pub fn new(cfg: WorkerConfig, rng: Box<dyn RngCore + Send>, now: Millis) -> Self {
        let mut w = Worker {
            cfg,
            rng,
            rules: None,
            next_join: None,
            grants: BTreeMap::new(),
            voided: BTreeSet::new(),
            evicted: BTreeMap::new(),
            appends: BTreeMap::new(),
            written: BTreeMap::new(),
            end: None,
            rejected: 0,
            heard_master: false,
            done: false,
            out: VecDeque::new(),
        };
        w.send_join(now);
        w
    }

    pub fn id(&self) -> WorkerId {
        self.cfg.id
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// Whether a master of the run has spoken: a `start` arrived, whether or not this
    /// worker took part after it (it may not have been admitted, or started with other
    /// options). A worker that never heard one cleans up what a master would have.
    pub fn heard_master(&self) -> bool {
        self.heard_master
    }

    fn on_message(&mut self, msg: Message, publisher: Option<&str>) -> Result<(), Rejection> {
        if let (Sender::Master { .. }, Some(required)) = (msg.from, &self.cfg.master_user)
            && publisher != Some(required.as_str())
        {
            return Err(refused(format!(
                "{} claims to come from the master but was published by {}, not by the master's user {required:?} (--master-user)",
                msg.body.kind(),
                publisher.map_or("an unidentified user".to_string(), |u| format!(
                    "user {u:?}"
                ))
            )));
        }
        match (msg.from, msg.body) {
            (Sender::Master { .. }, Body::Batch { messages }) => {
                // The parts are decoded and checked one by one, exactly as if each had
                // come alone (including the sender checks: a batch may open with `start`);
                // the master's validated user vouches for the parts it relays.
                for part in messages {
                    let handled = part
                        .decode(&self.cfg.run_id)
                        .and_then(|inner| self.on_message(inner, publisher));
                    if let Err(r) = handled {
                        self.rejected += 1;
                        tracing::warn!(worker = self.cfg.id, rejection = %r, "worker rejected part of a batch");
                    }
                    if self.done {
                        break;
                    }
                }
                Ok(())
            }
            (Sender::Worker { id, .. }, Body::Append { seq, worker, value }) => {
                if id != worker {
                    return Err(refused(format!(
                        "worker {id} sent an append on behalf of {worker}"
                    )));
                }
                self.on_append(seq, worker, value)
            }
            (Sender::Worker { id, .. }, body) => Err(refused(format!(
                "worker {id} may not broadcast {} messages",
                body.kind()
            ))),
            (Sender::Master { instance }, body) => {
                if let Some(rules) = self.rules {
                    if let Body::Start { epoch, .. } = body
                        && epoch > rules.epoch
                    {
                        // A standby took over: follow the master of the newer epoch.
                        tracing::info!(
                            worker = self.cfg.id,
                            epoch,
                            instance,
                            "following a new master"
                        );
                        self.rules = Some(Rules {
                            master: instance,
                            epoch,
                            ..rules
                        });
                        return Ok(());
                    }
                    if rules.master != instance {
                        return Err(refused(format!(
                            "{} from master instance {instance}, but this run's master is {}",
                            body.kind(),
                            rules.master
                        )));
                    }
                } else if !matches!(body, Body::Start { .. } | Body::Abort { .. }) {
                    return Err(refused(format!("{} before start", body.kind())));
                }
                self.on_master(instance, body)
            }
        }
    }

    fn on_master(&mut self, instance: u64, body: Body) -> Result<(), Rejection> {
        match body {
            Body::Start {
                workers,
                min,
                max,
                epoch,
                relay,
                topology,
                durable,
                queue_type,
                ..
            } => {
                self.heard_master = true;
                if self.rules.is_some() {
                    return Ok(()); // repeated for a latecomer
                }
                if min > max {
                    return Err(refused(format!("start with min {min} > max {max}")));
                }
                let mut differences = Vec::new();
                if topology != self.cfg.topology {
                    differences.push(format!(
                        "the run uses --topology {topology}, this worker --topology {}",
                        self.cfg.topology
                    ));
                }
                if durable != self.cfg.durable {
                    differences.push(if durable {
                        "the run is durable; start this worker with --durable".to_string()
                    } else {
                        "the run is not durable; start this worker without --durable".to_string()
                    });
                }
                if queue_type != self.cfg.queue_type {
                    differences.push(format!(
                        "the run uses --queue-type {queue_type}, this worker --queue-type {}",
                        self.cfg.queue_type
                    ));
                }
                if !differences.is_empty() {
                    self.finish(WorkerOutcome::Mismatch {
                        reason: differences.join("; "),
                    });
                    return Ok(());
                }
                if !workers.contains(&self.cfg.id) {
                    self.finish(WorkerOutcome::NotAdmitted);
                    return Ok(());
                }
                self.rules = Some(Rules {
                    master: instance,
                    epoch,
                    min,
                    max,
                    relay,
                });
                self.next_join = None;
                // Appends held before `start` can be checked for range now.
                let held: Vec<_> = std::mem::take(&mut self.appends).into_iter().collect();
                for (seq, (w, v)) in held {
                    if let Err(r) = self.on_append(seq, w, v) {
                        // Accepted when it came (the range was not known yet): counted now.
                        self.rejected += 1;
                        tracing::warn!(worker = self.cfg.id, rejection = %r, "dropped a held append");
                    }
                }
                Ok(())
            }
            Body::Grant { seq, worker, .. } => self.on_grant(seq, worker),
            Body::Evict { seq, worker, .. } => {
                self.voided.insert(seq);
                self.evicted.insert(worker, seq);
                if self.appends.get(&seq).is_some_and(|(w, _)| *w == worker) {
                    self.appends.remove(&seq);
                    tracing::debug!(seq, worker, "dropped an append whose grant was voided");
                }
                if worker == self.cfg.id {
                    self.finish(WorkerOutcome::Evicted { seq });
                }
                self.try_finish();
                Ok(())
            }
            Body::End { commits } => {
                if self.end.is_none() {
                    self.end = Some(commits);
                }
                self.try_finish();
                Ok(())
            }
            Body::Abort { reason } => {
                self.finish(WorkerOutcome::Aborted { reason });
                Ok(())
            }
            other => Err(refused(format!(
                "the master does not send {} messages",
                other.kind()
            ))),
        }
    }

    fn on_grant(&mut self, seq: Seq, worker: WorkerId) -> Result<(), Rejection> {
        match self.grants.get(&seq) {
            Some(w) if *w == worker => return Ok(()), // redelivered
            Some(w) => {
                return Err(refused(format!(
                    "grant {seq} to {worker}, but it was granted to {w}"
                )));
            }
            None => {}
        }
        self.grants.insert(seq, worker);
        if let Some((held, _)) = self.appends.get(&seq)
            && *held != worker
        {
            self.appends.remove(&seq);
            self.rejected += 1;
            tracing::warn!(
                seq,
                worker,
                "dropped an append from a worker that was not granted"
            );
        }
        if worker == self.cfg.id && !self.written.contains_key(&seq) {
            let Some(rules) = self.rules else {
                return Ok(());
            };
            let value = self.rng.random_range(rules.min..=rules.max);
            tracing::debug!(worker, seq, value, "granted; appending");
            self.written.insert(seq, value);
            let route = if rules.relay {
                Route::Coordinator
            } else {
                Route::Broadcast
            };
            self.publish(route, Body::Append { seq, worker, value });
        }
        Ok(())
    }

    fn on_append(&mut self, seq: Seq, worker: WorkerId, value: i64) -> Result<(), Rejection> {
        if let Some(r) = self.rules
            && !(r.min..=r.max).contains(&value)
        {
            return Err(refused(format!(
                "append for seq {seq}: value {value} outside {}..={}",
                r.min, r.max
            )));
        }
        // Fence by sequence number, not by worker: an earlier append of a worker evicted
        // later was committed and may still be on its way here.
        if self.voided.contains(&seq) || self.evicted.get(&worker).is_some_and(|s| seq >= *s) {
            return Err(refused(format!(
                "append for seq {seq} from evicted worker {worker} (fenced)"
            )));
        }
        if let Some(granted) = self.grants.get(&seq)
            && *granted != worker
        {
            return Err(refused(format!(
                "append for seq {seq} from {worker}, but it was granted to {granted}"
            )));
        }
        match self.appends.get(&seq) {
            Some(&(w, v)) if w == worker && v == value => return Ok(()), // duplicate
            Some(&(w, v)) => {
                return Err(refused(format!(
                    "conflicting append for seq {seq}: have {v} from {w}, got {value} from {worker}"
                )));
            }
            None => {}
        }
        self.appends.insert(seq, (worker, value));
        self.try_finish();
        Ok(())
    }

    /// After `end`: report the list once every committed append is here.
    fn try_finish(&mut self) {
        if self.done {
            return;
        }
        let Some(commits) = &self.end else { return };
        let mut entries = Vec::with_capacity(commits.len());
        for c in commits {
            match self.appends.get(&c.seq) {
                Some(&(w, value)) if w == c.worker => entries.push(Entry {
                    seq: c.seq,
                    worker: w,
                    value,
                }),
                _ => return, // still in flight
            }
        }
        let extra = self.appends.len() - entries.len();
        if extra > 0 {
            tracing::warn!(
                worker = self.cfg.id,
                extra,
                "holds appends the master did not commit; they are left out"
            );
            self.rejected += extra as u64;
        }
        self.publish(
            Route::Results,
            Body::Result {
                worker: self.cfg.id,
                entries: entries.clone(),
                rejected: self.rejected,
            },
        );
        self.finish(WorkerOutcome::Completed { entries });
    }

    fn send_join(&mut self, now: Millis) {
        self.publish(
            Route::Coordinator,
            Body::Join {
                worker: self.cfg.id,
            },
        );
        self.next_join = Some(now.saturating_add(self.cfg.join_retry_ms.max(1)));
    }

    fn finish(&mut self, outcome: WorkerOutcome) {
        if !self.done {
            self.done = true;
            self.next_join = None;
            self.out.push_back(Output::Finished(outcome));
        }
    }

    fn publish(&mut self, route: Route, body: Body) {
        let from = Sender::Worker {
            id: self.cfg.id,
            instance: self.cfg.instance,
        };
        let msg = Message::new(&self.cfg.run_id, from, body);
        self.out.push_back(Output::Publish { route, msg });
    }
}

impl StateMachine for Worker {
    type Msg = Message;
    type Finished = WorkerOutcome;
    /// One delivery from this worker's queue. `Err`: reject the delivery (counted).
    fn handle(&mut self, now: Millis, bytes: &[u8]) -> Result<(), Rejection> {
        self.handle_from(now, bytes, None)
    }
    /// [`Worker::handle`] for a delivery whose AMQP `user_id` the broker validated
    /// (`publisher`): with `--master-user`, only that user speaks for the master.
    fn handle_from(
        &mut self,
        _now: Millis,
        bytes: &[u8],
        publisher: Option<&str>,
    ) -> Result<(), Rejection> {
        if self.done {
            return Ok(());
        }
        let result = crate::algorithms::list::protocol::decode(bytes, &self.cfg.run_id)
            .and_then(|m| self.on_message(m, publisher));
        if let Err(r) = &result {
            self.rejected += 1;
            tracing::warn!(worker = self.cfg.id, rejection = %r, "worker rejected a message");
        }
        result
    }
    fn next_timeout(&self) -> Option<Millis> {
        if self.done {
            return None;
        }
        earliest([self.next_join, self.cfg.deadline])
    }
    fn handle_timeout(&mut self, now: Millis) {
        if self.done {
            return;
        }
        if self.cfg.deadline.is_some_and(|d| now >= d) {
            let entries = self.appends.len();
            self.finish(WorkerOutcome::TimedOut { entries });
            return;
        }
        if self.next_join.is_some_and(|t| now >= t) {
            self.send_join(now);
        }
    }
    fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }
    fn interrupt(&mut self, _now: Millis, reason: String) {
        self.finish(WorkerOutcome::Aborted { reason })
    }
}

#[cfg(test)]
#[path = "worker_tests.rs"]
mod tests;
