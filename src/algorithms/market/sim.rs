//! The market on the generic simulator ([`crate::sim`]): the clerk and the peers as one
//! machine type, their routing, and a whole run in memory under a calm or hostile
//! schedule. tests/sim_market.rs runs thousands.

use super::checks::Proof;
use super::graph::Market;
pub use super::participant::{CLERK_ID, Ended, Part, Setup};
use super::protocol::{self, CLERK, Report};
use super::report::{ClerkReport, PeerReport};
use crate::contract::{PeerId, Route};
use crate::sim::{SimConfig, SimRun};

/// The run id used in memory.
pub const RUN: &str = "sim";

/// Where a route goes in memory.
pub fn route(_from: PeerId, r: Route) -> Vec<PeerId> {
    match r {
        Route::Peer(k) => vec![k],
        Route::Role(CLERK) => vec![CLERK_ID],
        _ => Vec::new(),
    }
}

/// Settings for a run in memory: a reply window of 10 s and buys given up after 60 s
/// (longer than any stall or time step a hostile schedule draws, so that the outcome of
/// a case does not depend on the schedule; the property test draws shorter ones), buys
/// retried after 200 ms, a deadline far off (virtual time is cheap).
pub fn setup(hop_count: u32, lookups: u32, retries: u32, seed: u64) -> Setup {
    Setup {
        run_id: RUN.into(),
        hop_count,
        lookups,
        retries,
        restock: 2,
        reply_window_ms: 10_000,
        buy_retry_ms: 200,
        buy_timeout_ms: 60_000,
        deadline: Some(600_000),
        seed,
    }
}

/// Every participant of a run, with its simulator id.
pub fn participants(market: &Market, s: &Setup) -> Vec<(PeerId, Part)> {
    let mut parts = vec![(CLERK_ID, Part::Clerk(s.clerk(market)))];
    for p in &market.peers {
        parts.push((p.id, Part::Peer(s.peer(market, p))));
    }
    parts
}

/// A run in memory: the reports as published on the results route, and the proof.
pub struct SimOutcome {
    pub run: SimRun<Ended>,
    pub peers: Vec<PeerReport>,
    pub clerk: Option<ClerkReport>,
    pub proof: Proof,
}

/// Runs `market` in memory under `cfg`, schedule from `sim_seed`.
pub fn run(market: &Market, s: &Setup, cfg: &SimConfig, sim_seed: u64) -> SimOutcome {
    let run = crate::sim::run(participants(market, s), route, cfg, sim_seed);
    let (mut peers, mut clerk) = (Vec::<PeerReport>::new(), None);
    // The verdict reads the reports as published, the first of each participant's, as
    // the real reader does.
    for (from, bytes) in &run.results {
        match protocol::decode_report(bytes, RUN) {
            Ok(Report::Peer(r)) if r.id == *from && !peers.iter().any(|x| x.id == r.id) => {
                peers.push(r)
            }
            Ok(Report::Clerk(r)) if *from == CLERK_ID && clerk.is_none() => clerk = Some(r),
            _ => {}
        }
    }
    peers.sort_by_key(|r| r.id);
    let proof = super::verify(&s.expect(market), &peers, clerk.as_ref());
    SimOutcome {
        run,
        peers,
        clerk,
        proof,
    }
}
