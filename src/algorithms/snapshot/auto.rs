//! The master of the random mode (`sync-run snapshot --nodes N`), as a [`StateMachine`]:
//! creates the nodes, starts them transferring on their own, has the observer begin
//! snapshots at random nodes while the transfers go on (one after another, or several at
//! once with `--concurrent`), collects each, and stops everything once every node is idle
//! and every snapshot collected.

use super::master::{Desk, MasterEnd, MasterOutcome, SnapshotSeen, answer_cmd};
use super::protocol::{Auto, Body, Cmd, Message, Money, Role, SnapshotId, Who};
use crate::contract::{Millis, Output, PeerId, Rejection, Route, StateMachine};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};

/// The random mode's shape.
#[derive(Debug, Clone)]
pub struct AutoConfig {
    pub nodes: u32,
    pub balance: Money,
    pub auto: Auto,
    pub concurrent: bool,
    /// A run in which no participant answers anything for this long is stopped.
    pub reply_timeout: Millis,
    pub deadline: Option<Millis>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Creating,
    Starting,
    Running,
}

/// The random mode's master.
pub struct AutoMaster {
    desk: Desk,
    cfg: AutoConfig,
    rng: StdRng,
    phase: Phase,
    pending: BTreeSet<PeerId>,
    phase_cmd: Cmd,
    started_at: Millis,
    /// Snapshot → the command of its `BeginAt` / `CollectAll`.
    begin_cmds: BTreeMap<Cmd, SnapshotId>,
    collect_cmds: BTreeMap<Cmd, SnapshotId>,
    next_snapshot: SnapshotId,
    snapshots: Vec<SnapshotSeen>,
    idle: BTreeSet<PeerId>,
    last_heard: Millis,
    rejected: u64,
    over: bool,
}

impl AutoMaster {
    pub fn new(run: &str, cfg: AutoConfig, seed: u64, now: Millis) -> Self {
        let mut m = AutoMaster {
            desk: Desk::new(run),
            cfg,
            rng: StdRng::seed_from_u64(seed),
            phase: Phase::Creating,
            pending: BTreeSet::new(),
            phase_cmd: 0,
            started_at: 0,
            begin_cmds: BTreeMap::new(),
            collect_cmds: BTreeMap::new(),
            next_snapshot: 1,
            snapshots: Vec::new(),
            idle: BTreeSet::new(),
            last_heard: now,
            rejected: 0,
            over: false,
        };
        let cmd = m.desk.next_cmd();
        m.phase_cmd = cmd;
        let all: Vec<PeerId> = m.nodes();
        for k in &all {
            let body = Body::Create {
                cmd,
                balance: m.cfg.balance,
                peers: all.clone(),
                auto: Some(m.cfg.auto),
            };
            m.desk.send(Route::Peer(*k), body);
        }
        m.pending = all.into_iter().collect();
        m
    }

    fn nodes(&self) -> Vec<PeerId> {
        (1..=self.cfg.nodes).collect()
    }

    /// When snapshot `i` is due: spread over the transfers (one after another), or all
    /// within a few steps of the middle (`--concurrent`).
    fn due(&self, i: SnapshotId) -> Millis {
        let a = &self.cfg.auto;
        let span = u64::from(a.transfers) * a.step_ms.max(1);
        let i = u64::from(i);
        let s = u64::from(a.snapshots);
        if self.cfg.concurrent {
            self.started_at + span / 3 + (i - 1) * a.step_ms.max(1)
        } else {
            self.started_at + i * span / (s + 1)
        }
    }

    /// Begins every snapshot that is due (and, one after another, whose predecessor is
    /// collected).
    fn begin_due(&mut self, now: Millis) {
        while self.phase == Phase::Running
            && self.next_snapshot <= self.cfg.auto.snapshots
            && now >= self.due(self.next_snapshot)
            && (self.cfg.concurrent
                || self
                    .snapshots
                    .last()
                    .is_none_or(|s| s.collected_ms.is_some()))
        {
            let id = self.next_snapshot;
            self.next_snapshot += 1;
            let node = self.rng.random_range(1..=self.cfg.nodes);
            let nodes = self.nodes();
            let (cmd, seen) = self.desk.begin(id, node, nodes, now);
            self.begin_cmds.insert(cmd, id);
            self.snapshots.push(seen);
        }
    }

    /// When silence means a participant is gone: `reply_timeout` after the last message
    /// heard, and never before the transfers can have ended.
    fn stall_at(&self) -> Millis {
        let a = &self.cfg.auto;
        let busy_until = match self.phase {
            Phase::Running => self.started_at + u64::from(a.transfers) * a.step_ms + a.max_delay_ms,
            _ => 0,
        };
        self.last_heard.max(busy_until) + self.cfg.reply_timeout
    }

    fn maybe_end(&mut self) {
        let all_collected = self.snapshots.len() == self.cfg.auto.snapshots as usize
            && self.snapshots.iter().all(|s| s.collected_ms.is_some());
        if self.phase == Phase::Running
            && self.idle.len() == self.cfg.nodes as usize
            && all_collected
        {
            self.stop(MasterOutcome::Completed);
        }
    }

    fn stop(&mut self, outcome: MasterOutcome) {
        if self.over {
            return;
        }
        let cmd = self.desk.next_cmd();
        for k in self.nodes() {
            self.desk.send(Route::Peer(k), Body::Stop { cmd });
        }
        self.desk.send(Route::Role("observer"), Body::Stop { cmd });
        self.over = true;
        self.desk.out.push_back(Output::Finished(MasterEnd {
            outcome,
            printed: Vec::new(),
            notes: Vec::new(),
            snapshots: std::mem::take(&mut self.snapshots),
            rejected: self.rejected,
        }));
    }

    fn on(&mut self, from: Who, body: Body, now: Millis) -> Result<(), Rejection> {
        match (from, body) {
            (Who::Node(k), Body::Done { cmd }) if cmd == self.phase_cmd => {
                self.pending.remove(&k);
                if self.pending.is_empty() {
                    match self.phase {
                        Phase::Creating => {
                            self.phase = Phase::Starting;
                            let cmd = self.desk.next_cmd();
                            self.phase_cmd = cmd;
                            for k in self.nodes() {
                                self.desk.send(Route::Peer(k), Body::Start { cmd });
                            }
                            self.pending = self.nodes().into_iter().collect();
                            self.started_at = now;
                        }
                        Phase::Starting => self.phase = Phase::Running,
                        Phase::Running => {}
                    }
                }
            }
            (Who::Node(k), Body::Idle) if (1..=self.cfg.nodes).contains(&k) => {
                self.idle.insert(k);
            }
            (Who::Role(Role::Observer), Body::Started { cmd, snapshot, .. })
                if self.begin_cmds.get(&cmd) == Some(&snapshot) =>
            {
                self.begin_cmds.remove(&cmd);
                let cmd = self.desk.next_cmd();
                self.collect_cmds.insert(cmd, snapshot);
                let body = Body::CollectAll {
                    cmd,
                    snapshot,
                    nodes: self.nodes(),
                    wait: true,
                };
                self.desk.send(Route::Role("observer"), body);
            }
            (
                Who::Role(Role::Observer),
                Body::Collected {
                    cmd,
                    snapshot,
                    states,
                },
            ) if self.collect_cmds.get(&cmd) == Some(&snapshot) => {
                self.collect_cmds.remove(&cmd);
                if let Some(s) = self.snapshots.iter_mut().find(|s| s.id == snapshot) {
                    s.collected_ms = Some(now);
                    s.states = states;
                }
            }
            // A redelivered answer, already acted on.
            (_, b) if answer_cmd(&b).is_some() || matches!(b, Body::Idle) => {}
            (who, b) => {
                return Err(Rejection::Refused(format!(
                    "an unexpected {} from {who:?} at the master",
                    b.kind()
                )));
            }
        }
        Ok(())
    }
}

impl StateMachine for AutoMaster {
    type Msg = Message;
    type Finished = MasterEnd;

    fn handle(&mut self, now: Millis, bytes: &[u8]) -> Result<(), Rejection> {
        if self.over {
            return Ok(());
        }
        let r = Message::decode(bytes, &self.desk.run).and_then(|m| self.on(m.from, m.body, now));
        if let Err(e) = &r {
            self.rejected += 1;
            tracing::warn!(reason = %e, "master rejected a delivery");
            return r;
        }
        self.last_heard = now;
        self.begin_due(now);
        self.maybe_end();
        Ok(())
    }

    fn next_timeout(&self) -> Option<Millis> {
        if self.over {
            return None;
        }
        let mut t = self.stall_at();
        if self.phase == Phase::Running && self.next_snapshot <= self.cfg.auto.snapshots {
            t = t.min(self.due(self.next_snapshot));
        }
        Some(self.cfg.deadline.map_or(t, |d| d.min(t)))
    }

    fn handle_timeout(&mut self, now: Millis) {
        if self.over {
            return;
        }
        if self.cfg.deadline.is_some_and(|d| now >= d) {
            self.stop(MasterOutcome::DeadlineExpired);
        } else if now >= self.stall_at() {
            let waiting_for = match self.phase {
                Phase::Creating | Phase::Starting => format!("node(s) {:?}", self.pending),
                Phase::Running => {
                    let busy: Vec<PeerId> = self
                        .nodes()
                        .into_iter()
                        .filter(|k| !self.idle.contains(k))
                        .collect();
                    format!("nodes {busy:?} to finish, or the observer")
                }
            };
            self.stop(MasterOutcome::Stalled {
                line: 0,
                waiting_for,
            });
        } else {
            self.begin_due(now);
            self.maybe_end();
        }
    }

    fn poll_output(&mut self) -> Option<Output<Message, MasterEnd>> {
        self.desk.out.pop_front()
    }

    fn interrupt(&mut self, _now: Millis, reason: String) {
        self.stop(MasterOutcome::Interrupted { reason });
    }
}
