//! The proof, from the holders' own reports alone: on one machine by the shared monotonic
//! clock (reports compared only within one `boot_id`), anywhere by the fencing tokens.

use super::report::Holding;
use crate::verdict::{Check, Verdict, check, not_run};
use std::collections::{BTreeMap, BTreeSet};

/// What the reports must show: how many (`None`: any number, at least one), of which lock
/// and limit.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    pub holdings: Option<usize>,
    pub lock: &'a str,
    pub limit: u32,
}

/// The checks: six, and a seventh when some holder acquired more than once (its own
/// order is then a proof that needs no clock).
pub fn verify(reports: &[Holding], expect: Expect<'_>) -> Verdict {
    let (at_once, order) = clock_checks(reports, expect.limit);
    let mut checks = vec![
        reported(reports, expect),
        one_lock(reports, expect),
        within_limit(reports, expect),
        fences_unique(reports),
        at_once,
        order,
    ];
    if reports.iter().any(|h| h.round > 0) {
        checks.insert(4, fences_in_own_order(reports));
    }
    Verdict::new(checks)
}

/// Every acquisition reported (with `--contenders C --rounds K`, C·K), each well-formed.
fn reported(r: &[Holding], e: Expect<'_>) -> Check {
    const NAME: &str = "every holding reported";
    if r.is_empty() {
        return check(NAME, false, "no report at all");
    }
    if let Some(bad) = r.iter().find(|h| h.end_ns < h.start_ns) {
        return check(
            NAME,
            false,
            format!("fence {} ends before it starts", bad.fence),
        );
    }
    match e.holdings {
        Some(n) if n != r.len() => check(NAME, false, format!("{} of {n}", r.len())),
        _ => check(NAME, true, format!("{} holdings", r.len())),
    }
}

/// One lock, one limit: reports of another lock or limit are not comparable.
fn one_lock(r: &[Holding], e: Expect<'_>) -> Check {
    const NAME: &str = "one lock, one limit";
    let names: BTreeSet<(&str, u32)> = r.iter().map(|h| (h.lock.as_str(), h.limit)).collect();
    let expected = (e.lock, e.limit);
    match names.iter().find(|n| **n != expected) {
        _ if names.is_empty() => not_run(NAME, "no report"),
        Some((lock, limit)) => check(
            NAME,
            false,
            format!("a report of lock {lock} with limit {limit}, expected {} with limit {}", e.lock, e.limit),
        ),
        None => check(NAME, true, format!("lock {}, limit {}", e.lock, e.limit)),
    }
}

fn within_limit(r: &[Holding], e: Expect<'_>) -> Check {
    const NAME: &str = "slots within the limit";
    match r.iter().find(|h| h.slot >= e.limit) {
        Some(h) => check(NAME, false, format!("slot {} with limit {}", h.slot, e.limit)),
        None if r.is_empty() => not_run(NAME, "no report"),
        None => check(NAME, true, format!("every slot below {}", e.limit)),
    }
}

/// No fence handed out twice on one slot: holds anywhere, no clock needed.
fn fences_unique(r: &[Holding]) -> Check {
    const NAME: &str = "fences unique";
    let mut seen = BTreeSet::new();
    for h in r {
        if !seen.insert((h.slot, h.fence)) {
            return check(
                NAME,
                false,
                format!("fence {} of slot {} twice", h.fence, h.slot),
            );
        }
    }
    if r.is_empty() {
        return not_run(NAME, "no report");
    }
    check(NAME, true, format!("{} distinct", seen.len()))
}

/// Each contender's own acquisitions of one slot (in its own order, no clock needed) got
/// strictly increasing fences.
fn fences_in_own_order(r: &[Holding]) -> Check {
    const NAME: &str = "fences increase for each holder";
    let mut by: BTreeMap<(&str, u32, u32, u32), Vec<&Holding>> = BTreeMap::new();
    for h in r {
        by.entry((&h.host, h.pid, h.contender, h.slot))
            .or_default()
            .push(h);
    }
    let mut pairs = 0;
    for hs in by.values_mut() {
        hs.sort_by_key(|h| h.round);
        for w in hs.windows(2) {
            pairs += 1;
            if w[1].fence <= w[0].fence {
                return check(
                    NAME,
                    false,
                    format!(
                        "{} pid {} contender {}: round {} fence {}, then round {} fence {}",
                        w[0].host, w[0].pid, w[0].contender, w[0].round, w[0].fence, w[1].round,
                        w[1].fence
                    ),
                );
            }
        }
    }
    if pairs == 0 {
        return not_run(NAME, "no holder acquired a slot twice");
    }
    check(NAME, true, format!("{pairs} successive pairs"))
}

/// By the monotonic clock, within each boot: never more than `limit` holders at once (one
/// per slot), and fences strictly increasing in the order the holdings started.
fn clock_checks(r: &[Holding], limit: u32) -> (Check, Check) {
    const AT_ONCE: &str = "at most limit holders at once";
    const ORDER: &str = "fences increase with time";
    let mut boots: BTreeMap<&str, Vec<&Holding>> = BTreeMap::new();
    for h in r {
        boots.entry(&h.boot_id).or_default().push(h);
    }
    boots.retain(|_, hs| hs.len() >= 2);
    if boots.is_empty() {
        let why = "fewer than two reports from one machine's boot";
        return (not_run(AT_ONCE, why), not_run(ORDER, why));
    }
    let mut peak = 0;
    let mut at_once = None;
    let mut order = None;
    for hs in boots.values_mut() {
        hs.sort_by_key(|h| (h.start_ns, h.end_ns));
        // A sweep over starts and ends: an end at the same instant as a start counts
        // first (touching is not overlapping).
        let mut events: Vec<(u64, i32, &Holding)> = Vec::new();
        for h in hs.iter() {
            events.push((h.start_ns, 1, h));
            events.push((h.end_ns, -1, h));
        }
        events.sort_by_key(|(t, d, _)| (*t, *d));
        let mut holding: BTreeMap<(u32, u64, &str, u32), &Holding> = BTreeMap::new();
        for (_, d, h) in events {
            let key = (h.slot, h.fence, h.host.as_str(), h.pid);
            if d < 0 {
                holding.remove(&key);
                continue;
            }
            if let Some(other) = holding.values().find(|o| o.slot == h.slot) {
                at_once.get_or_insert(format!(
                    "slot {}: fence {} started while fence {} held it",
                    h.slot, h.fence, other.fence
                ));
            }
            holding.insert(key, h);
            peak = peak.max(holding.len());
            if holding.len() > limit as usize {
                at_once.get_or_insert(format!(
                    "{} holders at once with limit {limit}",
                    holding.len()
                ));
            }
        }
        let mut last: BTreeMap<u32, u64> = BTreeMap::new();
        for h in hs.iter() {
            if let Some(&f) = last.get(&h.slot)
                && h.fence <= f
            {
                order.get_or_insert(format!(
                    "slot {}: fence {} started after fence {f}",
                    h.slot, h.fence
                ));
            }
            last.insert(h.slot, h.fence);
        }
    }
    let n: usize = boots.values().map(Vec::len).sum();
    (
        match at_once {
            Some(why) => check(AT_ONCE, false, why),
            None => check(AT_ONCE, true, format!("peak {peak} of {limit}, {n} holdings")),
        },
        match order {
            Some(why) => check(ORDER, false, why),
            None => check(ORDER, true, format!("{n} holdings in start order")),
        },
    )
}

/// The most holders at once by the clock (within one boot), for `--json` and the tests:
/// with `--limit N` the run should reach N.
pub fn peak(r: &[Holding]) -> usize {
    let mut best = 0;
    for h in r {
        let n = r
            .iter()
            .filter(|o| o.boot_id == h.boot_id && o.start_ns <= h.start_ns && h.start_ns < o.end_ns)
            .count();
        best = best.max(n);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::super::report::sample;
    use super::*;
    use crate::verdict::Status;

    fn good() -> Vec<Holding> {
        vec![
            sample(1, 0, 1, 10, 20),
            sample(2, 0, 2, 20, 30),
            sample(1, 1, 3, 31, 40),
            sample(2, 1, 4, 41, 50),
        ]
    }

    const ONE: Expect = Expect {
        holdings: Some(4),
        lock: "t",
        limit: 1,
    };

    fn status(r: &[Holding], e: Expect<'_>, name: &str) -> Status {
        let v = verify(r, e);
        v.checks.iter().find(|c| c.name == name).unwrap().status
    }

    #[test]
    fn a_good_run_passes_every_check() {
        let v = verify(&good(), ONE);
        assert!(v.verified, "{}", v.lines());
        assert_eq!(peak(&good()), 1);
    }

    #[test]
    fn a_missing_or_backwards_holding_fails() {
        let mut r = good();
        r.pop();
        assert_eq!(status(&r, ONE, "every holding reported"), Status::Failed);
        let mut r = good();
        r[0].end_ns = 5;
        assert_eq!(status(&r, ONE, "every holding reported"), Status::Failed);
        assert_eq!(status(&[], ONE, "every holding reported"), Status::Failed);
    }

    #[test]
    fn another_lock_or_limit_fails() {
        let mut r = good();
        r[2].lock = "other".into();
        assert_eq!(status(&r, ONE, "one lock, one limit"), Status::Failed);
        let mut r = good();
        r[2].limit = 2;
        assert_eq!(status(&r, ONE, "one lock, one limit"), Status::Failed);
    }

    #[test]
    fn a_slot_past_the_limit_fails() {
        let mut r = good();
        r[1].slot = 1;
        assert_eq!(status(&r, ONE, "slots within the limit"), Status::Failed);
    }

    #[test]
    fn a_fence_twice_fails() {
        let mut r = good();
        r[3].fence = 2;
        assert_eq!(status(&r, ONE, "fences unique"), Status::Failed);
    }

    #[test]
    fn a_holder_whose_fence_goes_back_fails() {
        let mut r = good();
        r[2].fence = 0;
        assert_eq!(status(&r, ONE, "fences increase for each holder"), Status::Failed);
        // Every holder once (separately started holders): the check is not made.
        let single: Vec<_> = good().into_iter().filter(|h| h.round == 0).collect();
        let v = verify(&single, Expect { holdings: Some(2), ..ONE });
        assert!(v.verified, "{}", v.lines());
        let mut twice = single.clone();
        twice[1].round = 1;
        twice[1].contender = 1;
        assert_eq!(
            status(&twice, ONE, "fences increase for each holder"),
            Status::Passed
        );
    }

    #[test]
    fn an_overlap_fails_and_a_semaphore_may_overlap_up_to_its_limit() {
        let mut r = good();
        r[1].start_ns = 15;
        assert_eq!(status(&r, ONE, "at most limit holders at once"), Status::Failed);
        // Limit 2: two slots may overlap, a third holder may not.
        let two = Expect {
            holdings: Some(3),
            lock: "t",
            limit: 2,
        };
        let mut r = vec![
            sample(1, 0, 1, 10, 30),
            sample(2, 0, 1, 15, 25),
            sample(3, 0, 2, 31, 40),
        ];
        for h in &mut r {
            h.limit = 2;
        }
        r[1].slot = 1;
        assert!(verify(&r, two).verified, "{}", verify(&r, two).lines());
        assert_eq!(peak(&r), 2);
        r[2].slot = 1;
        r[2].start_ns = 20;
        r[2].fence = 2;
        assert_eq!(status(&r, two, "at most limit holders at once"), Status::Failed);
    }

    #[test]
    fn fences_against_the_clock_fail() {
        let mut r = good();
        r.swap(0, 1);
        r[0].fence = 1;
        r[1].fence = 2;
        r[1].round = 0;
        r[0].round = 0;
        // Contender 2 started at 20 with fence 1, contender 1 at 10 with fence 2.
        r[2].fence = 5;
        r[3].fence = 6;
        assert_eq!(status(&r, ONE, "fences increase with time"), Status::Failed);
    }

    #[test]
    fn reports_from_different_boots_are_not_compared_by_clock() {
        let mut r = good();
        for (k, h) in r.iter_mut().enumerate() {
            h.boot_id = format!("b{k}");
        }
        assert_eq!(status(&r, ONE, "at most limit holders at once"), Status::NotRun);
        assert_eq!(status(&r, ONE, "fences increase with time"), Status::NotRun);
        assert!(!verify(&r, ONE).verified);
    }
}
