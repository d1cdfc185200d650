//! The text output of a logical-clock run: every event on its own line, grouped by
//! process, then the checks and a one-line verdict.
//!
//! ```text
//! P1 e3 send→P2      L=4   VC=[3,1,0]
//! P2 e2 receive←P1   L=5   VC=[3,2,0]
//! VERIFIED: 3 processes, 15 internal events, 7 messages; e→f ⇔ VC(e)<VC(f) over 666 pairs
//! ```

use super::report::{EventKind, Report, name, vc_text};
use crate::verdict::Verdict;

/// One line per event, processes in id order, each in its own order.
pub fn events(reports: &[Report]) -> String {
    let mut sorted: Vec<&Report> = reports.iter().collect();
    sorted.sort_by_key(|r| r.id);
    sorted.dedup_by_key(|r| r.id);
    let mut s = String::new();
    for r in sorted {
        for e in &r.events {
            let what = match e.kind {
                EventKind::Internal => "internal".to_string(),
                EventKind::Send { to, .. } => format!("send→P{to}"),
                EventKind::Receive { from, .. } => format!("receive←P{from}"),
            };
            let l = format!("L={}", e.lamport);
            s += &format!(
                "{:<8} {what:<12} {l:<7} VC={}\n",
                name(r.id, e.index),
                vc_text(&e.vc)
            );
        }
    }
    s
}

/// `VERIFIED: 3 processes, 15 internal events, 7 messages; e→f ⇔ VC(e)<VC(f) over 210
/// pairs`, or the verdict's failure line.
pub fn summary(reports: &[Report], verdict: &Verdict) -> String {
    if let Some(failed) = verdict.failure_line() {
        return failed;
    }
    let mut sorted: Vec<&Report> = reports.iter().collect();
    sorted.sort_by_key(|r| r.id);
    sorted.dedup_by_key(|r| r.id);
    let internal: u64 = sorted.iter().map(|r| r.counts.internal).sum();
    let messages: u64 = sorted.iter().map(|r| r.counts.sent).sum();
    let m: u64 = sorted.iter().map(|r| r.events.len() as u64).sum();
    use crate::verdict::plural;
    format!(
        "VERIFIED: {}, {}, {}; e→f ⇔ VC(e)<VC(f) over {}",
        plural(sorted.len() as u64, "process", "processes"),
        plural(internal, "internal event", "internal events"),
        plural(messages, "message", "messages"),
        plural(m * m.saturating_sub(1), "pair", "pairs"),
    )
}

/// Everything: the events, the check lines, the summary.
pub fn text(reports: &[Report], verdict: &Verdict) -> String {
    format!(
        "{}\n{}{}\n",
        events(reports),
        verdict.lines(),
        summary(reports, verdict)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithms::clocks::{checks, testing};

    #[test]
    fn prints_every_event_and_a_verdict_line() {
        let reports = testing::good(3, 5, 1);
        let v = checks::verify(&reports, 3, 5);
        let out = text(&reports, &v);
        let m: usize = reports.iter().map(|r| r.events.len()).sum();
        assert_eq!(out.lines().filter(|l| l.starts_with('P')).count(), m);
        assert!(
            out.contains("P1 e1    internal     L=1     VC=[1,0,0]"),
            "{out}"
        );
        let last = out.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("VERIFIED: 3 processes, 15 internal events"),
            "{last}"
        );
        assert!(
            last.ends_with(&format!("over {} pairs", m * (m - 1))),
            "{last}"
        );
    }
}
