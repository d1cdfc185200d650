//! A buyer's side of a peer: its quests, one after another (a lookup, the replies
//! collected for the window, a buy from one replier at random, the next replier or a new
//! lookup on a "no" or no answer), then settling the buys still unanswered before it
//! tells the clerk it is done. Apart from the relay and the seller (in `peer.rs`), which
//! every peer is, so that each reads on its own.

use super::{Body, Buyer, Millis, PeerId, Route, Step, buy};
use crate::algorithms::market::protocol::{CLERK, LookupId};
use crate::algorithms::market::report::{Bought, Quest, Round};
use rand::Rng;
use rand::seq::IndexedRandom;

impl super::Peer {
    pub(super) fn buyer(&mut self) -> &mut Buyer {
        self.buyer.as_mut().expect("a buyer's step on a buyer")
    }

    /// Starts the next quest, or says done.
    pub(super) fn next_quest(&mut self, now: Millis) {
        let lookups = self.cfg.lookups;
        if self.buyer().quests.len() as u32 >= lookups {
            let timeout = self.cfg.buy_timeout_ms;
            let b = self.buyer();
            b.quest = None;
            b.step = Step::Settling {
                until: now.saturating_add(timeout.saturating_mul(3)),
                resend_at: now,
            };
            self.settle(now);
            return;
        }
        let pick = if self.cfg.wants.is_empty() {
            &self.cfg.products
        } else {
            &self.cfg.wants
        };
        let product = pick.choose(&mut self.rng).cloned().unwrap_or_default();
        let b = self.buyer();
        b.quests.push(Quest {
            product,
            started_at: now,
            rounds: 0,
            bought: None,
            ended_at: now,
        });
        b.quest = Some(b.quests.len() - 1);
        self.new_round(now);
    }

    /// Sends a new lookup for the current quest's product.
    pub(super) fn new_round(&mut self, now: Millis) {
        let me = self.cfg.id;
        let h = self.cfg.hop_count;
        let window = self.cfg.reply_window_ms;
        let b = self.buyer();
        let Some(q) = b.quest else { return };
        b.quests[q].rounds += 1;
        let product = b.quests[q].product.clone();
        let id = LookupId {
            buyer: me,
            n: b.next_n,
        };
        b.next_n += 1;
        b.rounds.push(Round {
            id,
            product: product.clone(),
            hop_count: h,
            sent_at: now,
            replies: Vec::new(),
        });
        b.step = Step::Collecting {
            lookup: id,
            until: now + window,
            sellers: Vec::new(),
        };
        self.seen.insert(id);
        if h >= 1 {
            self.flood(now, id, product, h - 1, vec![me]);
        }
    }

    /// The reply window closed, or a seller said no or nothing: buy from the next
    /// replier, or look up again, or give up.
    pub(super) fn next_seller(&mut self, now: Millis) {
        let retries = self.cfg.retries;
        let b = self.buyer.as_mut().expect("buyer");
        let (lookup, mut others) = match std::mem::replace(&mut b.step, Step::Done) {
            Step::Collecting {
                lookup, sellers, ..
            } => (lookup, sellers),
            Step::Buying { lookup, others, .. } => (lookup, others),
            s => {
                b.step = s;
                return;
            }
        };
        if others.is_empty() {
            let q = b.quest.map_or(0, |q| b.quests[q].rounds);
            if q <= retries {
                self.new_round(now);
            } else {
                self.end_quest(now, None);
            }
            return;
        }
        // The pick depends on the set of sellers and the seed, not on the order in which
        // their replies happened to come.
        others.sort_unstable();
        let seller = others.remove(self.rng.random_range(0..others.len()));
        let b = self.buyer.as_mut().expect("buyer");
        let product = b
            .quest
            .map(|q| b.quests[q].product.clone())
            .unwrap_or_default();
        let req = b.next_req;
        b.next_req += 1;
        let first = Bought {
            req,
            seller,
            product,
            lookup,
            sent_at: now,
            sends: 1,
            sold: None,
            answered_at: None,
        };
        let body = buy(self.cfg.id, &first);
        b.buys.push(first);
        b.step = Step::Buying {
            lookup,
            others,
            buy: b.buys.len() - 1,
            retry_at: now + self.cfg.buy_retry_ms,
            give_up_at: now + self.cfg.buy_timeout_ms,
        };
        self.send(Route::Peer(seller), body);
    }

    /// While settling: says done once every buy is answered (or the wait is over), and
    /// sends the unanswered ones again when it is time.
    pub(super) fn settle(&mut self, now: Millis) {
        let (me, retry) = (self.cfg.id, self.cfg.buy_retry_ms);
        let b = self.buyer();
        let Step::Settling { until, resend_at } = &mut b.step else {
            return;
        };
        let open: Vec<usize> = (0..b.buys.len())
            .filter(|i| b.buys[*i].answered_at.is_none())
            .collect();
        if open.is_empty() || now >= *until {
            b.step = Step::Done;
            self.send(Route::Role(CLERK), Body::Done { buyer: me });
            return;
        }
        if now < *resend_at {
            return;
        }
        *resend_at = now + retry;
        let again: Vec<(PeerId, Body)> = open
            .into_iter()
            .map(|i| {
                let x = &mut b.buys[i];
                x.sends += 1;
                (x.seller, buy(me, x))
            })
            .collect();
        for (seller, body) in again {
            self.send(Route::Peer(seller), body);
        }
    }

    pub(super) fn end_quest(&mut self, now: Millis, bought: Option<u64>) {
        let b = self.buyer();
        if let Some(q) = b.quest {
            b.quests[q].bought = bought;
            b.quests[q].ended_at = now;
        }
        self.next_quest(now);
    }
}
