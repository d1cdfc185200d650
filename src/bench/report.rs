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

/// Prints `measured` (or its failure, naming `alg`) and returns the exit code: as JSON
/// instead of the table with `json`, and also to the file `json_out`.
pub fn finish<R: BenchReport>(
    alg: &str,
    json: bool,
    json_out: Option<&Path>,
    measured: anyhow::Result<R>,
) -> i32 {
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
    if let Some(path) = json_out
        && let Err(e) = std::fs::write(path, &text)
    {
        eprintln!(
            "sync-run bench {alg}: could not write {}: {e}",
            path.display()
        );
    }
    if json {
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

/// Implements [`Run`] for a bench's figures, a type with a `verified: bool` field, from its
/// table's columns: each header written beside the cell it heads (`f` is the run), so that
/// the header and the row, two lists that must match cell for cell, cannot drift apart.
///
/// ```ignore
/// crate::bench_columns!(Figures, |f| {
///     "N" => f.processes.to_string(),
///     "verified" => yes_no(f.verified),
/// });
/// ```
#[macro_export]
macro_rules! bench_columns {
    ($figures:ty, |$f:ident| { $($header:literal => $cell:expr),+ $(,)? }) => {
        impl $crate::bench::report::Run for $figures {
            const HEADER: &'static [&'static str] = &[$($header),+];
            fn verified(&self) -> bool {
                self.verified
            }
            fn row(&self) -> Vec<String> {
                let $f = self;
                vec![$($cell),+]
            }
        }
    };
}

/// `yes` or `NO`, as every bench table shows a run's verdict.
pub fn yes_no(verified: bool) -> String {
    if verified { "yes" } else { "NO" }.to_string()
}

/// A duration cell: `12.34 ms` to `decimals` places, `-` for none.
pub fn ms(v: Option<f64>, decimals: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.decimals$} ms"))
}

/// A memory cell from KiB: `12.3 MiB` to `decimals` places, `-` for none (not on Linux).
pub fn mib(kib: Option<u64>, decimals: usize) -> String {
    kib.map_or("-".into(), |k| {
        format!("{:.decimals$} MiB", k as f64 / 1024.0)
    })
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
    /// The algorithm measured, for [`Report::head`].
    #[serde(skip)]
    pub alg: String,
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
            alg: alg.to_owned(),
        }
    }

    /// The title's two lines most benches begin with: what ran where, and the broker's
    /// one hop every figure is a ratio of.
    pub fn head(&self) -> String {
        format!(
            "sync-run bench {} on {}\nbroker one hop: p50 {:.3} ms, p99 {:.3} ms",
            self.alg, self.machine, self.one_hop_p50_ms, self.one_hop_p99_ms
        )
    }
}

/// The report of one run per size, as most benches measure: the broker's one hop first,
/// then `once(n, one_hop_p50_ms)` for each of `sizes` in turn (a run's figures are ratios
/// of the hop).
pub async fn per_size<R, Fut>(
    alg: &str,
    c: &crate::bench::Children,
    sizes: &[u32],
    title: fn(&Report<R>) -> String,
    mut once: impl FnMut(u32, f64) -> Fut,
) -> anyhow::Result<Report<R>>
where
    Fut: std::future::Future<Output = anyhow::Result<R>>,
{
    let hop = c.one_hop(alg).await?;
    let p50 = crate::bench::percentile(&hop, 0.5);
    let mut runs = Vec::new();
    for &n in sizes {
        runs.push(once(n, p50).await?);
    }
    Ok(Report::new(alg, &hop, (), runs, title))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Sample {
        n: u32,
        verified: bool,
        wall: Option<f64>,
    }

    crate::bench_columns!(Sample, |f| {
        "N" => f.n.to_string(),
        "verified" => yes_no(f.verified),
        "wall" => ms(f.wall, 2),
    });

    #[test]
    fn columns_pair_each_header_with_its_cell() {
        let s = Sample {
            n: 3,
            verified: false,
            wall: Some(1.5),
        };
        assert_eq!(Sample::HEADER, ["N", "verified", "wall"]);
        assert_eq!(s.row(), ["3", "NO", "1.50 ms"]);
        assert!(!Run::verified(&s));
        assert_eq!(ms(None, 1), "-");
        assert_eq!(mib(Some(1600), 1), "1.6 MiB");
        assert_eq!(mib(Some(1600), 0), "2 MiB");
        assert_eq!(mib(None, 1), "-");
    }

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
        assert_eq!(
            plain.head(),
            format!(
                "sync-run bench mutex on {}\nbroker one hop: p50 1.000 ms, p99 1.000 ms",
                plain.machine
            )
        );
    }
}
