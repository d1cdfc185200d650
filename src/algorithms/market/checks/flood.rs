//! The checks of the flood itself: `hop_counts` (every lookup went along real paths,
//! within the hop count, forwarded as the rule says and no more) and `reverse_path`
//! (replies came back from sellers the lookup reached, along the reverse of its path).
//! Their names and details are the verdict's (see the table in `checks.rs`).

use super::basis::{Expect, Faults, linked};
use crate::algorithms::market::graph::{Role, flooding_bound};
use crate::algorithms::market::protocol::LookupId;
use crate::algorithms::market::report::{Forward, PeerReport};
use crate::contract::PeerId;
use crate::verdict::{Check, check};
use std::collections::{BTreeMap, HashMap, HashSet};

pub(super) fn hop_counts(expect: &Expect, by_id: &BTreeMap<PeerId, &PeerReport>) -> Check {
    let mut f = Faults::default();
    let h = expect.hop_count;
    let links = &expect.links;
    for r in by_id.values() {
        let given = links.get(&r.id).cloned().unwrap_or_default();
        if r.neighbors != given {
            f.add(|| {
                format!(
                    "peer {} reported neighbours {:?}; the market gave it {given:?}",
                    r.id, r.neighbors
                )
            });
        }
    }
    // Each peer's one forward per lookup, by (peer, lookup).
    let mut forwards: HashMap<(PeerId, LookupId), &Forward> = HashMap::new();
    for r in by_id.values() {
        if r.hop_count != h {
            f.add(|| format!("peer {} ran with hop count {}, not {h}", r.id, r.hop_count));
        }
        for fw in &r.forwards {
            if forwards.insert((r.id, fw.id), fw).is_some() {
                f.add(|| format!("peer {} forwarded lookup {} twice", r.id, fw.id));
            }
            if fw.path.last() != Some(&r.id) || fw.hops as usize + fw.path.len() != h as usize {
                f.add(|| {
                    format!(
                        "peer {} forwarded lookup {} with path {:?} and {} hops left",
                        r.id, fw.id, fw.path, fw.hops
                    )
                });
            }
            if let Some(back) = fw.to.iter().find(|t| fw.path.contains(t)) {
                f.add(|| {
                    format!(
                        "peer {} sent lookup {} back to {back}, on its path",
                        r.id, fw.id
                    )
                });
            }
            // Sent to every neighbour off the path, and only to them.
            let mut to = fw.to.clone();
            to.sort_unstable();
            let off_path: Vec<PeerId> = links
                .get(&r.id)
                .into_iter()
                .flatten()
                .copied()
                .filter(|n| !fw.path.contains(n))
                .collect();
            if to != off_path {
                f.add(|| {
                    format!(
                        "peer {} sent lookup {} to {to:?}, not to its neighbours off the path {off_path:?}",
                        r.id, fw.id
                    )
                });
            }
            // Forwarded as it came: the buyer its own lookup, a relay the first copy it
            // got, one hop less.
            let origin = if fw.id.buyer == r.id {
                fw.path == [r.id]
                    && fw.hops.saturating_add(1) == h
                    && r.buyer
                        .as_ref()
                        .is_some_and(|b| b.rounds.iter().any(|x| x.id == fw.id))
            } else {
                r.arrivals.iter().any(|a| {
                    a.first
                        && a.id == fw.id
                        && a.hops == fw.hops.saturating_add(1)
                        && fw.path.split_last().is_some_and(|(_, p)| *p == a.path[..])
                })
            };
            if !origin {
                f.add(|| {
                    format!(
                        "peer {} forwarded lookup {} along {:?} with {} hops left, not as it got it",
                        r.id, fw.id, fw.path, fw.hops
                    )
                });
            }
        }
    }
    let mut per_lookup: HashMap<LookupId, u64> = HashMap::new();
    let mut arrivals = 0u64;
    for r in by_id.values() {
        let mut first: HashSet<LookupId> = HashSet::new();
        for a in &r.arrivals {
            arrivals += 1;
            *per_lookup.entry(a.id).or_default() += 1;
            let p = &a.path;
            let walk = p.windows(2).all(|w| linked(links, w[0], w[1]))
                && p.last().is_some_and(|l| linked(links, *l, r.id));
            if p.first() != Some(&a.id.buyer)
                || !walk
                || p.contains(&r.id)
                || p.len() > h as usize
                || a.hops as usize + p.len() != h as usize
            {
                f.add(|| {
                    format!(
                        "lookup {} reached peer {} along {p:?} with {} hops left (hop count {h})",
                        a.id, r.id, a.hops
                    )
                });
            }
            if let Some(s) = p.last()
                && by_id.contains_key(s)
            {
                match forwards.get(&(*s, a.id)) {
                    Some(fw) if fw.path == *p && fw.to.contains(&r.id) => {}
                    _ => f.add(|| {
                        format!(
                            "lookup {} reached peer {} from {s} along {p:?}, which {s} never forwarded there",
                            a.id, r.id
                        )
                    }),
                }
            }
            if a.first {
                if !first.insert(a.id) {
                    f.add(|| format!("peer {} handled lookup {} twice", r.id, a.id));
                }
                let fwd = forwards.contains_key(&(r.id, a.id));
                if a.hops >= 1 && !fwd {
                    f.add(|| {
                        format!(
                            "peer {} did not forward lookup {} with {} hops left",
                            r.id, a.id, a.hops
                        )
                    });
                }
                if a.hops == 0 && fwd {
                    f.add(|| format!("peer {} forwarded lookup {} with no hops left", r.id, a.id));
                }
            }
        }
    }
    for (id, n) in &per_lookup {
        let bound = flooding_bound(links, id.buyer, h);
        if *n > bound {
            f.add(|| format!("lookup {id} cost {n} messages, above the flooding bound {bound}"));
        }
    }
    if f.count > 0 {
        return check("hop_counts", false, f.detail());
    }
    check(
        "hop_counts",
        true,
        format!(
            "{arrivals} lookup arrivals of {} lookups, each along a real path within hop count {h}, forwarded at most once per peer and never back, within the flooding bound",
            per_lookup.len()
        ),
    )
}

pub(super) fn reverse_path(by_id: &BTreeMap<PeerId, &PeerReport>) -> Check {
    let mut f = Faults::default();
    let mut replied: HashMap<(PeerId, LookupId), &Vec<PeerId>> = HashMap::new();
    for r in by_id.values() {
        for x in &r.replied {
            if replied.insert((r.id, x.id), &x.path).is_some() {
                f.add(|| format!("seller {} replied to lookup {} twice", r.id, x.id));
            }
            if !r
                .arrivals
                .iter()
                .any(|a| a.id == x.id && a.first && a.path == x.path)
            {
                f.add(|| {
                    format!(
                        "seller {} replied to lookup {} along {:?}, which never reached it so",
                        r.id, x.id, x.path
                    )
                });
            }
        }
    }
    let mut relays: HashSet<(PeerId, LookupId, PeerId, PeerId)> = HashSet::new();
    for r in by_id.values() {
        let mut once = HashSet::new();
        for x in &r.relayed {
            relays.insert((r.id, x.id, x.seller, x.to));
            if !once.insert((x.id, x.seller)) {
                f.add(|| {
                    format!(
                        "peer {} relayed seller {}'s reply to lookup {} twice",
                        r.id, x.seller, x.id
                    )
                });
            }
        }
    }
    // A seller replies for the product looked up, and only a seller replies.
    let wanted: HashMap<LookupId, &str> = by_id
        .values()
        .filter_map(|r| r.buyer.as_ref())
        .flat_map(|b| b.rounds.iter().map(|x| (x.id, x.product.as_str())))
        .collect();
    for r in by_id.values() {
        for x in &r.replied {
            if r.role != Role::Seller {
                f.add(|| format!("peer {}, not a seller, replied to lookup {}", r.id, x.id));
            }
            if wanted.get(&x.id).is_some_and(|p| *p != x.product) {
                f.add(|| {
                    format!(
                        "seller {} replied {} to lookup {}, which looked for something else",
                        r.id, x.product, x.id
                    )
                });
            }
        }
    }
    // Every relay passed on a reply some seller sent, to the right peer.
    for (at, id, seller, to) in &relays {
        let ok = match replied.get(&(*seller, *id)) {
            Some(p) => p
                .iter()
                .position(|x| x == at)
                .is_some_and(|i| i >= 1 && p[i - 1] == *to),
            None => !by_id.contains_key(seller),
        };
        if !ok {
            f.add(|| {
                format!(
                    "peer {at} relayed seller {seller}'s reply to lookup {id} to {to}, off its path"
                )
            });
        }
    }
    let mut got = 0;
    let mut unverifiable = 0;
    for r in by_id.values() {
        let Some(b) = &r.buyer else { continue };
        for round in &b.rounds {
            for g in &round.replies {
                got += 1;
                let Some(p) = replied.get(&(g.seller, round.id)) else {
                    if by_id.contains_key(&g.seller) {
                        f.add(|| {
                            format!(
                                "buyer {} got a reply to lookup {} from seller {}, which never sent it",
                                r.id, round.id, g.seller
                            )
                        });
                    } else {
                        unverifiable += 1;
                    }
                    continue;
                };
                let back: Vec<PeerId> = p.iter().skip(1).rev().copied().collect();
                if p.first() != Some(&r.id) || g.via != back {
                    f.add(|| {
                        format!(
                            "the reply to lookup {} from seller {} came via {:?}, not back along {p:?}",
                            round.id, g.seller, g.via
                        )
                    });
                }
                for i in 1..p.len() {
                    let (at, to) = (p[i], p[i - 1]);
                    if by_id.contains_key(&at) && !relays.contains(&(at, round.id, g.seller, to)) {
                        f.add(|| {
                            format!(
                                "peer {at} on the way back of lookup {} never relayed seller {}'s reply to {to}",
                                round.id, g.seller
                            )
                        });
                    }
                }
            }
        }
    }
    if f.count > 0 {
        return check("reverse_path", false, f.detail());
    }
    let sent = replied.len();
    let mut detail = if sent == 0 {
        "no seller replied (no lookup reached a seller of its product with stock); no buyer got a reply".to_string()
    } else {
        format!(
            "{sent} replies sent, {got} reached their buyer, each back along the reverse of its lookup's path ({} relays, each on a path)",
            relays.len()
        )
    };
    if unverifiable > 0 {
        detail += &format!(
            "; {unverifiable} from sellers that did not report, not checked: see `reported`"
        );
    }
    check("reverse_path", true, detail)
}
