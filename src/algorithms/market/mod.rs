//! A peer-to-peer bazaar: buyers flood lookups with a hop count, sellers reply back along
//! the lookup's path, a buyer buys directly from one replier, and no seller ever sells
//! what it does not have. Every run proves it.
//!
//! The course's original (Python, Pyro4) had each peer call its neighbours' methods; here
//! every peer has an inbox on the broker and talks to its neighbours only, except for the
//! buy itself (buyer → seller, directly). Its own report named the case it did not
//! handle: n buyers answered by one seller holding n − 1 items. Here a seller sells only
//! what it has and answers every buy yes or no, a retried buy is answered again and never
//! sold twice, and a buyer told no tries the next replier, then a new lookup, then gives
//! up: never an oversell, never a hang.
//!
//! Rooms: [`graph`] (the market's shape: ring, random:K or a file), [`protocol`], the
//! roles [`peer`] and [`clerk`] (pure state machines), [`report`], [`checks`], [`sim`];
//! on the broker [`cli`], [`command`] and [`bench`].

pub mod bench;
pub mod checks;
pub mod clerk;
pub mod cli;
pub mod command;
pub mod diagram;
pub mod graph;
pub mod lookup;
pub mod participant;
pub mod peer;
pub mod protocol;
pub mod report;
pub mod sim;

pub use checks::{Expect, Figures, Proof, verify};
