//! One replica of the account: the balance, what has been applied, and each customer's
//! latest answer. The sequencer and every branch hold one and apply the same operations
//! in the same order with this one function, so they compute the same results.
//!
//! Memory is flat in the number of operations: a replica keeps one [`Last`] per customer
//! (customers call one request at a time, so the latest is the only one a retry can ask
//! for again), not one entry per operation.

use super::protocol::{Last, Op, Operation, Outcome};
use crate::contract::PeerId;
use std::collections::BTreeMap;

/// What a replica knows about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Older than the customer's latest: the customer has its answer and moved on.
    Old,
    /// The customer's latest, already applied: answer it again.
    Applied(Last),
    /// Not applied yet.
    New,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ledger {
    /// The last operation applied (its place in the order).
    pub seq: u64,
    pub balance: i64,
    pub min_balance: i64,
    pub deposited: u64,
    pub withdrawn: u64,
    pub last: BTreeMap<PeerId, Last>,
}

impl Ledger {
    pub fn new(balance: u64) -> Self {
        let b = i64::try_from(balance).unwrap_or(i64::MAX);
        Ledger {
            seq: 0,
            balance: b,
            min_balance: b,
            deposited: 0,
            withdrawn: 0,
            last: BTreeMap::new(),
        }
    }

    /// A replica as the sequencer's `state` describes it.
    pub fn from_state(
        seq: u64,
        balance: i64,
        deposited: u64,
        withdrawn: u64,
        last: &[Last],
    ) -> Self {
        Ledger {
            seq,
            balance,
            min_balance: balance,
            deposited,
            withdrawn,
            last: last.iter().map(|l| (l.customer, *l)).collect(),
        }
    }

    pub fn seen(&self, customer: PeerId, req: u64) -> Seen {
        match self.last.get(&customer) {
            Some(l) if req < l.req => Seen::Old,
            Some(l) if req == l.req => Seen::Applied(*l),
            _ => Seen::New,
        }
    }

    /// Applies `o` as operation `seq`: a query reads the balance, a deposit adds, a
    /// withdraw takes the money if it is there and otherwise fails and changes nothing.
    /// `blind` applies a withdraw whatever the balance (`--mode propagate`'s receivers: the
    /// original's behaviour, which is how it overdraws).
    pub fn apply(&mut self, seq: u64, o: &Operation, blind: bool) -> Last {
        let m = i64::try_from(o.money).unwrap_or(i64::MAX);
        let (result, money) = match o.op {
            Op::Query => (Outcome::Success, Some(self.balance)),
            Op::Deposit => {
                self.balance = self.balance.saturating_add(m);
                self.deposited = self.deposited.saturating_add(o.money);
                (Outcome::Success, None)
            }
            Op::Withdraw if blind || self.balance >= m => {
                self.balance = self.balance.saturating_sub(m);
                self.withdrawn = self.withdrawn.saturating_add(o.money);
                (Outcome::Success, None)
            }
            Op::Withdraw => (Outcome::Fail, None),
        };
        self.min_balance = self.min_balance.min(self.balance);
        self.seq = seq;
        let last = Last {
            customer: o.customer,
            req: o.req,
            op: o.op,
            result,
            money,
            seq,
        };
        // A late propagation of an older request (`--mode propagate`) must not make the
        // customer's latest one look new again.
        if self.last.get(&o.customer).is_none_or(|l| l.req <= o.req) {
            self.last.insert(o.customer, last);
        }
        last
    }

    /// Each customer's latest answer, for a `state` message.
    pub fn lasts(&self) -> Vec<Last> {
        self.last.values().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(customer: PeerId, req: u64, op: Op, money: u64) -> Operation {
        Operation {
            customer,
            req,
            op,
            money,
        }
    }

    #[test]
    fn withdraw_beyond_the_balance_fails_and_changes_nothing() {
        let mut l = Ledger::new(400);
        assert_eq!(
            l.apply(1, &op(1, 1, Op::Withdraw, 500), false).result,
            Outcome::Fail
        );
        assert_eq!(l.balance, 400);
        assert_eq!(
            l.apply(2, &op(1, 2, Op::Withdraw, 400), false).result,
            Outcome::Success
        );
        assert_eq!(l.apply(3, &op(2, 1, Op::Query, 0), false).money, Some(0));
        assert_eq!(l.seen(1, 1), Seen::Old);
        assert!(matches!(l.seen(1, 2), Seen::Applied(_)));
        assert_eq!(l.seen(1, 3), Seen::New);
        // Blind (the original's propagation) overdraws.
        l.apply(4, &op(3, 1, Op::Withdraw, 10), true);
        assert_eq!((l.balance, l.min_balance), (-10, -10));
    }
}
