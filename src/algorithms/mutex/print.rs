//! What the CLI prints: every process's events with their Lamport and vector timestamps,
//! one line each, and the one-line verdict.

use super::checks::verify;
use super::report::{Kind, Report, vc_text as vc};
use crate::verdict::Verdict;

/// One process's events, in its own order (its vector clock's own entry grows with each):
///
/// ```text
/// P2 send request -> P3  seq=1  L=7  VC=[3,4,1,0,0]
/// P2 enter #1  L=9  VC=[3,6,2,1,1]
/// P2 send done    -> P1  seq=4  L=21  VC=[9,12,8,6,7]
/// ```
///
/// A request goes to every peer with one stamp: one line per copy. Every message the
/// report logs is a line, `done` included, so each clock step has its line.
pub fn events(reports: &[Report]) -> String {
    let mut out = String::new();
    let mut reports: Vec<&Report> = reports.iter().collect();
    reports.sort_by_key(|r| r.id);
    for r in reports {
        let own = |vc: &[u64]| vc.get(r.id as usize - 1).copied().unwrap_or(0);
        // (own clock entry, order of kind within one event, line)
        let mut lines: Vec<(u64, u8, String)> = Vec::new();
        for e in &r.executions {
            lines.push((
                own(&e.enter_vc),
                0,
                format!(
                    "P{} enter #{}  L={}  VC={}  request=({},{})",
                    r.id,
                    e.index,
                    e.enter_lamport,
                    vc(&e.enter_vc),
                    e.request.0,
                    e.request.1
                ),
            ));
            lines.push((
                own(&e.exit_vc),
                0,
                format!(
                    "P{} exit  #{}  L={}  VC={}",
                    r.id,
                    e.index,
                    e.exit_lamport,
                    vc(&e.exit_vc)
                ),
            ));
        }
        for (order, events, verb, arrow) in
            [(1, &r.sent, "send", "->"), (2, &r.received, "recv", "<-")]
        {
            for e in events {
                lines.push((
                    own(&e.vc),
                    order,
                    format!(
                        "P{} {verb} {:<7} {arrow} P{}  seq={}  L={}  VC={}",
                        r.id,
                        e.kind.name(),
                        e.peer_of(r.id),
                        e.seq,
                        e.lamport,
                        vc(&e.vc)
                    ),
                ));
            }
        }
        lines.sort_by_key(|(t, k, _)| (*t, *k));
        for (_, _, line) in lines {
            out += &line;
            out.push('\n');
        }
        out += &format!("P{} {}\n", r.id, outcome_line(r));
    }
    out
}

fn outcome_line(r: &Report) -> String {
    let sent = |kind| r.sent.iter().filter(|e| e.kind == kind).count();
    format!(
        "ended {:?}: {} entries, {} requests and {} replies sent, {} rejected",
        r.outcome,
        r.executions.len(),
        sent(Kind::Request),
        sent(Kind::Reply),
        r.rejected
    )
}

/// `VERIFIED: 5 processes, 15 entries, safety by vector clocks, 2(N-1)=8 messages per
/// entry`, or the verdict's failure line.
pub fn summary(verdict: &Verdict, processes: u32, entries: u32) -> String {
    use crate::verdict::plural;
    match verdict.failure_line() {
        Some(line) => line,
        None => format!(
            "VERIFIED: {}, {}, safety by vector clocks, 2(N-1)={} per entry",
            plural(u64::from(processes), "process", "processes"),
            plural(u64::from(processes * entries), "entry", "entries"),
            plural(
                2 * u64::from(processes.saturating_sub(1)),
                "message",
                "messages"
            )
        ),
    }
}

/// The whole human report: events, the checks, the summary line.
pub fn render(reports: &[Report], processes: u32, entries: u32) -> String {
    let verdict = verify(reports, processes, entries);
    format!(
        "{}{}{}\n",
        events(reports),
        verdict.lines(),
        summary(&verdict, processes, entries)
    )
}
