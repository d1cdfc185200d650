//! A node of the bank: a balance, a FIFO channel to and from every other node, and the
//! Chandy–Lamport rules, as a [`StateMachine`].
//!
//! A node never takes a message off a channel on its own in the script mode: what arrives
//! on a channel is *held* (left unacknowledged on the broker, [`StateMachine::take_hold`])
//! until the master's `Receive` names that channel; then the head is taken, applied and
//! acknowledged. So a channel's content really is in transit — on the broker, or held
//! unacknowledged by its receiver — until it is received; a lost connection gives it all
//! back to the broker, which delivers it again. In the random mode the node takes each
//! message itself, after a random delay.
//!
//! Snapshots (Chandy–Lamport, several at once, told apart by id): on `Begin`, or on its
//! first marker of a snapshot, a node records its balance, puts a marker on every outgoing
//! channel, and records every incoming channel (but the one the marker came on) until that
//! channel's marker comes. Once every incoming channel's marker has come, the node pushes
//! its complete state to the observer.

use super::protocol::{Auto, Body, Cmd, Content, Message, Money, Put, Role, SnapshotId, Who};
use super::report::{ChannelRecord, Event, NodeReport, Outcome, Recorded};
use crate::contract::fifo::Sequencer;
use crate::contract::{HoldId, Millis, Output, PeerId, Rejection, Route, StateMachine};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Queues `body` from `from` for `route` in a snapshot participant's outbox `out` (the
/// nodes, the observer and both masters send alike).
pub(super) fn publish<F>(
    out: &mut VecDeque<Output<Message, F>>,
    run: &str,
    from: Who,
    route: Route,
    body: Body,
) {
    out.push_back(Output::Publish {
        route,
        msg: Message::new(run, from, body),
    });
}

/// Most messages a node holds on one channel ahead of the next to take.
pub const WINDOW: u64 = 100_000;

/// A message on one of the node's incoming channels, not yet taken.
#[derive(Debug, Clone, Copy)]
struct Held {
    content: Content,
    hold: HoldId,
    /// Random mode: when the node takes it.
    ready_at: Millis,
}

/// One snapshot at this node.
#[derive(Debug, Clone)]
struct Snap {
    balance: Money,
    /// Incoming channels still recorded (their marker has not come), and what they hold.
    recording: BTreeMap<PeerId, Vec<(u64, Money)>>,
    /// Channels whose marker has come, with what was recorded on them.
    done: BTreeMap<PeerId, Vec<(u64, Money)>>,
    pushed: bool,
}

impl Snap {
    fn recorded(&self) -> Recorded {
        let mut channels: Vec<ChannelRecord> = self
            .done
            .iter()
            .map(|(k, t)| ChannelRecord {
                from: *k,
                transfers: t.clone(),
                complete: true,
            })
            .chain(self.recording.iter().map(|(k, t)| ChannelRecord {
                from: *k,
                transfers: t.clone(),
                complete: false,
            }))
            .collect();
        channels.sort_by_key(|c| c.from);
        Recorded {
            balance: Some(self.balance),
            channels,
        }
    }
}

/// The random mode's own state.
#[derive(Debug)]
struct Autonomy {
    cfg: Auto,
    rng: StdRng,
    started: bool,
    sent: u32,
    next_send: Millis,
    closed_out: bool,
    closed_in: BTreeSet<PeerId>,
    idle: bool,
}

/// A node.
pub struct Node {
    run: String,
    id: PeerId,
    deadline: Option<Millis>,
    balance: Money,
    peers: BTreeSet<PeerId>,
    /// Numbers what it puts on each outgoing channel (the house's per-channel `seq`).
    out_seq: Sequencer,
    taken: BTreeMap<PeerId, u64>,
    held: BTreeMap<PeerId, BTreeMap<u64, Held>>,
    next_hold: HoldId,
    hold_now: Option<HoldId>,
    /// The last command handled from the master and from the observer: a command at or
    /// below it is a redelivery.
    last_cmd: BTreeMap<Role, Cmd>,
    /// A `Receive` waiting for its channel's head to arrive.
    waiting: Option<(Cmd, PeerId)>,
    snaps: BTreeMap<SnapshotId, Snap>,
    auto: Option<Autonomy>,
    events: Vec<Event>,
    rejected: u64,
    out: VecDeque<Output<Message, NodeReport>>,
    over: bool,
}

impl Node {
    /// Node `id` of run `run`; it waits for the master's `create`. Past `deadline` (if
    /// any) it reports and ends on its own.
    pub fn new(run: &str, id: PeerId, deadline: Option<Millis>) -> Self {
        Node {
            run: run.to_owned(),
            id,
            deadline,
            balance: 0,
            peers: BTreeSet::new(),
            out_seq: Sequencer::default(),
            taken: BTreeMap::new(),
            held: BTreeMap::new(),
            next_hold: 0,
            hold_now: None,
            last_cmd: BTreeMap::new(),
            waiting: None,
            snaps: BTreeMap::new(),
            auto: None,
            events: Vec::new(),
            rejected: 0,
            out: VecDeque::new(),
            over: false,
        }
    }

    fn send(&mut self, route: Route, body: Body) {
        publish(&mut self.out, &self.run, Who::Node(self.id), route, body);
    }

    fn tell_master(&mut self, body: Body) {
        self.send(Route::Role("master"), body);
    }

    fn tell_observer(&mut self, body: Body) {
        self.send(Route::Role("observer"), body);
    }

    /// Puts `content` on the channel to `to`.
    fn put(&mut self, to: PeerId, content: Content) -> Put {
        let seq = self.out_seq.stamp(Route::Peer(to));
        self.events.push(Event::Sent { to, seq, content });
        self.send(Route::Peer(to), Body::Channel { to, seq, content });
        Put { to, seq }
    }

    /// Records snapshot `s` (its first marker came on `from`, or `Begin`): the balance,
    /// a marker on every outgoing channel, every other incoming channel recorded.
    fn record(&mut self, s: SnapshotId, from: Option<PeerId>) -> Vec<Put> {
        self.events.push(Event::Recorded {
            snapshot: s,
            balance: self.balance,
        });
        let mut snap = Snap {
            balance: self.balance,
            recording: self
                .peers
                .iter()
                .filter(|k| Some(**k) != from)
                .map(|k| (*k, Vec::new()))
                .collect(),
            done: BTreeMap::new(),
            pushed: false,
        };
        if let Some(k) = from {
            snap.done.insert(k, Vec::new());
        }
        self.snaps.insert(s, snap);
        let peers: Vec<PeerId> = self.peers.iter().copied().collect();
        let relayed = peers
            .into_iter()
            .map(|p| self.put(p, Content::Marker { snapshot: s }))
            .collect();
        self.push_if_complete(s);
        relayed
    }

    fn push_if_complete(&mut self, s: SnapshotId) {
        let Some(snap) = self.snaps.get_mut(&s) else {
            return;
        };
        if snap.recording.is_empty() && !snap.pushed {
            snap.pushed = true;
            let state = snap.recorded();
            self.tell_observer(Body::State {
                cmd: None,
                snapshot: s,
                state,
            });
        }
    }

    /// Takes the head of the channel from `from` if it is here: applies it, releases its
    /// delivery, returns what it was and the markers it made this node relay.
    fn take(&mut self, from: PeerId) -> Option<(u64, Content, Vec<Put>)> {
        let seq = self.taken.get(&from).copied().unwrap_or(0) + 1;
        let h = self.held.get_mut(&from)?.remove(&seq)?;
        self.taken.insert(from, seq);
        self.out.push_back(Output::Release(h.hold));
        self.events.push(Event::Took {
            from,
            seq,
            content: h.content,
        });
        let mut relayed = Vec::new();
        match h.content {
            Content::Transfer { amount } => {
                self.balance = self.balance.saturating_add(amount);
                for snap in self.snaps.values_mut() {
                    if let Some(rec) = snap.recording.get_mut(&from) {
                        rec.push((seq, amount));
                    }
                }
            }
            Content::Marker { snapshot } => match self.snaps.get_mut(&snapshot) {
                None => relayed = self.record(snapshot, Some(from)),
                Some(snap) => {
                    if let Some(rec) = snap.recording.remove(&from) {
                        snap.done.insert(from, rec);
                    }
                    self.push_if_complete(snapshot);
                }
            },
            Content::Close => {
                if let Some(a) = &mut self.auto {
                    a.closed_in.insert(from);
                }
            }
        }
        Some((seq, h.content, relayed))
    }

    /// A `Receive` whose head has arrived: take it and answer.
    fn serve_waiting(&mut self) {
        let Some((cmd, source)) = self.waiting else {
            return;
        };
        if let Some((seq, content, relayed)) = self.take(source) {
            self.waiting = None;
            self.tell_master(Body::Received {
                cmd,
                source,
                seq,
                content,
                relayed,
            });
        }
    }

    fn unread(&self) -> u64 {
        self.held.values().map(|c| c.len() as u64).sum()
    }

    fn finish(&mut self, outcome: Outcome) {
        if self.over {
            return;
        }
        self.over = true;
        let report = NodeReport {
            id: self.id,
            outcome,
            balance: self.balance,
            events: std::mem::take(&mut self.events),
            snapshots: self.snaps.iter().map(|(s, v)| (*s, v.recorded())).collect(),
            unread: self.unread(),
            rejected: self.rejected,
        };
        self.send(
            Route::Results,
            Body::Report {
                report: report.clone(),
            },
        );
        self.out.push_back(Output::Finished(report));
    }

    fn reject(&mut self, r: Rejection) -> Result<(), Rejection> {
        self.rejected += 1;
        tracing::warn!(node = self.id, reason = %r, "rejected a delivery");
        Err(r)
    }

    /// A command from `role`: `false` if it is a redelivery of one already handled.
    fn fresh(&mut self, role: Role, cmd: Cmd) -> bool {
        let last = self.last_cmd.entry(role).or_insert(0);
        if cmd <= *last {
            return false;
        }
        *last = cmd;
        true
    }

    fn on_channel(
        &mut self,
        now: Millis,
        from: PeerId,
        seq: u64,
        content: Content,
    ) -> Result<(), Rejection> {
        if !self.peers.contains(&from) {
            return Err(Rejection::Refused(format!(
                "a channel message from {from}, not a node with a channel to {}",
                self.id
            )));
        }
        let taken = self.taken.get(&from).copied().unwrap_or(0);
        let chan = self.held.entry(from).or_default();
        // Taken already, or held already (a re-publish): a duplicate, acknowledged now.
        if seq <= taken || chan.contains_key(&seq) {
            return Ok(());
        }
        // Memory stays bounded whatever a sender publishes (the house's FIFO window).
        if seq - taken > WINDOW {
            return Err(Rejection::Refused(format!(
                "message {seq} of channel ({from} -> {}) is over {WINDOW} ahead of the next to take",
                self.id
            )));
        }
        let hold = self.next_hold;
        self.next_hold += 1;
        let delay = match &mut self.auto {
            Some(a) if a.cfg.max_delay_ms > 0 => a.rng.random_range(0..=a.cfg.max_delay_ms),
            _ => 0,
        };
        chan.insert(
            seq,
            Held {
                content,
                hold,
                ready_at: now + delay,
            },
        );
        self.hold_now = Some(hold);
        self.serve_waiting();
        Ok(())
    }

    fn on_master(&mut self, now: Millis, body: Body) -> Result<(), Rejection> {
        match body {
            Body::Create {
                cmd,
                balance,
                peers,
                auto,
            } => {
                if self.fresh(Role::Master, cmd) {
                    self.balance = balance;
                    self.peers = peers.into_iter().filter(|p| *p != self.id).collect();
                    self.events.push(Event::Created { balance });
                    self.auto = auto.map(|cfg| Autonomy {
                        rng: StdRng::seed_from_u64(
                            cfg.seed ^ u64::from(self.id).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                        ),
                        cfg,
                        started: false,
                        sent: 0,
                        next_send: 0,
                        closed_out: false,
                        closed_in: BTreeSet::new(),
                        idle: false,
                    });
                    self.tell_master(Body::Done { cmd });
                }
            }
            Body::Join { cmd, node } => {
                if self.fresh(Role::Master, cmd) {
                    if node != self.id {
                        self.peers.insert(node);
                    }
                    self.tell_master(Body::Done { cmd });
                }
            }
            Body::Send { cmd, to, amount } => {
                if self.fresh(Role::Master, cmd) {
                    let seq = if amount <= self.balance && self.peers.contains(&to) {
                        self.balance -= amount;
                        Some(self.put(to, Content::Transfer { amount }).seq)
                    } else {
                        self.events.push(Event::Refused { to, amount });
                        None
                    };
                    self.tell_master(Body::Sent { cmd, to, seq });
                }
            }
            Body::Receive { cmd, source } => {
                if self.fresh(Role::Master, cmd) {
                    self.waiting = Some((cmd, source));
                    self.serve_waiting();
                }
            }
            Body::Start { cmd } => {
                if self.fresh(Role::Master, cmd) {
                    if let Some(a) = &mut self.auto {
                        a.started = true;
                        a.next_send = now;
                    }
                    self.tell_master(Body::Done { cmd });
                    self.auto_step(now);
                }
            }
            Body::Stop { cmd } => {
                if self.fresh(Role::Master, cmd) {
                    self.finish(Outcome::Stopped);
                }
            }
            other => {
                return self.reject(Rejection::Refused(format!(
                    "a {} from the master",
                    other.kind()
                )));
            }
        }
        Ok(())
    }

    fn on_observer(&mut self, body: Body) -> Result<(), Rejection> {
        match body {
            Body::Begin { cmd, snapshot } => {
                if self.fresh(Role::Observer, cmd) {
                    let relayed = if self.snaps.contains_key(&snapshot) {
                        Vec::new()
                    } else {
                        self.record(snapshot, None)
                    };
                    self.tell_observer(Body::Began {
                        cmd,
                        snapshot,
                        relayed,
                    });
                }
            }
            Body::Collect { cmd, snapshot } => {
                if self.fresh(Role::Observer, cmd) {
                    let state = match self.snaps.get(&snapshot) {
                        Some(s) => s.recorded(),
                        None => Recorded {
                            balance: None,
                            channels: Vec::new(),
                        },
                    };
                    self.tell_observer(Body::State {
                        cmd: Some(cmd),
                        snapshot,
                        state,
                    });
                }
            }
            other => {
                return self.reject(Rejection::Refused(format!(
                    "a {} from the observer",
                    other.kind()
                )));
            }
        }
        Ok(())
    }

    /// Random mode: takes what is due, makes the next transfer when its time has come,
    /// closes its channels and says it is idle when all is done.
    fn auto_step(&mut self, now: Millis) {
        let Some(a) = &self.auto else { return };
        if !a.started {
            return;
        }
        // Take every channel's head that has waited long enough, in channel order.
        loop {
            let due: Vec<PeerId> = self
                .held
                .iter()
                .filter(|(k, c)| {
                    let next = self.taken.get(k).copied().unwrap_or(0) + 1;
                    c.get(&next).is_some_and(|h| h.ready_at <= now)
                })
                .map(|(k, _)| *k)
                .collect();
            if due.is_empty() {
                break;
            }
            for k in due {
                self.take(k);
            }
        }
        let Some(a) = &mut self.auto else { return };
        if a.sent < a.cfg.transfers && now >= a.next_send && !self.peers.is_empty() {
            a.sent += 1;
            a.next_send = now + a.cfg.step_ms;
            let peers: Vec<PeerId> = self.peers.iter().copied().collect();
            let to = peers[a.rng.random_range(0..peers.len())];
            let amount = if self.balance == 0 {
                0
            } else {
                a.rng
                    .random_range(1..=self.balance.min(a.cfg.max_amount.max(1)))
            };
            if amount == 0 {
                self.events.push(Event::Refused { to, amount: 1 });
            } else {
                self.balance -= amount;
                self.put(to, Content::Transfer { amount });
            }
        }
        let Some(a) = &self.auto else { return };
        let all_recorded = (1..=a.cfg.snapshots).all(|s| self.snaps.contains_key(&s));
        if (a.sent >= a.cfg.transfers || self.peers.is_empty()) && all_recorded && !a.closed_out {
            let peers: Vec<PeerId> = self.peers.iter().copied().collect();
            for p in peers {
                self.put(p, Content::Close);
            }
            if let Some(a) = &mut self.auto {
                a.closed_out = true;
            }
        }
        let Some(a) = &self.auto else { return };
        if a.closed_out && !a.idle && a.closed_in.len() == self.peers.len() && self.unread() == 0 {
            if let Some(a) = &mut self.auto {
                a.idle = true;
            }
            self.tell_master(Body::Idle);
        }
    }
}

impl StateMachine for Node {
    type Msg = Message;
    type Finished = NodeReport;

    fn handle(&mut self, now: Millis, bytes: &[u8]) -> Result<(), Rejection> {
        self.hold_now = None;
        if self.over {
            return Ok(());
        }
        let msg = match Message::decode(bytes, &self.run) {
            Ok(m) => m,
            Err(r) => return self.reject(r),
        };
        let r = match (msg.from, msg.body) {
            (Who::Node(from), Body::Channel { to, seq, content }) => {
                if to != self.id || from == self.id || seq == 0 {
                    return self.reject(Rejection::Refused(format!(
                        "a channel message {from} -> {to} at node {}",
                        self.id
                    )));
                }
                match self.on_channel(now, from, seq, content) {
                    Ok(()) => Ok(()),
                    Err(r) => self.reject(r),
                }
            }
            (Who::Role(Role::Master), body) => self.on_master(now, body),
            (Who::Role(Role::Observer), body) => self.on_observer(body),
            (Who::Node(k), body) => self.reject(Rejection::Refused(format!(
                "a {} from node {k}",
                body.kind()
            ))),
        };
        if r.is_ok() && !self.over {
            self.auto_step(now);
        }
        r
    }

    fn take_hold(&mut self) -> Option<HoldId> {
        self.hold_now.take()
    }

    fn link_lost(&mut self) {
        // Everything held comes again from the broker, in its channel's order.
        self.held.clear();
    }

    fn next_timeout(&self) -> Option<Millis> {
        if self.over {
            return None;
        }
        let auto = self.auto.as_ref().filter(|a| a.started).and_then(|a| {
            let send = (a.sent < a.cfg.transfers).then_some(a.next_send);
            let take = self
                .held
                .iter()
                .filter_map(|(k, c)| {
                    let next = self.taken.get(k).copied().unwrap_or(0) + 1;
                    c.get(&next).map(|h| h.ready_at)
                })
                .min();
            [send, take].into_iter().flatten().min()
        });
        [auto, self.deadline].into_iter().flatten().min()
    }

    fn handle_timeout(&mut self, now: Millis) {
        if self.over {
            return;
        }
        if self.deadline.is_some_and(|d| now >= d) {
            self.finish(Outcome::DeadlineExpired);
            return;
        }
        self.auto_step(now);
    }

    fn poll_output(&mut self) -> Option<Output<Message, NodeReport>> {
        self.out.pop_front()
    }

    fn interrupt(&mut self, _now: Millis, reason: String) {
        self.finish(Outcome::Interrupted { reason });
    }
}
