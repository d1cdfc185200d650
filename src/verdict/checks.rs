//! What the algorithms' checks share: who was expected and did not report, who reported
//! and did not end as they should, and the problems one check found, said in one detail.
//! Every algorithm's checks ask these questions of its own reports; written once, they
//! are asked alike.

use super::{Check, check, ids};
use std::fmt::Display;

/// The ids of `expected`, in its order, of which `reported` knows nothing.
pub fn missing<K>(expected: impl IntoIterator<Item = K>, reported: impl Fn(&K) -> bool) -> Vec<K> {
    expected.into_iter().filter(|k| !reported(k)).collect()
}

/// What `say` says of each of `reports` that did not end as `ended` wants, in their order.
pub fn unended<'a, R: 'a, T>(
    reports: impl IntoIterator<Item = &'a R>,
    ended: impl Fn(&R) -> bool,
    say: impl Fn(&R) -> T,
) -> Vec<T> {
    reports.into_iter().filter(|r| !ended(r)).map(say).collect()
}

/// The problems one check found, in the order they were found.
#[derive(Debug, Default)]
pub struct Problems(Vec<String>);

impl Problems {
    /// Notes a problem.
    pub fn push(&mut self, p: impl Into<String>) {
        self.0.push(p.into());
    }

    /// Notes `say(the ids, listed short)` when `found` names any (`no report from 3, 4`).
    pub fn unless_empty<T: Display>(&mut self, found: &[T], say: impl FnOnce(String) -> String) {
        if !found.is_empty() {
            self.push(say(ids(found)));
        }
    }

    /// Whether none was found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The check `name`: passed, saying `ok()`, when no problem was found; failed, naming
    /// every problem, when one was.
    pub fn check(self, name: &'static str, ok: impl FnOnce() -> String) -> Check {
        if self.0.is_empty() {
            check(name, true, ok())
        } else {
            check(name, false, self.0.join("; "))
        }
    }

    /// [`Problems::check`] of a check over what reported, of which `any` says whether
    /// anything did: with nothing to look at it fails, saying `none`, as a check that
    /// passes over nothing proves nothing.
    pub fn check_over(
        self,
        name: &'static str,
        any: bool,
        none: &str,
        ok: impl FnOnce() -> String,
    ) -> Check {
        if self.is_empty() && !any {
            check(name, false, none)
        } else {
            self.check(name, ok)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_unended_keep_their_order() {
        assert_eq!(missing([3, 1, 2, 5], |k| *k == 1 || *k == 5), vec![3, 2]);
        let reports = [(1, true), (2, false), (3, false)];
        let said = unended(&reports, |r| r.1, |r| format!("P{}", r.0));
        assert_eq!(said, vec!["P2", "P3"]);
    }

    #[test]
    fn problems_make_one_check() {
        let mut p = Problems::default();
        p.unless_empty::<u32>(&[], |l| format!("no report from {l}"));
        assert!(p.is_empty());
        let ok = p.check("reports", || "all reported".into());
        assert_eq!(ok, check("reports", true, "all reported"));

        let mut p = Problems::default();
        p.unless_empty(&[3, 4], |l| format!("no report from {l}"));
        p.push("the clerk did not report");
        let bad = p.check("reports", || unreachable!("it failed"));
        let detail = "no report from 3, 4; the clerk did not report";
        assert_eq!(bad, check("reports", false, detail));
    }

    #[test]
    fn a_check_over_nothing_fails() {
        let none =
            Problems::default().check_over("answered", false, "no customer reported", || {
                unreachable!("nothing reported")
            });
        assert_eq!(none, check("answered", false, "no customer reported"));
        let some = Problems::default().check_over("answered", true, "-", || "3 calls".into());
        assert_eq!(some, check("answered", true, "3 calls"));
    }
}
