//! What every check of the market reads (what the run was asked to do) and how the
//! checks collect what failed. Apart from the checks themselves, so that the files of
//! checks (`checks.rs`, `flood.rs`) share it without importing each other.

use crate::contract::PeerId;
use std::collections::BTreeMap;

/// What the run was asked to do: the market and the options every participant agreed on
/// (never what the driver saw happen).
#[derive(Debug, Clone)]
pub struct Expect {
    pub peers: Vec<PeerId>,
    pub buyers: Vec<PeerId>,
    pub lookups: u32,
    pub retries: u32,
    pub hop_count: u32,
    /// The market's links: a peer's reported neighbours must be these.
    pub links: BTreeMap<PeerId, Vec<PeerId>>,
    /// Each seller's first product and stock.
    pub stalls: BTreeMap<PeerId, (String, u64)>,
    /// Items a restock puts on a stall (`--stock`).
    pub restock: u64,
}

pub(super) fn linked(links: &BTreeMap<PeerId, Vec<PeerId>>, a: PeerId, b: PeerId) -> bool {
    links.get(&a).is_some_and(|l| l.contains(&b))
}

/// Collects up to a few examples of what failed, and counts them all.
#[derive(Default)]
pub(super) struct Faults {
    pub(super) count: usize,
    examples: Vec<String>,
}

impl Faults {
    pub(super) fn add(&mut self, what: impl FnOnce() -> String) {
        self.count += 1;
        if self.examples.len() < 3 {
            self.examples.push(what());
        }
    }
    pub(super) fn detail(&self) -> String {
        format!("{} violation(s): {}", self.count, self.examples.join("; "))
    }
}
