//! The observer: starts snapshots at the node the master names and gathers every node's
//! recorded state, as a [`StateMachine`]. Nodes push their state once it is complete;
//! `CollectState` in a script asks the ones that have not for their state as far as
//! recorded, so a script that collects early gets an answer instead of a hang.

use super::node::publish;
use super::protocol::{Body, Cmd, Message, Role, SnapshotId, Who};
use super::report::Recorded;
use crate::contract::{Millis, Output, PeerId, Rejection, Route, StateMachine};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// A `CollectAll` being answered.
#[derive(Debug)]
struct Collecting {
    cmd: Cmd,
    snapshot: SnapshotId,
    nodes: Vec<PeerId>,
    wait: bool,
    /// Nodes asked for their state now (not waiting), still to answer.
    asked: BTreeSet<PeerId>,
}

/// How the observer ended: every state it gathered, by snapshot and node.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ObserverEnd {
    pub states: BTreeMap<SnapshotId, BTreeMap<PeerId, Recorded>>,
    pub rejected: u64,
}

/// The observer.
pub struct Observer {
    run: String,
    deadline: Option<Millis>,
    last_cmd: Cmd,
    /// `BeginAt` commands sent on to their node, by command.
    begins: BTreeMap<Cmd, PeerId>,
    collecting: Vec<Collecting>,
    states: BTreeMap<SnapshotId, BTreeMap<PeerId, Recorded>>,
    rejected: u64,
    out: VecDeque<Output<Message, ObserverEnd>>,
    over: bool,
}

impl Observer {
    pub fn new(run: &str, deadline: Option<Millis>) -> Self {
        Observer {
            run: run.to_owned(),
            deadline,
            last_cmd: 0,
            begins: BTreeMap::new(),
            collecting: Vec::new(),
            states: BTreeMap::new(),
            rejected: 0,
            out: VecDeque::new(),
            over: false,
        }
    }

    fn send(&mut self, route: Route, body: Body) {
        publish(
            &mut self.out,
            &self.run,
            Who::Role(Role::Observer),
            route,
            body,
        );
    }

    fn finish(&mut self) {
        if !self.over {
            self.over = true;
            self.out.push_back(Output::Finished(ObserverEnd {
                states: std::mem::take(&mut self.states),
                rejected: self.rejected,
            }));
        }
    }

    /// Answers every collection that has what it needs.
    fn answer_ready(&mut self) {
        let mut i = 0;
        while i < self.collecting.len() {
            let c = &self.collecting[i];
            let have = self.states.get(&c.snapshot);
            let ready = c.asked.is_empty()
                && c.nodes.iter().all(|k| {
                    have.and_then(|h| h.get(k))
                        .is_some_and(|r| !c.wait || r.complete())
                });
            if ready {
                let c = self.collecting.remove(i);
                let have = self.states.get(&c.snapshot);
                let states = c
                    .nodes
                    .iter()
                    .filter_map(|k| have.and_then(|h| h.get(k)).map(|r| (*k, r.clone())))
                    .collect();
                self.send(
                    Route::Role("master"),
                    Body::Collected {
                        cmd: c.cmd,
                        snapshot: c.snapshot,
                        states,
                    },
                );
            } else {
                i += 1;
            }
        }
    }

    fn fresh(&mut self, cmd: Cmd) -> bool {
        if cmd <= self.last_cmd {
            return false;
        }
        self.last_cmd = cmd;
        true
    }

    fn reject(&mut self, r: Rejection) -> Result<(), Rejection> {
        self.rejected += 1;
        tracing::warn!(reason = %r, "observer rejected a delivery");
        Err(r)
    }
}

impl StateMachine for Observer {
    type Msg = Message;
    type Finished = ObserverEnd;

    fn handle(&mut self, _now: Millis, bytes: &[u8]) -> Result<(), Rejection> {
        if self.over {
            return Ok(());
        }
        let msg = match Message::decode(bytes, &self.run) {
            Ok(m) => m,
            Err(r) => return self.reject(r),
        };
        match (msg.from, msg.body) {
            (
                Who::Role(Role::Master),
                Body::BeginAt {
                    cmd,
                    snapshot,
                    node,
                },
            ) => {
                if self.fresh(cmd) {
                    self.begins.insert(cmd, node);
                    self.send(Route::Peer(node), Body::Begin { cmd, snapshot });
                }
            }
            (
                Who::Role(Role::Master),
                Body::CollectAll {
                    cmd,
                    snapshot,
                    nodes,
                    wait,
                },
            ) => {
                if self.fresh(cmd) {
                    let mut asked = BTreeSet::new();
                    if !wait {
                        let have = self.states.get(&snapshot);
                        for k in &nodes {
                            if !have.and_then(|h| h.get(k)).is_some_and(Recorded::complete) {
                                asked.insert(*k);
                            }
                        }
                        for k in &asked {
                            self.send(Route::Peer(*k), Body::Collect { cmd, snapshot });
                        }
                    }
                    self.collecting.push(Collecting {
                        cmd,
                        snapshot,
                        nodes,
                        wait,
                        asked,
                    });
                }
            }
            (Who::Role(Role::Master), Body::Stop { cmd }) => {
                if self.fresh(cmd) {
                    self.finish();
                }
            }
            (
                Who::Node(k),
                Body::Began {
                    cmd,
                    snapshot,
                    relayed,
                },
            ) => {
                if self.begins.get(&cmd) == Some(&k) {
                    self.begins.remove(&cmd);
                    self.send(
                        Route::Role("master"),
                        Body::Started {
                            cmd,
                            snapshot,
                            node: k,
                            relayed,
                        },
                    );
                }
            }
            (
                Who::Node(k),
                Body::State {
                    cmd,
                    snapshot,
                    state,
                },
            ) => {
                let slot = self.states.entry(snapshot).or_default();
                // A complete state is final; a partial one is replaced by a later one.
                if !slot.get(&k).is_some_and(Recorded::complete) {
                    slot.insert(k, state);
                }
                if let Some(cmd) = cmd {
                    for c in &mut self.collecting {
                        if c.cmd == cmd {
                            c.asked.remove(&k);
                        }
                    }
                } else {
                    // A pushed complete state also answers a pending ask.
                    for c in &mut self.collecting {
                        if c.snapshot == snapshot {
                            c.asked.remove(&k);
                        }
                    }
                }
            }
            (from, body) => {
                return self.reject(Rejection::Refused(format!(
                    "a {} from {from:?} at the observer",
                    body.kind()
                )));
            }
        }
        self.answer_ready();
        Ok(())
    }

    fn next_timeout(&self) -> Option<Millis> {
        if self.over { None } else { self.deadline }
    }

    fn handle_timeout(&mut self, now: Millis) {
        if self.deadline.is_some_and(|d| now >= d) {
            self.finish();
        }
    }

    fn poll_output(&mut self) -> Option<Output<Message, ObserverEnd>> {
        self.out.pop_front()
    }

    fn interrupt(&mut self, _now: Millis, _reason: String) {
        self.finish();
    }
}
