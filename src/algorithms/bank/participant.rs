//! Any participant of a bank run as one machine type, for the drivers that run several
//! kinds together: the simulator, and `sync-run bank`, which drives its sequencer,
//! branches and customers on one connection pool.

use super::branch::{Branch, BranchConfig};
use super::customer::{Customer, CustomerConfig};
use super::input::{self, Input};
use super::protocol::{Message, Mode};
use super::report::{BranchReport, CustomerReport, SequencerReport};
use super::sequencer::{Sequencer, SequencerConfig};
use crate::contract::{Millis, PeerId};

/// What every participant of a run is built from, besides the input.
#[derive(Debug, Clone)]
pub struct Setup {
    pub run_id: String,
    pub mode: Mode,
    /// Customers one after another, in input order (the default), or all at once.
    pub sequential: bool,
    pub retry_ms: Millis,
    pub timeout_ms: Millis,
    /// When branches and the sequencer give up on the run (`--run-timeout`).
    pub deadline: Option<Millis>,
    pub record: bool,
    /// The customers' clock: its name and its value at the driver's time 0.
    pub clock: String,
    pub clock_base: u64,
}

impl Setup {
    pub fn sequencer(&self, input: &Input) -> Sequencer {
        Sequencer::new(SequencerConfig {
            run_id: self.run_id.clone(),
            mode: self.mode,
            branches: input.branches.clone(),
            customers: input.customer_ids(),
            balance: input.balance,
            sequential: self.sequential,
            deadline: self.deadline,
        })
    }

    pub fn branch(&self, input: &Input, id: PeerId) -> Branch {
        Branch::new(BranchConfig {
            run_id: self.run_id.clone(),
            id,
            mode: self.mode,
            branches: input.branches.clone(),
            customers: input.customer_ids(),
            balance: input.balance,
            deadline: self.deadline,
            record: self.record,
        })
    }

    pub fn customer(&self, c: &input::Customer, now: Millis) -> Customer {
        Customer::new(
            CustomerConfig {
                run_id: self.run_id.clone(),
                id: c.id,
                events: c.events.clone(),
                retry_ms: self.retry_ms,
                timeout_ms: self.timeout_ms,
                clock: self.clock.clone(),
                clock_base: self.clock_base,
                record: self.record,
                wait_for_go: self.sequential,
                deadline: self.deadline,
            },
            now,
        )
    }
}

/// How any participant ended.
#[derive(Debug)]
pub enum Ended {
    Sequencer(SequencerReport),
    Branch(BranchReport),
    Customer(CustomerReport),
}

crate::contract::roles::roles! {
    /// Any participant.
    #[allow(clippy::large_enum_variant)]
    pub enum Part: Message => Ended {
        Sequencer(Sequencer) => Ended::Sequencer,
        Branch(Branch) => Ended::Branch,
        Customer(Customer) => Ended::Customer,
    }
}
