//! Replicated bank branches: customers call any branch, every branch holds one balance,
//! nothing is ever overdrawn, and every run proves it.
//!
//! The course's original (gRPC) applies a request at the branch that gets it and then
//! propagates it to the others; two customers acting at once double-spend. Here every
//! operation, queries included, goes into one total order set by a sequencer (the list
//! agreement's idea: one publisher numbers, every replica applies in number order), and
//! every branch applies that order with the same function ([`ledger`]). A branch answers
//! the customer that called it once it has applied the customer's operation; a retry is
//! answered from the branch's table, never applied twice; a branch that (re)starts asks
//! the sequencer for the state so far. The original design stays available as
//! `--mode propagate`, and the checker counts what it gets wrong.
//!
//! Rooms: [`input`] (the course's file formats), [`protocol`], [`ledger`], the roles
//! [`sequencer`], [`branch`] and [`customer`] (pure state machines), [`report`],
//! [`checks`], [`sim`] (the roles on the simulator); on the broker [`cli`], [`command`]
//! and [`bench`].

pub mod bench;
pub mod branch;
pub mod checks;
pub mod cli;
pub mod command;
pub mod customer;
pub mod input;
pub mod ledger;
pub mod ops;
pub mod participant;
pub mod protocol;
pub mod report;
pub mod sequencer;
pub mod sim;

pub use checks::{Anomalies, Proof, verify};
pub use protocol::{Mode, decode_report};
