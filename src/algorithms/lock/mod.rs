//! A named lock over the broker: `sync-run lock NAME -- CMD` holds it while CMD runs.
//!
//! What it promises: at most `--limit` holders at once (one by default); waiters served
//! first come, first served; every acquisition a **fencing token**, strictly increasing per
//! slot across holders, crashes, reconnects and broker restarts (`SYNC_RUN_FENCE`), so a
//! downstream resource can refuse a stale holder; the lock held exactly as long as the
//! holder's connection lives — a crashed holder's lock passes on at once, a holder that
//! loses its connection stops its command (SIGTERM, then SIGKILL after `--grace`) and
//! exits 76. A partitioned holder's command may still run for up to the heartbeat timeout
//! plus the grace after another got the lock: the fence is what makes that window safe.
//!
//! How: one single-active-consumer queue per slot holding one token, consumed with
//! prefetch 1 ([`crate::broker::lease`]); the pure [`token`] machine turns deliveries into
//! publishes, acknowledgements and starts. docs/lock.md says more, PROTOCOL.md the wire.
//!
//! * [`token`] — the token machine (pure);
//! * [`protocol`] — names, the token and the holder's record;
//! * [`report`], [`checks`] — a holding's report, the proof;
//! * [`holder`] — one contender on the broker, [`open`] — opened from a command; [`child`] — the command; [`host`] — the
//!   machine's clock, boot id and name;
//! * [`command`], [`check`], [`status`], [`bench`] — the command line.

pub mod bench;
pub mod check;
pub mod checks;
pub mod child;
pub mod cli;
pub mod command;
pub mod holder;
pub mod host;
pub mod open;
pub mod protocol;
pub mod report;
pub mod status;
pub mod token;

/// Exit code: `--wait` ran out (or `--wait 0` found the lock held). 75 is sysexits'
/// EX_TEMPFAIL: try again later.
pub const GAVE_UP: i32 = 75;
/// Exit code: the connection was lost while holding; the command was stopped.
pub const LOST: i32 = 76;
