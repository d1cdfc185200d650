//! The list agreement: a master and N workers agree on one list.
//!
//! Workers publish their ids to the master's queue; the master grants a randomly chosen
//! worker on the run's fanout; that worker appends a random number; every worker ends
//! with the same list, and [`checks`] proves it from the lists the workers reported.
//! The wire format is in docs/PROTOCOL.md, the algorithm in docs/list.md.

pub mod bench;
pub mod bench_render;
pub mod broker;
pub mod checks;
pub mod cli;
pub mod cluster_bench;
pub mod command;
pub mod master;
pub mod protocol;
pub mod record;
pub mod report;
pub mod run;
pub mod sim;
pub mod timeline;
pub mod worker;
