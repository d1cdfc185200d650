//! What the market's participants report at the end, the checker's only input: each peer
//! its neighbours, every lookup that reached it (with its path), what it forwarded,
//! replied and relayed; a seller its stock ledger; a buyer its lookups, the replies that
//! came back (with the peers they passed) and its buys with their answers. Times are on
//! the peer's own millisecond clock.

use super::graph::Role;
use super::lookup::LookupId;
use crate::contract::{Millis, PeerId};
use serde::{Deserialize, Serialize};

/// How a peer ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerEnd {
    /// The clerk closed the market.
    Closed,
    /// `--run-timeout` passed first.
    TimedOut,
    /// Stopped (Ctrl-C): why.
    Interrupted(String),
}

impl std::fmt::Display for PeerEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerEnd::Closed => f.write_str("closed"),
            PeerEnd::TimedOut => f.write_str("timed out"),
            PeerEnd::Interrupted(why) => write!(f, "interrupted: {why}"),
        }
    }
}

/// A lookup that reached this peer, as it came (a broker's redelivery of the same message
/// is recorded once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arrival {
    pub id: LookupId,
    pub path: Vec<PeerId>,
    pub hops: u32,
    /// The first time this peer saw the lookup (only then it replies and forwards).
    pub first: bool,
    pub at: Millis,
}

/// A lookup this peer sent on (a buyer: its own), once per lookup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Forward {
    pub id: LookupId,
    /// The path as sent (ending with this peer).
    pub path: Vec<PeerId>,
    pub hops: u32,
    pub to: Vec<PeerId>,
    pub at: Millis,
}

/// A reply this seller sent for a lookup that reached it with `path`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replied {
    pub id: LookupId,
    pub product: String,
    pub path: Vec<PeerId>,
    pub at: Millis,
}

/// A reply this peer passed on, towards `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Relayed {
    pub id: LookupId,
    pub seller: PeerId,
    pub to: PeerId,
    pub at: Millis,
}

/// One change to a seller's stock, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case", deny_unknown_fields)]
pub enum Ledger {
    /// `items` of `product` put on the stall (the first stock, and each restock).
    Stocked { product: String, items: u64 },
    /// One item sold to `buyer` for its request `req`.
    Sold {
        buyer: PeerId,
        req: u64,
        product: String,
        at: Millis,
    },
    /// A buy refused: not this product, or none left.
    Refused {
        buyer: PeerId,
        req: u64,
        product: String,
        at: Millis,
    },
}

/// A seller's side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StallReport {
    pub ledger: Vec<Ledger>,
    /// Buys that came again (a retry, a duplicate: answered from the record; an older
    /// one come late: dropped) and were not applied again.
    pub answered_again: u64,
    /// What is on the stall at the end.
    pub product: String,
    pub stock: u64,
}

/// One lookup a buyer sent: when, with which hop count, and what came back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Round {
    pub id: LookupId,
    pub product: String,
    pub hop_count: u32,
    pub sent_at: Millis,
    /// The replies, in the order they came (one per seller).
    pub replies: Vec<Got>,
}

/// A reply that reached its buyer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Got {
    pub seller: PeerId,
    /// The peers it passed, in order (the lookup's path reversed, without the buyer).
    pub via: Vec<PeerId>,
    pub at: Millis,
    /// It came after the reply window had closed.
    pub late: bool,
}

/// A buy and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bought {
    pub req: u64,
    pub seller: PeerId,
    pub product: String,
    pub lookup: LookupId,
    pub sent_at: Millis,
    /// Times it was sent (1 + retries).
    pub sends: u32,
    /// `Some(yes)`: the seller's answer (whenever it came, a late one too); `None`: none
    /// came before this report.
    pub sold: Option<bool>,
    pub answered_at: Option<Millis>,
}

/// How one of a buyer's `--lookups` ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quest {
    pub product: String,
    pub started_at: Millis,
    /// The lookups it took (1 + retries at most).
    pub rounds: u32,
    /// The buy that said yes, by request id; `None`: the buyer gave up.
    pub bought: Option<u64>,
    pub ended_at: Millis,
}

/// A buyer's side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuyerReport {
    pub quests: Vec<Quest>,
    pub rounds: Vec<Round>,
    pub buys: Vec<Bought>,
    /// Sellers that did not answer a buy within `--buy-timeout`.
    pub timed_out_on: Vec<PeerId>,
}

/// A peer's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerReport {
    pub id: PeerId,
    pub role: Role,
    pub neighbors: Vec<PeerId>,
    pub hop_count: u32,
    pub outcome: PeerEnd,
    /// Deliveries refused (malformed, another run, not for this peer).
    pub rejected: u64,
    pub arrivals: Vec<Arrival>,
    pub forwards: Vec<Forward>,
    pub replied: Vec<Replied>,
    pub relayed: Vec<Relayed>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stall: Option<StallReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buyer: Option<BuyerReport>,
}

/// The clerk's report: which buyers said they were done, and why the market closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClerkReport {
    /// Whether every peer said it was ready (and so the market opened).
    pub opened: bool,
    /// Peers that never said they were ready (never started, or crashed first).
    pub not_ready: Vec<PeerId>,
    pub done: Vec<PeerId>,
    /// Buyers that never said so (crashed, or still going at `--run-timeout`).
    pub missing: Vec<PeerId>,
    pub reason: String,
    pub rejected: u64,
}
