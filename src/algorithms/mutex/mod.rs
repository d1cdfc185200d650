//! Ricart–Agrawala mutual exclusion, checked by vector clocks.
//!
//! N processes (ids 1..=N), each with its own inbox, each enter a critical section K
//! times. To enter, a process stamps a request with its Lamport time and id, `(L, i)`, and
//! sends it to the N−1 others; it enters once it holds all N−1 replies. A process that
//! receives request `(Lr, j)` replies at once unless it is inside, or it is requesting
//! itself with an older timestamp `(L, i) < (Lr, j)`: then it defers the reply until it
//! exits. 2(N−1) messages per entry.
//!
//! Why it is safe: suppose i and j were inside at once, with `(Li, i) < (Lj, j)`. j holds
//! i's reply to its request. Had i received j's request before requesting itself, i's
//! clock would have passed Lj and then Li > Lj: so i received it while requesting with the
//! older stamp, or while inside, and deferred the reply until its exit. j therefore entered
//! after i exited — never both at once — and in vector time `exit(i) < reply < enter(j)`:
//! every two sections are ordered by happened-before, which is what the checker proves
//! from the clocks alone ([`checks`]).
//!
//! Delivery is exactly once and FIFO per channel ([`crate::contract::fifo`]): a duplicated
//! or re-published request must never earn a second reply, or the message count breaks.
//! Without a coordinator, a process that made its K entries sends `done` to every peer;
//! a process finishes when it made its K entries, sent its deferred replies and applied
//! every peer's `done` (hence everything before it). It then publishes its [`report`] on
//! the results route.

pub mod bench;
pub mod checks;
pub mod cli;
pub mod clock;
pub mod command;
pub mod diagram;
pub mod print;
pub mod process;
pub mod protocol;
pub mod report;

pub use checks::verify;
pub use process::{Process, ProcessConfig};
pub use protocol::{Message, decode_report};
pub use report::{Outcome, Report};
