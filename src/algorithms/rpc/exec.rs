//! Running `serve`'s CMD for one request: the request body on its stdin, its stdout the
//! reply, its stderr passed through to ours line by line (and its last lines kept for an
//! error reply). A CMD that exits non-zero, dies of a signal, outlives `--cmd-timeout` or
//! prints more than [`MAX_BODY`] becomes an error reply saying which.

use super::protocol::MAX_BODY;
use std::collections::VecDeque;
use std::process::Stdio;
use std::time::Duration;
use rustix::process::{Pid, Signal, kill_process_group};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// How many of CMD's last stderr lines an error reply carries.
pub const STDERR_TAIL: usize = 20;
/// A stderr line longer than this is passed on in pieces of this size (memory stays bounded
/// whatever CMD prints).
pub const STDERR_LINE: usize = 4096;

/// What became of one run of CMD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Exit status 0: its stdout is the reply.
    Ok(Vec<u8>),
    /// Anything else: what happened (the `x-sync-run-exit` header) and the last lines of
    /// its stderr (the body).
    Failed { exit: String, stderr_tail: String },
}

/// Runs `cmd` (program and arguments, no shell) with `input` on its stdin, for at most
/// `limit`; `tag` prefixes the stderr lines passed through.
pub async fn run(cmd: &[String], input: &[u8], limit: Duration, tag: &str) -> Outcome {
    let Some((program, args)) = cmd.split_first() else {
        return failed("spawn: no command given", VecDeque::new());
    };
    // In a process group of its own: a timeout stops everything CMD started (`sh -c 'a; b'`),
    // and the terminal's Ctrl-C reaches `serve`, which lets the CMDs it holds run to their end.
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return failed(&format!("spawn: {program}: {e}"), VecDeque::new()),
    };
    let (Some(mut stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return failed("spawn: no pipes to the command", VecDeque::new());
    };
    // All three at once: a CMD that reads a little, writes a lot, then reads on would
    // otherwise wait on us while we wait on it.
    let feed = async move {
        // A CMD that does not read its stdin closes it early: not an error of ours.
        let _ = stdin.write_all(input).await;
        drop(stdin);
    };
    let read = async move {
        let mut out = Vec::new();
        let mut limited = stdout.take(MAX_BODY as u64 + 1);
        let r = limited.read_to_end(&mut out).await;
        (r, out)
    };
    // Read to its end whatever it is (bytes, not necessarily UTF-8, lines of any length):
    // a pipe closed early would kill CMD with SIGPIPE on its next write.
    let tail = async move {
        let mut tail = VecDeque::new();
        let mut stderr = BufReader::new(stderr);
        let mut line = Vec::new();
        loop {
            line.clear();
            match (&mut stderr)
                .take(STDERR_LINE as u64)
                .read_until(b'\n', &mut line)
                .await
            {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(line.strip_suffix(b"\n").unwrap_or(&line)).into_owned();
            eprintln!("{tag}: {text}");
            if tail.len() == STDERR_TAIL {
                tail.pop_front();
            }
            tail.push_back(text);
        }
        tail
    };
    let all = async {
        let ((), (read, out), tail) = tokio::join!(feed, read, tail);
        let status = child.wait().await;
        (read, out, tail, status)
    };
    let (read, out, tail, status) = match tokio::time::timeout(limit, all).await {
        Ok(done) => done,
        Err(_) => {
            // The whole group: CMD and whatever it started.
            if let Some(pg) = child.id().and_then(|id| Pid::from_raw(id as i32)) {
                let _ = kill_process_group(pg, Signal::KILL);
            }
            let _ = child.start_kill();
            let _ = child.wait().await;
            return failed(
                &format!("timeout {}", humantime::format_duration(limit)),
                VecDeque::new(),
            );
        }
    };
    match (read, status) {
        (Err(e), _) => failed(&format!("reading its stdout: {e}"), tail),
        (_, Err(e)) => failed(&format!("waiting for it: {e}"), tail),
        (Ok(_), Ok(_)) if out.len() > MAX_BODY => failed("too large", tail),
        (Ok(_), Ok(s)) if s.success() => Outcome::Ok(out),
        (Ok(_), Ok(s)) => failed(&describe(s), tail),
    }
}

fn failed(exit: &str, tail: VecDeque<String>) -> Outcome {
    Outcome::Failed {
        exit: exit.to_owned(),
        stderr_tail: tail.into_iter().collect::<Vec<_>>().join("\n"),
    }
}

/// `exit 3` or `signal 9`.
fn describe(s: std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = s.signal() {
            return format!("signal {sig}");
        }
    }
    match s.code() {
        Some(c) => format!("exit {c}"),
        None => "exit unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        ["sh", "-c", script].map(String::from).to_vec()
    }

    #[tokio::test]
    async fn stdout_is_the_reply() {
        let got = run(&sh("tr a-z A-Z"), b"hello", Duration::from_secs(30), "t").await;
        assert_eq!(got, Outcome::Ok(b"HELLO".to_vec()));
    }

    #[tokio::test]
    async fn a_failure_carries_its_status_and_stderr_tail() {
        let got = run(
            &sh("echo first >&2; echo last >&2; exit 3"),
            b"",
            Duration::from_secs(30),
            "t",
        )
        .await;
        assert_eq!(
            got,
            Outcome::Failed {
                exit: "exit 3".into(),
                stderr_tail: "first\nlast".into()
            }
        );
    }

    #[tokio::test]
    async fn a_command_that_cannot_start_fails() {
        let got = run(
            &["/nonexistent/sync-run-cmd".to_string()],
            b"",
            Duration::from_secs(30),
            "t",
        )
        .await;
        assert!(
            matches!(&got, Outcome::Failed { exit, .. } if exit.starts_with("spawn:")),
            "{got:?}"
        );
    }

    #[tokio::test]
    async fn a_command_past_its_limit_is_killed() {
        // Never ends by itself (it follows a file that never grows).
        let got = run(&sh("exec tail -f /dev/null"), b"", Duration::from_millis(300), "t").await;
        assert!(
            matches!(&got, Outcome::Failed { exit, .. } if exit.starts_with("timeout")),
            "{got:?}"
        );
    }
}
