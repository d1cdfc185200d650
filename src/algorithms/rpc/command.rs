//! `sync-run serve NAME -- CMD` and `sync-run call NAME [JSON]` (one call; `--check`
//! hands over to [`super::check`]), and `sync-run bench rpc`.

use super::cli::{BenchArgs, CallArgs, ServeArgs};
use super::client::{Client, End};
use super::protocol::{self, Status};
use super::server::{self, Answer};
use super::{NO_REPLY, NO_SERVER};
use crate::broker::reply::{self, Caller, Server};
use crate::cli::session::Session;
use crate::cli::usage_error;
use crate::exit;
use std::io::{Read, Write};

// Its subcommands, as the dispatcher (`crate::app`) flattens them into `sync-run`'s.
crate::subcommands! {
    commands: [
        /// Request/reply: answer each request sent to NAME by running CMD (request on
        /// stdin, reply from stdout), or --echo. Several servers of a NAME share its work.
        Serve(ServeArgs) => serve,
        /// Request/reply: send one request to NAME and print its reply (exit 69: nobody
        /// serves NAME; 75: no reply in time); --check proves C clients × K calls.
        Call(CallArgs) => call,
    ]
    bench: [
        /// Request/reply: a call's round trip (p50, p99) at several client counts, as a
        /// ratio of the broker's one hop; calls per second.
        Rpc(BenchArgs) => bench,
    ]
}

/// `sync-run serve`: until Ctrl-C or SIGTERM, then the requests in hand are answered.
pub async fn serve(s: &Session, a: &ServeArgs) -> i32 {
    if !a.echo && a.cmd.is_empty() {
        usage_error("give the command after `--` (e.g. sync-run serve upper -- tr a-z A-Z), or --echo");
    }
    let id = a.server_id.clone().unwrap_or_else(server::default_id);
    let queue = protocol::queue(&a.name);
    let answer = if a.echo {
        Answer::Echo
    } else {
        Answer::Cmd(a.cmd.clone(), a.cmd_timeout)
    };
    let who = format!("sync-run serve {} ({id})", a.name);
    let opened = Server::open(
        &s.broker.url,
        s.global.connect_timeout,
        &who,
        &queue,
        a.concurrency,
    )
    .await;
    let srv = match opened {
        Ok(srv) => srv,
        Err(e) => return s.broker_failure(&a.name, &e),
    };
    if !s.global.quiet {
        eprintln!(
            "serving {} on {queue} as {id}, {} at a time; Ctrl-C to stop",
            a.name, a.concurrency
        );
    }
    match server::serve(srv, &id, a.concurrency, answer, s.shutdown.clone()).await {
        Ok(done) => {
            if !s.global.quiet {
                eprintln!(
                    "served {}: {} answered ok, {} with an error, {} refused, {} delivered again",
                    a.name, done.ok, done.errors, done.refused, done.redelivered
                );
            }
            let code = s.or_signal(exit::VERIFIED);
            if s.global.json {
                let doc = serde_json::json!({
                    "schema": "sync-run/rpc-serve/v1",
                    "name": a.name,
                    "queue": queue,
                    "server": id,
                    "exit_code": code,
                    "served": done,
                });
                println!("{doc}");
            }
            code
        }
        Err(e) => s.broker_failure(&a.name, &e),
    }
}

/// The request body: the argument as given, or stdin for none or `-`.
fn request_body(arg: Option<&str>) -> Vec<u8> {
    let body = match arg {
        Some(b) if b != "-" => b.as_bytes().to_vec(),
        _ => {
            use std::io::IsTerminal;
            if std::io::stdin().is_terminal() {
                eprintln!("sync-run call: reading the request body from stdin (end it with Ctrl-D)");
            }
            let mut buf = Vec::new();
            if let Err(e) = std::io::stdin().read_to_end(&mut buf) {
                usage_error(format!("cannot read the request body from stdin: {e}"));
            }
            buf
        }
    };
    if body.len() > protocol::MAX_BODY {
        usage_error(format!(
            "the request body is {} bytes; at most {} are sent",
            body.len(),
            protocol::MAX_BODY
        ));
    }
    body
}

/// `sync-run call`: one call, its reply on stdout.
pub async fn call(s: &Session, a: &CallArgs) -> i32 {
    if a.check {
        return super::check::run(s, a).await;
    }
    let body = request_body(a.body.as_deref());
    let queue = protocol::queue(&a.name);
    let ended = one_call(s, &queue, &body, a).await;
    let end = match ended {
        Ok(end) => end,
        Err(e) => return s.broker_failure(&a.name, &e),
    };
    let code = s.or_signal(match &end {
        End::Replied { meta, .. } if meta.status == Status::Ok => exit::VERIFIED,
        End::Replied { .. } => exit::FAILED,
        End::NoServer => NO_SERVER,
        End::NoReply => NO_REPLY,
        End::Interrupted => exit::INTERRUPTED,
    });
    if s.global.json {
        println!("{}", call_document(a, &queue, &end, code));
    }
    match end {
        End::Replied { meta, body, .. } if meta.status == Status::Ok => {
            if !s.global.json {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(&body).and_then(|()| out.flush());
            }
        }
        End::Replied { meta, body, .. } => eprintln!(
            "sync-run call: {} answered with an error ({}), server {}:\n{}",
            a.name,
            meta.exit.as_deref().unwrap_or("no status given"),
            meta.server,
            String::from_utf8_lossy(&body)
        ),
        End::NoServer => eprintln!(
            "sync-run call: nobody serves {}: no queue {queue} (start one with `sync-run serve {} -- CMD`)",
            a.name, a.name
        ),
        End::NoReply => eprintln!(
            "sync-run call: no reply from {} within {} ({queue} exists, but no server answered: busy, stuck, or gone with the request)",
            a.name,
            humantime::format_duration(a.timeout)
        ),
        End::Interrupted => {}
    }
    code
}

async fn one_call(
    s: &Session,
    queue: &str,
    body: &[u8],
    a: &CallArgs,
) -> Result<End, crate::broker::BrokerError> {
    let who = format!("sync-run call {}", a.name);
    let conn = reply::connect_callers(&s.broker.url, s.global.connect_timeout, &who).await?;
    let caller = Caller::open(&conn).await;
    let end = match caller {
        Ok(c) => {
            let mut client = Client::new(c, 1, std::time::Instant::now());
            let mut stop = s.shutdown.clone();
            client.call(queue, 1, body, a.timeout, &mut stop).await
        }
        Err(e) => Err(e),
    };
    crate::broker::close_quietly(&conn, "call done").await;
    end
}

/// `call --json` (`sync-run/rpc-call/v1`): the outcome, then the reply's headers and
/// its body (as text) when one came.
#[derive(serde::Serialize)]
struct CallDocument<'a> {
    schema: &'static str,
    name: &'a str,
    queue: &'a str,
    exit_code: i32,
    outcome: &'static str,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    reply: Option<ReplyFields<'a>>,
}

#[derive(serde::Serialize)]
struct ReplyFields<'a> {
    correlation_id: &'a str,
    server: &'a str,
    request_sha256: &'a str,
    exit: Option<&'a str>,
    round_trip_ms: f64,
    body: String,
}

fn call_document(a: &CallArgs, queue: &str, end: &End, code: i32) -> String {
    let (outcome, reply) = match end {
        End::Replied {
            meta,
            body,
            latency_us,
        } => (
            meta.status.as_str(),
            Some(ReplyFields {
                correlation_id: &meta.correlation_id,
                server: &meta.server,
                request_sha256: &meta.request_sha256,
                exit: meta.exit.as_deref(),
                round_trip_ms: *latency_us as f64 / 1000.0,
                body: String::from_utf8_lossy(body).into_owned(),
            }),
        ),
        End::NoServer => ("no_server", None),
        End::NoReply => ("no_reply", None),
        End::Interrupted => ("interrupted", None),
    };
    let doc = CallDocument {
        schema: "sync-run/rpc-call/v1",
        name: &a.name,
        queue,
        exit_code: code,
        outcome,
        reply,
    };
    serde_json::to_string_pretty(&doc).unwrap_or_else(|e| {
        eprintln!("sync-run: cannot write the JSON document: {e}");
        serde_json::json!({
            "schema": "sync-run/error/v1",
            "exit_code": code,
            "error": { "kind": "encode", "message": e.to_string() },
        })
        .to_string()
    })
}

/// `sync-run bench rpc`.
pub async fn bench(s: &Session, a: &BenchArgs) -> i32 {
    super::bench::run(s, a).await
}
