//! How every point-to-point algorithm's `sync-run bench <alg>` ends: the report as JSON
//! (`--json`, and to a file with `--json-out`) or as a table, and the exit code — 0 when
//! every measured run was verified, 1 when one was not, the broker's code when the
//! broker failed. One piece, so that the benches cannot drift in how they finish.

use crate::exit;
use serde::Serialize;
use std::path::Path;

/// A bench's report: serializable, rendered as a table, verified or not.
pub trait BenchReport: Serialize {
    /// The human table.
    fn render(&self) -> String;
    /// Whether every measured run was verified.
    fn verified(&self) -> bool;
}

/// Where the report goes: `json` prints it as JSON instead of the table; `json_out` also
/// writes it to that file.
#[derive(Debug, Clone, Copy)]
pub struct Output<'a> {
    pub json: bool,
    pub json_out: Option<&'a Path>,
}

/// Prints `measured` (or its failure, naming `alg`) and returns the exit code.
pub fn finish<R: BenchReport>(alg: &str, out: Output<'_>, measured: anyhow::Result<R>) -> i32 {
    let r = match measured {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sync-run bench {alg}: {e:#}");
            return if e.downcast_ref::<crate::broker::BrokerError>().is_some() {
                exit::BROKER
            } else {
                exit::FAILED
            };
        }
    };
    let text = serde_json::to_string_pretty(&r).unwrap_or_default();
    if let Some(path) = out.json_out
        && let Err(e) = std::fs::write(path, &text)
    {
        eprintln!(
            "sync-run bench {alg}: could not write {}: {e}",
            path.display()
        );
    }
    if out.json {
        println!("{text}");
    } else {
        print!("{}", r.render());
    }
    if r.verified() {
        exit::VERIFIED
    } else {
        exit::FAILED
    }
}

/// One measured run of a bench: a row of its table, verified or not. Each algorithm's
/// figures implement it; [`Report`] does the rest, so that the four benches share one head,
/// one table and one verdict.
pub trait Run: Serialize {
    /// The table's header, one cell per column of [`Run::row`].
    const HEADER: &'static [&'static str];
    /// Whether the run's checks all passed.
    fn verified(&self) -> bool;
    /// The run's row of the table.
    fn row(&self) -> Vec<String>;
}

/// `yes` or `NO`, as every bench table shows a run's verdict.
pub fn yes_no(verified: bool) -> String {
    if verified { "yes" } else { "NO" }.to_string()
}

/// A bench's report: the head every bench shares (schema, machine, the broker's one hop
/// measured in the same session), the algorithm's own fields `X` flattened in after it, and
/// the runs. `title` gives the lines above the table (not serialized: the JSON documents
/// keep their fields).
#[derive(Debug, Clone, Serialize)]
pub struct Report<R, X = ()> {
    pub schema: String,
    pub machine: String,
    pub one_hop_p50_ms: f64,
    pub one_hop_p99_ms: f64,
    #[serde(flatten)]
    pub extra: X,
    pub runs: Vec<R>,
    #[serde(skip)]
    pub title: fn(&Report<R, X>) -> String,
}

impl<R, X> Report<R, X> {
    /// The report of `alg`'s `runs`, beside the broker's sorted one-hop samples `hop`.
    pub fn new(alg: &str, hop: &[f64], extra: X, runs: Vec<R>, title: fn(&Self) -> String) -> Self {
        Report {
            schema: format!("sync-run/bench-{alg}/v1"),
            machine: crate::bench::machine(),
            one_hop_p50_ms: crate::bench::percentile(hop, 0.5),
            one_hop_p99_ms: crate::bench::percentile(hop, 0.99),
            extra,
            runs,
            title,
        }
    }
}

impl<R: Run, X: Serialize> BenchReport for Report<R, X> {
    fn render(&self) -> String {
        let mut t = comfy_table::Table::new();
        t.set_header(R::HEADER.to_vec());
        for r in &self.runs {
            t.add_row(r.row());
        }
        format!("{}\n{t}\n", (self.title)(self))
    }
    fn verified(&self) -> bool {
        self.runs.iter().all(Run::verified)
    }
}

/// The broker's one hop for `alg`'s bench: `samples` publish → delivery times, sorted, in
/// ms (announced on stderr first, as every bench does).
pub async fn one_hop(
    alg: &str,
    url: &crate::broker::BrokerUrl,
    connect_timeout: std::time::Duration,
    samples: usize,
) -> anyhow::Result<Vec<f64>> {
    use anyhow::Context as _;
    eprintln!("bench {alg}: broker one hop ({samples} samples)");
    crate::bench::broker_rtt(url, connect_timeout, samples)
        .await
        .context("measuring the broker's one-hop time")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Extra {
        low_load_per_round_trip: f64,
    }

    #[test]
    fn the_head_then_the_extra_fields_then_the_runs() {
        let r = Report::new(
            "bank",
            &[1.0],
            Extra {
                low_load_per_round_trip: 2.0,
            },
            vec![3],
            |_| String::new(),
        );
        let text = serde_json::to_string(&r).expect("json");
        let keys = [
            "schema",
            "machine",
            "one_hop_p50_ms",
            "one_hop_p99_ms",
            "low_load_per_round_trip",
            "runs",
        ];
        let at: Vec<usize> = keys
            .iter()
            .map(|k| text.find(&format!("\"{k}\"")).expect(k))
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert!(
            text.starts_with("{\"schema\":\"sync-run/bench-bank/v1\""),
            "{text}"
        );
        let plain = Report::new("mutex", &[1.0], (), Vec::<u32>::new(), |_| String::new());
        let v = serde_json::to_value(&plain).expect("json");
        assert_eq!(v.as_object().map(|o| o.len()), Some(5), "{v}");
    }
}
