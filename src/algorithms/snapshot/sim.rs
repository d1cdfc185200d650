//! The snapshot's participants on the generic simulator ([`crate::sim`]): master,
//! observer and nodes as one machine type, their routing, and a whole run in memory
//! under a calm or hostile schedule. The tests (tests/sim_snapshot.rs) run thousands.

use super::auto::{AutoConfig, AutoMaster};
use super::master::{MasterEnd, ScriptMaster};
use super::node::Node;
use super::observer::{Observer, ObserverEnd};
use super::protocol::{self, Message};
use super::report::NodeReport;
use super::script::Script;
use crate::contract::{HoldId, Millis, Output, PeerId, Rejection, Route, StateMachine};
use crate::sim::{SimConfig, SimRun};
use crate::verdict::Verdict;

/// The simulator's ids of the two roles (nodes are 1..=1_000_000).
pub const MASTER: PeerId = u32::MAX;
pub const OBSERVER: PeerId = u32::MAX - 1;

/// The run id used in memory.
pub const RUN: &str = "sim";

/// Any participant.
pub enum Part {
    Script(Box<ScriptMaster>),
    Auto(Box<AutoMaster>),
    Observer(Observer),
    Node(Box<Node>),
}

/// How any participant ended.
#[derive(Debug)]
pub enum Ended {
    Master(MasterEnd),
    Observer(ObserverEnd),
    Node(NodeReport),
}

macro_rules! each {
    ($self:ident, $m:ident => $e:expr) => {
        match $self {
            Part::Script($m) => $e,
            Part::Auto($m) => $e,
            Part::Observer($m) => $e,
            Part::Node($m) => $e,
        }
    };
}

impl StateMachine for Part {
    type Msg = Message;
    type Finished = Ended;

    fn handle(&mut self, now: Millis, bytes: &[u8]) -> Result<(), Rejection> {
        each!(self, m => m.handle(now, bytes))
    }
    fn take_hold(&mut self) -> Option<HoldId> {
        each!(self, m => m.take_hold())
    }
    fn link_lost(&mut self) {
        each!(self, m => m.link_lost())
    }
    fn next_timeout(&self) -> Option<Millis> {
        each!(self, m => m.next_timeout())
    }
    fn handle_timeout(&mut self, now: Millis) {
        each!(self, m => m.handle_timeout(now))
    }
    fn poll_output(&mut self) -> Option<Output<Message, Ended>> {
        match self {
            Part::Script(m) => m.poll_output().map(|o| o.map_finished(Ended::Master)),
            Part::Auto(m) => m.poll_output().map(|o| o.map_finished(Ended::Master)),
            Part::Observer(m) => m.poll_output().map(|o| o.map_finished(Ended::Observer)),
            Part::Node(m) => m.poll_output().map(|o| o.map_finished(Ended::Node)),
        }
    }
    fn interrupt(&mut self, now: Millis, reason: String) {
        each!(self, m => m.interrupt(now, reason))
    }
}

/// Where a route goes in memory.
pub fn route(_from: PeerId, r: Route) -> Vec<PeerId> {
    match r {
        Route::Peer(k) => vec![k],
        Route::Role("master") => vec![MASTER],
        Route::Role("observer") => vec![OBSERVER],
        _ => Vec::new(),
    }
}

/// A run in memory and its verdict.
pub struct SimOutcome {
    pub run: SimRun<Ended>,
    pub master: Option<MasterEnd>,
    pub reports: Vec<NodeReport>,
    pub verdict: Verdict,
}

fn finish(run: SimRun<Ended>, nodes: &[PeerId], want: Option<u32>) -> SimOutcome {
    let mut master = None;
    for f in run.finished.values() {
        if let Some(Ended::Master(m)) = f {
            master = Some(m.clone());
        }
    }
    // The verdict reads the reports as published on the results route, as the real
    // reader does (the first of each node's).
    let mut reports: Vec<NodeReport> = Vec::new();
    for (k, bytes) in &run.results {
        if let Ok(r) = protocol::decode_report(bytes, RUN)
            && r.id == *k
            && !reports.iter().any(|x| x.id == r.id)
        {
            reports.push(r);
        }
    }
    reports.sort_by_key(|r| r.id);
    let verdict = super::verify(&reports, nodes, master.as_ref(), want);
    SimOutcome {
        run,
        master,
        reports,
        verdict,
    }
}

/// Runs `script` in memory (picks with `seed`, schedule from `sim_seed`).
pub fn run_script(script: &Script, seed: u64, cfg: &SimConfig, sim_seed: u64) -> SimOutcome {
    let nodes = script.nodes();
    let mut parts: Vec<(PeerId, Part)> = vec![
        (
            MASTER,
            Part::Script(Box::new(ScriptMaster::new(
                RUN, script, seed, 60_000, None, 0,
            ))),
        ),
        (OBSERVER, Part::Observer(Observer::new(RUN, None))),
    ];
    for k in &nodes {
        parts.push((*k, Part::Node(Box::new(Node::new(RUN, *k, None)))));
    }
    finish(crate::sim::run(parts, route, cfg, sim_seed), &nodes, None)
}

/// Runs the random mode in memory.
pub fn run_auto(cfg: AutoConfig, seed: u64, sim: &SimConfig, sim_seed: u64) -> SimOutcome {
    let nodes: Vec<PeerId> = (1..=cfg.nodes).collect();
    let want = Some(cfg.auto.snapshots);
    let mut parts: Vec<(PeerId, Part)> = vec![
        (
            MASTER,
            Part::Auto(Box::new(AutoMaster::new(RUN, cfg, seed, 0))),
        ),
        (OBSERVER, Part::Observer(Observer::new(RUN, None))),
    ];
    for k in &nodes {
        parts.push((*k, Part::Node(Box::new(Node::new(RUN, *k, None)))));
    }
    finish(crate::sim::run(parts, route, sim, sim_seed), &nodes, want)
}
