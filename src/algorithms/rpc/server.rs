//! One server of a NAME: takes requests from the shared queue (at most `concurrency` at
//! once, the broker's prefetch), answers each — with CMD's output or, for `--echo`, the
//! request itself — and counts what it did. Used by `sync-run serve` and by the echo
//! servers of `call --check --serve-echo`.

use super::exec::{self, Outcome};
use super::protocol::{self, H_VERSION, Status, VERSION};
use crate::broker::reply::{Header, Replier, Request, Server};
use crate::broker::{BrokerError, Shutdown, stopped};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// How a server answers.
#[derive(Debug, Clone)]
pub enum Answer {
    /// With the request body itself.
    Echo,
    /// With what CMD prints, killed after the limit.
    Cmd(Vec<String>, Duration),
}

/// What one server did.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Served {
    pub ok: u64,
    pub errors: u64,
    /// Requests that broke the protocol, rejected without an answer.
    pub refused: u64,
    /// Requests the broker delivered again (a server died holding them): answered again.
    pub redelivered: u64,
}

impl Served {
    fn count(&mut self, s: Status) {
        match s {
            Status::Ok => self.ok += 1,
            Status::Error => self.errors += 1,
        }
    }
}

/// Serves `server`'s queue as `id` until `stop` says so or the broker fails; then stops
/// taking requests, answers the ones it holds, and closes.
pub async fn serve(
    mut server: Server,
    id: &str,
    concurrency: u16,
    answer: Answer,
    mut stop: Shutdown,
) -> Result<Served, BrokerError> {
    let replier = server.replier();
    let answer = Arc::new(answer);
    let id: Arc<str> = Arc::from(id);
    let mut running: JoinSet<Result<Status, BrokerError>> = JoinSet::new();
    let mut served = Served::default();
    let ended = loop {
        tokio::select! {
            _ = stopped(&mut stop) => break Ok(()),
            r = server.next(), if running.len() < usize::from(concurrency) => match r {
                Ok(req) => {
                    served.redelivered += u64::from(req.redelivered);
                    match protocol::read_request(
                        req.msg.reply_to.as_deref(),
                        req.msg.correlation_id.as_deref(),
                        &req.msg.headers,
                        req.msg.body.len(),
                    ) {
                        Ok(meta) => {
                            let (r, a, i) = (replier.clone(), answer.clone(), id.clone());
                            running.spawn(async move { handle(&r, req, meta, &a, &i).await });
                        }
                        Err(why) => {
                            tracing::warn!(queue = %server.queue, "request refused: {why}");
                            served.refused += 1;
                            if let Err(e) = replier.refuse(req).await {
                                break Err(e);
                            }
                        }
                    }
                }
                Err(e) => break Err(e),
            },
            Some(done) = running.join_next() => match done {
                Ok(Ok(s)) => served.count(s),
                Ok(Err(e)) => break Err(e),
                Err(e) => break Err(BrokerError::Lost { what: format!("request handler ({e})") }),
            },
        }
    };
    server.stop_taking().await;
    while let Some(done) = running.join_next().await {
        if let Ok(Ok(s)) = done {
            served.count(s);
        }
    }
    server.close().await;
    ended.map(|()| served)
}

/// Answers one valid request; returns the reply's status once it is confirmed and the
/// request acknowledged.
async fn handle(
    replier: &Replier,
    req: Request,
    meta: protocol::RequestMeta,
    answer: &Answer,
    id: &str,
) -> Result<Status, BrokerError> {
    let (status, exit, body) = match answer {
        Answer::Echo => (Status::Ok, None, req.msg.body.clone()),
        Answer::Cmd(cmd, limit) => match exec::run(cmd, &req.msg.body, *limit, id).await {
            Outcome::Ok(out) => (Status::Ok, None, out),
            Outcome::Failed { exit, stderr_tail } => {
                tracing::warn!("CMD failed ({exit}) for request {}", meta.correlation_id);
                (Status::Error, Some(exit), stderr_tail.into_bytes())
            }
        },
    };
    let sha = protocol::sha256_hex(&req.msg.body);
    let mut headers = vec![(H_VERSION, Header::Int(i64::from(VERSION)))];
    headers.extend(
        protocol::reply_headers(id, &sha, status, exit.as_deref())
            .into_iter()
            .map(|(k, v)| (k, Header::Text(v))),
    );
    replier
        .answer(req, &meta.reply_to, &meta.correlation_id, &headers, &body)
        .await?;
    Ok(status)
}

/// `HOST:PID`, how a server names itself unless told otherwise.
pub fn default_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", std::process::id())
}
