//! Any participant of a market run as one machine type (the simulator and `sync-run
//! market` drive the clerk and the peers together), and the settings they are built from.

use super::clerk::Clerk;
use super::graph::{Market, PeerSpec};
use super::peer::{Peer, PeerConfig};
use super::protocol::Message;
use super::report::{ClerkReport, PeerReport};
use crate::contract::{Millis, PeerId};

/// What every participant of a run agrees on, besides the market itself.
#[derive(Debug, Clone)]
pub struct Setup {
    pub run_id: String,
    pub hop_count: u32,
    pub lookups: u32,
    pub retries: u32,
    pub restock: u64,
    pub reply_window_ms: Millis,
    pub buy_retry_ms: Millis,
    pub buy_timeout_ms: Millis,
    pub deadline: Option<Millis>,
    pub seed: u64,
}

impl Setup {
    /// Peer `spec` of `market`.
    pub fn peer(&self, market: &Market, spec: &PeerSpec) -> Peer {
        Peer::new(PeerConfig {
            run_id: self.run_id.clone(),
            id: spec.id,
            role: spec.role,
            neighbors: spec.neighbors.clone(),
            hop_count: self.hop_count,
            product: spec.product.clone(),
            stock: spec.stock.unwrap_or(0).max(0) as u64,
            restock: self.restock,
            products: market.products.clone(),
            wants: spec.wants.clone(),
            lookups: self.lookups,
            retries: self.retries,
            reply_window_ms: self.reply_window_ms,
            buy_retry_ms: self.buy_retry_ms,
            buy_timeout_ms: self.buy_timeout_ms,
            // The clerk closes the market at the deadline; a peer reports on its own a
            // little later, when no close came (the clerk is gone).
            deadline: self.deadline.map(|d| d.saturating_add(PEER_GRACE_MS)),
            seed: self.seed,
        })
    }

    /// What the checker is told the run of `market` was asked to do.
    pub fn expect(&self, market: &Market) -> super::Expect {
        super::Expect {
            peers: market.ids(),
            buyers: market.buyers(),
            lookups: self.lookups,
            retries: self.retries,
            hop_count: self.hop_count,
            links: market.links(),
            stalls: market
                .peers
                .iter()
                .filter_map(|p| {
                    let product = p.product.clone()?;
                    Some((p.id, (product, p.stock.unwrap_or(0).max(0) as u64)))
                })
                .collect(),
            restock: self.restock,
        }
    }

    /// The clerk of `market`'s run: it closes the market at the deadline, a little before
    /// the peers would report on their own.
    pub fn clerk(&self, market: &Market) -> Clerk {
        Clerk::new(&self.run_id, market.ids(), market.buyers(), self.deadline)
    }
}

/// How long after the deadline a peer that got no `close` reports on its own.
pub const PEER_GRACE_MS: Millis = 5_000;

/// How any participant ended.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Ended {
    Clerk(ClerkReport),
    Peer(PeerReport),
}

crate::contract::roles::roles! {
    /// Any participant.
    #[allow(clippy::large_enum_variant)]
    pub enum Part: Message => Ended {
        Clerk(Clerk) => Ended::Clerk,
        Peer(Peer) => Ended::Peer,
    }
}

/// The simulator's id of the clerk (peers keep their ids).
pub const CLERK_ID: PeerId = u32::MAX;
