//! The market's wire format: JSON objects with the protocol version `v`, the run id `run`
//! and an explicit `type` (normative text: docs/PROTOCOL.md §16).
//!
//! ```json
//! {"v":1,"run":"r1","type":"lookup","id":{"buyer":1,"n":1},"product":"salt","hops":1,"path":[1]}
//! {"v":1,"run":"r1","type":"reply","id":{"buyer":1,"n":1},"seller":3,"product":"salt","path":[1,2],"via":[]}
//! ```
//!
//! | type | from → to | route |
//! |---|---|---|
//! | `lookup` | buyer or relay → a neighbour | `Peer(n)` |
//! | `reply` | seller or relay → the previous peer of the lookup's path | `Peer(p)` |
//! | `buy` / `answer` | buyer → seller / back, directly | `Peer(k)` |
//! | `ready` | every peer, once it is consuming → the clerk | `Role("clerk")` |
//! | `open` | clerk → every peer, once all are ready | `Peer(k)` |
//! | `done` | buyer → the clerk | `Role("clerk")` |
//! | `close` | clerk → every peer | `Peer(k)` |
//! | `report` | anyone → the results | `Results` |
//!
//! A lookup's id is `(buyer, n)`: `n` counts the buyer's lookups from 1. `hops` is what is
//! left after the hop that carried it, so `hops + len(path)` is the run's hop count. A
//! buy's correlation id is `(buyer, req)`: a retry carries the same one, so a seller
//! answers it again instead of selling twice. Decoding is strict: another version,
//! another run, an unknown field or an oversized body is a [`Rejection`]; the run goes on.

use super::graph::check_product;
pub use super::lookup::LookupId;
use super::report::{ClerkReport, PeerReport};
use crate::contract::{PeerId, Rejection, refused};
use serde::{Deserialize, Serialize};

/// Protocol version carried in every message (`"v": 1`).
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest body accepted. A peer's report carries every lookup it saw with its path; 64
/// MiB holds hundreds of thousands of them.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Longest path (and so hop count) a lookup may carry.
pub const MAX_HOPS: u32 = 1000;

/// The clerk's role name (its inbox `sync-run.market.<run>.clerk`).
pub const CLERK: &str = "clerk";

/// The message types.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[cfg_attr(test, derive(strum::VariantNames))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[strum(serialize_all = "snake_case")]
#[allow(clippy::large_enum_variant)]
pub enum Body {
    /// Who sells `product`? `path`: the buyer first, then every peer that forwarded it, the
    /// last being the sender; `hops`: how many more hops it may travel.
    Lookup {
        id: LookupId,
        product: String,
        hops: u32,
        path: Vec<PeerId>,
    },
    /// `seller` sells `product`: back along `path` (the lookup's, as the seller got it),
    /// `via` the peers it has passed so far. Its next stop is
    /// `path[len(path) - 1 - len(via)]`; at `path[0]`, the buyer, it has arrived.
    Reply {
        id: LookupId,
        seller: PeerId,
        product: String,
        path: Vec<PeerId>,
        via: Vec<PeerId>,
    },
    /// Buyer → seller, directly: sell me one `product`.
    Buy {
        buyer: PeerId,
        req: u64,
        seller: PeerId,
        product: String,
        lookup: LookupId,
    },
    /// Seller → buyer: `sold` yes or no.
    Answer {
        buyer: PeerId,
        req: u64,
        seller: PeerId,
        product: String,
        sold: bool,
    },
    /// A peer is at its stall (consuming its inbox).
    Ready { peer: PeerId },
    /// Every peer is ready: buyers start.
    Open,
    /// A buyer has done all its lookups.
    Done { buyer: PeerId },
    /// The market closes: every peer reports.
    Close { reason: String },
    /// A participant's final report, on the results route.
    Report { report: Report },
}

/// The two kinds of report, told apart by `"by"` (a peer's report has a `role` of its
/// own: buyer or seller).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)]
pub enum Report {
    Peer(PeerReport),
    Clerk(ClerkReport),
}

/// Who reported: the key the reader of the results keeps reports by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Who {
    Clerk,
    Peer(PeerId),
}

impl Report {
    pub fn who(&self) -> Who {
        match self {
            Report::Peer(r) => Who::Peer(r.id),
            Report::Clerk(_) => Who::Clerk,
        }
    }
}

/// A whole message as it travels: the shared envelope ([`crate::contract::Envelope`]),
/// with no `from` (a message's path and ids say who it concerns).
pub type Message = crate::contract::Envelope<(), Body>;

crate::contract::body!(Body, version: PROTOCOL_VERSION, max_bytes: MAX_BODY_BYTES, check: check);

/// What any receiver can check alone: ids from 1, product names, a path that starts
/// at its buyer, has no repeated peer and fits the hop limit, a reply's `via` shorter
/// than its path.
fn check(body: &Body) -> Result<(), Rejection> {
    match body {
        Body::Lookup {
            id,
            product,
            hops,
            path,
        } => {
            check_trail(id, product, path)?;
            if *hops as usize + path.len() > MAX_HOPS as usize {
                return Err(refused(format!("a hop count beyond {MAX_HOPS}")));
            }
        }
        Body::Reply {
            id,
            product,
            path,
            via,
            ..
        } => {
            check_trail(id, product, path)?;
            if via.len() >= path.len() {
                return Err(refused("a reply that has passed more peers than its path"));
            }
        }
        Body::Buy {
            req,
            product,
            lookup,
            ..
        } => {
            check_id(lookup)?;
            check_product(product).map_err(refused)?;
            if *req == 0 {
                return Err(refused("request ids start at 1"));
            }
        }
        Body::Answer { req, product, .. } => {
            check_product(product).map_err(refused)?;
            if *req == 0 {
                return Err(refused("request ids start at 1"));
            }
        }
        Body::Ready { .. }
        | Body::Open
        | Body::Done { .. }
        | Body::Close { .. }
        | Body::Report { .. } => {}
    }
    Ok(())
}

/// What a lookup and each reply to it carry alike: the lookup's id, the product, the
/// path from its buyer.
fn check_trail(id: &LookupId, product: &str, path: &[PeerId]) -> Result<(), Rejection> {
    check_id(id)?;
    check_product(product).map_err(refused)?;
    check_path(id, path)
}

fn check_id(id: &LookupId) -> Result<(), Rejection> {
    if id.n == 0 {
        return Err(refused("lookup ids count from 1"));
    }
    Ok(())
}

fn check_path(id: &LookupId, path: &[PeerId]) -> Result<(), Rejection> {
    if path.first() != Some(&id.buyer) {
        return Err(refused(format!(
            "lookup {id}: its path must start at its buyer"
        )));
    }
    if path.len() > MAX_HOPS as usize {
        return Err(refused(format!("a path longer than {MAX_HOPS}")));
    }
    let mut seen = std::collections::HashSet::new();
    if !path.iter().all(|p| seen.insert(*p)) {
        return Err(refused(format!("lookup {id}: a path through a peer twice")));
    }
    Ok(())
}

/// A report from the results queue, if it is one of this run's.
pub fn decode_report(bytes: &[u8], run: &str) -> Result<Report, Rejection> {
    match Message::decode(bytes, run)?.body {
        Body::Report { report } => Ok(report),
        b => Err(refused(format!("a {} on the results route", b.kind()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_strictness() {
        let m = Message::new(
            "r1",
            (),
            Body::Lookup {
                id: LookupId { buyer: 1, n: 1 },
                product: "salt".into(),
                hops: 1,
                path: vec![1],
            },
        );
        m.assert_round_trip(
            r#"{"v":1,"run":"r1","type":"lookup","id":{"buyer":1,"n":1},"product":"salt","hops":1,"path":[1]}"#,
        );
        for bad in [
            // a path that does not start at its buyer
            r#"{"v":1,"run":"r1","type":"lookup","id":{"buyer":1,"n":1},"product":"salt","hops":1,"path":[2]}"#,
            // a cycle
            r#"{"v":1,"run":"r1","type":"lookup","id":{"buyer":1,"n":1},"product":"salt","hops":1,"path":[1,2,1]}"#,
            // lookup 0
            r#"{"v":1,"run":"r1","type":"lookup","id":{"buyer":1,"n":0},"product":"salt","hops":1,"path":[1]}"#,
            // a product that cannot travel
            r#"{"v":1,"run":"r1","type":"lookup","id":{"buyer":1,"n":1},"product":"s a l t","hops":1,"path":[1]}"#,
            // a reply past its path
            r#"{"v":1,"run":"r1","type":"reply","id":{"buyer":1,"n":1},"seller":3,"product":"salt","path":[1],"via":[2]}"#,
            // an unknown field
            r#"{"v":1,"run":"r1","type":"done","buyer":1,"x":2}"#,
            // a negative hop count
            r#"{"v":1,"run":"r1","type":"lookup","id":{"buyer":1,"n":1},"product":"salt","hops":-1,"path":[1]}"#,
        ] {
            assert!(Message::decode(bad.as_bytes(), "r1").is_err(), "{bad}");
        }
    }
}
