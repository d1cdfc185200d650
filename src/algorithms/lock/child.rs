//! The command run under the lock: started in a process group of its own (so that
//! stopping it reaches everything it started), with `SYNC_RUN_LOCK`, `SYNC_RUN_FENCE` and
//! `SYNC_RUN_SLOT` in its environment and sync-run's stdio; stopped with SIGTERM to its
//! group, then SIGKILL after the grace period.

use rustix::process::{Pid, Signal, kill_process_group, test_kill_process_group};
use std::time::Duration;
use tokio::process::{Child, Command};

/// A started command.
pub struct Cmd {
    child: Child,
    pgid: Option<Pid>,
}

/// What the command is told of its holding.
pub struct Env<'a> {
    pub lock: &'a str,
    pub fence: u64,
    /// `Some` with `--limit`.
    pub slot: Option<u32>,
}

impl Cmd {
    /// Starts `argv` (program first). An error names the program.
    pub fn start(argv: &[String], env: &Env) -> Result<Cmd, String> {
        let (prog, args) = argv.split_first().ok_or("no command to run")?;
        let mut c = Command::new(prog);
        c.args(args)
            .env("SYNC_RUN_LOCK", env.lock)
            .env("SYNC_RUN_FENCE", env.fence.to_string())
            .process_group(0)
            .kill_on_drop(true);
        match env.slot {
            Some(s) => c.env("SYNC_RUN_SLOT", s.to_string()),
            None => c.env_remove("SYNC_RUN_SLOT"),
        };
        let child = c.spawn().map_err(|e| format!("cannot start {prog}: {e}"))?;
        let pgid = child.id().and_then(|id| Pid::from_raw(id as i32));
        Ok(Cmd { child, pgid })
    }

    /// Waits for the command to end: its exit code, or 128 + the signal that killed it.
    pub async fn wait(&mut self) -> i32 {
        match self.child.wait().await {
            Ok(st) => code(st),
            Err(_) => crate::exit::FAILED,
        }
    }

    /// Stops the command: SIGTERM to its process group, SIGKILL to it after `grace` if
    /// the command has not ended by then. Returns how it ended.
    pub async fn stop(&mut self, grace: Duration) -> i32 {
        let start = tokio::time::Instant::now();
        self.signal(Signal::TERM);
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(Ok(st)) => {
                // The leader is gone; what it started may not be, and gets what is left of
                // the grace (as promised: SIGKILL only after --grace), then SIGKILL.
                while start.elapsed() < grace && self.group_alive() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                self.signal(Signal::KILL);
                code(st)
            }
            _ => {
                self.signal(Signal::KILL);
                self.wait().await
            }
        }
    }

    /// Whether anything of the command's process group is still there.
    fn group_alive(&self) -> bool {
        self.pgid
            .is_some_and(|pg| test_kill_process_group(pg).is_ok())
    }

    fn signal(&self, sig: Signal) {
        if let Some(pg) = self.pgid {
            // ESRCH: the group is already gone, which is what we wanted.
            let _ = kill_process_group(pg, sig);
        }
    }
}

fn code(st: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    st.code()
        .or_else(|| st.signal().map(|s| 128 + s))
        .unwrap_or(crate::exit::FAILED)
}
