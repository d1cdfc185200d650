//! `sync-run bank`, `sync-run bank-branch` and `sync-run bank-customer`: the sequencer,
//! the branches and the customers as participants of one run on RabbitMQ, every report
//! read from the results queue, the checks, the course's output, the exit code.

use super::cli::{AloneArgs, BankArgs, Shape};
use super::input::{self, Input, Recv};
use super::participant::{Part, Setup};
use super::protocol::{self, Mode, Report, SEQUENCER, Who};
use super::report::{BranchEnd, BranchReport, CustomerEnd, CustomerReport, SequencerReport};
use crate::broker::peers::{Launch, Member, PeerRun};
use crate::broker::{Broker, BrokerError, now_ms};
use crate::cli::crash::{CrashAt, Passing, Trigger};
use crate::cli::peers::{Gather, Tally, run_members, solo};
use crate::cli::session::Session;
use crate::cli::usage_error;
use crate::contract::{Millis, PeerId};
use std::path::Path;
use std::time::{Duration, Instant};

// Its subcommands, as the dispatcher (`crate::app`) flattens them into `sync-run`'s.
crate::subcommands! {
    commands: [
        /// Replicated bank branches (the course's JSON input and output): customers call any
        /// branch, every operation in one total order, never overdrawn, proven linearizable.
        Bank(BankArgs) => run,
        /// One branch of a bank run (start it anywhere, with the run's input file).
        BankBranch(AloneArgs) => branch_alone,
        /// One customer of a bank run (start it anywhere, with the run's input file).
        BankCustomer(AloneArgs) => customer_alone,
    ]
    bench: [
        /// The replicated bank: operations per second and latency at 3 and 10 branches with
        /// 100 concurrent customers, memory with --no-record, beside the broker's one hop.
        Bank(super::cli::BenchArgs) => bench,
    ]
}

/// The run's names on the broker: an inbox per branch, the sequencer's, one per customer.
pub fn peer_run(run_id: &str, input: &Input) -> PeerRun {
    PeerRun {
        alg: "bank",
        run_id: run_id.to_owned(),
        peers: input.branches.clone(),
        roles: vec![SEQUENCER],
        clients: input.customer_ids(),
        links: Default::default(),
    }
}

/// Reads and checks the input file (`-`: standard input); bad input is a usage error
/// naming the entry.
pub fn read_input(path: &Path) -> Input {
    let text = if path == Path::new("-") {
        let mut t = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut t).map(|_| t)
    } else {
        std::fs::read_to_string(path)
    };
    let text = text.unwrap_or_else(|e| usage_error(format!("cannot read {}: {e}", path.display())));
    input::parse(&text).unwrap_or_else(|e| usage_error(format!("{}: {e}", path.display())))
}

/// The settings every participant here is built with.
pub fn setup(run_id: &str, s: &Shape, t0_epoch_ms: u64) -> Setup {
    Setup {
        run_id: run_id.to_owned(),
        mode: s.mode,
        sequential: !s.concurrent,
        retry_ms: s.retry.as_millis() as Millis,
        timeout_ms: s.timeout.as_millis() as Millis,
        deadline: Some(s.run_timeout.as_millis() as Millis),
        record: !s.no_record,
        // Times of customers in one process are on one clock and compared in real time;
        // those of different processes are not compared.
        clock: format!("process {}", std::process::id()),
        clock_base: t0_epoch_ms,
    }
}

fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What a run gathered: every report read from the results queue.
#[derive(Debug, Default)]
pub struct Gathered {
    pub branches: Vec<BranchReport>,
    pub customers: Vec<CustomerReport>,
    pub sequencer: Option<SequencerReport>,
    pub rejected_on_results: u64,
    pub wall: Duration,
}

impl Gather<Report> for Gathered {
    fn keep(&mut self, r: Report) {
        match r {
            Report::Branch(b) => self.branches.push(b),
            Report::Customer(c) => self.customers.push(c),
            Report::Sequencer(s) => self.sequencer = Some(s),
        }
    }
    fn any_peer(&self) -> bool {
        !self.branches.is_empty()
    }
}

/// Runs the sequencer, the `local_branches` and the `local_customers` of `input` here, on
/// one connection pool, and reads every participant's report (local or started
/// elsewhere) from the results queue; deletes the run at the end. `Err` when the broker
/// failed the reading of the reports, or the run id is in use.
#[allow(clippy::too_many_arguments)]
pub async fn execute(
    broker: &Broker,
    shutdown: &crate::broker::Shutdown,
    run: &PeerRun,
    input: &Input,
    setup: &Setup,
    local_branches: &[PeerId],
    local_customers: &[PeerId],
    limit: Duration,
    grace: Duration,
) -> Result<Gathered, BrokerError> {
    // Every inbox, the customers' too, before anyone publishes: the sequencer's first
    // `go` to a customer must not find the exchange without a queue for it.
    let launch = Launch {
        probe: Some(SEQUENCER),
        declare: Some(crate::broker::op_limit(broker)),
        expect: std::iter::once(Who::Sequencer)
            .chain(input.branches.iter().map(|b| Who::Branch(*b)))
            .chain(input.customers.iter().map(|c| Who::Customer(c.id)))
            .collect(),
        limit,
        grace,
    };
    let machines = |t0: Instant| {
        let now = now_ms(t0);
        let mut machines: Vec<(Member, Part)> = vec![(
            Member::Role(SEQUENCER),
            Part::Sequencer(setup.sequencer(input)),
        )];
        for b in local_branches {
            machines.push((Member::Peer(*b), Part::Branch(setup.branch(input, *b))));
        }
        for c in input
            .customers
            .iter()
            .filter(|c| local_customers.contains(&c.id))
        {
            machines.push((Member::Client(c.id), Part::Customer(setup.customer(c, now))));
        }
        machines
    };
    let (decode, who) = (protocol::decode_report, Report::who);
    let ran = run_members(broker, run, shutdown, launch, machines, decode, who).await?;
    let (mut g, tally): (Gathered, Tally) = ran;
    (g.rejected_on_results, g.wall) = (tally.rejected, tally.wall);
    let order = input.customer_ids();
    g.customers
        .sort_by_key(|r| order.iter().position(|c| *c == r.id));
    Ok(g)
}

/// The customers' answers in the course's output format, in input order.
pub fn output(input: &Input, customers: &[CustomerReport]) -> Vec<(PeerId, Vec<Recv>)> {
    input
        .customers
        .iter()
        .map(|c| {
            let recv = customers
                .iter()
                .find(|r| r.id == c.id)
                .map(|r| {
                    r.log
                        .iter()
                        .filter_map(|k| {
                            Some(Recv {
                                op: k.op,
                                result: k.result?,
                                money: k.balance,
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            (c.id, recv)
        })
        .collect()
}

/// The customers' answers as the course's first (gRPC) version printed them: one line per
/// answer, customers in input order, `id C INTERFACE True|False` and ` money M` after a
/// query's (Python's spelling of the booleans, as that version printed them).
pub fn lines(out: &[(PeerId, Vec<Recv>)]) -> String {
    let mut s = String::new();
    for (id, recv) in out {
        for r in recv {
            let ok = match r.result {
                protocol::Outcome::Success => "True",
                protocol::Outcome::Fail => "False",
            };
            s += &format!("id {id} {} {ok}", r.op.name());
            if let Some(m) = r.money {
                s += &format!(" money {m}");
            }
            s.push('\n');
        }
    }
    s
}

/// Figures of a run, from the customers' reports: operations answered, their rate over the
/// time from the first call to the last answer, latency percentiles (ms, on the
/// customers' millisecond clocks).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Figures {
    pub operations: u64,
    pub span_ms: u64,
    pub ops_per_s: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

pub fn figures(customers: &[CustomerReport], wall: Duration) -> Figures {
    let operations: u64 = customers.iter().map(|c| c.answered).sum();
    let calls: Vec<_> = customers.iter().flat_map(|c| c.log.iter()).collect();
    let first = calls.iter().map(|k| k.sent_at).min();
    let last = calls.iter().filter_map(|k| k.answered_at).max();
    let span_ms = match (first, last) {
        (Some(f), Some(l)) if l > f => l - f,
        _ => wall.as_millis() as u64,
    };
    let mut lat: Vec<f64> = calls
        .iter()
        .filter_map(|k| Some((k.answered_at? - k.sent_at) as f64))
        .collect();
    lat.sort_by(f64::total_cmp);
    let pct = |p| (!lat.is_empty()).then(|| crate::bench::percentile(&lat, p));
    Figures {
        operations,
        span_ms,
        ops_per_s: operations as f64 / (span_ms.max(1) as f64 / 1000.0),
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
    }
}

/// `sync-run bank INPUT.json`.
pub async fn run(s: &Session, a: &BankArgs) -> i32 {
    let shape = &a.shape;
    let input = read_input(&shape.input);
    // The workload itself is per operation; what the run adds to it is not.
    let rss_after_input = crate::bench::rss_kib();
    for b in &a.external_branches {
        if !input.branches.contains(b) {
            usage_error(format!(
                "--external-branches {b}: the input has no branch {b}"
            ));
        }
    }
    let customers = input.customer_ids();
    for c in &a.external_customers {
        if !customers.contains(c) {
            usage_error(format!(
                "--external-customers {c}: the input has no customer {c}"
            ));
        }
    }
    let run_id = a.run_id.clone().unwrap_or_else(crate::cli::random_run_id);
    if !a.external_branches.is_empty() || !a.external_customers.is_empty() {
        eprintln!(
            "bank run {run_id}: start branch(es) {:?} with `sync-run bank-branch --run-id {run_id} --id B {}` and customer(s) {:?} with `sync-run bank-customer --run-id {run_id} --id C {}` (and the same options)",
            a.external_branches,
            shape.input.display(),
            a.external_customers,
            shape.input.display()
        );
    }
    let local_b: Vec<PeerId> = input
        .branches
        .iter()
        .copied()
        .filter(|b| !a.external_branches.contains(b))
        .collect();
    let local_c: Vec<PeerId> = customers
        .iter()
        .copied()
        .filter(|c| !a.external_customers.contains(c))
        .collect();
    let run = peer_run(&run_id, &input);
    let setup = setup(&run_id, shape, epoch_ms());
    let g = match execute(
        &s.broker,
        &s.shutdown,
        &run,
        &input,
        &setup,
        &local_b,
        &local_c,
        shape.run_timeout + Duration::from_secs(5),
        shape.timeout + Duration::from_secs(5),
    )
    .await
    {
        Ok(g) => g,
        Err(e) => return s.broker_failure(&run_id, &e),
    };
    let proof = super::verify(
        &input,
        shape.mode,
        &g.branches,
        &g.customers,
        g.sequencer.as_ref(),
    );
    let code = s.or_signal(proof.verdict.exit_code());
    let out = output(&input, &g.customers);
    let rendered = input::render(&out);
    if let Some(path) = &a.output
        && let Err(e) = std::fs::write(path, &rendered)
    {
        eprintln!("sync-run bank: could not write {}: {e}", path.display());
    }
    if shape.no_record && !s.global.quiet {
        eprintln!(
            "sync-run bank: --no-record keeps no answers, so the output's recv lists are empty"
        );
    }
    let fig = figures(&g.customers, g.wall);
    let summary = summary(&run_id, shape, &input, &g, &proof);
    if s.global.json {
        let doc = crate::verdict::Document::new(
            "bank",
            &run_id,
            code,
            &proof.verdict,
            serde_json::json!({
                "mode": shape.mode,
                "concurrent": shape.concurrent,
                "recorded": !shape.no_record,
                "branches": input.branches,
                "customers": customers,
                "balance": input.balance,
                "skipped": proof.skipped,
                "anomalies": proof.anomalies,
                "wall_ms": g.wall.as_millis() as u64,
                "figures": fig,
                "peak_rss_kib": crate::bench::peak_rss_kib(),
                "rss_after_input_kib": rss_after_input,
                "rejected_on_results": g.rejected_on_results,
                "output": serde_json::from_str::<serde_json::Value>(&rendered).unwrap_or_default(),
                "reports": {
                    "sequencer": g.sequencer,
                    "branches": g.branches,
                    "customers": g.customers,
                },
            }),
        );
        println!("{}", doc.to_json());
    } else {
        // Standard output: exactly the course's output (of the version asked for). The
        // verdict goes to stderr.
        match a.print {
            super::cli::Print::Json => print!("{rendered}"),
            super::cli::Print::Lines => print!("{}", lines(&out)),
        }
    }
    if !s.global.quiet && !s.global.json {
        eprint!("{}", proof.verdict.lines());
        for k in &proof.skipped {
            eprintln!("  [--] {k}: skipped: --no-record keeps no per-operation record");
        }
    }
    eprintln!("{summary}");
    code
}

/// The verdict line of `sync-run bank` (stderr, last).
fn summary(
    run_id: &str,
    shape: &Shape,
    input: &Input,
    g: &Gathered,
    proof: &super::Proof,
) -> String {
    use crate::verdict::plural;
    let mode = match shape.mode {
        Mode::Ordered => "ordered",
        Mode::Propagate => "propagate",
    };
    match proof.verdict.failure_line() {
        None => format!(
            "VERIFIED: {} agree on {}, never overdrawn; {} of {}{} (run {run_id}, --mode {mode}, {:.3} s)",
            plural(input.branches.len() as u64, "branch", "branches"),
            g.branches.first().map_or(0, |b| b.balance),
            plural(
                g.customers.iter().map(|c| c.answered).sum::<u64>(),
                "operation",
                "operations"
            ),
            plural(input.customers.len() as u64, "customer", "customers"),
            if proof.skipped.is_empty() {
                ", linearizable"
            } else {
                " (--no-record: order not checked)"
            },
            g.wall.as_secs_f64()
        ),
        Some(f) => {
            let a = &proof.anomalies;
            format!(
                "{f}\nanomalies (--mode {mode}): {} overdrawn branch(es), {} distinct final balance(s), {} write order(s), {} stale read(s), {} unexplained answer(s), {} call(s) out of order, {} read-your-writes and {} monotonic-writes violation(s), {} applied twice",
                a.overdrawn_branches,
                a.distinct_balances,
                a.write_orders,
                a.stale_reads,
                a.unexplained,
                a.out_of_order,
                a.read_your_writes,
                a.monotonic_writes,
                a.applied_twice
            )
        }
    }
}

/// `sync-run bank-branch`: one branch, alone; prints how it ended.
pub async fn branch_alone(s: &Session, a: &AloneArgs) -> i32 {
    let input = read_input(&a.shape.input);
    if !input.branches.contains(&a.id) {
        usage_error(format!("--id {}: the input has no branch {}", a.id, a.id));
    }
    // At its N-th reply: handled, not yet acknowledged, the reply not yet sent.
    let branch = CrashAt {
        inner: setup(&a.run_id, &a.shape, epoch_ms()).branch(&input, a.id),
        at: a.crash_after_replies.map(|left| Trigger {
            command: "bank-branch",
            option: "replies",
            kind: "reply",
            passing: Passing::Published,
            left,
        }),
    };
    let say = |report: &BranchReport| {
        println!(
            "branch {} of bank run {}: {:?}, balance {}, operations {} to {} applied",
            a.id,
            a.run_id,
            report.outcome,
            report.balance,
            report.synced_seq + 1,
            report.last_seq
        );
    };
    let run = peer_run(&a.run_id, &input);
    let schema = "sync-run/bank-branch/v1";
    let completed = |r: &BranchReport| r.outcome == BranchEnd::Completed;
    solo(s, &run, Member::Peer(a.id), branch, schema, completed, say).await
}

/// `sync-run bank-customer`: one customer, alone; prints its answers (the course's
/// format, one entry) and how it ended.
pub async fn customer_alone(s: &Session, a: &AloneArgs) -> i32 {
    let input = read_input(&a.shape.input);
    let Some(c) = input.customers.iter().find(|c| c.id == a.id) else {
        usage_error(format!("--id {}: the input has no customer {}", a.id, a.id));
    };
    // Its first call goes at the drive loop's first timer round (time 0 and after).
    let customer = setup(&a.run_id, &a.shape, epoch_ms()).customer(c, 0);
    let say = |report: &CustomerReport| {
        let mine: Vec<_> = output(&input, std::slice::from_ref(report))
            .into_iter()
            .filter(|(id, _)| *id == a.id)
            .collect();
        print!("{}", input::render(&mine));
        eprintln!(
            "customer {} of bank run {}: {:?}",
            a.id, a.run_id, report.outcome
        );
    };
    let run = peer_run(&a.run_id, &input);
    let schema = "sync-run/bank-customer/v1";
    let completed = |r: &CustomerReport| r.outcome == CustomerEnd::Completed;
    solo(s, &run, Member::Client(a.id), customer, schema, completed, say).await
}

/// `sync-run bench bank`.
pub async fn bench(s: &Session, a: &super::cli::BenchArgs) -> i32 {
    super::bench::run(s, a).await
}
