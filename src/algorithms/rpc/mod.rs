//! Request/reply over the broker: `sync-run serve NAME -- CMD` answers each request by
//! running CMD (the request on its stdin, the reply from its stdout), `sync-run call NAME
//! [JSON]` sends one request and prints its reply — the remote method call of Java RMI or
//! Pyro, with RabbitMQ as the one address both sides know.
//!
//! What it promises: a call gets the reply to *its own* request or a clear failure — the
//! server's error (exit 1), nobody serving NAME (exit 69, at once), or no reply within
//! `--timeout` (exit 75) — never another call's reply and never two. Each reply names the
//! SHA-256 of the request it answers and the server that answered, so a caller can tell
//! (docs/PROTOCOL.md §17). Several servers of one NAME share one queue and so the work.
//! `call --check` proves it over C clients × K calls from the clients' own records.
//!
//! Pure: [`protocol`] (names, headers, what a valid request and reply are), [`pending`]
//! (the caller's table of calls in flight), [`record`] and [`checks`] (the proof).
//! Commands: [`cli`], [`command`] (`serve`, `call`), [`server`] (one server's loop),
//! [`exec`] (running CMD), [`client`] (one caller), [`check`] (the check mode), [`bench`].
//! The AMQP calls are `crate::broker::reply`'s.

pub mod bench;
pub mod check;
pub mod checks;
pub mod cli;
pub mod client;
pub mod command;
pub mod exec;
pub mod pending;
pub mod protocol;
pub mod record;
pub mod server;

/// `call`'s exit code when no queue serves NAME: the request came back unrouted
/// (sysexits' `EX_UNAVAILABLE`, "a service is unavailable").
pub const NO_SERVER: i32 = 69;
/// `call`'s exit code when no reply came within `--timeout` (sysexits' `EX_TEMPFAIL`:
/// worth trying again later).
pub const NO_REPLY: i32 = 75;
