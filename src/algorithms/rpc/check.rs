//! `sync-run call NAME --check`: C clients × K calls at once (each client one call after
//! the other, each body unique: client, seq, nonce), against NAME's servers or S echo
//! servers started here (`--serve-echo`, on a queue named by the run id, deleted at the
//! end); the checks from the clients' records; the latency beside the broker's one hop,
//! measured first in the same run.

use super::checks::{self, Expect};
use super::cli::CallArgs;
use super::client::{Client, End};
use super::pending::Counts;
use super::protocol;
use super::record::ClientRecord;
use super::server::{self, Answer, Served};
use super::NO_SERVER;
use crate::broker::reply::{self, Caller, Server};
use crate::broker::{BrokerError, yardstick};
use crate::cli::random_run_id;
use crate::cli::session::Session;
use crate::verdict::{Document, Verdict, percentile};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// What the clients brought back.
struct Calls {
    records: Vec<ClientRecord>,
    counts: Counts,
    no_server: bool,
    no_reply: u64,
}

/// The echo servers of `--serve-echo`, and how to stop them.
struct Echoes {
    stop: watch::Sender<bool>,
    tasks: JoinSet<Result<Served, BrokerError>>,
}

pub async fn run(s: &Session, a: &CallArgs) -> i32 {
    let run_id = random_run_id();
    let load = &a.load;
    let name = match load.serve_echo {
        Some(_) => format!("{}.{run_id}", a.name),
        None => a.name.clone(),
    };
    let queue = protocol::queue(&name);
    let url = &s.broker.url;
    let ct = s.global.connect_timeout;
    let hop = match yardstick::round_trips(url, ct, load.rtt_samples as usize).await {
        Ok(h) => h,
        Err(e) => return s.broker_failure(&run_id, &e),
    };
    let t = Instant::now();
    let echoes = match load.serve_echo {
        Some(n) => match start_echoes(s, &queue, n, &run_id).await {
            Ok(e) => Some(e),
            Err(e) => {
                let _ = reply::delete_queue(url, ct, &queue).await;
                return s.broker_failure(&run_id, &e);
            }
        },
        None => None,
    };
    let called = calls(s, &queue, a).await;
    let mut served = Vec::new();
    if let Some(mut e) = echoes {
        let _ = e.stop.send(true);
        while let Some(done) = e.tasks.join_next().await {
            served.push(done.map_err(|j| j.to_string()).and_then(|r| r.map_err(|b| b.to_string())));
        }
        if let Err(e) = reply::delete_queue(url, ct, &queue).await {
            return s.broker_failure(&run_id, &e);
        }
    }
    let wall = t.elapsed();
    let called = match called {
        Ok(c) => c,
        Err(e) => return s.broker_failure(&run_id, &e),
    };
    if let Some(Err(e)) = served.iter().find(|r| r.is_err()) {
        eprintln!("sync-run call --check: an echo server failed: {e}");
    }
    let expect = Expect {
        clients: load.clients,
        calls: load.calls,
        echo: load.serve_echo.is_some(),
        // Every one of S idle servers gets a call in turn, if there are S calls to get.
        servers: load
            .serve_echo
            .map(|n| n.min(load.clients.saturating_mul(load.calls)) as usize),
    };
    let verdict = checks::verify(&called.records, &expect);
    let code = s.or_signal(if called.no_server {
        NO_SERVER
    } else {
        verdict.exit_code()
    });
    let figures = Figures::of(&called.records, &hop);
    if called.no_server {
        eprintln!(
            "sync-run call --check: nobody serves {name}: no queue {queue} (start `sync-run serve {name} --echo`, or give --serve-echo S)"
        );
    }
    let shares = checks::shares(&called.records);
    if s.global.json {
        let doc = Document::new(
            "rpc",
            &run_id,
            code,
            &verdict,
            serde_json::json!({
                "name": name,
                "queue": queue,
                "clients": load.clients,
                "calls": load.calls,
                "servers_in_process": load.serve_echo,
                "wall_ms": wall.as_millis() as u64,
                "latency_ms": {"p50": figures.p50, "p99": figures.p99},
                "one_hop_ms": {"p50": figures.hop_p50, "p99": figures.hop_p99},
                "latency_per_hop": {"p50": figures.p50 / figures.hop_p50, "p99": figures.p99 / figures.hop_p50},
                "calls_per_s": figures.answered as f64 / wall.as_secs_f64().max(1e-9),
                "replies_by_server": shares,
                "replies": called.counts,
                "rejected_replies": called.records.iter().map(|r| r.rejected).sum::<u64>(),
                "no_reply": called.no_reply,
            }),
        );
        println!("{}", doc.to_json());
    } else {
        print_text(s, a, &name, &run_id, &verdict, &figures, wall, shares.len());
    }
    code
}

/// The latency figures, in ms.
struct Figures {
    p50: f64,
    p99: f64,
    hop_p50: f64,
    hop_p99: f64,
    answered: usize,
}

impl Figures {
    fn of(records: &[ClientRecord], hop: &[f64]) -> Self {
        let mut lat: Vec<f64> = records
            .iter()
            .flat_map(|r| r.calls.iter())
            .filter_map(|c| c.latency_us())
            .map(|us| us as f64 / 1000.0)
            .collect();
        lat.sort_by(f64::total_cmp);
        Figures {
            p50: percentile(&lat, 0.5),
            p99: percentile(&lat, 0.99),
            hop_p50: percentile(hop, 0.5),
            hop_p99: percentile(hop, 0.99),
            answered: lat.len(),
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn print_text(
    s: &Session,
    a: &CallArgs,
    name: &str,
    run_id: &str,
    v: &Verdict,
    f: &Figures,
    wall: Duration,
    servers: usize,
) {
    let l = &a.load;
    let summary = match v.failure_line() {
        None => format!(
            "VERIFIED: every one of {} calls got exactly its own reply, from {servers} servers",
            l.clients * l.calls
        ),
        Some(line) => line,
    };
    if s.global.quiet {
        println!("{summary}");
        return;
    }
    println!(
        "rpc check {run_id}: {name}, {} clients × {} calls, in {:.3} s",
        l.clients,
        l.calls,
        wall.as_secs_f64()
    );
    print!("{}", v.lines());
    if f.answered > 0 {
        println!(
        "  latency: p50 {:.3} ms, p99 {:.3} ms = {:.1}× and {:.1}× the broker's one hop (p50 {:.3} ms, p99 {:.3} ms)",
        f.p50,
        f.p99,
        f.p50 / f.hop_p50,
        f.p99 / f.hop_p50,
        f.hop_p50,
        f.hop_p99
        );
    }
    println!("{summary}");
}

/// S echo servers on `queue`, each on its own connection, one request at a time, all
/// consuming before this returns (so the first call finds the queue).
async fn start_echoes(s: &Session, queue: &str, n: u32, run_id: &str) -> Result<Echoes, BrokerError> {
    let (stop, rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    for k in 1..=n {
        let id = format!("echo-{k}");
        let who = format!("sync-run call --check {run_id} {id}");
        let srv = Server::open(&s.broker.url, s.global.connect_timeout, &who, queue, 1).await;
        let srv = match srv {
            Ok(srv) => srv,
            Err(e) => {
                let _ = stop.send(true);
                while tasks.join_next().await.is_some() {}
                return Err(e);
            }
        };
        let rx = rx.clone();
        tasks.spawn(async move { server::serve(srv, &id, 1, Answer::Echo, rx).await });
    }
    Ok(Echoes { stop, tasks })
}

/// The clients, each on a channel of its own over one connection, each making its calls
/// one after the other.
async fn calls(s: &Session, queue: &str, a: &CallArgs) -> Result<Calls, BrokerError> {
    let conn = reply::connect_callers(&s.broker.url, s.global.connect_timeout, "sync-run call --check").await?;
    let t0 = Instant::now();
    let mut tasks = JoinSet::new();
    let mut opened = Ok(());
    for c in 1..=a.load.clients {
        let caller = match Caller::open(&conn).await {
            Ok(caller) => caller,
            Err(e) => {
                opened = Err(e);
                break;
            }
        };
        let mut client = Client::new(caller, c, t0);
        let (queue, calls, timeout) = (queue.to_owned(), a.load.calls, a.timeout);
        let mut stop = s.shutdown.clone();
        tasks.spawn(async move {
            let mut no_server = false;
            let mut no_reply = 0;
            for seq in 1..=calls {
                let nonce: u64 = rand::random();
                let body = serde_json::json!({"client": c, "seq": seq, "nonce": format!("{nonce:016x}")});
                match client.call(&queue, seq, body.to_string().as_bytes(), timeout, &mut stop).await? {
                    End::Replied { .. } => {}
                    End::NoReply => no_reply += 1,
                    End::NoServer => {
                        no_server = true;
                        break;
                    }
                    End::Interrupted => break,
                }
            }
            client.close().await;
            Ok::<_, BrokerError>((client.record.clone(), client.counts(), no_server, no_reply))
        });
    }
    let mut out = Calls {
        records: Vec::new(),
        counts: Counts::default(),
        no_server: false,
        no_reply: 0,
    };
    let mut failed = opened.err();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok((record, counts, no_server, no_reply))) => {
                out.records.push(record);
                out.counts = add(out.counts, counts);
                out.no_server |= no_server;
                out.no_reply += no_reply;
            }
            Ok(Err(e)) => failed = failed.or(Some(e)),
            Err(e) => {
                failed = failed.or(Some(BrokerError::Lost {
                    what: format!("a client ({e})"),
                }))
            }
        }
    }
    crate::broker::close_quietly(&conn, "check done").await;
    out.records.sort_by_key(|r| r.client);
    match failed {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

fn add(a: Counts, b: Counts) -> Counts {
    Counts {
        matched: a.matched + b.matched,
        duplicate: a.duplicate + b.duplicate,
        late: a.late + b.late,
        unknown: a.unknown + b.unknown,
        foreign: a.foreign + b.foreign,
        gave_up: a.gave_up + b.gave_up,
    }
}
