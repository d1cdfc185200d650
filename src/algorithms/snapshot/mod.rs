//! Chandy–Lamport global snapshots of a bank whose nodes transfer money over FIFO channels
//! on RabbitMQ, driven by a command script (the course's format, kept exact) or by random
//! transfers with snapshots taken while they go on. See docs/snapshot.md.
//!
//! Pure: `protocol`, `script`, `node`, `observer`, `master`, `auto`, `report`, `checks`,
//! `print`, `diagram`. On the broker and in front of the user: `cli`, `command`, `bench`.

pub mod auto;
pub mod bench;
pub mod channel;
pub mod checks;
pub mod cli;
pub mod command;
pub mod diagram;
pub mod master;
pub mod node;
pub mod observer;
pub mod print;
pub mod protocol;
pub mod report;
pub mod script;
pub mod sim;

pub use checks::verify;
