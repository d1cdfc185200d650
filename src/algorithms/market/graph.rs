//! The market's shape: who buys, who sells what and how much, and who neighbours whom.
//!
//! Three ways to get one, all checked the same way:
//! * `ring`: peers 1..=N in a circle;
//! * `random:K`: a connected random graph (a random spanning tree, then random links until
//!   every peer has at least K neighbours), from `--seed`;
//! * a graph file (JSON, docs/market.md), which also names roles, products and stock.
//!
//! Links are undirected: a file that names one side of a link gets both. Roles from a
//! generated graph are drawn from the seed too: `--buyers` buyers, every other peer a
//! seller of a random product with `--stock` items.

use crate::contract::PeerId;
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// What a peer does in the market. Every peer, whatever its role, relays lookups and
/// replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Buyer,
    Seller,
}

/// One peer as a graph file writes it, and as the checker sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerSpec {
    pub id: PeerId,
    pub role: Role,
    /// A seller's first product.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// A seller's first stock (`--stock` when absent). Signed here so that a negative one
    /// is named in the error, not lost in a parse message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stock: Option<i64>,
    /// The products a buyer looks up, one at random per lookup (`--products` when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wants: Vec<String>,
    pub neighbors: Vec<PeerId>,
}

/// A graph file: `{"peers": [...]}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphFile {
    pub peers: Vec<PeerSpec>,
}

/// A checked market: peers by id (ascending), links symmetric, every stock set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Market {
    pub peers: Vec<PeerSpec>,
    /// Every product a seller may restock: `--products` and any a file names.
    pub products: Vec<String>,
}

/// How the graph is made (`--graph`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphSpec {
    Ring,
    Random(u32),
    File(std::path::PathBuf),
}

/// Parses `--graph`: `ring`, `random:K` or a file's path.
pub fn parse_graph(s: &str) -> Result<GraphSpec, String> {
    if s == "ring" {
        return Ok(GraphSpec::Ring);
    }
    if let Some(k) = s.strip_prefix("random:") {
        return match k.parse::<u32>() {
            Ok(k) if k >= 1 => Ok(GraphSpec::Random(k)),
            _ => Err(format!(
                "{s:?}: random:K needs K, the least number of neighbours, a whole number ≥ 1"
            )),
        };
    }
    Ok(GraphSpec::File(s.into()))
}

/// Longest product name: it travels in every lookup.
pub const MAX_PRODUCT: usize = 64;

/// Checks a product name: 1 to 64 characters, letters, digits, `-` and `_`.
pub fn check_product(p: &str) -> Result<(), String> {
    if p.is_empty()
        || p.len() > MAX_PRODUCT
        || !p
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "product {p:?}: use 1 to {MAX_PRODUCT} letters, digits, '-' or '_'"
        ));
    }
    Ok(())
}

impl Market {
    /// Peer `k`'s spec.
    pub fn peer(&self, k: PeerId) -> Option<&PeerSpec> {
        self.peers
            .binary_search_by_key(&k, |p| p.id)
            .ok()
            .map(|i| &self.peers[i])
    }

    pub fn ids(&self) -> Vec<PeerId> {
        self.peers.iter().map(|p| p.id).collect()
    }

    pub fn buyers(&self) -> Vec<PeerId> {
        self.peers
            .iter()
            .filter(|p| p.role == Role::Buyer)
            .map(|p| p.id)
            .collect()
    }

    /// Every peer's neighbours.
    pub fn links(&self) -> BTreeMap<PeerId, Vec<PeerId>> {
        self.peers
            .iter()
            .map(|p| (p.id, p.neighbors.clone()))
            .collect()
    }

    /// A generated market: `n` peers on a ring or a random graph, `buyers` of them buyers.
    pub fn generate(
        n: u32,
        buyers: u32,
        graph: &GraphSpec,
        products: &[String],
        stock: u64,
        seed: u64,
    ) -> Result<Market, String> {
        if n < 2 {
            return Err(format!("--peers {n}: a market needs at least 2 peers"));
        }
        if buyers == 0 || buyers >= n {
            return Err(format!(
                "--buyers {buyers}: with --peers {n}, give between 1 and {} buyers (at least one peer must sell)",
                n - 1
            ));
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let mut links: BTreeMap<PeerId, BTreeSet<PeerId>> =
            (1..=n).map(|k| (k, BTreeSet::new())).collect();
        let link = |a: PeerId, b: PeerId, l: &mut BTreeMap<PeerId, BTreeSet<PeerId>>| {
            if a != b {
                l.entry(a).or_default().insert(b);
                l.entry(b).or_default().insert(a);
            }
        };
        match graph {
            GraphSpec::Ring => {
                for k in 1..=n {
                    link(k, k % n + 1, &mut links);
                }
            }
            GraphSpec::Random(k) => {
                let want = (*k).min(n - 1) as usize;
                let mut order: Vec<PeerId> = (1..=n).collect();
                order.shuffle(&mut rng);
                for i in 1..order.len() {
                    let j = rng.random_range(0..i);
                    link(order[i], order[j], &mut links);
                }
                for a in 1..=n {
                    while links[&a].len() < want {
                        let b = rng.random_range(1..=n);
                        link(a, b, &mut links);
                    }
                }
            }
            GraphSpec::File(_) => return Err("a graph file is read with Market::from_file".into()),
        }
        let mut ids: Vec<PeerId> = (1..=n).collect();
        ids.shuffle(&mut rng);
        let buying: BTreeSet<PeerId> = ids.into_iter().take(buyers as usize).collect();
        let peers = (1..=n)
            .map(|k| {
                let seller = !buying.contains(&k);
                PeerSpec {
                    id: k,
                    role: if seller { Role::Seller } else { Role::Buyer },
                    product: seller.then(|| products.choose(&mut rng).cloned()).flatten(),
                    stock: seller.then_some(stock as i64),
                    wants: Vec::new(),
                    neighbors: links[&k].iter().copied().collect(),
                }
            })
            .collect();
        Market::check(peers, products, stock)
    }

    /// A market from a graph file's text.
    pub fn from_file(text: &str, products: &[String], stock: u64) -> Result<Market, String> {
        let f: GraphFile =
            serde_json::from_str(text).map_err(|e| format!("not a graph file: {e}"))?;
        Market::check(f.peers, products, stock)
    }

    /// Checks peers, makes links symmetric, fills in stock, and refuses: no peers, a
    /// duplicate id, an unknown or self neighbour, a seller without a product, a negative
    /// stock, a product name that cannot travel, no buyer or no seller, and a buyer with
    /// no path to any seller.
    pub fn check(
        mut peers: Vec<PeerSpec>,
        products: &[String],
        stock: u64,
    ) -> Result<Market, String> {
        if peers.len() < 2 {
            return Err("a market needs at least 2 peers".into());
        }
        peers.sort_by_key(|p| p.id);
        let mut universe: BTreeSet<String> = BTreeSet::new();
        for p in products {
            check_product(p).map_err(|e| format!("--products: {e}"))?;
            universe.insert(p.clone());
        }
        let ids: BTreeSet<PeerId> = peers.iter().map(|p| p.id).collect();
        if ids.len() != peers.len() {
            let dup = peers
                .windows(2)
                .find(|w| w[0].id == w[1].id)
                .map_or(0, |w| w[0].id);
            return Err(format!("peer {dup} appears twice"));
        }
        if ids.contains(&0) {
            return Err("peer 0: ids start at 1".into());
        }
        let mut links: BTreeMap<PeerId, BTreeSet<PeerId>> = BTreeMap::new();
        for p in &mut peers {
            for n in &p.neighbors {
                if *n == p.id {
                    return Err(format!("peer {}: a peer cannot neighbour itself", p.id));
                }
                if !ids.contains(n) {
                    return Err(format!("peer {}: unknown neighbour {n}", p.id));
                }
                links.entry(p.id).or_default().insert(*n);
                links.entry(*n).or_default().insert(p.id);
            }
            match p.role {
                Role::Seller => {
                    let Some(product) = &p.product else {
                        return Err(format!("peer {}: a seller needs a product", p.id));
                    };
                    check_product(product).map_err(|e| format!("peer {}: {e}", p.id))?;
                    universe.insert(product.clone());
                    let s = p.stock.unwrap_or(stock as i64);
                    if s < 0 {
                        return Err(format!(
                            "peer {}: stock {s} is negative; give 0 or more items",
                            p.id
                        ));
                    }
                    p.stock = Some(s);
                    if !p.wants.is_empty() {
                        return Err(format!("peer {}: a seller wants nothing", p.id));
                    }
                }
                Role::Buyer => {
                    if p.product.is_some() || p.stock.is_some() {
                        return Err(format!(
                            "peer {}: a buyer has no product or stock (use \"wants\")",
                            p.id
                        ));
                    }
                    for w in &p.wants {
                        check_product(w).map_err(|e| format!("peer {}: {e}", p.id))?;
                        universe.insert(w.clone());
                    }
                }
            }
        }
        for p in &mut peers {
            p.neighbors = links
                .get(&p.id)
                .map(|l| l.iter().copied().collect())
                .unwrap_or_default();
        }
        let m = Market {
            peers,
            products: universe.into_iter().collect(),
        };
        if m.products.is_empty() {
            return Err("--products: name at least one product".into());
        }
        if !m.peers.iter().any(|p| p.role == Role::Seller) {
            return Err("no peer is a seller".into());
        }
        if m.buyers().is_empty() {
            return Err("no peer is a buyer".into());
        }
        for b in m.buyers() {
            let d = m.distances(b);
            if !m
                .peers
                .iter()
                .any(|p| p.role == Role::Seller && d.contains_key(&p.id))
            {
                return Err(format!(
                    "buyer {b} has no path to any seller: link it to the rest of the market"
                ));
            }
        }
        Ok(m)
    }

    /// Hops from `from` to every peer it can reach (itself at 0).
    pub fn distances(&self, from: PeerId) -> BTreeMap<PeerId, u32> {
        distances(&self.links(), from)
    }

    /// The market as a graph file (the generated graphs can be saved and edited).
    pub fn to_file(&self) -> GraphFile {
        GraphFile {
            peers: self.peers.clone(),
        }
    }
}

/// Hops from `from` to every peer it can reach in `links` (itself at 0).
pub fn distances(links: &BTreeMap<PeerId, Vec<PeerId>>, from: PeerId) -> BTreeMap<PeerId, u32> {
    let mut d = BTreeMap::from([(from, 0)]);
    let mut q = VecDeque::from([from]);
    while let Some(p) = q.pop_front() {
        let dp = d[&p];
        for n in links.get(&p).into_iter().flatten() {
            if !d.contains_key(n) {
                d.insert(*n, dp + 1);
                q.push_back(*n);
            }
        }
    }
    d
}

/// The flooding bound: the most lookup messages one lookup from `buyer` with hop count
/// `h` can cost when every peer forwards it at most once and never to a peer on its path.
/// The buyer sends one per neighbour; a peer at distance 1..h-1 forwards to at most its
/// other neighbours.
pub fn flooding_bound(links: &BTreeMap<PeerId, Vec<PeerId>>, buyer: PeerId, h: u32) -> u64 {
    if h == 0 {
        return 0;
    }
    let deg = |p: &PeerId| links.get(p).map_or(0, |l| l.len() as u64);
    let d = distances(links, buyer);
    deg(&buyer)
        + d.iter()
            .filter(|(_, dist)| **dist >= 1 && **dist < h)
            .map(|(p, _)| deg(p).saturating_sub(1))
            .sum::<u64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn products() -> Vec<String> {
        vec!["fish".into(), "salt".into(), "boar".into()]
    }

    #[test]
    fn generated_graphs_are_connected_and_symmetric() {
        for g in [GraphSpec::Ring, GraphSpec::Random(4)] {
            let m = Market::generate(100, 30, &g, &products(), 3, 7).expect("market");
            assert_eq!(m.buyers().len(), 30);
            assert_eq!(m.distances(1).len(), 100, "{g:?} connected");
            for p in &m.peers {
                for n in &p.neighbors {
                    assert!(m.peer(*n).expect("known").neighbors.contains(&p.id));
                }
                if g == GraphSpec::Random(4) {
                    assert!(p.neighbors.len() >= 4);
                }
            }
            assert_eq!(
                m,
                Market::generate(100, 30, &g, &products(), 3, 7).expect("same seed")
            );
        }
    }

    #[test]
    fn bad_files_are_refused_naming_the_entry() {
        let cases = [
            (
                r#"{"peers":[{"id":1,"role":"buyer","neighbors":[9]},{"id":2,"role":"seller","product":"salt","neighbors":[1]}]}"#,
                "unknown neighbour 9",
            ),
            (
                r#"{"peers":[{"id":1,"role":"buyer","neighbors":[2]},{"id":2,"role":"seller","product":"salt","stock":-1,"neighbors":[]}]}"#,
                "stock -1 is negative",
            ),
            (
                r#"{"peers":[{"id":1,"role":"buyer","neighbors":[]},{"id":2,"role":"seller","product":"salt","neighbors":[3]},{"id":3,"role":"buyer","neighbors":[]}]}"#,
                "buyer 1 has no path",
            ),
            (
                r#"{"peers":[{"id":1,"role":"buyer","neighbors":[2]},{"id":2,"role":"seller","neighbors":[]}]}"#,
                "a seller needs a product",
            ),
            (
                r#"{"peers":[{"id":1,"role":"buyer","neighbors":[2]},{"id":1,"role":"seller","product":"salt","neighbors":[]}]}"#,
                "appears twice",
            ),
            (
                r#"{"peers":[{"id":1,"role":"buyer","neighbors":[2],"x":1}]}"#,
                "unknown field",
            ),
        ];
        for (text, want) in cases {
            let e = Market::from_file(text, &products(), 3).expect_err(text);
            assert!(e.contains(want), "{e} should say {want}");
        }
    }

    #[test]
    fn flooding_bound_counts_forwards() {
        // A ring of 6: from 1 with h = 2, 1 sends to 2 and 6, each forwards to one more.
        let m = Market::generate(6, 1, &GraphSpec::Ring, &products(), 1, 1).expect("ring");
        assert_eq!(flooding_bound(&m.links(), 1, 0), 0);
        assert_eq!(flooding_bound(&m.links(), 1, 1), 2);
        assert_eq!(flooding_bound(&m.links(), 1, 2), 4);
        assert_eq!(flooding_bound(&m.links(), 1, 3), 6);
    }
}
