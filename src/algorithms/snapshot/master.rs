//! The master of a script run: runs the script's commands one after another, each waiting
//! for its effect, as a [`StateMachine`]. It holds no channel's content: to pick a
//! non-empty channel at random (`Receive TO`, `ReceiveAll`) it counts, per channel, the
//! messages the nodes said they put on it and the ones they said they took. Every answer
//! carries those facts (`sent`'s seq, `received`'s and `began`'s relayed markers), so the
//! counts, and with them the random picks under `--seed`, are the same on every run of a
//! script, whatever the broker's timing.

use super::node::publish;
use super::print::snapshot_block;
use super::protocol::{Body, Cmd, Content, Message, Put, Role, SnapshotId, Who};
use super::report::Recorded;
use super::script::{Command, Line, Script};
use crate::contract::{Millis, Output, PeerId, Rejection, Route, StateMachine};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// How a master (script or random mode) ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum MasterOutcome {
    /// Every command done (or every snapshot collected and every node idle).
    Completed,
    /// A participant did not answer in time: the run was stopped there.
    Stalled { line: usize, waiting_for: String },
    /// The run's deadline passed.
    DeadlineExpired,
    /// Stopped from outside (Ctrl-C).
    Interrupted { reason: String },
}

/// One snapshot as the master saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotSeen {
    pub id: SnapshotId,
    pub initiator: PeerId,
    /// The nodes that existed when it began: its nodes.
    pub nodes: Vec<PeerId>,
    /// When `BeginAt` went out and when every state was in (the driver's ms).
    pub begun_ms: Millis,
    pub collected_ms: Option<Millis>,
    /// The states the observer collected (what `PrintSnapshot` prints).
    pub states: Vec<(PeerId, Recorded)>,
}

/// What the master reports at the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MasterEnd {
    pub outcome: MasterOutcome,
    /// Standard output, line by line.
    pub printed: Vec<String>,
    /// Remarks for standard error (an empty channel to receive from, a snapshot collected
    /// before it was complete).
    pub notes: Vec<String>,
    pub snapshots: Vec<SnapshotSeen>,
    pub rejected: u64,
}

/// What the master waits for.
#[derive(Debug, Clone)]
enum Wait {
    /// `done` from each of these nodes.
    Done(BTreeSet<PeerId>),
    Sent {
        from: PeerId,
    },
    Received {
        to: PeerId,
        print: bool,
    },
    Started,
    Collected,
}

/// What both masters (the script's and the random mode's) speak with: the run they
/// belong to, their last command number and the outputs not yet polled.
pub(super) struct Desk {
    pub(super) run: String,
    cmd: Cmd,
    pub(super) out: VecDeque<Output<Message, MasterEnd>>,
}

impl Desk {
    pub(super) fn new(run: &str) -> Self {
        Desk {
            run: run.to_owned(),
            cmd: 0,
            out: VecDeque::new(),
        }
    }

    /// Queues `body` from the master to `route`.
    pub(super) fn send(&mut self, route: Route, body: Body) {
        publish(
            &mut self.out,
            &self.run,
            Who::Role(Role::Master),
            route,
            body,
        );
    }

    /// A fresh command number: replies name it, so each is answered once.
    pub(super) fn next_cmd(&mut self) -> Cmd {
        self.cmd += 1;
        self.cmd
    }

    /// Begins snapshot `id` at `node`: asks the observer to start it there. Its command
    /// number (the observer's answer names it) and its record, begun `now` over `nodes`.
    pub(super) fn begin(
        &mut self,
        id: SnapshotId,
        node: PeerId,
        nodes: Vec<PeerId>,
        now: Millis,
    ) -> (Cmd, SnapshotSeen) {
        let cmd = self.next_cmd();
        let begin = Body::BeginAt {
            cmd,
            snapshot: id,
            node,
        };
        self.send(Route::Role("observer"), begin);
        let seen = SnapshotSeen {
            id,
            initiator: node,
            nodes,
            begun_ms: now,
            collected_ms: None,
            states: Vec::new(),
        };
        (cmd, seen)
    }
}

/// The script master.
pub struct ScriptMaster {
    desk: Desk,
    lines: Vec<Line>,
    all_nodes: Vec<PeerId>,
    pc: usize,
    rng: StdRng,
    waiting: Option<(Cmd, Wait, Millis)>,
    reply_timeout: Millis,
    deadline: Option<Millis>,
    counts: BTreeMap<(PeerId, PeerId), u64>,
    created: Vec<PeerId>,
    snapshot: SnapshotId,
    snapshots: Vec<SnapshotSeen>,
    printed: Vec<String>,
    notes: Vec<String>,
    rejected: u64,
    over: bool,
}

impl ScriptMaster {
    /// The master of `script` in run `run`; picks with `seed`; a participant silent for
    /// `reply_timeout` stops the run. Issues its first commands at once (time `now`).
    pub fn new(
        run: &str,
        script: &Script,
        seed: u64,
        reply_timeout: Millis,
        deadline: Option<Millis>,
        now: Millis,
    ) -> Self {
        let mut m = ScriptMaster {
            desk: Desk::new(run),
            lines: script.lines.clone(),
            all_nodes: script.nodes(),
            pc: 0,
            rng: StdRng::seed_from_u64(seed),
            waiting: None,
            reply_timeout,
            deadline,
            counts: BTreeMap::new(),
            created: Vec::new(),
            snapshot: 0,
            snapshots: Vec::new(),
            printed: Vec::new(),
            notes: Vec::new(),
            rejected: 0,
            over: false,
        };
        m.advance(now);
        m
    }

    fn wait(&mut self, cmd: Cmd, w: Wait, now: Millis) {
        self.waiting = Some((cmd, w, now + self.reply_timeout));
    }

    fn line_no(&self) -> usize {
        self.lines.get(self.pc).map_or(0, |l| l.number)
    }

    /// Non-empty channels into `to` (or all, if none), ascending.
    fn non_empty(&self, to: Option<PeerId>) -> Vec<(PeerId, PeerId)> {
        self.counts
            .iter()
            .filter(|((_, b), n)| **n > 0 && to.is_none_or(|t| *b == t))
            .map(|(c, _)| *c)
            .collect()
    }

    fn receive(&mut self, from: PeerId, to: PeerId, print: bool, now: Millis) {
        let cmd = self.desk.next_cmd();
        self.desk.send(Route::Peer(to), Body::Receive { cmd, source: from });
        self.wait(cmd, Wait::Received { to, print }, now);
    }

    /// Runs commands until one has to wait for an answer, or the script is done.
    fn advance(&mut self, now: Millis) {
        while self.waiting.is_none() && !self.over {
            let Some(line) = self.lines.get(self.pc).copied() else {
                self.stop(MasterOutcome::Completed);
                return;
            };
            let n = line.number;
            match line.command {
                Command::StartMaster => self.pc += 1,
                Command::CreateNode { id, money } => {
                    let cmd = self.desk.next_cmd();
                    let peers = self.created.clone();
                    self.desk.send(
                        Route::Peer(id),
                        Body::Create {
                            cmd,
                            balance: money,
                            peers: peers.clone(),
                            auto: None,
                        },
                    );
                    for p in &peers {
                        self.desk.send(Route::Peer(*p), Body::Join { cmd, node: id });
                    }
                    let mut set: BTreeSet<PeerId> = peers.into_iter().collect();
                    set.insert(id);
                    self.created.push(id);
                    self.wait(cmd, Wait::Done(set), now);
                }
                Command::Send { from, to, amount } => {
                    let cmd = self.desk.next_cmd();
                    self.desk.send(Route::Peer(from), Body::Send { cmd, to, amount });
                    self.wait(cmd, Wait::Sent { from }, now);
                }
                Command::Receive {
                    to,
                    from: Some(from),
                } => {
                    if self.counts.get(&(from, to)).copied().unwrap_or(0) == 0 {
                        self.notes.push(format!(
                            "line {n}: channel ({from} -> {to}) is empty: nothing received"
                        ));
                        self.pc += 1;
                    } else {
                        self.receive(from, to, true, now);
                    }
                }
                Command::Receive { to, from: None } => {
                    let c = self.non_empty(Some(to));
                    if c.is_empty() {
                        self.notes.push(format!(
                            "line {n}: every channel into node {to} is empty: nothing received"
                        ));
                        self.pc += 1;
                    } else {
                        let (from, _) = c[self.rng.random_range(0..c.len())];
                        self.receive(from, to, true, now);
                    }
                }
                Command::ReceiveAll => {
                    let c = self.non_empty(None);
                    if c.is_empty() {
                        self.pc += 1;
                    } else {
                        let (from, to) = c[self.rng.random_range(0..c.len())];
                        self.receive(from, to, false, now);
                    }
                }
                Command::BeginSnapshot { id } => {
                    self.snapshot += 1;
                    let nodes = self.created.clone();
                    let (cmd, seen) = self.desk.begin(self.snapshot, id, nodes, now);
                    self.snapshots.push(seen);
                    self.wait(cmd, Wait::Started, now);
                }
                Command::CollectState => {
                    let cmd = self.desk.next_cmd();
                    // The snapshot's own nodes (a node created after it began is not in it).
                    let nodes = self
                        .snapshots
                        .iter()
                        .find(|s| s.id == self.snapshot)
                        .map_or_else(|| self.created.clone(), |s| s.nodes.clone());
                    let body = Body::CollectAll {
                        cmd,
                        snapshot: self.snapshot,
                        nodes,
                        wait: false,
                    };
                    self.desk.send(Route::Role("observer"), body);
                    self.wait(cmd, Wait::Collected, now);
                }
                Command::PrintSnapshot => {
                    let states = self
                        .snapshots
                        .iter()
                        .rev()
                        .find(|s| s.collected_ms.is_some())
                        .map(|s| s.states.clone())
                        .unwrap_or_default();
                    self.printed.extend(snapshot_block(&states));
                    self.pc += 1;
                }
                Command::KillAll => {
                    self.stop(MasterOutcome::Completed);
                    return;
                }
            }
        }
    }

    /// Stops every node of the script and the observer, and ends.
    fn stop(&mut self, outcome: MasterOutcome) {
        if self.over {
            return;
        }
        let cmd = self.desk.next_cmd();
        for k in self.all_nodes.clone() {
            self.desk.send(Route::Peer(k), Body::Stop { cmd });
        }
        self.desk.send(Route::Role("observer"), Body::Stop { cmd });
        self.over = true;
        self.desk.out.push_back(Output::Finished(MasterEnd {
            outcome,
            printed: std::mem::take(&mut self.printed),
            notes: std::mem::take(&mut self.notes),
            snapshots: std::mem::take(&mut self.snapshots),
            rejected: self.rejected,
        }));
    }

    fn count_puts(&mut self, node: PeerId, puts: &[Put]) {
        for p in puts {
            *self.counts.entry((node, p.to)).or_insert(0) += 1;
        }
    }

    /// An answer to the command being waited for: `true` if it completed it.
    fn on_answer(&mut self, from: Who, body: Body, now: Millis) -> Result<bool, Rejection> {
        let Some((cmd, wait, _)) = self.waiting.clone() else {
            return Ok(false);
        };
        let refuse = |what: &str| Err(Rejection::Refused(what.to_owned()));
        match (wait, from, body) {
            (Wait::Done(mut set), Who::Node(k), Body::Done { cmd: c }) if c == cmd => {
                set.remove(&k);
                if set.is_empty() {
                    return Ok(true);
                }
                self.waiting = Some((cmd, Wait::Done(set), now + self.reply_timeout));
                Ok(false)
            }
            (Wait::Sent { from }, Who::Node(k), Body::Sent { cmd: c, to, seq }) if c == cmd => {
                if k != from {
                    return refuse("a sent from the wrong node");
                }
                match seq {
                    Some(_) => *self.counts.entry((from, to)).or_insert(0) += 1,
                    None => self.printed.push("ERR_SEND".to_owned()),
                }
                Ok(true)
            }
            (
                Wait::Received { to, print },
                Who::Node(k),
                Body::Received {
                    cmd: c,
                    source,
                    content,
                    relayed,
                    ..
                },
            ) if c == cmd => {
                if k != to {
                    return refuse("a received from the wrong node");
                }
                if let Some(n) = self.counts.get_mut(&(source, to)) {
                    *n = n.saturating_sub(1);
                }
                self.count_puts(to, &relayed);
                if print {
                    self.printed.push(match content {
                        Content::Transfer { amount } => format!("{source} Transfer {amount}"),
                        Content::Marker { .. } => format!("{source} SnapshotToken -1"),
                        Content::Close => format!("{source} Close -1"),
                    });
                }
                Ok(true)
            }
            (
                Wait::Started,
                Who::Role(Role::Observer),
                Body::Started {
                    cmd: c,
                    node,
                    relayed,
                    ..
                },
            ) if c == cmd => {
                self.count_puts(node, &relayed);
                self.printed.push(format!("Started by Node {node}"));
                Ok(true)
            }
            (
                Wait::Collected,
                Who::Role(Role::Observer),
                Body::Collected {
                    cmd: c,
                    snapshot,
                    states,
                },
            ) if c == cmd => {
                let line = self.line_no();
                let early: Vec<PeerId> = states
                    .iter()
                    .filter(|(_, r)| !r.complete())
                    .map(|(k, _)| *k)
                    .collect();
                if !early.is_empty() {
                    self.notes.push(format!(
                        "line {line}: snapshot {snapshot} collected before it was complete at node(s) {early:?} (markers still on their channels: receive them first)"
                    ));
                }
                if let Some(s) = self.snapshots.iter_mut().find(|s| s.id == snapshot) {
                    s.collected_ms = Some(now);
                    s.states = states;
                }
                Ok(true)
            }
            // An answer to an earlier command (a redelivery), or to none.
            (_, _, b) if answer_cmd(&b).is_some_and(|c| c < cmd) => Ok(false),
            (_, who, b) => Err(Rejection::Refused(format!(
                "an unexpected {} from {who:?} at the master",
                b.kind()
            ))),
        }
    }
}

/// The command an answer answers.
pub(super) fn answer_cmd(b: &Body) -> Option<Cmd> {
    match b {
        Body::Done { cmd }
        | Body::Sent { cmd, .. }
        | Body::Received { cmd, .. }
        | Body::Started { cmd, .. }
        | Body::Collected { cmd, .. } => Some(*cmd),
        _ => None,
    }
}

impl StateMachine for ScriptMaster {
    type Msg = Message;
    type Finished = MasterEnd;

    fn handle(&mut self, now: Millis, bytes: &[u8]) -> Result<(), Rejection> {
        if self.over {
            return Ok(());
        }
        let msg = match Message::decode(bytes, &self.desk.run) {
            Ok(m) => m,
            Err(r) => {
                self.rejected += 1;
                return Err(r);
            }
        };
        match self.on_answer(msg.from, msg.body, now) {
            Ok(true) => {
                let receive_all = self
                    .lines
                    .get(self.pc)
                    .is_some_and(|l| l.command == Command::ReceiveAll);
                self.waiting = None;
                // `ReceiveAll` stays on its line until every channel is empty.
                if !receive_all {
                    self.pc += 1;
                }
                self.advance(now);
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(r) => {
                self.rejected += 1;
                tracing::warn!(reason = %r, "master rejected a delivery");
                Err(r)
            }
        }
    }

    fn next_timeout(&self) -> Option<Millis> {
        if self.over {
            return None;
        }
        let w = self.waiting.as_ref().map(|(_, _, t)| *t);
        [w, self.deadline].into_iter().flatten().min()
    }

    fn handle_timeout(&mut self, now: Millis) {
        if self.over {
            return;
        }
        if self.deadline.is_some_and(|d| now >= d) {
            self.stop(MasterOutcome::DeadlineExpired);
            return;
        }
        if let Some((_, w, t)) = &self.waiting
            && now >= *t
        {
            let waiting_for = match w {
                Wait::Done(set) => format!("node(s) {set:?} to be created"),
                Wait::Sent { from } => format!("node {from} to send"),
                Wait::Received { to, .. } => format!("node {to} to receive"),
                Wait::Started => "the observer to start the snapshot".into(),
                Wait::Collected => "the observer to collect the states".into(),
            };
            let line = self.line_no();
            self.stop(MasterOutcome::Stalled { line, waiting_for });
        }
    }

    fn poll_output(&mut self) -> Option<Output<Message, MasterEnd>> {
        self.desk.out.pop_front()
    }

    fn interrupt(&mut self, _now: Millis, reason: String) {
        self.stop(MasterOutcome::Interrupted { reason });
    }
}
