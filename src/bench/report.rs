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
