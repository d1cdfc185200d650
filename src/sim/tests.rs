//! The simulator's own promises, shown with a toy machine: each talker sends `count`
//! numbered notes to every other and finishes at a fixed virtual time with what it got.

use super::*;
use crate::contract::{Output, Rejection};
use std::collections::VecDeque;

#[derive(Debug, Clone)]
struct Note(Vec<u8>);

impl Wire for Note {
    fn encode(&self) -> Result<Vec<u8>, crate::contract::EncodeError> {
        Ok(self.0.clone())
    }
    fn kind(&self) -> &'static str {
        "note"
    }
}

type Got = Vec<(PeerId, u32)>;

struct Talker {
    id: PeerId,
    got: Got,
    out: VecDeque<Output<Note, Got>>,
    end_at: Option<Millis>,
}

impl Talker {
    fn new(id: PeerId, peers: &[PeerId], count: u32, end_at: Millis) -> Self {
        let mut out = VecDeque::new();
        for n in 1..=count {
            for &p in peers.iter().filter(|&&p| p != id) {
                out.push_back(Output::Publish {
                    route: Route::Peer(p),
                    msg: Note(format!("{id}:{n}").into_bytes()),
                });
            }
        }
        Talker {
            id,
            got: Vec::new(),
            out,
            end_at: Some(end_at),
        }
    }
}

impl StateMachine for Talker {
    type Msg = Note;
    type Finished = Got;
    fn handle(&mut self, _now: Millis, bytes: &[u8]) -> Result<(), Rejection> {
        let bad = || Rejection::Malformed("not a note".into());
        let s = std::str::from_utf8(bytes).map_err(|_| bad())?;
        let (from, n) = s.split_once(':').ok_or_else(bad)?;
        let from = from.parse().map_err(|_| bad())?;
        let n = n.parse().map_err(|_| bad())?;
        self.got.push((from, n));
        Ok(())
    }
    fn next_timeout(&self) -> Option<Millis> {
        self.end_at
    }
    fn handle_timeout(&mut self, now: Millis) {
        if self.end_at.is_some_and(|t| t <= now) {
            self.end_at = None;
            self.out.push_back(Output::Publish {
                route: Route::Results,
                msg: Note(format!("{}:0", self.id).into_bytes()),
            });
            self.out.push_back(Output::Finished(self.got.clone()));
        }
    }
    fn poll_output(&mut self) -> Option<Output<Note, Got>> {
        self.out.pop_front()
    }
    fn interrupt(&mut self, _now: Millis, _reason: String) {}
}

fn talkers(n: PeerId, count: u32, end_at: Millis) -> Vec<(PeerId, Talker)> {
    let ids: Vec<PeerId> = (1..=n).collect();
    ids.iter()
        .map(|&i| (i, Talker::new(i, &ids, count, end_at)))
        .collect()
}

fn point_to_point(_from: PeerId, r: Route) -> Vec<PeerId> {
    match r {
        Route::Peer(p) => vec![p],
        _ => vec![],
    }
}

/// What `from` sent to a receiver, as it arrived, in the order it arrived.
fn from(got: &Got, from: PeerId) -> Vec<u32> {
    got.iter()
        .filter(|(f, _)| *f == from)
        .map(|(_, n)| *n)
        .collect()
}

#[test]
fn each_publishers_order_is_kept_and_publishers_interleave() {
    let cfg = SimConfig {
        junk: true,
        max_step_ms: 3,
        ..SimConfig::calm()
    };
    let r = run(talkers(4, 50, 10_000), point_to_point, &cfg, 7);
    assert!(r.all_survivors_finished() && !r.step_limit_hit);
    let mut interleaved = false;
    for (id, got) in &r.finished {
        let got = got.as_ref().expect("finished");
        for p in (1..=4).filter(|p| p != id) {
            assert_eq!(from(got, p), (1..=50).collect::<Vec<_>>(), "{p} → {id}");
        }
        interleaved |= got.windows(2).any(|w| w[0].0 != w[1].0);
    }
    assert!(interleaved, "publishers interleave");
    assert_eq!(r.stats.duplicates, 0);
    assert!(r.stats.junk >= 8 && r.stats.rejected >= 1);
    assert_eq!(r.results.len(), 4);
    assert!(r.now >= 10_000, "the finishing timer fired at its time");
}

#[test]
fn duplicates_and_republishes_lose_nothing() {
    let cfg = SimConfig {
        duplicate: 0.3,
        republish: 0.3,
        stall: 0.05,
        max_stall_ms: 50,
        ..SimConfig::calm()
    };
    let r = run(talkers(3, 40, 100_000), point_to_point, &cfg, 11);
    assert!(r.all_survivors_finished());
    assert!(r.stats.duplicates > 10 && r.stats.stalls > 0);
    for (id, got) in &r.finished {
        let got = got.as_ref().expect("finished");
        for p in (1..=3).filter(|p| p != id) {
            let mut seen = from(got, p);
            // Without its redeliveries a publisher's notes arrive in order, repeats allowed.
            seen.dedup();
            seen.sort();
            seen.dedup();
            assert_eq!(seen, (1..=40).collect::<Vec<_>>());
        }
    }
}

#[test]
fn a_seed_replays_exactly() {
    let mut rng = StdRng::seed_from_u64(3);
    let mut cfg = SimConfig::hostile(&mut rng);
    cfg.junk = true;
    let a = run(talkers(5, 20, 500), point_to_point, &cfg, 99);
    let b = run(talkers(5, 20, 500), point_to_point, &cfg, 99);
    assert_eq!(a.finished, b.finished);
    assert_eq!(a.results, b.results);
    assert_eq!((a.stats, a.now, a.steps), (b.stats, b.now, b.steps));
    let c = run(talkers(5, 20, 500), point_to_point, &cfg, 100);
    assert_ne!(a.finished, c.finished, "another seed, another schedule");
}

#[test]
fn a_crashed_participant_stops_and_the_others_end() {
    let cfg = SimConfig {
        crash: vec![Crash { peer: 2, after: 0 }],
        ..SimConfig::calm()
    };
    let r = run(talkers(3, 5, 1_000), point_to_point, &cfg, 1);
    assert_eq!(r.crashed, vec![2]);
    assert!(r.finished[&2].is_none());
    assert!(r.all_survivors_finished() && !r.step_limit_hit);
    // It published before it crashed.
    assert_eq!(from(r.finished[&1].as_ref().expect("1"), 2).len(), 5);
}

#[test]
fn random_crashes_hit_running_participants_of_the_set_only() {
    let cfg = SimConfig {
        random_crashes: Some(RandomCrashes {
            among: vec![2, 3],
            rate: 1.0,
            max: 1,
        }),
        ..SimConfig::calm()
    };
    let r = run(talkers(3, 5, 1_000), point_to_point, &cfg, 4);
    assert_eq!(r.crashed.len(), 1, "at most `max`");
    assert!(r.crashed[0] == 2 || r.crashed[0] == 3, "only from `among`");
    assert!(r.all_survivors_finished() && !r.step_limit_hit);
}

#[test]
fn a_participant_that_reads_the_results_queue_gets_them_too() {
    let ids = [1, 2, 3];
    // Talker 1 reads the results queue and stays until every other talker has finished.
    let machines = ids
        .iter()
        .map(|&i| (i, Talker::new(i, &ids, 3, if i == 1 { 5_000 } else { 500 })))
        .collect();
    let route = |from, r| match r {
        Route::Results => vec![1],
        r => point_to_point(from, r),
    };
    let r = run(machines, route, &SimConfig::calm(), 2);
    assert!(r.all_survivors_finished());
    assert_eq!(r.results.len(), 3, "collected, the reader's own included");
    let got = r.finished[&1].as_ref().expect("1 finished");
    for p in [2, 3] {
        // Its three notes on its own queue, and its result ("p:0") on the results queue.
        assert_eq!(from(got, p), [1, 2, 3, 0], "{p}'s notes, then its result");
    }
}

#[test]
fn the_step_limit_ends_a_run_that_never_finishes() {
    let cfg = SimConfig {
        max_steps: 1_000,
        ..SimConfig::calm()
    };
    let r = run(talkers(2, 1_000, Millis::MAX), point_to_point, &cfg, 1);
    assert!(r.step_limit_hit);
    assert_eq!(r.steps, 1_000);
}
