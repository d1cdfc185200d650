//! The logical-clock exercise, checked: N processes exchange messages at random and stamp
//! every event with a Lamport clock and a vector clock; the checker rebuilds the true
//! happened-before relation from the message log alone and proves that vector clocks
//! characterise it (`e → f ⇔ VC(e) < VC(f)`) and that Lamport clocks respect it
//! (`e → f ⇒ L(e) < L(f)`).
//!
//! Each process has its own inbox ([`crate::contract::Route::Peer`]) and ends without a
//! coordinator: it sends `done` to each peer after its own events and stops once it has
//! heard every peer's `done`. Duplicated and re-published deliveries are applied once, in
//! order ([`crate::contract::fifo`]).
//!
//! * [`protocol`] — the wire format (`msg`, `done`, `report`);
//! * [`process`] — the state machine;
//! * [`report`] — what a process reports, and its space-time diagram;
//! * [`checks`] — the proof;
//! * [`print`] — the text output.

pub mod checks;
pub mod cli;
pub mod command;
pub mod print;
pub mod process;
pub mod protocol;
pub mod report;
#[cfg(test)]
pub(crate) mod testing;
