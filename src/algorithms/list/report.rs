//! What the user sees: a readable table and verdict, or one JSON document (`--json`).

use super::checks::{Verdict, ids};
use super::master::{GrantOutcome, RunRecord};
use super::protocol::WorkerId;
use comfy_table::{ContentArrangement, Table};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// The algorithm's name in the `--json` document's schema, `sync-run/list/v2`
/// ([`crate::verdict::Document`]; docs/PROTOCOL.md describes it).
pub const ALGORITHM: &str = "list";

/// Turn latencies: grant published → append received by the master.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Timings {
    pub wall_ms: f64,
    pub join_ms: Option<u64>,
    pub turns_ms: Option<u64>,
    pub turn_p50_ms: Option<u64>,
    pub turn_p99_ms: Option<u64>,
}

pub fn timings(r: &RunRecord, wall: Duration) -> Timings {
    let mut turns: Vec<u64> = r
        .grants
        .iter()
        .filter_map(|g| match g.outcome {
            GrantOutcome::Committed { at_ms, .. } => Some(at_ms.saturating_sub(g.granted_at_ms)),
            _ => None,
        })
        .collect();
    turns.sort_unstable();
    let pct = |p: f64| -> Option<u64> {
        if turns.is_empty() {
            None
        } else {
            let i = ((turns.len() as f64 * p).ceil() as usize).clamp(1, turns.len()) - 1;
            Some(turns[i])
        }
    };
    Timings {
        wall_ms: wall.as_secs_f64() * 1000.0,
        join_ms: r.started_at_ms,
        turns_ms: match (r.started_at_ms, r.ended_at_ms) {
            (Some(s), Some(e)) => Some(e - s),
            _ => None,
        },
        turn_p50_ms: pct(0.5),
        turn_p99_ms: pct(0.99),
    }
}

/// The list's own fields of the `--json` document, after the shared `schema`, `run_id`,
/// `exit_code` and `verdict` ([`crate::verdict::Document`]).
#[derive(Debug, Serialize)]
pub struct JsonReport<'a> {
    pub workers: usize,
    pub members: &'a [WorkerId],
    pub rounds: u32,
    pub min: i64,
    pub max: i64,
    /// Worker ids in list order (committed grants only).
    pub grant_order: Vec<WorkerId>,
    pub grants: &'a [super::master::GrantRecord],
    pub evicted: &'a [WorkerId],
    /// Workers that wrote, then sent no result before the results deadline.
    pub lost: &'a [WorkerId],
    /// Each worker's list of values, in list order.
    pub lists: BTreeMap<WorkerId, Vec<i64>>,
    pub rejected_by_master: &'a BTreeMap<&'static str, u64>,
    pub rejected_by_workers: u64,
    pub timings: Timings,
    pub resources: Resources,
}

/// What the run cost this process (the benchmark reads these).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Resources {
    /// Deliveries consumed by the participants in this process.
    pub deliveries: u64,
    /// Messages they published, each confirmed by the broker.
    pub published: u64,
    /// The process's peak resident memory (Linux `VmHWM`), if known.
    pub peak_rss_kib: Option<u64>,
}

impl Resources {
    pub fn of(stats: &crate::broker::Stats) -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        Resources {
            deliveries: stats.deliveries.load(Relaxed),
            published: stats.published.load(Relaxed),
            peak_rss_kib: peak_rss_kib(),
        }
    }
}

pub use crate::bench::peak_rss_kib;

/// The `--json` report; `exit_code` is the code the process exits with (the verdict's, or
/// a signal's when one stopped the run).
pub fn json(
    r: &RunRecord,
    v: &Verdict,
    wall: Duration,
    resources: Resources,
    exit_code: i32,
) -> String {
    let fields = JsonReport {
        workers: r.expected_workers,
        members: &r.members,
        rounds: r.rounds,
        min: r.min,
        max: r.max,
        grant_order: r.committed().iter().map(|e| e.worker).collect(),
        grants: &r.grants,
        evicted: &r.evicted,
        lost: &r.lost,
        lists: r
            .results
            .iter()
            .map(|(w, rep)| (*w, rep.entries.iter().map(|e| e.value).collect()))
            .collect(),
        rejected_by_master: &r.rejected,
        rejected_by_workers: r.results.values().map(|rep| rep.rejected).sum(),
        timings: timings(r, wall),
        resources,
    };
    crate::verdict::Document::new(ALGORITHM, &r.run_id, exit_code, v, fields)
        .to_json()
}

fn join_values(values: impl Iterator<Item = i64>) -> String {
    values.map(|v| v.to_string()).collect::<Vec<_>>().join(" ")
}

/// One line: `VERIFIED: ...` or `FAILED: ...`.
pub fn verdict_line(r: &RunRecord, v: &Verdict, wall: Duration) -> String {
    let committed = r.committed().len();
    if v.verified {
        let mut missing = String::new();
        if !r.evicted.is_empty() {
            missing += &format!("; {} evicted: {}", r.evicted.len(), ids(&r.evicted));
        }
        if !r.lost.is_empty() {
            missing += &format!("; {} lost after writing: {}", r.lost.len(), ids(&r.lost));
        }
        format!(
            "VERIFIED: {} lists identical, {committed} entries each, in {:.3} s{missing}",
            r.results.len(),
            wall.as_secs_f64()
        )
    } else {
        // The first failed check says why; the count says how much else did not hold.
        v.failure_line()
            .unwrap_or_else(|| "FAILED: nothing to verify".into())
    }
}

/// The readable report: the grant order, every worker's list, the checks and the verdict.
pub fn human(r: &RunRecord, v: &Verdict, wall: Duration) -> String {
    let mut s = String::new();
    let t = timings(r, wall);
    s += &format!(
        "run {}: {} workers, {} round(s), values {}..={}\n",
        r.run_id,
        r.members.len(),
        r.rounds,
        r.min,
        r.max
    );
    s += &format!(
        "grant order (worker ids): {}\n",
        join_values(r.committed().iter().map(|e| e.worker as i64))
    );
    if !r.evicted.is_empty() {
        s += &format!("evicted: {}\n", ids(&r.evicted));
    }
    if !r.lost.is_empty() {
        s += &format!(
            "lost after writing (no result by the deadline): {}\n",
            ids(&r.lost)
        );
    }
    let mut table = Table::new();
    table
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(vec!["worker", "entries", "list"]);
    if r.results.len() <= 64 {
        for (w, rep) in &r.results {
            table.add_row(vec![
                w.to_string(),
                rep.entries.len().to_string(),
                join_values(rep.entries.iter().map(|e| e.value)),
            ]);
        }
    } else {
        // Hundreds of identical rows say nothing: show each distinct list once.
        let mut groups: BTreeMap<Vec<i64>, Vec<WorkerId>> = BTreeMap::new();
        for (w, rep) in &r.results {
            groups
                .entry(rep.entries.iter().map(|e| e.value).collect())
                .or_default()
                .push(*w);
        }
        for (list, workers) in groups {
            table.add_row(vec![
                format!(
                    "{} workers ({}..{})",
                    workers.len(),
                    workers[0],
                    workers[workers.len() - 1]
                ),
                list.len().to_string(),
                join_values(list.into_iter()),
            ]);
        }
    }
    if r.results.is_empty() {
        s += "no lists reported\n";
    } else {
        s += &format!("{table}\n");
    }
    s += &v.lines();
    if let (Some(p50), Some(p99)) = (t.turn_p50_ms, t.turn_p99_ms) {
        s += &format!(
            "  turn latency p50 {p50} ms, p99 {p99} ms; join {} ms\n",
            t.join_ms.unwrap_or(0)
        );
    }
    s += &verdict_line(r, v, wall);
    s.push('\n');
    s
}
