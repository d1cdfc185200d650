//! One peer of the market as a pure state machine: a relay for everyone's lookups and
//! replies, and a buyer or a seller besides.
//!
//! * **Relay.** A lookup is handled once per id (a cycle, a redelivery or a second path
//!   brings it again: recorded, not acted on); a seller of the product with stock replies;
//!   with hops left it goes on to every neighbour not on its path (so never back to where
//!   it came from). A reply goes back one hop at a time along the lookup's path, each
//!   relay passing a given (lookup, seller) once.
//! * **Seller.** Sells only what it has: a buy is answered yes (one item less) or no, and
//!   the answer is kept per buyer so that a retried or duplicated buy is answered again,
//!   never sold twice. Sold out by a sale, it puts another product (at random; the same
//!   one if the market has no other) on its stall with `--stock` items: the course's
//!   rule. (A seller a graph file starts at 0 items never sells, so never restocks.)
//! * **Buyer.** For each of its `--lookups`: a lookup, replies collected for the reply
//!   window, then a buy from one replier at random; a "no" or no answer within the buy
//!   timeout moves to the next replier, then to a new lookup, `--retries` times at most;
//!   then the next product. Done, it tells the clerk, and goes on relaying until the
//!   market closes.

use super::graph::Role;
use super::protocol::{Body, CLERK, LookupId, Message};
use super::report::{
    Arrival, Bought, BuyerReport, Forward, Got, Ledger, PeerEnd, PeerReport, Quest, Relayed,
    Replied, Round, StallReport,
};
use crate::contract::{Millis, Output, PeerId, Rejection, Route, StateMachine};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

mod buying;

/// What one peer is built from.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    pub run_id: String,
    pub id: PeerId,
    pub role: Role,
    pub neighbors: Vec<PeerId>,
    pub hop_count: u32,
    /// A seller's first product and stock.
    pub product: Option<String>,
    pub stock: u64,
    /// Items put on the stall at a restock (`--stock`).
    pub restock: u64,
    /// Every product of the market (restocks and buyers without `wants` pick from it).
    pub products: Vec<String>,
    /// What a buyer looks up (empty: any product).
    pub wants: Vec<String>,
    pub lookups: u32,
    pub retries: u32,
    pub reply_window_ms: Millis,
    pub buy_retry_ms: Millis,
    pub buy_timeout_ms: Millis,
    /// When the peer reports on its own if the market has not closed.
    pub deadline: Option<Millis>,
    pub seed: u64,
}

struct Stall {
    product: String,
    stock: u64,
    /// Per buyer, its latest buy and the answer it got.
    last: HashMap<PeerId, (u64, bool)>,
    ledger: Vec<Ledger>,
    answered_again: u64,
}

enum Step {
    /// A buyer's first lookup goes when the clerk opens the market.
    Start,
    Collecting {
        lookup: LookupId,
        until: Millis,
        sellers: Vec<PeerId>,
    },
    Buying {
        lookup: LookupId,
        others: Vec<PeerId>,
        /// Index into `buys`.
        buy: usize,
        retry_at: Millis,
        give_up_at: Millis,
    },
    /// Every lookup done; buys a seller has not answered yet (it was given up on) are
    /// sent again until answered or `until`, so that the buyer hears every sale made to
    /// it before it says it is done.
    Settling {
        until: Millis,
        resend_at: Millis,
    },
    Done,
}

struct Buyer {
    step: Step,
    /// The quest under way (index into `quests`).
    quest: Option<usize>,
    next_n: u64,
    next_req: u64,
    quests: Vec<Quest>,
    rounds: Vec<Round>,
    buys: Vec<Bought>,
    timed_out_on: Vec<PeerId>,
}

/// One peer.
pub struct Peer {
    cfg: PeerConfig,
    rng: StdRng,
    neighbors: BTreeSet<PeerId>,
    seen: HashSet<LookupId>,
    arrived: HashSet<(LookupId, Vec<PeerId>)>,
    relayed_keys: HashSet<(LookupId, PeerId)>,
    arrivals: Vec<Arrival>,
    forwards: Vec<Forward>,
    /// Index into `forwards` by lookup: a reply is passed back only along a path this
    /// peer forwarded.
    forwarded: HashMap<LookupId, usize>,
    replied: Vec<Replied>,
    relayed: Vec<Relayed>,
    stall: Option<Stall>,
    buyer: Option<Buyer>,
    rejected: u64,
    out: VecDeque<Output<Message, PeerReport>>,
    /// `ready` was sent (at the first timer round: the peer is consuming by then).
    started: bool,
    finished: bool,
}

impl Peer {
    pub fn new(cfg: PeerConfig) -> Self {
        let stall = (cfg.role == Role::Seller).then(|| {
            let product = cfg.product.clone().unwrap_or_default();
            Stall {
                ledger: vec![Ledger::Stocked {
                    product: product.clone(),
                    items: cfg.stock,
                }],
                product,
                stock: cfg.stock,
                last: HashMap::new(),
                answered_again: 0,
            }
        });
        let buyer = (cfg.role == Role::Buyer).then(|| Buyer {
            step: Step::Start,
            quest: None,
            next_n: 1,
            next_req: 1,
            quests: Vec::new(),
            rounds: Vec::new(),
            buys: Vec::new(),
            timed_out_on: Vec::new(),
        });
        Peer {
            rng: StdRng::seed_from_u64(cfg.seed ^ (u64::from(cfg.id) << 32)),
            neighbors: cfg.neighbors.iter().copied().collect(),
            seen: HashSet::new(),
            arrived: HashSet::new(),
            relayed_keys: HashSet::new(),
            arrivals: Vec::new(),
            forwards: Vec::new(),
            forwarded: HashMap::new(),
            replied: Vec::new(),
            relayed: Vec::new(),
            stall,
            buyer,
            rejected: 0,
            out: VecDeque::new(),
            started: false,
            finished: false,
            cfg,
        }
    }

    fn send(&mut self, route: Route, body: Body) {
        self.out.push_back(Output::Publish {
            route,
            msg: Message::new(&self.cfg.run_id, (), body),
        });
    }

    fn refuse(&mut self, why: String) -> Result<(), Rejection> {
        self.rejected += 1;
        tracing::warn!(peer = self.cfg.id, "refused: {why}");
        Err(Rejection::Refused(why))
    }

    fn on_lookup(
        &mut self,
        now: Millis,
        id: LookupId,
        product: String,
        hops: u32,
        path: Vec<PeerId>,
    ) -> Result<(), Rejection> {
        let me = self.cfg.id;
        let from = *path.last().unwrap_or(&0);
        if !self.neighbors.contains(&from) {
            return self.refuse(format!("lookup {id} from {from}, not a neighbour"));
        }
        if path.contains(&me) {
            return self.refuse(format!("lookup {id} whose path already passed here"));
        }
        if hops as usize + path.len() != self.cfg.hop_count as usize {
            return self.refuse(format!(
                "lookup {id} with {hops} hops left after {} (the hop count is {})",
                path.len(),
                self.cfg.hop_count
            ));
        }
        if !self.arrived.insert((id, path.clone())) {
            // The broker's redelivery of a message already handled.
            return Ok(());
        }
        let first = self.seen.insert(id);
        self.arrivals.push(Arrival {
            id,
            path: path.clone(),
            hops,
            first,
            at: now,
        });
        if !first {
            return Ok(());
        }
        if let Some(s) = &self.stall
            && s.product == product
            && s.stock > 0
        {
            self.replied.push(Replied {
                id,
                product: product.clone(),
                path: path.clone(),
                at: now,
            });
            self.send(
                Route::Peer(from),
                Body::Reply {
                    id,
                    seller: me,
                    product: product.clone(),
                    path: path.clone(),
                    via: Vec::new(),
                },
            );
        }
        if hops >= 1 {
            let mut next = path;
            next.push(me);
            self.flood(now, id, product, hops - 1, next);
        }
        Ok(())
    }

    /// Sends lookup `id` with `path` (ending here) to every neighbour not on it.
    fn flood(&mut self, now: Millis, id: LookupId, product: String, hops: u32, path: Vec<PeerId>) {
        let to: Vec<PeerId> = self
            .neighbors
            .iter()
            .copied()
            .filter(|n| !path.contains(n))
            .collect();
        for n in &to {
            self.send(
                Route::Peer(*n),
                Body::Lookup {
                    id,
                    product: product.clone(),
                    hops,
                    path: path.clone(),
                },
            );
        }
        self.forwarded.insert(id, self.forwards.len());
        self.forwards.push(Forward {
            id,
            path,
            hops,
            to,
            at: now,
        });
    }

    fn on_reply(
        &mut self,
        now: Millis,
        id: LookupId,
        seller: PeerId,
        product: String,
        path: Vec<PeerId>,
        mut via: Vec<PeerId>,
    ) -> Result<(), Rejection> {
        let me = self.cfg.id;
        let here = path[path.len() - 1 - via.len()];
        if here != me {
            return self.refuse(format!(
                "reply to lookup {id} for peer {here} on its way back"
            ));
        }
        // Only back along a path this peer sent the lookup on (a forged reply is not
        // passed on).
        let mine = &path[..path.len() - via.len()];
        let sent = self.forwarded.get(&id).map(|i| &self.forwards[*i]);
        let back: Vec<PeerId> = path[mine.len()..].iter().rev().copied().collect();
        if sent.is_none_or(|f| f.path != mine) || via != back || mine.contains(&seller) {
            return self.refuse(format!(
                "a reply to lookup {id} along {path:?}, which this peer never sent it on"
            ));
        }
        if via.len() + 1 == path.len() {
            return self.reply_arrived(now, id, seller, via);
        }
        if !self.relayed_keys.insert((id, seller)) {
            return Ok(());
        }
        via.push(me);
        let to = path[path.len() - 1 - via.len()];
        self.relayed.push(Relayed {
            id,
            seller,
            to,
            at: now,
        });
        self.send(
            Route::Peer(to),
            Body::Reply {
                id,
                seller,
                product,
                path,
                via,
            },
        );
        Ok(())
    }

    fn reply_arrived(
        &mut self,
        now: Millis,
        id: LookupId,
        seller: PeerId,
        via: Vec<PeerId>,
    ) -> Result<(), Rejection> {
        let known = self
            .buyer
            .as_ref()
            .map(|b| b.rounds.iter().position(|r| r.id == id));
        let r = match known {
            None => {
                return self.refuse(format!(
                    "a reply to lookup {id} at a peer that buys nothing"
                ));
            }
            Some(None) => {
                return self.refuse(format!(
                    "a reply to lookup {id}, which this buyer never sent"
                ));
            }
            Some(Some(r)) => r,
        };
        let b = self.buyer();
        let round = &mut b.rounds[r];
        if round.replies.iter().any(|g| g.seller == seller) {
            return Ok(());
        }
        let open = matches!(&b.step, Step::Collecting { lookup, .. } if *lookup == id);
        round.replies.push(Got {
            seller,
            via,
            at: now,
            late: !open,
        });
        if let Step::Collecting { sellers, .. } = &mut b.step
            && open
        {
            sellers.push(seller);
        }
        Ok(())
    }

    fn on_buy(
        &mut self,
        now: Millis,
        buyer: PeerId,
        req: u64,
        seller: PeerId,
        product: String,
    ) -> Result<(), Rejection> {
        if seller != self.cfg.id {
            return self.refuse(format!("a buy for seller {seller}"));
        }
        let restock = self.cfg.restock;
        let Some(s) = &mut self.stall else {
            return self.refuse(format!("a buy from {buyer} at a peer that sells nothing"));
        };
        let sold = match s.last.get(&buyer) {
            Some((r, sold)) if *r == req => {
                s.answered_again += 1;
                *sold
            }
            Some((r, _)) if *r > req => {
                // An older buy of this buyer, come late: it was answered then.
                s.answered_again += 1;
                return Ok(());
            }
            _ => {
                let sold = s.product == product && s.stock > 0;
                if sold {
                    s.stock -= 1;
                    s.ledger.push(Ledger::Sold {
                        buyer,
                        req,
                        product: product.clone(),
                        at: now,
                    });
                    if s.stock == 0 {
                        let others: Vec<&String> = self
                            .cfg
                            .products
                            .iter()
                            .filter(|p| **p != s.product)
                            .collect();
                        let next = others
                            .choose(&mut self.rng)
                            .map_or_else(|| s.product.clone(), |p| (*p).clone());
                        s.product = next.clone();
                        s.stock = restock;
                        s.ledger.push(Ledger::Stocked {
                            product: next,
                            items: restock,
                        });
                    }
                } else {
                    s.ledger.push(Ledger::Refused {
                        buyer,
                        req,
                        product: product.clone(),
                        at: now,
                    });
                }
                s.last.insert(buyer, (req, sold));
                sold
            }
        };
        self.send(
            Route::Peer(buyer),
            Body::Answer {
                buyer,
                req,
                seller,
                product,
                sold,
            },
        );
        Ok(())
    }

    fn on_answer(
        &mut self,
        now: Millis,
        buyer: PeerId,
        req: u64,
        seller: PeerId,
        product: String,
        sold: bool,
    ) -> Result<(), Rejection> {
        if buyer != self.cfg.id {
            return self.refuse(format!("an answer for buyer {buyer}"));
        }
        let Some(b) = &mut self.buyer else {
            return self.refuse("an answer at a peer that buys nothing".into());
        };
        let Some(i) = b
            .buys
            .iter()
            .position(|x| x.req == req && x.seller == seller && x.product == product)
        else {
            return self.refuse(format!(
                "an answer to request {req} for {product} from {seller}, never sent"
            ));
        };
        if b.buys[i].answered_at.is_some() {
            return Ok(());
        }
        b.buys[i].sold = Some(sold);
        b.buys[i].answered_at = Some(now);
        if matches!(b.step, Step::Buying { buy, .. } if buy == i) {
            if sold {
                self.end_quest(now, Some(req));
            } else {
                self.next_seller(now);
            }
        }
        // An answer after the buyer gave up on that seller stays on the record: a "yes"
        // then is still an item bought (the checker counts it with the buyer's purchases).
        self.settle(now);
        Ok(())
    }

    fn finish(&mut self, outcome: PeerEnd) {
        if self.finished {
            return;
        }
        self.finished = true;
        let report = PeerReport {
            id: self.cfg.id,
            role: self.cfg.role,
            neighbors: self.neighbors.iter().copied().collect(),
            hop_count: self.cfg.hop_count,
            outcome,
            rejected: self.rejected,
            arrivals: std::mem::take(&mut self.arrivals),
            forwards: std::mem::take(&mut self.forwards),
            replied: std::mem::take(&mut self.replied),
            relayed: std::mem::take(&mut self.relayed),
            stall: self.stall.take().map(|s| StallReport {
                ledger: s.ledger,
                answered_again: s.answered_again,
                product: s.product,
                stock: s.stock,
            }),
            buyer: self.buyer.take().map(|b| BuyerReport {
                quests: b.quests,
                rounds: b.rounds,
                buys: b.buys,
                timed_out_on: b.timed_out_on,
            }),
        };
        self.send(
            Route::Results,
            Body::Report {
                report: super::protocol::Report::Peer(report.clone()),
            },
        );
        self.out.push_back(Output::Finished(report));
    }
}

/// The buy message of `x` from buyer `me` (the first send and every resend are alike).
fn buy(me: PeerId, x: &Bought) -> Body {
    Body::Buy {
        buyer: me,
        req: x.req,
        seller: x.seller,
        product: x.product.clone(),
        lookup: x.lookup,
    }
}

impl StateMachine for Peer {
    type Msg = Message;
    type Finished = PeerReport;

    fn handle(&mut self, now: Millis, bytes: &[u8]) -> Result<(), Rejection> {
        if self.finished {
            return Ok(());
        }
        let msg = match Message::decode(bytes, &self.cfg.run_id) {
            Ok(m) => m,
            Err(e) => {
                self.rejected += 1;
                tracing::warn!(peer = self.cfg.id, "rejected: {e}");
                return Err(e);
            }
        };
        match msg.body {
            Body::Lookup {
                id,
                product,
                hops,
                path,
            } => self.on_lookup(now, id, product, hops, path),
            Body::Reply {
                id,
                seller,
                product,
                path,
                via,
            } => self.on_reply(now, id, seller, product, path, via),
            Body::Buy {
                buyer,
                req,
                seller,
                product,
                ..
            } => self.on_buy(now, buyer, req, seller, product),
            Body::Answer {
                buyer,
                req,
                seller,
                product,
                sold,
            } => self.on_answer(now, buyer, req, seller, product, sold),
            Body::Open => {
                if let Some(b) = &self.buyer
                    && matches!(b.step, Step::Start)
                {
                    self.next_quest(now);
                }
                Ok(())
            }
            Body::Close { .. } => {
                self.finish(PeerEnd::Closed);
                Ok(())
            }
            b @ (Body::Done { .. } | Body::Ready { .. } | Body::Report { .. }) => {
                self.refuse(format!("a {} at a peer", b.kind()))
            }
        }
    }

    fn next_timeout(&self) -> Option<Millis> {
        if self.finished {
            return None;
        }
        if !self.started {
            return Some(0);
        }
        let step = self.buyer.as_ref().and_then(|b| match &b.step {
            Step::Start => None,
            Step::Collecting { until, .. } => Some(*until),
            Step::Buying {
                retry_at,
                give_up_at,
                ..
            } => Some((*retry_at).min(*give_up_at)),
            Step::Settling { until, resend_at } => Some((*until).min(*resend_at)),
            Step::Done => None,
        });
        match (step, self.cfg.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn handle_timeout(&mut self, now: Millis) {
        if self.finished {
            return;
        }
        if self.cfg.deadline.is_some_and(|d| now >= d) {
            self.finish(PeerEnd::TimedOut);
            return;
        }
        if !self.started {
            self.started = true;
            let me = self.cfg.id;
            self.send(Route::Role(CLERK), Body::Ready { peer: me });
        }
        enum Act {
            Window,
            GiveUp(usize),
            Resend(usize),
            Settle,
            Wait,
        }
        let Some(b) = &self.buyer else { return };
        let act = match &b.step {
            Step::Collecting { until, .. } if now >= *until => Act::Window,
            Step::Buying {
                buy, give_up_at, ..
            } if now >= *give_up_at => Act::GiveUp(*buy),
            Step::Buying { buy, retry_at, .. } if now >= *retry_at => Act::Resend(*buy),
            Step::Settling { .. } => Act::Settle,
            _ => Act::Wait,
        };
        match act {
            Act::Window => self.next_seller(now),
            Act::GiveUp(i) => {
                let b = self.buyer();
                let seller = b.buys[i].seller;
                b.timed_out_on.push(seller);
                self.next_seller(now);
            }
            Act::Resend(i) => {
                let me = self.cfg.id;
                let retry = self.cfg.buy_retry_ms;
                let b = self.buyer();
                if let Step::Buying { retry_at, .. } = &mut b.step {
                    *retry_at = now + retry;
                }
                let x = &mut b.buys[i];
                x.sends += 1;
                let (seller, body) = (x.seller, buy(me, x));
                self.send(Route::Peer(seller), body);
            }
            Act::Settle => self.settle(now),
            Act::Wait => {}
        }
    }

    fn poll_output(&mut self) -> Option<Output<Message, PeerReport>> {
        self.out.pop_front()
    }

    fn interrupt(&mut self, _now: Millis, reason: String) {
        self.finish(PeerEnd::Interrupted(reason));
    }
}
