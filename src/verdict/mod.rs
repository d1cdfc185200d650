//! The verdict every run ends with: named checks, each passed, failed or not run, turned
//! into a human table, a JSON document and an exit code.
//!
//! A checker builds its checks from what the participants *reported* (their lists, their
//! critical-section intervals, their event logs), never from the driver's own bookkeeping:
//! the proof must not share the bugs of what it proves.

pub mod checks;
pub mod spacetime;

use serde::Serialize;

/// How one check came out. A check with nothing to look at is `not_run`: it neither passes
/// nor fails, and the run is not verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Passed,
    Failed,
    NotRun,
}

/// One named promise of an algorithm and what the checker found about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    /// `status == passed`, kept for readers of the first report schema.
    pub passed: bool,
    pub detail: String,
}

/// A check that ran: passed or failed, with what it found.
pub fn check(name: &'static str, passed: bool, detail: impl Into<String>) -> Check {
    Check {
        name,
        status: if passed {
            Status::Passed
        } else {
            Status::Failed
        },
        passed,
        detail: detail.into(),
    }
}

/// A check that had nothing to look at, and why.
pub fn not_run(name: &'static str, why: impl Into<String>) -> Check {
    Check {
        name,
        status: Status::NotRun,
        passed: false,
        detail: format!("not run: {}", why.into()),
    }
}

/// The checks of one run. Verified when every check passed (and there was at least one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub verified: bool,
    pub checks: Vec<Check>,
}

impl Verdict {
    pub fn new(checks: Vec<Check>) -> Self {
        Verdict {
            verified: !checks.is_empty() && checks.iter().all(|c| c.status == Status::Passed),
            checks,
        }
    }

    /// `0` verified, `1` not: the plain exit code (an algorithm may refine it).
    pub fn exit_code(&self) -> i32 {
        if self.verified {
            crate::exit::VERIFIED
        } else {
            crate::exit::FAILED
        }
    }

    /// The check lines of the human report: `  [ok] name: detail`.
    pub fn lines(&self) -> String {
        let mut s = String::new();
        for c in &self.checks {
            let mark = match c.status {
                Status::Passed => "ok",
                Status::Failed => "FAIL",
                Status::NotRun => "--",
            };
            s += &format!("  [{mark}] {}: {}\n", c.name, c.detail);
        }
        s
    }

    /// `FAILED: <first failed check> (<detail>); N more checks failed; M not run`, or
    /// `None` when verified (the algorithm says what was verified).
    pub fn failure_line(&self) -> Option<String> {
        if self.verified {
            return None;
        }
        let failed: Vec<_> = self
            .checks
            .iter()
            .filter(|c| c.status == Status::Failed)
            .collect();
        let not_run = self
            .checks
            .iter()
            .filter(|c| c.status == Status::NotRun)
            .count();
        let mut line = match failed.first() {
            Some(c) => format!("FAILED: {} ({})", c.name, c.detail),
            None => "FAILED: nothing to verify".to_string(),
        };
        if failed.len() > 1 {
            line += &format!("; {} more checks failed", failed.len() - 1);
        }
        if not_run > 0 {
            line += &format!("; {not_run} not run");
        }
        Some(line)
    }
}

/// The version of the run document's shape ([`Document`]): every algorithm's `schema` is
/// `sync-run/<algorithm>/v2`. Version 1 had `verified` and `checks` at the top level
/// (the list agreement's had them under `verdict`, as all do now).
pub const DOCUMENT_VERSION: u32 = 2;

/// The one `--json` document every algorithm's run prints (docs/PROTOCOL.md, "Run
/// documents"): `schema`, `run_id`, `exit_code`, `verdict: {verified, checks}`, then the
/// algorithm's own fields. A reader of one algorithm's verdict reads every algorithm's.
#[derive(Debug, Serialize)]
pub struct Document<'a, T: Serialize> {
    /// `sync-run/<algorithm>/v2`.
    pub schema: String,
    pub run_id: &'a str,
    pub exit_code: i32,
    pub verdict: &'a Verdict,
    /// The algorithm's own fields, after the shared ones.
    #[serde(flatten)]
    pub fields: T,
}

impl<'a, T: Serialize> Document<'a, T> {
    /// The document of `algorithm`'s run `run_id`.
    pub fn new(
        algorithm: &str,
        run_id: &'a str,
        exit_code: i32,
        verdict: &'a Verdict,
        fields: T,
    ) -> Self {
        Document {
            schema: schema(algorithm),
            run_id,
            exit_code,
            verdict,
            fields,
        }
    }

    /// The document as pretty JSON text. If it cannot be written (a bug: its fields are
    /// plain data), the text is an error document that says so (`sync-run/error/v1`,
    /// kind `encode`) and the reason goes to stderr: never an empty line a reader would
    /// take for a document.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| {
            eprintln!("sync-run: cannot write the run's JSON document: {e}");
            serde_json::json!({
                "schema": "sync-run/error/v1",
                "run_id": self.run_id,
                "exit_code": self.exit_code,
                "error": { "kind": "encode", "message": e.to_string() },
            })
            .to_string()
        })
    }
}

/// `sync-run/<algorithm>/v2`: the schema of `algorithm`'s run document.
pub fn schema(algorithm: &str) -> String {
    format!("sync-run/{algorithm}/v{DOCUMENT_VERSION}")
}

/// The `p` quantile (0..=1) of `sorted_ms` (NaN when empty).
pub fn percentile(sorted_ms: &[f64], p: f64) -> f64 {
    if sorted_ms.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted_ms.len() as f64 * p).ceil() as usize).clamp(1, sorted_ms.len()) - 1;
    sorted_ms[i]
}

/// At most this many ids are named in a check's detail; the rest are counted.
const IDS_SHOWN: usize = 8;

/// `1, 2, 3 … and 190 more`: a list of ids that stays one short line however large N is.
pub fn ids<T: std::fmt::Display>(ids: &[T]) -> String {
    let shown: Vec<String> = ids.iter().take(IDS_SHOWN).map(|i| i.to_string()).collect();
    match ids.len().saturating_sub(IDS_SHOWN) {
        0 => shown.join(", "),
        more => format!("{} … and {more} more", shown.join(", ")),
    }
}

/// `1 branch`, `2 branches`, `0 branches`: a count with its noun in the right number, so
/// that a summary line reads right for a run of one. Both forms are given (`"branch",
/// "branches"`): English plurals are not all an added `s`.
pub fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plural_says_one_for_one_only() {
        assert_eq!(plural(1, "branch", "branches"), "1 branch");
        assert_eq!(plural(2, "branch", "branches"), "2 branches");
        assert_eq!(plural(0, "customer", "customers"), "0 customers");
    }

    #[test]
    fn verified_only_when_every_check_passed() {
        assert!(Verdict::new(vec![check("a", true, "")]).verified);
        assert!(!Verdict::new(vec![]).verified);
        assert!(!Verdict::new(vec![check("a", true, ""), not_run("b", "nothing")]).verified);
        let v = Verdict::new(vec![check("a", false, "x"), check("b", false, "y")]);
        assert_eq!(
            v.failure_line().as_deref(),
            Some("FAILED: a (x); 1 more checks failed")
        );
        assert_eq!(ids(&[1, 2, 3]), "1, 2, 3");
    }

    #[test]
    fn one_document_shape_for_every_algorithm() {
        let v = Verdict::new(vec![check("a", true, "fine")]);
        let doc = Document::new("mutex", "r1", 0, &v, serde_json::json!({"processes": 3}));
        let j: serde_json::Value = serde_json::from_str(&doc.to_json()).expect("reads");
        assert_eq!(j["schema"], "sync-run/mutex/v2");
        assert_eq!(j["run_id"], "r1");
        assert_eq!(j["exit_code"], 0);
        assert_eq!(j["verdict"]["verified"], true);
        assert_eq!(j["verdict"]["checks"][0]["name"], "a");
        assert_eq!(j["processes"], 3);
        assert!(j.get("verified").is_none() && j.get("checks").is_none());
    }
}
