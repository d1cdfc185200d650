//! `sync-run lock NAME --status` and `--delete`: a look at the lock's queues from the side,
//! and their removal while nobody takes part.
//!
//! What status can know: for each slot whether it is held (its token out, a consumer
//! there), the last holder's record (host, pid, fence, since: left when it acquired), and
//! how many contenders are connected (the marker's consumers), hence how many wait. What it
//! cannot: the order of the waiters, or whether a holder's connection is about to time
//! out; and a record is read by taking it and putting it back, so two `--status` at the
//! same instant may see one record missing.

use super::cli::LockArgs;
use super::protocol::{self, Record};
use crate::broker::lease::{self, Refused, Survey};
use crate::cli::session::Session;
use crate::exit;
use serde::Serialize;

/// One slot as status reports it.
#[derive(Debug, Clone, Serialize)]
pub struct SlotStatus {
    pub slot: u32,
    pub held: bool,
    /// The last holder's record (the current holder's when `held`).
    pub holder: Option<Record>,
}

/// The lock as status reports it.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub lock: String,
    pub exists: bool,
    pub limit: u32,
    pub held: u32,
    pub waiting: u32,
    pub slots: Vec<SlotStatus>,
}

/// What a survey says, in the lock's words.
pub fn read(lock: &str, survey: Option<Survey>) -> Status {
    let Some(sv) = survey else {
        return Status {
            lock: lock.to_owned(),
            exists: false,
            limit: 0,
            held: 0,
            waiting: 0,
            slots: Vec::new(),
        };
    };
    let slots: Vec<SlotStatus> = sv
        .slots
        .iter()
        .enumerate()
        .map(|(k, s)| SlotStatus {
            slot: k as u32,
            held: s.consumers > 0 && s.ready == 0,
            holder: s.record.as_deref().and_then(|b| Record::decode(b).ok()),
        })
        .collect();
    let held = slots.iter().filter(|s| s.held).count() as u32;
    Status {
        lock: lock.to_owned(),
        exists: true,
        limit: slots.len() as u32,
        held,
        waiting: sv.present.saturating_sub(held),
        slots,
    }
}

async fn survey(s: &Session, lock: &str) -> Result<Option<Survey>, crate::broker::BrokerError> {
    let names = |k| (protocol::slot_queue(lock, k), protocol::record_queue(lock, k));
    lease::survey(&s.broker, "sync-run lock status", &protocol::marker(lock), names).await
}

/// `sync-run lock NAME --status`.
pub async fn status(s: &Session, a: &LockArgs) -> i32 {
    let st = match survey(s, &a.name).await {
        Ok(sv) => read(&a.name, sv),
        Err(e) => return s.broker_failure(&a.name, &e),
    };
    if s.global.json {
        let mut doc = serde_json::json!({ "schema": "sync-run/lock-status/v1" });
        if let (Some(d), Ok(serde_json::Value::Object(m))) =
            (doc.as_object_mut(), serde_json::to_value(&st))
        {
            d.extend(m);
        }
        println!("{doc}");
    } else {
        print!("{}", text(&st));
    }
    exit::VERIFIED
}

/// The human lines.
pub fn text(st: &Status) -> String {
    if !st.exists {
        return format!("lock {}: free (it has no queues on this broker)\n", st.lock);
    }
    let mut out = format!(
        "lock {}: {} of {} held, {} waiting\n",
        st.lock, st.held, st.limit, st.waiting
    );
    for s in &st.slots {
        let who = s.holder.as_ref().map_or("no record".to_owned(), |r| {
            format!(
                "{} pid {}, fence {}, since {}",
                r.host,
                r.pid,
                r.fence,
                since(r.since_ms)
            )
        });
        let state = if s.held { "held by" } else { "free; last holder" };
        out.push_str(&format!("  slot {}: {state} {who}\n", s.slot));
    }
    out
}

/// `sync-run lock NAME --delete`.
pub async fn delete(s: &Session, a: &LockArgs) -> i32 {
    let limit = match survey(s, &a.name).await {
        Ok(Some(sv)) => sv.slots.len() as u32,
        Ok(None) => {
            println!("lock {}: nothing to delete", a.name);
            return exit::VERIFIED;
        }
        Err(e) => return s.broker_failure(&a.name, &e),
    };
    let names = protocol::queues(&a.name, limit);
    match lease::delete(&s.broker, "sync-run lock delete", &names).await {
        Ok(()) => {
            println!("lock {}: deleted", a.name);
            exit::VERIFIED
        }
        Err(Refused::InUse) => {
            eprintln!(
                "sync-run lock {}: in use (held or waited for): not deleted",
                a.name
            );
            exit::CONFLICT
        }
        Err(Refused::Broker(e)) => s.broker_failure(&a.name, &e),
    }
}

/// A record's `since_ms` as an RFC 3339 time; one past the year 9999 (which no holder
/// wrote, but a record read off the broker may say) as its milliseconds, not a panic.
fn since(ms: u64) -> String {
    const YEAR_10000_MS: u64 = 253_402_300_800_000;
    if ms >= YEAR_10000_MS {
        return format!("{ms} ms after the epoch");
    }
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::lease::SlotSurvey;

    #[test]
    fn held_free_and_waiting_from_a_survey() {
        let rec = Record {
            v: 1,
            lock: "db".into(),
            slot: 0,
            fence: 7,
            host: "h".into(),
            pid: 9,
            since_ms: 0,
        };
        let sv = Survey {
            slots: vec![
                SlotSurvey { ready: 0, consumers: 1, record: Some(rec.encode()) },
                SlotSurvey { ready: 1, consumers: 0, record: None },
            ],
            present: 3,
        };
        let st = read("db", Some(sv));
        assert_eq!((st.limit, st.held, st.waiting), (2, 1, 2));
        assert_eq!(st.slots[0].holder.as_ref().map(|r| r.fence), Some(7));
        assert!(text(&st).contains("held by h pid 9, fence 7"));
        assert!(!read("db", None).exists);
    }

    #[test]
    fn a_since_past_year_9999_is_shown_not_a_panic() {
        assert_eq!(since(0), "1970-01-01T00:00:00.000Z");
        assert!(since(u64::MAX).ends_with("ms after the epoch"));
    }
}
