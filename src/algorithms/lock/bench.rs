//! `sync-run bench lock`: what holding the lock costs over the broker, as ratios of the
//! broker's own one hop measured in the same session.
//!
//! * **uncontended acquire**: one contender, the lock free: from asking to holding (a
//!   consume, the token's delivery, the ready count, the next token published and
//!   confirmed, the old one acknowledged);
//! * **handover**: C contenders taking turns with an empty critical section: from one
//!   holder's end (read on CLOCK_MONOTONIC before it lets go) to the next holder's start,
//!   over consecutive holdings. Its critical path: the release (a channel close), the
//!   token's delivery to the next consumer, its ready count, its publish confirmed.
//!   Goal: within 3× one hop.
//!
//! Both run on a lock named `bench-RUNID`, deleted at the end.

use super::check::{Plan, Section, contenders};
use super::checks::{self, Expect};
use super::cli::BenchArgs;
use super::holder::Got;
use crate::bench::percentile;
use crate::bench::Children;
use crate::bench::report::yes_no;
use crate::cli::session::Session;
use anyhow::{Result, bail};
use serde::Serialize;
use std::time::{Duration, Instant};

/// One figure's samples.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub what: &'static str,
    pub samples: usize,
    pub verified: bool,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p50_per_hop: f64,
}

pub type Report = crate::bench::report::Report<Figures>;

crate::bench_columns!(Figures, |f| {
    "figure" => f.what.to_string(),
    "samples" => f.samples.to_string(),
    "verified" => yes_no(f.verified),
    "p50 ms" => format!("{:.3}", f.p50_ms),
    "p99 ms" => format!("{:.3}", f.p99_ms),
    "p50 ÷ one hop" => format!("{:.1}×", f.p50_per_hop),
});

fn figures(what: &'static str, mut ms: Vec<f64>, hop: f64, verified: bool) -> Figures {
    ms.sort_by(f64::total_cmp);
    let p50 = percentile(&ms, 0.5);
    Figures {
        what,
        samples: ms.len(),
        verified,
        p50_ms: p50,
        p99_ms: percentile(&ms, 0.99),
        p50_per_hop: p50 / hop,
    }
}

pub async fn run(s: &Session, a: &BenchArgs) -> Result<Report> {
    let hop = Children::of(&s.broker, a.runs.rtt_samples, a.runs.timeout)?
        .one_hop("lock")
        .await?;
    let p50 = percentile(&hop, 0.5);
    let run_id = crate::cli::random_run_id();
    eprintln!("bench lock: uncontended acquire, {} rounds", a.rounds);
    let acquire = uncontended(s, &format!("bench-{run_id}-a"), a.rounds).await?;
    let acquire = figures("uncontended acquire", acquire, p50, true);
    eprintln!(
        "bench lock: handover, {} contenders, {} rounds",
        a.contenders, a.rounds
    );
    let per = a.rounds.div_ceil(a.contenders).max(2);
    let plan = Plan {
        lock: format!("bench-{run_id}-h"),
        limit: 1,
        contenders: a.contenders,
        rounds: per,
        section: Section::Builtin(Duration::ZERO),
        timeout: a.runs.timeout,
    };
    let mut hs = contenders(s, &plan).await?;
    let expect = Expect {
        holdings: Some((a.contenders * per) as usize),
        lock: &plan.lock,
        limit: 1,
    };
    let verified = checks::verify(&hs, expect).verified;
    hs.sort_by_key(|h| h.start_ns);
    let gaps: Vec<f64> = hs
        .windows(2)
        .map(|w| w[1].start_ns.saturating_sub(w[0].end_ns) as f64 / 1e6)
        .collect();
    let handover = figures("handover", gaps, p50, verified);
    Ok(Report::new("lock", &hop, (), vec![acquire, handover], title))
}

fn title(r: &Report) -> String {
    format!(
        "sync-run bench lock — {}\nbroker one hop (publish → delivery on another connection): p50 {:.3} ms, p99 {:.3} ms; goal: handover within 3× one hop",
        r.machine, r.one_hop_p50_ms, r.one_hop_p99_ms
    )
}

/// Acquire → hold → release, `rounds` times, one contender: each acquire's time in ms.
async fn uncontended(s: &Session, lock: &str, rounds: u32) -> Result<Vec<f64>> {
    let mut h = super::open::open(s, "sync-run bench lock", lock, 1).await?;
    let mut stop = s.shutdown.clone();
    let mut out = Vec::new();
    let mut failure = None;
    for _ in 0..rounds {
        let t0 = Instant::now();
        match h.acquire(None, &mut stop).await {
            Ok(Got::Held { .. }) => out.push(t0.elapsed().as_secs_f64() * 1e3),
            Ok(other) => {
                failure = Some(format!("acquire ended {other:?}"));
                break;
            }
            Err(e) => {
                failure = Some(e.to_string());
                break;
            }
        }
        // A failed release ends the rounds, but not before the lock is deleted below.
        if let Err(e) = h.release().await {
            failure = Some(format!("releasing: {e}"));
            break;
        }
    }
    h.close().await;
    let names = super::protocol::queues(lock, 1);
    if let Err(e) = crate::broker::lease::delete(&s.broker, "sync-run bench lock", &names).await {
        eprintln!("bench lock: could not delete {lock}: {e:?}");
    }
    if let Some(f) = failure {
        bail!("uncontended acquire: {f}");
    }
    Ok(out)
}
