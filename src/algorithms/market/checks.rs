//! The proof, from the participants' reports alone: the peers' neighbours, the lookups
//! that reached each (with their paths), what each forwarded, replied and relayed, the
//! sellers' ledgers and the buyers' lookups, replies and buys. The graph the checker walks
//! is the one the peers reported, not the one the driver built.
//!
//! | check | what it proves |
//! |---|---|
//! | `reported` | every peer and the clerk reported, and every peer was closed by the clerk (none timed out) |
//! | `buyers_finished` | every buyer did its `--lookups`, each ending in a purchase or, after `1 + --retries` lookups, giving up: never a hang |
//! | `never_oversold` | each seller started with the product and stock the market gave it and restocked `--stock` items; replaying its ledger, no product's stock ever went below 0; no buy (buyer, request) was sold twice; every "yes" a buyer got matches exactly one sale |
//! | `hop_counts` | every peer reported the neighbours the market gave it; every lookup that reached a peer came along a real path from its buyer no longer than the hop count, with the hops left right; every forward is the buyer's own lookup or the first copy the peer got, one hop less, sent to every neighbour off its path and no other; no peer forwarded a lookup twice or back onto its path; each arrival is what its sender forwarded; each lookup cost no more messages than the flooding bound |
//! | `reverse_path` | only sellers replied, once per lookup, for the product looked up; every reply that reached a buyer came from a seller the lookup reached, back along the reverse of the lookup's path, each relay on it having passed it on once; no relay passed on a reply no seller sent |
//! | `purchases` | every buyer's purchases are exactly its "yes" answers, each from a seller that had replied to that lookup before the buy; the totals of buyers and sellers agree, product by product |

mod basis;
mod flood;

use super::graph::{Role, flooding_bound};
use super::report::{ClerkReport, Ledger, PeerEnd, PeerReport};
use crate::contract::PeerId;
use crate::verdict::checks::{Problems, missing, unended};
use crate::verdict::{Check, Verdict, check, ids, plural};
pub use basis::Expect;
use basis::Faults;
use flood::{hop_counts, reverse_path};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};

/// The run's figures, from the reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figures {
    /// Products the buyers set out to buy (`--lookups` each).
    pub lookups: u64,
    /// Lookups the buyers sent (1 + retries per product at most).
    pub rounds: u64,
    pub purchases: u64,
    /// Purchases per product set out for.
    pub success_rate: f64,
    /// Buys answered "no".
    pub told_no: u64,
    /// "Yes" answers that came after the buyer had given up on that seller.
    pub late_purchases: u64,
    pub lookup_to_reply_p50_ms: Option<f64>,
    pub lookup_to_reply_p99_ms: Option<f64>,
    pub lookup_to_purchase_p50_ms: Option<f64>,
    pub lookup_to_purchase_p99_ms: Option<f64>,
    /// Lookup messages delivered, per flood.
    pub lookup_messages_per_lookup: f64,
    /// Reply messages (every hop back), per flood.
    pub reply_messages_per_lookup: f64,
    /// The flooding bound ([`flooding_bound`]) per flood, on average.
    pub flooding_bound_per_lookup: f64,
}

/// The verdict and the figures.
pub struct Proof {
    pub verdict: Verdict,
    pub figures: Figures,
}

/// Runs every check on the reports of one run.
pub fn verify(expect: &Expect, peers: &[PeerReport], clerk: Option<&ClerkReport>) -> Proof {
    let by_id: BTreeMap<PeerId, &PeerReport> = peers.iter().map(|r| (r.id, r)).collect();
    let checks = vec![
        reported(expect, &by_id, clerk),
        buyers_finished(expect, &by_id, clerk),
        never_oversold(expect, &by_id),
        hop_counts(expect, &by_id),
        reverse_path(&by_id),
        purchases(expect, &by_id),
    ];
    Proof {
        verdict: Verdict::new(checks),
        figures: figures(&by_id, &expect.links),
    }
}

fn reported(
    expect: &Expect,
    by_id: &BTreeMap<PeerId, &PeerReport>,
    clerk: Option<&ClerkReport>,
) -> Check {
    let missing = missing(expect.peers.iter().copied(), |k| by_id.contains_key(k));
    let unclosed = unended(
        by_id.values().copied(),
        |r| r.outcome == PeerEnd::Closed,
        |r| format!("{} ({})", r.id, r.outcome),
    );
    let mut problems = Problems::default();
    problems.unless_empty(&missing, |l| {
        format!("peer(s) {l} did not report (crashed, or never started)")
    });
    match clerk {
        None => problems.push("the clerk did not report"),
        Some(c) if !c.opened => problems.push(format!(
            "the market never opened: peer(s) {} never said they were ready",
            ids(&c.not_ready)
        )),
        Some(_) => {}
    }
    problems.unless_empty(&unclosed, |l| {
        format!("peer(s) {l} were not closed by the clerk")
    });
    problems.check("reported", || {
        format!(
            "{} and the clerk reported; the market closed: {}",
            plural(by_id.len() as u64, "peer", "peers"),
            clerk.map_or("", |c| c.reason.as_str())
        )
    })
}

fn buyers_finished(
    expect: &Expect,
    by_id: &BTreeMap<PeerId, &PeerReport>,
    clerk: Option<&ClerkReport>,
) -> Check {
    let mut f = Faults::default();
    let mut quests = 0;
    for b in &expect.buyers {
        let Some(r) = by_id.get(b) else {
            f.add(|| format!("buyer {b} did not report"));
            continue;
        };
        let Some(br) = &r.buyer else {
            f.add(|| format!("peer {b} reported as a {:?}, not a buyer", r.role));
            continue;
        };
        if br.quests.len() as u32 != expect.lookups {
            f.add(|| {
                format!(
                    "buyer {b} did {} of its {} lookups",
                    br.quests.len(),
                    expect.lookups
                )
            });
        }
        for q in &br.quests {
            quests += 1;
            if q.rounds == 0 || q.rounds > expect.retries.saturating_add(1) {
                f.add(|| {
                    format!(
                        "buyer {b} looked up {} {} times (1 + --retries {} at most)",
                        q.product, q.rounds, expect.retries
                    )
                });
            } else if q.bought.is_none() && q.rounds != expect.retries.saturating_add(1) {
                f.add(|| {
                    format!(
                        "buyer {b} gave up on {} after {} lookup(s), before its retries were spent",
                        q.product, q.rounds
                    )
                });
            }
        }
    }
    if let Some(c) = clerk
        && !c.missing.is_empty()
    {
        f.add(|| format!("the clerk never heard buyer(s) {} finish", ids(&c.missing)));
    }
    if f.count == 0 {
        check(
            "buyers_finished",
            true,
            format!(
                "{} did their {} each ({quests} in all), each ending in a purchase or, after {}, giving up",
                plural(expect.buyers.len() as u64, "buyer", "buyers"),
                plural(u64::from(expect.lookups), "lookup", "lookups"),
                if expect.retries == 0 {
                    "1 lookup".to_string()
                } else {
                    format!("1 + {} lookups", expect.retries)
                }
            ),
        )
    } else {
        check("buyers_finished", false, f.detail())
    }
}

fn never_oversold(expect: &Expect, by_id: &BTreeMap<PeerId, &PeerReport>) -> Check {
    let mut f = Faults::default();
    let mut sales: HashMap<(PeerId, PeerId, u64), (String, usize)> = HashMap::new();
    let (mut sold, mut stocked) = (0u64, 0u64);
    let mut sellers = 0;
    for r in by_id.values() {
        let Some(s) = &r.stall else { continue };
        sellers += 1;
        let Some((first_product, first_stock)) = expect.stalls.get(&r.id) else {
            f.add(|| {
                format!(
                    "peer {} reported a stall, but it is not a seller of the market",
                    r.id
                )
            });
            continue;
        };
        if !matches!(s.ledger.first(), Some(Ledger::Stocked { .. })) {
            f.add(|| format!("seller {}'s ledger does not start with its stock", r.id));
        }
        let (mut product, mut stock): (Option<&str>, i64) = (None, 0);
        for (i, e) in s.ledger.iter().enumerate() {
            match e {
                Ledger::Stocked { product: p, items } => {
                    if i == 0 && (p != first_product || items != first_stock) {
                        f.add(|| {
                            format!(
                                "seller {} started with {items} {p}, the market gave it {first_stock} {first_product}",
                                r.id
                            )
                        });
                    }
                    if i > 0 && *items != expect.restock {
                        f.add(|| {
                            format!(
                                "seller {} restocked {items} items, not --stock {}",
                                r.id, expect.restock
                            )
                        });
                    }
                    if stock > 0 {
                        f.add(|| format!("seller {} restocked with {stock} left", r.id));
                    }
                    product = Some(p);
                    stock = i64::try_from(*items).unwrap_or(i64::MAX);
                    stocked = stocked.saturating_add(*items);
                }
                Ledger::Sold {
                    buyer,
                    req,
                    product: p,
                    ..
                } => {
                    sold += 1;
                    if product != Some(p.as_str()) {
                        f.add(|| format!("seller {} sold {p} while it had {product:?}", r.id));
                    }
                    stock -= 1;
                    if stock < 0 {
                        f.add(|| format!("seller {} oversold {p}: stock {stock}", r.id));
                    }
                    let e = sales.entry((r.id, *buyer, *req)).or_insert((p.clone(), 0));
                    e.1 += 1;
                    if e.1 == 2 {
                        f.add(|| {
                            format!("seller {} sold buyer {buyer}'s request {req} twice", r.id)
                        });
                    }
                }
                Ledger::Refused { .. } => {}
            }
        }
        if product != Some(s.product.as_str()) || stock != s.stock as i64 {
            f.add(|| {
                format!(
                    "seller {}'s ledger ends at {stock} {product:?}, its stall at {} {}",
                    r.id, s.stock, s.product
                )
            });
        }
    }
    let mut yes = 0;
    let mut unverifiable = 0;
    for r in by_id.values() {
        let Some(b) = &r.buyer else { continue };
        for x in b.buys.iter().filter(|x| x.sold == Some(true)) {
            yes += 1;
            if !by_id.contains_key(&x.seller) {
                unverifiable += 1;
                continue;
            }
            match sales.get(&(x.seller, r.id, x.req)) {
                Some((p, 1)) if *p == x.product => {}
                Some((p, n)) => f.add(|| {
                    format!(
                        "buyer {}'s yes for request {} ({}) matches {n} sale(s) of {p} at seller {}",
                        r.id, x.req, x.product, x.seller
                    )
                }),
                None => f.add(|| {
                    format!(
                        "buyer {} was told yes for request {} but seller {} recorded no sale",
                        r.id, x.req, x.seller
                    )
                }),
            }
        }
    }
    if f.count > 0 {
        return check("never_oversold", false, f.detail());
    }
    let mut detail = format!(
        "{sellers} sellers stocked {stocked} items and sold {sold}, never below 0; {yes} yes answers, each exactly one sale"
    );
    if unverifiable > 0 {
        detail += &format!(
            " ({unverifiable} from sellers that did not report, not checked: see `reported`)"
        );
    }
    check("never_oversold", true, detail)
}

fn purchases(expect: &Expect, by_id: &BTreeMap<PeerId, &PeerReport>) -> Check {
    let mut f = Faults::default();
    let mut bought_by_product: BTreeMap<String, u64> = BTreeMap::new();
    let mut sold_by_product: BTreeMap<String, u64> = BTreeMap::new();
    let mut yes_keys: HashSet<(PeerId, PeerId, u64)> = HashSet::new();
    let mut buyers = 0;
    for r in by_id.values() {
        let Some(b) = &r.buyer else { continue };
        buyers += 1;
        if r.role != Role::Buyer {
            f.add(|| format!("peer {} reported buys as a seller", r.id));
        }
        let yes: Vec<_> = b.buys.iter().filter(|x| x.sold == Some(true)).collect();
        for x in &yes {
            if !by_id.contains_key(&x.seller) {
                continue;
            }
            *bought_by_product.entry(x.product.clone()).or_default() += 1;
            yes_keys.insert((x.seller, r.id, x.req));
        }
        let mut used = HashSet::new();
        for q in &b.quests {
            let Some(req) = q.bought else { continue };
            match yes.iter().find(|x| x.req == req) {
                Some(x) if x.product == q.product && used.insert(req) => {}
                _ => f.add(|| {
                    format!(
                        "buyer {}'s purchase of {} (request {req}) is not one of its yes answers",
                        r.id, q.product
                    )
                }),
            }
        }
        for x in &b.buys {
            let replied_before = b.rounds.iter().any(|round| {
                round.id == x.lookup
                    && round.product == x.product
                    && round
                        .replies
                        .iter()
                        .any(|g| g.seller == x.seller && g.at <= x.sent_at)
            });
            if !replied_before {
                f.add(|| {
                    format!(
                        "buyer {} bought {} from seller {}, which had not replied to lookup {}",
                        r.id, x.product, x.seller, x.lookup
                    )
                });
            }
        }
    }
    for r in by_id.values() {
        let Some(s) = &r.stall else { continue };
        for e in &s.ledger {
            if let Ledger::Sold {
                buyer,
                req,
                product,
                ..
            } = e
            {
                if !expect.buyers.contains(buyer) {
                    f.add(|| {
                        format!(
                            "seller {} sold {product} to {buyer}, not a buyer of the market",
                            r.id
                        )
                    });
                    continue;
                }
                if !by_id.contains_key(buyer) {
                    // A buyer that did not report (see `reported`): nothing to match.
                    continue;
                }
                *sold_by_product.entry(product.clone()).or_default() += 1;
                if !yes_keys.contains(&(r.id, *buyer, *req)) {
                    let unanswered = by_id[buyer].buyer.as_ref().is_some_and(|b| {
                        b.buys
                            .iter()
                            .any(|x| x.seller == r.id && x.req == *req && x.sold.is_none())
                    });
                    f.add(|| {
                        format!(
                            "seller {} sold {product} to buyer {buyer} (request {req}), who never heard yes{}",
                            r.id,
                            if unanswered {
                                " (no answer came within 3 × --buy-timeout)"
                            } else {
                                ""
                            }
                        )
                    });
                }
            }
        }
    }
    if f.count == 0 && bought_by_product != sold_by_product {
        f.add(|| format!("bought {bought_by_product:?} but sold {sold_by_product:?}"));
    }
    if f.count > 0 {
        return check("purchases", false, f.detail());
    }
    let total: u64 = bought_by_product.values().sum();
    check(
        "purchases",
        true,
        format!(
            "{buyers} buyers bought {total} items, exactly their yes answers, each from a seller that had replied; the sellers sold the same, product by product{}",
            if total == 0 {
                String::new()
            } else {
                format!(
                    " ({})",
                    bought_by_product
                        .iter()
                        .map(|(p, n)| format!("{p} {n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        ),
    )
}

fn figures(
    by_id: &BTreeMap<PeerId, &PeerReport>,
    links: &BTreeMap<PeerId, Vec<PeerId>>,
) -> Figures {
    let mut fig = Figures::default();
    let (mut reply_lat, mut buy_lat) = (Vec::new(), Vec::new());
    let mut bound = 0u64;
    for r in by_id.values() {
        fig.lookup_messages_per_lookup += r.arrivals.len() as f64;
        fig.reply_messages_per_lookup +=
            r.replied.iter().map(|x| x.path.len()).sum::<usize>() as f64;
        let Some(b) = &r.buyer else { continue };
        fig.lookups += b.quests.len() as u64;
        fig.rounds += b.rounds.len() as u64;
        for round in &b.rounds {
            bound += flooding_bound(links, r.id, round.hop_count);
            if let Some(first) = round.replies.iter().map(|g| g.at).min() {
                reply_lat.push(first.saturating_sub(round.sent_at) as f64);
            }
        }
        fig.told_no += b.buys.iter().filter(|x| x.sold == Some(false)).count() as u64;
        let in_quests: HashSet<u64> = b.quests.iter().filter_map(|q| q.bought).collect();
        fig.late_purchases += b
            .buys
            .iter()
            .filter(|x| x.sold == Some(true) && !in_quests.contains(&x.req))
            .count() as u64;
        for q in &b.quests {
            let Some(req) = q.bought else { continue };
            fig.purchases += 1;
            if let Some(at) = b
                .buys
                .iter()
                .find(|x| x.req == req)
                .and_then(|x| x.answered_at)
            {
                buy_lat.push(at.saturating_sub(q.started_at) as f64);
            }
        }
    }
    let rounds = fig.rounds.max(1) as f64;
    fig.lookup_messages_per_lookup /= rounds;
    fig.reply_messages_per_lookup /= rounds;
    fig.flooding_bound_per_lookup = bound as f64 / rounds;
    fig.success_rate = if fig.lookups == 0 {
        0.0
    } else {
        fig.purchases as f64 / fig.lookups as f64
    };
    reply_lat.sort_by(f64::total_cmp);
    buy_lat.sort_by(f64::total_cmp);
    let pct = |v: &[f64], p| (!v.is_empty()).then(|| crate::verdict::percentile(v, p));
    fig.lookup_to_reply_p50_ms = pct(&reply_lat, 0.5);
    fig.lookup_to_reply_p99_ms = pct(&reply_lat, 0.99);
    fig.lookup_to_purchase_p50_ms = pct(&buy_lat, 0.5);
    fig.lookup_to_purchase_p99_ms = pct(&buy_lat, 0.99);
    fig
}
