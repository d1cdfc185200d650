//! `sync-run bench --cluster`: what replication costs. The same runs (`sync-run --slaves N`,
//! N = 10, 100, 1000 by default) on one node with classic queues and with the stream, and
//! on a cluster's nodes with quorum queues and with the stream (its master's and results
//! queues quorum), in one session, beside each broker's own round trip; the cost of
//! replication is the ratio of a cluster figure to its single-node counterpart.
//!
//! The cluster is `--amqp-url` (two URLs or more, e.g. `scripts/local-cluster.sh urls`);
//! the single node is `--single-url` (default: the broker on 127.0.0.1:5672).

use super::bench::{BenchConfig, RunFigures, sync_run_against};
use crate::bench::{broker_rtt, machine, percentile};
use crate::broker::BrokerUrl;
use crate::contract::Topology;
use anyhow::{Context, Result};
use serde::Serialize;

/// Where each run goes and how its queues are declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Setup {
    /// One node, classic queues (per-worker queues).
    SingleClassic,
    /// One node, the stream (master's and results queues classic).
    SingleStream,
    /// The cluster, quorum queues (per-worker queues).
    ClusterQuorum,
    /// The cluster, the stream (master's and results queues quorum).
    ClusterStream,
}

impl Setup {
    const ALL: [Setup; 4] = [
        Setup::SingleClassic,
        Setup::SingleStream,
        Setup::ClusterQuorum,
        Setup::ClusterStream,
    ];

    fn label(self) -> &'static str {
        match self {
            Setup::SingleClassic => "one node, classic queues",
            Setup::SingleStream => "one node, stream",
            Setup::ClusterQuorum => "cluster, quorum queues",
            Setup::ClusterStream => "cluster, stream + quorum",
        }
    }

    fn topology(self) -> Topology {
        match self {
            Setup::SingleClassic | Setup::ClusterQuorum => Topology::Queues,
            Setup::SingleStream | Setup::ClusterStream => Topology::Stream,
        }
    }

    fn clustered(self) -> bool {
        matches!(self, Setup::ClusterQuorum | Setup::ClusterStream)
    }

    /// The single-node setup a cluster setup is compared with.
    fn baseline(self) -> Setup {
        match self {
            Setup::ClusterQuorum => Setup::SingleClassic,
            Setup::ClusterStream => Setup::SingleStream,
            s => s,
        }
    }
}

/// One run of the comparison.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterRun {
    pub n: usize,
    pub setup: Setup,
    /// The run's figures, or why there are none.
    pub figures: Option<RunFigures>,
    pub note: String,
    /// Wall time against the same N's single-node counterpart (cluster setups only).
    pub wall_ratio: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClusterReport {
    pub schema: &'static str,
    pub nodes: usize,
    pub single_rtt_p50_ms: f64,
    pub cluster_rtt_p50_ms: f64,
    pub runs: Vec<ClusterRun>,
    /// Quorum queues at N = 100 on the cluster, against classic queues on one node.
    pub goal_quorum_100_ratio: Option<f64>,
    pub machine: String,
}

/// Runs every size in every [`Setup`], printing progress on stderr.
pub async fn run(cfg: &BenchConfig, single: &BrokerUrl) -> Result<ClusterReport> {
    let c = &cfg.children;
    let (cluster, samples) = (&c.url, c.rtt_samples);
    eprintln!("bench --cluster: round trips ({samples} samples each)");
    let single_rtt = broker_rtt(single, c.connect_timeout, samples)
        .await
        .context("measuring the single node's round trip (--single-url)")?;
    let cluster_rtt = broker_rtt(cluster, c.connect_timeout, samples)
        .await
        .context("measuring the cluster's round trip (--amqp-url)")?;
    let window = cfg.windows.first().copied().unwrap_or(64);
    let mut runs: Vec<ClusterRun> = Vec::new();
    for &n in &cfg.sizes {
        for setup in Setup::ALL {
            let (url, extra): (&BrokerUrl, &[&str]) = if setup.clustered() {
                (cluster, &["--queue-type", "quorum"])
            } else {
                (single, &[])
            };
            eprintln!("bench --cluster: N={n}, {}", setup.label());
            let variant = (setup.topology(), window, true);
            let (figures, note) = match sync_run_against(cfg, url, n, variant, extra).await {
                Ok(f) if f.verified => {
                    eprintln!("bench --cluster:   {:.3} s, verified", f.wall_s);
                    (Some(f), "verified".to_string())
                }
                Ok(f) => {
                    let note = format!("NOT verified (exit {})", f.exit_code);
                    eprintln!("bench --cluster:   {note}");
                    (Some(f), note)
                }
                Err(e) => {
                    eprintln!("bench --cluster:   failed: {e:#}");
                    (None, format!("failed: {e:#}"))
                }
            };
            let wall_ratio = setup.clustered().then(|| {
                let base = runs
                    .iter()
                    .find(|r| r.n == n && r.setup == setup.baseline())
                    .and_then(|r| r.figures.as_ref())?;
                let f = figures.as_ref()?;
                (f.verified && base.verified && base.wall_s > 0.0).then(|| f.wall_s / base.wall_s)
            });
            runs.push(ClusterRun {
                n,
                setup,
                figures,
                note,
                wall_ratio: wall_ratio.flatten(),
            });
        }
    }
    let goal = runs
        .iter()
        .find(|r| r.n == 100 && r.setup == Setup::ClusterQuorum)
        .and_then(|r| r.wall_ratio);
    Ok(ClusterReport {
        schema: "sync-run/bench-cluster/v1",
        nodes: cluster.nodes().len(),
        single_rtt_p50_ms: percentile(&single_rtt, 0.5),
        cluster_rtt_p50_ms: percentile(&cluster_rtt, 0.5),
        runs,
        goal_quorum_100_ratio: goal,
        machine: machine(),
    })
}

/// The human table.
pub fn render(r: &ClusterReport) -> String {
    let mut out = format!(
        "sync-run bench --cluster ({} nodes; {})\nround trip p50: one node {:.3} ms, cluster {:.3} ms\n\n",
        r.nodes, r.machine, r.single_rtt_p50_ms, r.cluster_rtt_p50_ms
    );
    out +=
        "| N | setup | wall | turn p50 | per turn | deliveries/s | cluster ÷ one node | note |\n";
    out += "|---|---|---|---|---|---|---|---|\n";
    for run in &r.runs {
        let ratio = run
            .wall_ratio
            .map_or_else(|| "—".to_string(), |x| format!("{x:.2}×"));
        // A run without figures (it failed) keeps its N, setup and note, dashes between.
        let figures = run.figures.as_ref().map_or_else(
            || "— | — | — | — | —".to_string(),
            |f| {
                format!(
                    "{:.3} s | {:.1} ms | {:.2} ms | {:.0} | {ratio}",
                    f.wall_s, f.turn_p50_ms, f.per_turn_ms, f.deliveries_per_s
                )
            },
        );
        out += &format!(
            "| {} | {} | {figures} | {} |\n",
            run.n,
            run.setup.label(),
            run.note
        );
    }
    out += &match r.goal_quorum_100_ratio {
        Some(x) if x <= 2.0 => {
            format!("\ngoal: quorum queues at N=100 within 2× of classic on one node: met ({x:.2}×)\n")
        }
        Some(x) => format!(
            "\ngoal: quorum queues at N=100 within 2× of classic on one node: NOT met ({x:.2}×)\n"
        ),
        None => "\ngoal: quorum queues at N=100 within 2× of classic on one node: not measured (N=100 not run, or a run failed)\n".to_string(),
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_run_keeps_its_row_with_dashes() {
        let figures = RunFigures {
            n: 10,
            topology: Topology::Queues,
            window: 64,
            relay: true,
            verified: true,
            exit_code: 0,
            wall_s: 0.5,
            turns_s: 0.25,
            per_turn_ms: 2.5,
            turn_p50_ms: 1.5,
            turn_p99_ms: 3.0,
            deliveries: 100,
            deliveries_per_s: 200.0,
            peak_rss_mib: 10.0,
        };
        let run = |setup, figures, note: &str, wall_ratio| ClusterRun {
            n: 10,
            setup,
            figures,
            note: note.into(),
            wall_ratio,
        };
        let r = ClusterReport {
            schema: "sync-run/bench-cluster/v1",
            nodes: 3,
            single_rtt_p50_ms: 0.1,
            cluster_rtt_p50_ms: 0.2,
            runs: vec![
                run(Setup::SingleClassic, Some(figures.clone()), "verified", None),
                run(Setup::ClusterQuorum, Some(figures), "verified", Some(1.5)),
                run(Setup::ClusterStream, None, "failed: gone", None),
            ],
            goal_quorum_100_ratio: None,
            machine: "2 cores".into(),
        };
        let text = render(&r);
        let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("| 10 |")).collect();
        assert_eq!(
            rows,
            [
                "| 10 | one node, classic queues | 0.500 s | 1.5 ms | 2.50 ms | 200 | — | verified |",
                "| 10 | cluster, quorum queues | 0.500 s | 1.5 ms | 2.50 ms | 200 | 1.50× | verified |",
                "| 10 | cluster, stream + quorum | — | — | — | — | — | failed: gone |",
            ]
        );
        assert!(text.contains("not measured"), "{text}");
    }
}
