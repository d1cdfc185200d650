//! A lookup's id, carried by the market's messages and its reports.

use crate::contract::PeerId;
use serde::{Deserialize, Serialize};

/// A lookup's id: the buyer and its count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupId {
    pub buyer: PeerId,
    pub n: u64,
}

impl std::fmt::Display for LookupId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.buyer, self.n)
    }
}
