//! One folder per algorithm: its messages, its state machines (pure, see
//! [`crate::contract`]), its wiring on the broker, its checks and its report. Adding an
//! algorithm is a folder here plus one line of dispatch in the CLI (docs/ARCHITECTURE.md).

pub mod bank;
pub mod clocks;
pub mod list;
pub mod market;
pub mod mutex;
pub mod snapshot;
