//! Opening a contender of a lock from a command: the lock's queue type as the user gave it
//! (quorum unless `--queue-type classic` was given), and a lock that exists with another
//! `--limit` or queue type refused as a usage error naming the option. Shared by the
//! command, the check mode and the bench, so that all three open a contender alike.

use super::cli;
use super::holder::Holder;
use crate::broker::BrokerError;
use crate::broker::lease::Inequivalent;
use crate::cli::session::Session;
use crate::cli::usage_error;

/// Says which option two contenders of one lock disagree on (exit 2).
pub fn refuse_inequivalent(lock: &str, limit: u32, no: &Inequivalent) -> ! {
    let option = if no.detail.contains("x-max-length") {
        format!("--limit (this one {limit})")
    } else if no.detail.contains("x-queue-type") {
        "--queue-type (a lock's queues are quorum unless --queue-type classic is given)".into()
    } else {
        "--limit or --queue-type".into()
    };
    usage_error(format!(
        "lock {lock} exists with another {option}: every contender of a lock must agree; the broker says: {}",
        no.detail
    ))
}

/// Opens a contender of lock `lock` as `who`; a disagreement is a usage error.
pub async fn open(
    s: &Session,
    who: &str,
    lock: &str,
    limit: u32,
) -> Result<Holder, BrokerError> {
    let qt = cli::queue_type(s.global.queue_type);
    match Holder::open(&s.broker, who, lock, limit, qt).await? {
        Ok(h) => Ok(h),
        Err(no) => refuse_inequivalent(lock, limit, &no),
    }
}
