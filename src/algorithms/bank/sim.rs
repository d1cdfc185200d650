//! The bank's participants on the generic simulator ([`crate::sim`]): the sequencer, the
//! branches and the customers as one machine type, their routing, and a whole run in
//! memory under a calm or hostile schedule. tests/sim_bank.rs runs thousands.

use super::input::Input;
pub use super::participant::{Ended, Part, Setup};
use super::protocol::{self, Mode, Report, SEQUENCER};
use super::report::{BranchReport, CustomerReport, SequencerReport};
use crate::contract::{PeerId, Route};
use crate::sim::{SimConfig, SimRun};

/// The simulator's id of the sequencer (branches keep their ids, 1..=1,000,000).
pub const SEQ: PeerId = u32::MAX;
/// Customer k is `CUSTOMERS + k` in the simulator.
pub const CUSTOMERS: PeerId = 2_000_000;
/// The run id used in memory.
pub const RUN: &str = "sim";

/// Where a route goes in memory.
pub fn route(_from: PeerId, r: Route) -> Vec<PeerId> {
    match r {
        Route::Peer(k) => vec![k],
        Route::Client(k) => vec![CUSTOMERS + k],
        Route::Role(SEQUENCER) => vec![SEQ],
        _ => Vec::new(),
    }
}

/// The settings of a run in memory: ordered, customers one after another, a 500 ms
/// retry, no deadline.
pub fn setup() -> Setup {
    Setup {
        run_id: RUN.into(),
        mode: Mode::Ordered,
        sequential: true,
        retry_ms: 500,
        timeout_ms: 60_000,
        deadline: None,
        record: true,
        clock: "sim".into(),
        clock_base: 0,
    }
}

/// Every participant of a run of `input`, with its simulator id.
pub fn participants(input: &Input, s: &Setup) -> Vec<(PeerId, Part)> {
    let mut parts = vec![(SEQ, Part::Sequencer(s.sequencer(input)))];
    for b in &input.branches {
        parts.push((*b, Part::Branch(s.branch(input, *b))));
    }
    for c in &input.customers {
        parts.push((CUSTOMERS + c.id, Part::Customer(s.customer(c, 0))));
    }
    parts
}

/// A run in memory: the reports as published on the results route and the proof.
pub struct SimOutcome {
    pub run: SimRun<Ended>,
    pub branches: Vec<BranchReport>,
    pub customers: Vec<CustomerReport>,
    pub sequencer: Option<SequencerReport>,
    pub proof: super::Proof,
}

/// Runs `input` in memory under `cfg`, schedule from `sim_seed`.
pub fn run(input: &Input, s: &Setup, cfg: &SimConfig, sim_seed: u64) -> SimOutcome {
    let run = crate::sim::run(participants(input, s), route, cfg, sim_seed);
    let (mut branches, mut customers, mut sequencer) = (Vec::new(), Vec::new(), None);
    // The verdict reads the reports as published, the first of each participant's, as
    // the real reader does.
    for (from, bytes) in &run.results {
        match protocol::decode_report(bytes, RUN) {
            Ok(Report::Branch(r))
                if r.id == *from && !branches.iter().any(|x: &BranchReport| x.id == r.id) =>
            {
                branches.push(r)
            }
            Ok(Report::Customer(r))
                if r.id + CUSTOMERS == *from
                    && !customers.iter().any(|x: &CustomerReport| x.id == r.id) =>
            {
                customers.push(r)
            }
            Ok(Report::Sequencer(r)) if *from == SEQ && sequencer.is_none() => sequencer = Some(r),
            _ => {}
        }
    }
    branches.sort_by_key(|r| r.id);
    let order = input.customer_ids();
    customers.sort_by_key(|r| order.iter().position(|c| *c == r.id));
    let proof = super::verify(input, s.mode, &branches, &customers, sequencer.as_ref());
    SimOutcome {
        run,
        branches,
        customers,
        sequencer,
        proof,
    }
}
