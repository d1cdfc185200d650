//! What a holder reports of one acquisition: which slot and fence it got, and when its
//! command ran by the machine's monotonic clock. `--report FILE` appends one per line
//! (JSON Lines); `--check` reads them back, and its in-process contenders make the same.

use super::token::{Fence, Slot};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

/// One acquisition, as its holder saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holding {
    pub v: u32,
    pub lock: String,
    pub limit: u32,
    pub slot: Slot,
    pub fence: Fence,
    pub host: String,
    pub pid: u32,
    /// `/proc/sys/kernel/random/boot_id`: two reports' clock readings are comparable only
    /// if these are equal (same machine, same boot).
    pub boot_id: String,
    /// Which in-process contender (`--check`), or 0 for a holder started alone.
    pub contender: u32,
    /// This contender's acquisitions so far (0, 1, …): its own order.
    pub round: u32,
    /// CLOCK_MONOTONIC (ns) right after the lock was ours, before the command started.
    pub start_ns: u64,
    /// CLOCK_MONOTONIC (ns) after the command ended, before the lock was let go.
    pub end_ns: u64,
    /// `released`, or `lost` (the connection went while holding: the command was stopped).
    pub outcome: Outcome,
    /// The command's exit code (none for the built-in critical section or when killed).
    pub exit_code: Option<i32>,
}

/// How a holding ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Released,
    Lost,
}

/// Appends `h` to `path` as one line. One `write` of the whole line on a file opened for
/// appending, so holders on one machine writing to one file do not mix their lines.
pub fn append(path: &Path, h: &Holding) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(h).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(&line)
}

/// Every report in `path`; a line that is no report is an error naming the file and line.
pub fn read(path: &Path) -> Result<Vec<Holding>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| format!("{} line {}: not a lock report ({e})", path.display(), i + 1))
        })
        .collect()
}

#[cfg(test)]
pub(crate) fn sample(contender: u32, round: u32, fence: Fence, start: u64, end: u64) -> Holding {
    Holding {
        v: 1,
        lock: "t".into(),
        limit: 1,
        slot: 0,
        fence,
        host: "h".into(),
        pid: 1,
        boot_id: "b".into(),
        contender,
        round,
        start_ns: start,
        end_ns: end,
        outcome: Outcome::Released,
        exit_code: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appended_reports_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.jsonl");
        append(&p, &sample(1, 0, 1, 10, 20)).unwrap();
        append(&p, &sample(2, 0, 2, 30, 40)).unwrap();
        let r = read(&p).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].fence, 2);
        std::fs::write(&p, "{}\n").unwrap();
        assert!(read(&p).unwrap_err().contains("line 1"));
    }
}
