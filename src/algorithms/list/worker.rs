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
use crate::contract::{Millis, Route, StateMachine};
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

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    pub fn next_timeout(&self) -> Option<Millis> {
        if self.done {
            return None;
        }
        [self.next_join, self.cfg.deadline]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn handle_timeout(&mut self, now: Millis) {
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

    /// Whether a master of the run has spoken: a `start` arrived, whether or not this
    /// worker took part after it (it may not have been admitted, or started with other
    /// options). A worker that never heard one cleans up what a master would have.
    pub fn heard_master(&self) -> bool {
        self.heard_master
    }

    /// One delivery from this worker's queue. `Err`: reject the delivery (counted).
    pub fn handle(&mut self, now: Millis, bytes: &[u8]) -> Result<(), Rejection> {
        self.handle_from(now, bytes, None)
    }

    /// [`Worker::handle`] for a delivery whose AMQP `user_id` the broker validated
    /// (`publisher`): with `--master-user`, only that user speaks for the master.
    pub fn handle_from(
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

fn refused(why: String) -> Rejection {
    Rejection::Refused(why)
}

impl StateMachine for Worker {
    type Msg = Message;
    type Finished = WorkerOutcome;
    fn handle(&mut self, now: Millis, bytes: &[u8]) -> Result<(), Rejection> {
        Worker::handle(self, now, bytes)
    }
    fn handle_from(
        &mut self,
        now: Millis,
        bytes: &[u8],
        publisher: Option<&str>,
    ) -> Result<(), Rejection> {
        Worker::handle_from(self, now, bytes, publisher)
    }
    fn next_timeout(&self) -> Option<Millis> {
        Worker::next_timeout(self)
    }
    fn handle_timeout(&mut self, now: Millis) {
        Worker::handle_timeout(self, now)
    }
    fn poll_output(&mut self) -> Option<Output> {
        Worker::poll_output(self)
    }
    fn interrupt(&mut self, _now: Millis, reason: String) {
        self.finish(WorkerOutcome::Aborted { reason })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const M: Sender = Sender::Master { instance: 1 };

    fn worker(id: WorkerId) -> Worker {
        let cfg = WorkerConfig {
            run_id: "t".into(),
            id,
            instance: 5,
            join_retry_ms: 100,
            deadline: None,
            topology: Default::default(),
            durable: false,
            queue_type: Default::default(),
            master_user: None,
        };
        Worker::new(cfg, Box::new(StdRng::seed_from_u64(id as u64)), 0)
    }

    fn m(body: Body) -> Vec<u8> {
        Message::new("t", M, body).encode().expect("encodes")
    }
    fn parts(msgs: Vec<Message>) -> Vec<crate::algorithms::list::protocol::Part> {
        msgs.iter()
            .map(|m| crate::algorithms::list::protocol::Part::of(m).expect("encodes"))
            .collect()
    }
    fn w(id: WorkerId, body: Body) -> Vec<u8> {
        Message::new("t", Sender::Worker { id, instance: 1 }, body)
            .encode()
            .expect("encodes")
    }
    fn start(workers: Vec<WorkerId>) -> Vec<u8> {
        m(Body::Start {
            epoch: 0,
            workers,
            rounds: 1,
            min: 1,
            max: 100,
            relay: false,
            topology: Default::default(),
            durable: false,
            queue_type: Default::default(),
        })
    }
    fn drain(x: &mut Worker) -> Vec<Output> {
        std::iter::from_fn(|| x.poll_output()).collect()
    }
    fn finished(outs: &[Output]) -> Option<&WorkerOutcome> {
        outs.iter().find_map(|o| match o {
            Output::Finished(f) => Some(f),
            _ => None,
        })
    }

    #[test]
    fn rejoins_until_start() {
        let mut x = worker(1);
        assert_eq!(drain(&mut x).len(), 1);
        x.handle_timeout(100);
        assert_eq!(drain(&mut x).len(), 1, "join re-sent");
        x.handle(150, &start(vec![1, 2])).unwrap();
        assert_eq!(x.next_timeout(), None);
    }

    /// A master's batch is handled part by part, as if each part came alone: it may open
    /// with `start`; a bad part is counted and the others kept; a batch from a worker, or
    /// inside a batch, is refused. With relay, this worker's append goes to the master.
    #[test]
    fn batches_are_handled_part_by_part_and_relay_routes_appends_to_the_master() {
        let mut x = worker(1);
        drain(&mut x);
        let part = |from: Sender, body: Body| Message::new("t", from, body);
        let grant = |seq, worker| Body::Grant {
            seq,
            worker,
            lease_ms: 9,
        };
        let relayed = |seq, worker, value| {
            part(
                Sender::Worker {
                    id: worker,
                    instance: 1,
                },
                Body::Append { seq, worker, value },
            )
        };
        let batch = Message::new(
            "t",
            M,
            Body::Batch {
                messages: parts(vec![
                    part(
                        M,
                        Body::Start {
                            epoch: 0,
                            workers: vec![1, 2],
                            rounds: 1,
                            min: 1,
                            max: 100,
                            relay: true,
                            topology: Default::default(),
                            durable: false,
                            queue_type: Default::default(),
                        },
                    ),
                    part(M, grant(1, 2)),
                    relayed(1, 2, 42),
                    relayed(1, 2, 43), // conflicts with the part before: refused, counted
                    part(M, grant(2, 1)),
                ]),
            },
        )
        .encode()
        .expect("encodes");
        x.handle(1, &batch).unwrap();
        assert_eq!(x.rejected(), 1);
        let outs = drain(&mut x);
        assert!(
            outs.iter().any(|o| matches!(
                o,
                Output::Publish {
                    route: Route::Coordinator,
                    msg: Message {
                        body: Body::Append {
                            seq: 2,
                            worker: 1,
                            ..
                        },
                        ..
                    }
                }
            )),
            "granted with relay: the append goes to the master: {outs:?}"
        );
        let from_worker = Message::new(
            "t",
            Sender::Worker { id: 2, instance: 1 },
            Body::Batch {
                messages: parts(vec![relayed(2, 1, 7)]),
            },
        )
        .encode()
        .expect("encodes");
        assert!(x.handle(2, &from_worker).is_err(), "only a master batches");
        let nested = Message::new(
            "t",
            M,
            Body::Batch {
                messages: parts(vec![Message::new("t", M, Body::Batch { messages: vec![] })]),
            },
        )
        .encode()
        .expect("encodes");
        let before = x.rejected();
        assert!(x.handle(3, &nested).is_ok());
        assert_eq!(
            x.rejected(),
            before + 1,
            "batches do not nest: the part is refused"
        );
        // The relayed append for seq 2 (its own, back from the master) and the end finish it.
        let own = outs
            .iter()
            .find_map(|o| match o {
                Output::Publish {
                    msg:
                        Message {
                            body: Body::Append { value, .. },
                            ..
                        },
                    ..
                } => Some(*value),
                _ => None,
            })
            .unwrap();
        let end = Message::new(
            "t",
            M,
            Body::Batch {
                messages: parts(vec![
                    relayed(2, 1, own),
                    part(
                        M,
                        Body::End {
                            commits: vec![
                                Commit { seq: 1, worker: 2 },
                                Commit { seq: 2, worker: 1 },
                            ],
                        },
                    ),
                ]),
            },
        )
        .encode()
        .expect("encodes");
        x.handle(4, &end).unwrap();
        let done = drain(&mut x);
        assert!(done.iter().any(|o| matches!(o, Output::Finished(WorkerOutcome::Completed { entries }) if entries.iter().map(|e| e.value).collect::<Vec<_>>() == vec![42, own])), "{done:?}");
    }

    #[test]
    fn places_by_seq_whatever_the_arrival_order() {
        let mut x = worker(1);
        x.handle(0, &start(vec![1, 2, 3])).unwrap();
        drain(&mut x);
        // Appends arrive before their grants and in reverse order; one twice.
        x.handle(
            1,
            &w(
                3,
                Body::Append {
                    seq: 2,
                    worker: 3,
                    value: 30,
                },
            ),
        )
        .unwrap();
        x.handle(
            1,
            &w(
                2,
                Body::Append {
                    seq: 1,
                    worker: 2,
                    value: 20,
                },
            ),
        )
        .unwrap();
        x.handle(
            1,
            &w(
                2,
                Body::Append {
                    seq: 1,
                    worker: 2,
                    value: 20,
                },
            ),
        )
        .unwrap();
        x.handle(
            1,
            &m(Body::Grant {
                seq: 1,
                worker: 2,
                lease_ms: 9,
            }),
        )
        .unwrap();
        x.handle(
            1,
            &m(Body::Grant {
                seq: 2,
                worker: 3,
                lease_ms: 9,
            }),
        )
        .unwrap();
        x.handle(
            1,
            &m(Body::Grant {
                seq: 3,
                worker: 1,
                lease_ms: 9,
            }),
        )
        .unwrap();
        let outs = drain(&mut x);
        let my_value = outs
            .iter()
            .find_map(|o| match o {
                Output::Publish {
                    msg:
                        Message {
                            body: Body::Append { seq: 3, value, .. },
                            ..
                        },
                    ..
                } => Some(*value),
                _ => None,
            })
            .expect("granted worker appends");
        // A redelivered grant does not produce a second value.
        x.handle(
            1,
            &m(Body::Grant {
                seq: 3,
                worker: 1,
                lease_ms: 9,
            }),
        )
        .unwrap();
        assert!(drain(&mut x).is_empty());
        let commits = vec![
            Commit { seq: 1, worker: 2 },
            Commit { seq: 2, worker: 3 },
            Commit { seq: 3, worker: 1 },
        ];
        x.handle(2, &m(Body::End { commits })).unwrap();
        assert!(drain(&mut x).is_empty(), "waits for its own append");
        x.handle(
            3,
            &w(
                1,
                Body::Append {
                    seq: 3,
                    worker: 1,
                    value: my_value,
                },
            ),
        )
        .unwrap();
        let outs = drain(&mut x);
        let Some(WorkerOutcome::Completed { entries }) = finished(&outs) else {
            panic!("not completed: {outs:?}")
        };
        let values: Vec<i64> = entries.iter().map(|e| e.value).collect();
        assert_eq!(values, vec![20, 30, my_value]);
    }

    #[test]
    fn evict_fences_late_appends_in_either_order() {
        // Late append before the evict: dropped when the evict arrives.
        let mut a = worker(1);
        a.handle(0, &start(vec![1, 2, 3])).unwrap();
        a.handle(
            0,
            &m(Body::Grant {
                seq: 1,
                worker: 2,
                lease_ms: 9,
            }),
        )
        .unwrap();
        a.handle(
            0,
            &w(
                2,
                Body::Append {
                    seq: 1,
                    worker: 2,
                    value: 7,
                },
            ),
        )
        .unwrap();
        a.handle(
            0,
            &m(Body::Evict {
                seq: 1,
                worker: 2,
                reason: "lease".into(),
            }),
        )
        .unwrap();
        // Late append after the evict: refused.
        let mut b = worker(3);
        b.handle(0, &start(vec![1, 2, 3])).unwrap();
        b.handle(
            0,
            &m(Body::Grant {
                seq: 1,
                worker: 2,
                lease_ms: 9,
            }),
        )
        .unwrap();
        b.handle(
            0,
            &m(Body::Evict {
                seq: 1,
                worker: 2,
                reason: "lease".into(),
            }),
        )
        .unwrap();
        assert!(
            b.handle(
                0,
                &w(
                    2,
                    Body::Append {
                        seq: 1,
                        worker: 2,
                        value: 7
                    }
                )
            )
            .is_err()
        );
        for x in [&mut a, &mut b] {
            x.handle(
                0,
                &m(Body::Grant {
                    seq: 2,
                    worker: 3,
                    lease_ms: 9,
                }),
            )
            .unwrap();
            x.handle(
                0,
                &w(
                    3,
                    Body::Append {
                        seq: 2,
                        worker: 3,
                        value: 8,
                    },
                ),
            )
            .unwrap();
            x.handle(
                0,
                &m(Body::End {
                    commits: vec![Commit { seq: 2, worker: 3 }],
                }),
            )
            .unwrap();
        }
        let la = finished(&drain(&mut a)).cloned();
        let lb = finished(&drain(&mut b)).cloned();
        assert_eq!(la, lb);
        assert!(matches!(la, Some(WorkerOutcome::Completed { entries }) if entries.len() == 1));
    }

    #[test]
    fn refuses_forged_and_unknown_senders() {
        let mut x = worker(1);
        assert!(
            x.handle(
                0,
                &m(Body::Grant {
                    seq: 1,
                    worker: 1,
                    lease_ms: 9
                })
            )
            .is_err(),
            "grant before start"
        );
        x.handle(0, &start(vec![1, 2])).unwrap();
        let stray = Message::new(
            "t",
            Sender::Master { instance: 99 },
            Body::Grant {
                seq: 1,
                worker: 1,
                lease_ms: 9,
            },
        )
        .encode()
        .expect("encodes");
        assert!(x.handle(0, &stray).is_err(), "grant from another master");
        assert!(
            x.handle(
                0,
                &w(
                    2,
                    Body::Grant {
                        seq: 1,
                        worker: 2,
                        lease_ms: 9
                    }
                )
            )
            .is_err(),
            "grant from a worker"
        );
        assert!(
            x.handle(
                0,
                &w(
                    2,
                    Body::Append {
                        seq: 1,
                        worker: 1,
                        value: 3
                    }
                )
            )
            .is_err(),
            "append on behalf of another"
        );
        assert!(
            x.handle(
                0,
                &w(
                    2,
                    Body::Append {
                        seq: 1,
                        worker: 2,
                        value: 1000
                    }
                )
            )
            .is_err(),
            "out of range"
        );
        assert_eq!(x.rejected(), 5);
    }

    #[test]
    fn follows_a_standby_of_a_higher_epoch_and_ignores_the_old_master() {
        let mut x = worker(1);
        x.handle(0, &start(vec![1, 2])).unwrap();
        x.handle(
            0,
            &m(Body::Grant {
                seq: 1,
                worker: 2,
                lease_ms: 9,
            }),
        )
        .unwrap();
        let new = Sender::Master { instance: 2 };
        let takeover = Message::new(
            "t",
            new,
            Body::Start {
                epoch: 1,
                workers: vec![1, 2],
                rounds: 1,
                min: 1,
                max: 100,
                relay: false,
                topology: Default::default(),
                durable: false,
                queue_type: Default::default(),
            },
        )
        .encode()
        .expect("encodes");
        x.handle(0, &takeover).unwrap();
        assert!(
            x.handle(
                0,
                &m(Body::Grant {
                    seq: 2,
                    worker: 1,
                    lease_ms: 9
                })
            )
            .is_err(),
            "old master fenced"
        );
        let grant = Message::new(
            "t",
            new,
            Body::Grant {
                seq: 2,
                worker: 1,
                lease_ms: 9,
            },
        )
        .encode()
        .expect("encodes");
        x.handle(0, &grant).unwrap();
        drain(&mut x);
        // A stale start of an older epoch does not switch back.
        let stale = Message::new(
            "t",
            Sender::Master { instance: 3 },
            Body::Start {
                epoch: 0,
                workers: vec![1, 2],
                rounds: 1,
                min: 1,
                max: 100,
                relay: false,
                topology: Default::default(),
                durable: false,
                queue_type: Default::default(),
            },
        )
        .encode()
        .expect("encodes");
        assert!(x.handle(0, &stale).is_err());
    }

    #[test]
    fn not_admitted_when_start_omits_us() {
        let mut x = worker(9);
        x.handle(0, &start(vec![1, 2])).unwrap();
        assert_eq!(finished(&drain(&mut x)), Some(&WorkerOutcome::NotAdmitted));
    }
}
