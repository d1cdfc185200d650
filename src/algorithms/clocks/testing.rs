//! A small local driver for the unit tests: N processes, every published message put in
//! one pool and delivered in a random order (across and within senders), some of them
//! twice, time advanced to the next timer when nothing is pending. It is harsher on order
//! than the broker (which keeps one publisher's messages in order) and independent of the
//! generic simulator, so the core and its checker can be tested on their own.

use super::process::{ClockConfig, Process};
use super::protocol::Message;
use super::report::Report;
use crate::contract::{Output, Route};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub(crate) fn config(id: u32, n: u32, e: u32, step_ms: u64) -> ClockConfig {
    ClockConfig {
        run_id: "t".into(),
        id,
        processes: n,
        events: e,
        send_probability: 0.7,
        step_ms,
        peer_timeout_ms: 1_000_000,
        deadline: None,
    }
}

/// Runs N processes to the end; their reports, in id order.
pub(crate) fn run(cfgs: Vec<ClockConfig>, seed: u64) -> Vec<Report> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut now = 0;
    let mut procs: Vec<Process> = cfgs
        .into_iter()
        .map(|c| {
            let r = StdRng::seed_from_u64(rng.random());
            Process::new(c, Box::new(r), 0).expect("valid config")
        })
        .collect();
    let mut pool: Vec<(u32, Vec<u8>)> = Vec::new();
    let mut reports: Vec<Option<Report>> = vec![None; procs.len()];
    for _ in 0..1_000_000 {
        for (i, p) in procs.iter_mut().enumerate() {
            while let Some(out) = p.poll_output() {
                match out {
                    Output::Publish {
                        route: Route::Peer(to),
                        msg,
                    } => pool.push((to, msg.encode().expect("encodes"))),
                    Output::Publish { .. } => {}
                    Output::Finished(r) => reports[i] = Some(r),
                    Output::Release(_) => {}
                }
            }
        }
        if reports.iter().all(Option::is_some) {
            break;
        }
        if pool.is_empty() {
            let Some(t) = procs.iter().filter_map(Process::next_timeout).min() else {
                break;
            };
            now = now.max(t);
            for p in &mut procs {
                if p.next_timeout().is_some_and(|t| t <= now) {
                    p.handle_timeout(now);
                }
            }
            continue;
        }
        let k = rng.random_range(0..pool.len());
        let (to, bytes) = if rng.random_bool(0.2) {
            pool[k].clone()
        } else {
            pool.swap_remove(k)
        };
        if let Some(p) = procs.get_mut(to as usize - 1) {
            let _ = p.handle(now, &bytes);
        }
        now += rng.random_range(0..3);
        for p in &mut procs {
            if p.next_timeout().is_some_and(|t| t <= now) {
                p.handle_timeout(now);
            }
        }
    }
    reports.into_iter().flatten().collect()
}

/// A good run of `n` processes with `e` internal events, paced so receives interleave.
pub(crate) fn good(n: u32, e: u32, seed: u64) -> Vec<Report> {
    run((1..=n).map(|id| config(id, n, e, 5)).collect(), seed)
}

/// A message as bytes, for tests that feed a process by hand.
pub(crate) fn bytes(m: Message) -> Vec<u8> {
    m.encode().expect("encodes")
}
