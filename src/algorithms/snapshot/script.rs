//! The command script: one command a line, checked whole before anything runs, so a bad
//! script changes nothing anywhere. The language (docs/snapshot.md):
//!
//! ```text
//! StartMaster
//! CreateNode ID MONEY
//! Send FROM TO AMOUNT
//! Receive TO [FROM]
//! ReceiveAll
//! BeginSnapshot ID
//! CollectState
//! PrintSnapshot
//! KillAll
//! ```
//!
//! Blank lines and lines starting with `#` are skipped. Ids are whole numbers from 1 to
//! [`MAX_NODE_ID`]; money and amounts whole numbers from 0.

use super::protocol::Money;
use crate::contract::PeerId;
use std::collections::BTreeSet;

/// The largest node id a script may use.
pub const MAX_NODE_ID: PeerId = 1_000_000;

/// The largest balance or amount a script may name (10¹²): a million nodes of it still
/// add up within 64 bits.
pub const MAX_MONEY: Money = 1_000_000_000_000;

/// One command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    StartMaster,
    CreateNode {
        id: PeerId,
        money: Money,
    },
    Send {
        from: PeerId,
        to: PeerId,
        amount: Money,
    },
    Receive {
        to: PeerId,
        from: Option<PeerId>,
    },
    ReceiveAll,
    BeginSnapshot {
        id: PeerId,
    },
    CollectState,
    PrintSnapshot,
    KillAll,
}

/// A command and the line it came from (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line {
    pub number: usize,
    pub command: Command,
}

/// A checked script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub lines: Vec<Line>,
}

impl Script {
    /// Every node the script creates, ascending.
    pub fn nodes(&self) -> Vec<PeerId> {
        let set: BTreeSet<PeerId> = self
            .lines
            .iter()
            .filter_map(|l| match l.command {
                Command::CreateNode { id, .. } => Some(id),
                _ => None,
            })
            .collect();
        set.into_iter().collect()
    }
}

/// What is wrong with a script, naming the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ScriptError {
    pub line: usize,
    pub message: String,
}

fn err<T>(line: usize, message: impl Into<String>) -> Result<T, ScriptError> {
    Err(ScriptError {
        line,
        message: message.into(),
    })
}

fn number(line: usize, what: &str, word: &str) -> Result<u64, ScriptError> {
    match word.parse::<u64>() {
        Ok(x) if x <= MAX_MONEY => Ok(x),
        _ => err(
            line,
            format!("{what} must be a whole number from 0 to {MAX_MONEY}, not {word:?}"),
        ),
    }
}

fn node_id(line: usize, what: &str, word: &str) -> Result<PeerId, ScriptError> {
    match word.parse::<PeerId>() {
        Ok(k) if (1..=MAX_NODE_ID).contains(&k) => Ok(k),
        _ => err(
            line,
            format!("{what} must be a node id from 1 to {MAX_NODE_ID}, not {word:?}"),
        ),
    }
}

/// Parses one line's words into a command (no context: that is [`parse`]'s).
fn command(n: usize, words: &[&str]) -> Result<Command, ScriptError> {
    let arity = |want: &[usize], usage: &str| -> Result<(), ScriptError> {
        if want.contains(&(words.len() - 1)) {
            Ok(())
        } else {
            err(
                n,
                format!(
                    "{} takes {}: `{usage}` (got {})",
                    words[0],
                    if want.len() == 1 {
                        format!("{} argument(s)", want[0])
                    } else {
                        format!("{} or {} arguments", want[0], want[1])
                    },
                    words.len() - 1
                ),
            )
        }
    };
    // The commands without arguments: their word is their usage.
    let bare = [
        ("StartMaster", Command::StartMaster),
        ("ReceiveAll", Command::ReceiveAll),
        ("CollectState", Command::CollectState),
        ("PrintSnapshot", Command::PrintSnapshot),
        ("KillAll", Command::KillAll),
    ];
    if let Some((word, c)) = bare.into_iter().find(|(w, _)| *w == words[0]) {
        arity(&[0], word)?;
        return Ok(c);
    }
    Ok(match words[0] {
        "CreateNode" => {
            arity(&[2], "CreateNode ID MONEY")?;
            Command::CreateNode {
                id: node_id(n, "ID", words[1])?,
                money: number(n, "MONEY", words[2])?,
            }
        }
        "Send" => {
            arity(&[3], "Send FROM TO AMOUNT")?;
            Command::Send {
                from: node_id(n, "FROM", words[1])?,
                to: node_id(n, "TO", words[2])?,
                amount: number(n, "AMOUNT", words[3])?,
            }
        }
        "Receive" => {
            arity(&[1, 2], "Receive TO [FROM]")?;
            Command::Receive {
                to: node_id(n, "TO", words[1])?,
                from: match words.get(2) {
                    Some(w) => Some(node_id(n, "FROM", w)?),
                    None => None,
                },
            }
        }
        "BeginSnapshot" => {
            arity(&[1], "BeginSnapshot ID")?;
            Command::BeginSnapshot {
                id: node_id(n, "ID", words[1])?,
            }
        }
        other => {
            return err(
                n,
                format!(
                    "unknown command {other:?}; the commands are StartMaster, CreateNode, Send, Receive, ReceiveAll, BeginSnapshot, CollectState, PrintSnapshot, KillAll"
                ),
            );
        }
    })
}

/// Parses and checks a whole script: every line well formed, every node named exists
/// (created on an earlier line), no node created twice, no node created between a
/// `BeginSnapshot` and the `CollectState` after it, `StartMaster` first and once, nothing
/// after `KillAll`, `PrintSnapshot` only after a `CollectState`, `CollectState` only after
/// a `BeginSnapshot`.
pub fn parse(text: &str) -> Result<Script, ScriptError> {
    let mut lines = Vec::new();
    let mut started = false;
    let mut killed: Option<usize> = None;
    let mut nodes = BTreeSet::new();
    let mut open_snapshot: Option<usize> = None;
    let mut began = false;
    let mut collected = false;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let words: Vec<&str> = raw.split_whitespace().collect();
        if words.is_empty() || words[0].starts_with('#') {
            continue;
        }
        let c = command(n, &words)?;
        if let Some(k) = killed {
            return err(n, format!("nothing may follow KillAll (line {k})"));
        }
        if !started && c != Command::StartMaster {
            return err(n, "the script must begin with StartMaster");
        }
        let known = |what: &str, k: PeerId| -> Result<(), ScriptError> {
            if nodes.contains(&k) {
                Ok(())
            } else {
                err(
                    n,
                    format!("{what} {k} is not a node (create it first with CreateNode {k} MONEY)"),
                )
            }
        };
        match c {
            Command::StartMaster => {
                if started {
                    return err(n, "StartMaster may come only once");
                }
                started = true;
            }
            Command::CreateNode { id, .. } => {
                if let Some(b) = open_snapshot {
                    return err(
                        n,
                        format!(
                            "CreateNode between BeginSnapshot (line {b}) and CollectState: a snapshot's nodes are fixed once it begins"
                        ),
                    );
                }
                if !nodes.insert(id) {
                    return err(n, format!("node {id} exists already"));
                }
            }
            Command::Send { from, to, .. } => {
                known("FROM", from)?;
                known("TO", to)?;
                if from == to {
                    return err(
                        n,
                        format!("a node has no channel to itself ({from} -> {to})"),
                    );
                }
            }
            Command::Receive { to, from } => {
                known("TO", to)?;
                if let Some(f) = from {
                    known("FROM", f)?;
                    if f == to {
                        return err(
                            n,
                            format!("a node has no channel from itself ({f} -> {to})"),
                        );
                    }
                }
            }
            Command::BeginSnapshot { id } => {
                known("ID", id)?;
                open_snapshot = open_snapshot.or(Some(n));
                began = true;
            }
            Command::CollectState => {
                if !began {
                    return err(n, "CollectState needs a BeginSnapshot before it");
                }
                open_snapshot = None;
                collected = true;
            }
            Command::PrintSnapshot => {
                if !collected {
                    return err(n, "PrintSnapshot needs a CollectState before it");
                }
            }
            Command::KillAll => killed = Some(n),
            Command::ReceiveAll => {}
        }
        lines.push(Line {
            number: n,
            command: c,
        });
    }
    if !started {
        return err(
            text.lines().count().max(1),
            "the script is empty: it must begin with StartMaster",
        );
    }
    Ok(Script { lines })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const WORKED: &str = "StartMaster\nCreateNode 1 1000\nCreateNode 2 500\nSend 1 2 300\nSend 2 1 100\nSend 1 2 400\nReceive 2 1\nBeginSnapshot 1\nReceive 2\nReceive 2\nReceiveAll\nCollectState\nPrintSnapshot\nSend 1 2 5000\nKillAll\n";

    #[test]
    fn the_worked_example_parses() {
        let s = parse(WORKED).expect("parses");
        assert_eq!(s.lines.len(), 15);
        assert_eq!(s.nodes(), vec![1, 2]);
        assert_eq!(
            s.lines[6],
            Line {
                number: 7,
                command: Command::Receive {
                    to: 2,
                    from: Some(1)
                }
            }
        );
    }

    #[test]
    fn each_bad_line_is_named() {
        let bad = |body: &str| {
            let text = format!("StartMaster\nCreateNode 1 10\nCreateNode 2 10\n{body}\n");
            parse(&text).expect_err(body)
        };
        let cases = [
            ("Teleport 1 2", "unknown command"),
            ("Send 1 2", "takes 3"),
            ("Send 1 2 ten", "whole number"),
            ("Send 1 2 -5", "whole number"),
            ("Send 1 2 1000000000001", "whole number"),
            ("Send 1 3 5", "TO 3 is not a node"),
            ("Send 1 1 5", "no channel to itself"),
            ("Receive 2 2", "no channel from itself"),
            ("Receive", "takes 1 or 2"),
            ("CreateNode 2 5", "exists already"),
            ("CreateNode 0 5", "from 1 to"),
            ("BeginSnapshot 1\nCreateNode 3 5", "between BeginSnapshot"),
            ("CollectState", "needs a BeginSnapshot"),
            ("PrintSnapshot", "needs a CollectState"),
            ("KillAll\nReceiveAll", "nothing may follow KillAll"),
            ("StartMaster", "only once"),
        ];
        for (body, want) in cases {
            let e = bad(body);
            assert!(e.line >= 4, "{body}: {e}");
            assert!(e.to_string().contains(want), "{body}: {e}");
        }
        assert_eq!(parse("CreateNode 1 5\n").expect_err("no start").line, 1);
        assert!(parse("").is_err());
        assert_eq!(
            parse("StartMaster\n\n# a comment\nCreateNode 1 5\nnonsense\n")
                .expect_err("line 5")
                .line,
            5
        );
    }

    #[test]
    fn a_node_may_be_created_after_a_collected_snapshot() {
        let t = "StartMaster\nCreateNode 1 5\nCreateNode 2 5\nBeginSnapshot 1\nReceiveAll\nCollectState\nCreateNode 3 5\nBeginSnapshot 3\nReceiveAll\nCollectState\nPrintSnapshot\n";
        assert_eq!(parse(t).expect("parses").nodes(), vec![1, 2, 3]);
    }
}
