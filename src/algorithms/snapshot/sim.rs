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
use crate::contract::{PeerId, Route};
use crate::sim::{SimConfig, SimRun};
use crate::verdict::Verdict;

/// The simulator's ids of the two roles (nodes are 1..=1_000_000).
pub const MASTER: PeerId = u32::MAX;
pub const OBSERVER: PeerId = u32::MAX - 1;

/// The run id used in memory.
pub const RUN: &str = "sim";

/// How any participant ended.
#[derive(Debug)]
pub enum Ended {
    Master(MasterEnd),
    Observer(ObserverEnd),
    Node(NodeReport),
}

crate::contract::roles::roles! {
    /// Any participant.
    pub enum Part: Message => Ended {
        Script(Box<ScriptMaster>) => Ended::Master,
        Auto(Box<AutoMaster>) => Ended::Master,
        Observer(Observer) => Ended::Observer,
        Node(Box<Node>) => Ended::Node,
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
