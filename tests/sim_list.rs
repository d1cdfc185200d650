//! Property test of the core: thousands of random hostile schedules on the generic
//! simulator (reordering across publishers, redeliveries, re-publishes, connection losses,
//! crashes, junk). Every schedule must end, the surviving workers must hold identical lists
//! that match the master's log, and a crashed worker must never count as a survivor.
//!
//! A failure prints the seed; replay it with `SIM_SEED=<seed> cargo test --test sim_list replay`.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;
use sync_run::algorithms::list::checks::verify;
use sync_run::algorithms::list::master::{GrantOutcome, RunOutcome};
use sync_run::algorithms::list::sim::{self, SimConfig, SimResult};
use sync_run::algorithms::list::worker::WorkerOutcome;

/// Checks one simulated run; `Err` says which property broke.
fn check(r: &SimResult) -> Result<(), String> {
    if r.step_limit_hit {
        return Err("the step limit ended the run (a livelock?)".into());
    }
    let rec = r.record.as_ref().ok_or("the run did not end (no record)")?;
    // Every surviving, non-crashed worker ends too.
    for (w, o) in &r.outcomes {
        if let WorkerOutcome::TimedOut { .. } = o {
            return Err(format!("worker {w} timed out"));
        }
    }
    let lists: Vec<(&u32, &Vec<sync_run::algorithms::list::protocol::Entry>)> = r
        .outcomes
        .iter()
        .filter_map(|(w, o)| match o {
            WorkerOutcome::Completed { entries } => Some((w, entries)),
            _ => None,
        })
        .collect();
    if let Some((_, first)) = lists.first() {
        for (w, l) in &lists {
            if l != first {
                return Err(format!("worker {w}'s list differs: {l:?} vs {first:?}"));
            }
        }
        let workers: Vec<u32> = first.iter().map(|e| e.worker).collect();
        let distinct: BTreeSet<_> = workers.iter().collect();
        if rec.rounds == 1 && distinct.len() != workers.len() {
            return Err(format!("an entry from the same worker twice: {workers:?}"));
        }
        if first.as_slice() != rec.committed().as_slice() {
            return Err("lists differ from the master's committed log".into());
        }
    }
    // Nothing from a voided grant, nothing from an evicted worker after its eviction.
    for g in &rec.grants {
        if let GrantOutcome::Evicted { .. } = g.outcome {
            for (w, l) in &lists {
                if l.iter()
                    .any(|e| e.seq == g.seq || (e.worker == g.worker && e.seq > g.seq))
                {
                    return Err(format!(
                        "worker {w} accepted an entry fenced by the eviction at seq {}",
                        g.seq
                    ));
                }
            }
        }
    }
    // A crashed worker never reports: a completed run must have evicted it (it missed a
    // lease) or named it lost (it wrote its turns, then went silent), never waited for it.
    if matches!(rec.outcome, RunOutcome::Completed) {
        let survivors = rec.survivors();
        for w in &r.crashed {
            if survivors.contains(w) || rec.results.contains_key(w) {
                return Err(format!("crashed worker {w} counted as a survivor"));
            }
        }
    }
    if matches!(rec.outcome, RunOutcome::Completed) && r.crashed.is_empty() && !lists.is_empty() {
        // With no crash, every survivor reports and the verifier agrees.
        let v = verify(rec);
        if !v.verified && rec.results.len() == rec.survivors().len() {
            return Err(format!("verifier rejected a sound run: {v:?}"));
        }
    }
    Ok(())
}

fn schedule(seed: u64) -> SimResult {
    let mut rng = StdRng::seed_from_u64(seed);
    let cfg = SimConfig::random(&mut rng);
    sim::run(rng.random(), cfg)
}

#[test]
fn ten_thousand_hostile_schedules_agree() {
    let count: u64 = std::env::var("SIM_SCHEDULES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let mut evictions: u64 = 0;
    let mut deliveries = 0;
    let mut crashes = 0;
    let mut duplicates = 0;
    let mut stalls = 0;
    for seed in 0..count {
        let r = schedule(seed);
        if let Err(e) = check(&r) {
            panic!(
                "schedule seed {seed} broke a property: {e}\nreplay: SIM_SEED={seed} cargo test --test sim_list replay -- --nocapture"
            );
        }
        evictions += r.record.as_ref().map_or(0, |x| x.evicted.len() as u64);
        deliveries += r.deliveries;
        crashes += r.crashed.len() as u64;
        duplicates += r.stats.duplicates;
        stalls += r.stats.stalls;
    }
    println!(
        "{count} schedules, {deliveries} deliveries ({duplicates} duplicates, {stalls} \
         connection losses), {crashes} crashes, {evictions} evictions: all agree"
    );
    // The schedules must actually exercise the fault paths, or the test proves little.
    assert!(
        evictions > count / 20,
        "too few evictions ({evictions}) to exercise fencing"
    );
    assert!(
        crashes > count / 20,
        "too few crashes ({crashes}) to exercise the leases"
    );
}

#[test]
fn calm_schedules_verify_for_many_sizes() {
    for n in [1, 2, 3, 10, 17, 50] {
        let r = sim::run(n as u64, SimConfig::calm(n));
        check(&r).unwrap_or_else(|e| panic!("n={n}: {e}"));
        let rec = r.record.expect("record");
        assert!(verify(&rec).verified, "n={n}");
        assert_eq!(rec.committed().len(), n);
    }
}

#[test]
fn replay() {
    let Some(seed) = std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()) else {
        return; // nothing to replay
    };
    let r = schedule(seed);
    println!("{r:#?}");
    check(&r).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
}
