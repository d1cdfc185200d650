//! What can go wrong talking to the broker, said so that a user knows what to do, and
//! which of it is worth reconnecting for.

use crate::contract::PeerId;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Everything that can go wrong talking to the broker. Messages name the URL redacted.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(
        "cannot connect to the broker at {url}: {reason} (is RabbitMQ running? {})",
        start_hint()
    )]
    Unreachable { url: String, reason: String },
    #[error("no answer from the broker at {url} within {timeout_ms} ms (connect timeout)")]
    ConnectTimeout { url: String, timeout_ms: u128 },
    #[error("the broker at {url} refused the credentials: {reason}")]
    Auth { url: String, reason: String },
    #[error(
        "{url} is not an AMQP broker (protocol error: {reason}); check the host and port (RabbitMQ's AMQP port is 5672, its management UI 15672)"
    )]
    NotAmqp { url: String, reason: String },
    #[error("broker error while {context}: {source}")]
    Amqp {
        context: String,
        #[source]
        source: lapin::Error,
    },
    #[error("the broker closed the {what} mid-run")]
    Lost { what: String },
    #[error("the broker did not answer while {what} within {secs} s (connection presumed dead)")]
    Stalled { what: String, secs: u64 },
    #[error(
        "queue {queue} is gone after reconnecting (the broker restarted, or the cluster node it lived on was lost): the run's messages are lost; on one broker use --durable to survive its restart, on a cluster use --queue-type quorum to survive losing a node"
    )]
    RunLost { queue: String },
    #[error(
        "another master holds run {run}'s leadership lock: a run has one active master (start this one with --standby to take over when the active one is gone, or pick another --run-id)"
    )]
    NotLeader { run: String },
    #[error(
        "another worker of run {run} already has id {id} (its queue is in exclusive use): give each worker its own --id"
    )]
    IdTaken { run: String, id: PeerId },
    #[error(
        "run {run} is in use: it already has its {role} (the {role}'s queue has a consumer); pick another --run-id"
    )]
    RoleTaken { run: String, role: &'static str },
    /// A message the participant could not write (a bug, not the broker's doing): it is
    /// never published as an empty body.
    #[error(transparent)]
    Encode(#[from] crate::contract::EncodeError),
}

impl BrokerError {
    /// The process exit code for this error: a conflict over the run id or the worker id
    /// is the user's to resolve (5); everything else is the broker's (3).
    pub fn exit_code(&self) -> i32 {
        match self {
            BrokerError::NotLeader { .. }
            | BrokerError::IdTaken { .. }
            | BrokerError::RoleTaken { .. } => crate::exit::CONFLICT,
            // Not the broker's doing: a message this build cannot write.
            BrokerError::Encode(_) => crate::exit::FAILED,
            _ => crate::exit::BROKER,
        }
    }

    /// A short stable label for `--json` documents.
    pub fn kind(&self) -> &'static str {
        match self {
            BrokerError::Unreachable { .. } => "unreachable",
            BrokerError::ConnectTimeout { .. } => "connect_timeout",
            BrokerError::Auth { .. } => "auth",
            BrokerError::NotAmqp { .. } => "not_amqp",
            BrokerError::Amqp { .. } => "amqp",
            BrokerError::Lost { .. } => "lost",
            BrokerError::Stalled { .. } => "stalled",
            BrokerError::RunLost { .. } => "run_lost",
            BrokerError::NotLeader { .. } => "master_conflict",
            BrokerError::IdTaken { .. } => "worker_id_conflict",
            BrokerError::RoleTaken { .. } => "role_conflict",
            BrokerError::Encode(_) => "encode",
        }
    }
}

/// Adds what was being done to a lapin error.
pub(crate) trait Context<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, BrokerError>;
}

impl<T> Context<T> for Result<T, lapin::Error> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, BrokerError> {
        self.map_err(|source| BrokerError::Amqp {
            context: context(),
            source,
        })
    }
}

/// Whether an error is the connection going away (worth reconnecting) rather than the
/// broker refusing something (a bug or a misconfiguration: reconnecting would not help).
pub fn is_transient(e: &BrokerError) -> bool {
    if stream_not_ready(e) {
        return true;
    }
    match e {
        BrokerError::Lost { .. }
        | BrokerError::Stalled { .. }
        | BrokerError::Unreachable { .. }
        | BrokerError::ConnectTimeout { .. } => true,
        BrokerError::Amqp { source, .. } => match source.kind() {
            lapin::ErrorKind::ProtocolError(amqp) => {
                // Connection-level closes (CONNECTION_FORCED by rabbitmqctl or a restart),
                // and a name of the run that went away under us (a participant that gave
                // up deleted it): reconnecting declares it again.
                matches!(
                    amqp.kind(),
                    lapin::protocol::AMQPErrorKind::Hard(_)
                        | lapin::protocol::AMQPErrorKind::Soft(
                            lapin::protocol::AMQPSoftError::NOTFOUND
                        )
                )
            }
            lapin::ErrorKind::ParsingError(_) | lapin::ErrorKind::SerialisationError(_) => false,
            _ => true,
        },
        BrokerError::Auth { .. }
        | BrokerError::Encode(_)
        | BrokerError::NotAmqp { .. }
        | BrokerError::RunLost { .. }
        | BrokerError::NotLeader { .. }
        | BrokerError::IdTaken { .. }
        | BrokerError::RoleTaken { .. } => false,
    }
}

/// RabbitMQ's answers about a stream that is still starting — just declared by another
/// participant, or recovering after a broker restart: the channel errors
/// `PRECONDITION_FAILED - ... does not have a replica on the local node` and
/// `NOT_FOUND - home node ... of durable queue ... is down or inaccessible`, or
/// `stream_not_found` (which closes the connection with `INTERNAL_ERROR`). All pass.
pub fn stream_not_ready(e: &BrokerError) -> bool {
    stream_not_ready_text(&e.to_string())
}

pub fn stream_not_ready_text(text: &str) -> bool {
    text.contains("does not have a replica")
        || text.contains("stream_not_found")
        || (text.contains("home node") && text.contains("is down or inaccessible"))
}

/// Whether the broker refused because another connection holds a queue exclusively
/// (`ACCESS_REFUSED` for an exclusive consumer, `RESOURCE_LOCKED` for an exclusive queue).
pub fn is_locked(e: &lapin::Error) -> bool {
    let text = e.to_string();
    text.contains("ACCESS_REFUSED")
        || text.contains("RESOURCE_LOCKED")
        || text.contains("exclusive")
        || text.contains("403")
        || text.contains("405")
}

/// Whether the broker answered `NOT_FOUND` (404): the queue or exchange does not exist.
pub fn is_not_found(e: &lapin::Error) -> bool {
    match e.kind() {
        lapin::ErrorKind::ProtocolError(amqp) => matches!(
            amqp.kind(),
            lapin::protocol::AMQPErrorKind::Soft(lapin::protocol::AMQPSoftError::NOTFOUND)
        ),
        _ => false,
    }
}

/// How to start a broker here, for the unreachable-broker message: the compose command
/// that exists on this machine (the project's compose file starts RabbitMQ), or plain
/// advice where there is none. Worked out once per process from the files on PATH and
/// Docker's plugin folders: no `docker` is spawned to find out.
pub fn start_hint() -> &'static str {
    static HINT: OnceLock<&'static str> = OnceLock::new();
    HINT.get_or_init(|| {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
        let on_path = |name: &str| dirs.iter().any(|d| d.join(name).is_file());
        let mut plugins: Vec<PathBuf> = [
            "/usr/local/lib/docker/cli-plugins",
            "/usr/local/libexec/docker/cli-plugins",
            "/usr/lib/docker/cli-plugins",
            "/usr/libexec/docker/cli-plugins",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        if let Some(config) = std::env::var_os("DOCKER_CONFIG") {
            plugins.push(Path::new(&config).join("cli-plugins"));
        } else if let Some(home) = std::env::var_os("HOME") {
            plugins.push(Path::new(&home).join(".docker/cli-plugins"));
        }
        let v2 = on_path("docker") && plugins.iter().any(|d| d.join("docker-compose").is_file());
        hint_for(v2, on_path("docker-compose"))
    })
}

/// The advice for a machine with Compose v2 (`docker compose`, a plugin of `docker`)
/// and/or v1 (`docker-compose`, a program of its own).
fn hint_for(compose_v2: bool, compose_v1: bool) -> &'static str {
    match (compose_v2, compose_v1) {
        (true, _) => "try `docker compose up -d`",
        (false, true) => "try `docker-compose up -d`",
        (false, false) => "start RabbitMQ or point --amqp-url at one",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_advice_is_what_works_on_the_machine() {
        assert_eq!(hint_for(true, true), "try `docker compose up -d`");
        assert_eq!(hint_for(true, false), "try `docker compose up -d`");
        assert_eq!(hint_for(false, true), "try `docker-compose up -d`");
        assert_eq!(
            hint_for(false, false),
            "start RabbitMQ or point --amqp-url at one"
        );
    }

    #[test]
    fn the_unreachable_message_names_the_url_once() {
        let e = BrokerError::Unreachable {
            url: "amqp://guest:***@127.0.0.1:5999/%2f".into(),
            reason: "Connection refused (os error 111) (tried for 5000 ms, the connect timeout)"
                .into(),
        };
        let text = e.to_string();
        assert_eq!(text.matches("127.0.0.1:5999").count(), 1, "{text}");
        assert!(text.ends_with(&format!("(is RabbitMQ running? {})", start_hint())));
    }
}
