//! The broker every integration test talks to: a real RabbitMQ, never a mock.
//!
//! `SYNC_RUN_TEST_BROKER` chooses it:
//! * `external` — the broker at `AMQP_URL` (default `amqp://guest:guest@127.0.0.1:5672/%2f`);
//! * `container` — a fresh RabbitMQ per test, started with testcontainers. The image is
//!   `SYNC_RUN_TEST_RABBITMQ_IMAGE` (default: the official image, pinned) and
//!   `SYNC_RUN_TEST_HOST_NETWORK=1` runs it on the host network on a free port, for
//!   places without bridge networking;
//! * unset — external if one answers, else a container.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::process::{Command, Output};
use std::time::Duration;
use sync_run::amqp::{Broker, BrokerUrl};
use testcontainers::core::{ContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

pub const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const DEFAULT_IMAGE: &str = "rabbitmq:3.13.7-management";

pub struct TestBroker {
    pub url: String,
    /// The test may use `rabbitmqctl` on this machine to list the broker's queues.
    pub local_ctl: bool,
    _container: Option<ContainerAsync<GenericImage>>,
}

impl TestBroker {
    pub fn broker(&self) -> Broker {
        Broker {
            url: BrokerUrl::parse(&self.url).expect("test broker URL parses"),
            connect_timeout: Duration::from_secs(10),
            prefetch: 256,
            durable: false,
            topology: Default::default(),
            pool: None,
            declared: false,
            stats: Default::default(),
        }
    }
}

fn answers(url: &str) -> bool {
    let Ok(u) = url::Url::parse(url) else {
        return false;
    };
    let host = u.host_str().unwrap_or("127.0.0.1").to_string();
    let port = u.port().unwrap_or(5672);
    (host.as_str(), port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok())
}

pub async fn broker() -> TestBroker {
    let url = std::env::var("AMQP_URL").unwrap_or_else(|_| DEFAULT_URL.to_string());
    let mode = std::env::var("SYNC_RUN_TEST_BROKER").unwrap_or_default();
    let external = match mode.as_str() {
        "external" => true,
        "container" => false,
        "" => answers(&url),
        other => {
            panic!("SYNC_RUN_TEST_BROKER={other:?}: use external, container or leave it unset")
        }
    };
    if external {
        let local = url.contains("@127.0.0.1:") || url.contains("@localhost:");
        let has_ctl = Command::new("rabbitmqctl")
            .arg("-q")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success());
        return TestBroker {
            url,
            local_ctl: local && has_ctl,
            _container: None,
        };
    }
    container().await
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

async fn container() -> TestBroker {
    let image =
        std::env::var("SYNC_RUN_TEST_RABBITMQ_IMAGE").unwrap_or_else(|_| DEFAULT_IMAGE.to_string());
    let (name, tag) = image.rsplit_once(':').unwrap_or((image.as_str(), "latest"));
    let host_net = std::env::var("SYNC_RUN_TEST_HOST_NETWORK").is_ok_and(|v| v == "1");
    let base = GenericImage::new(name, tag)
        .with_wait_for(WaitFor::message_on_stdout("Server startup complete"));
    let (container, url) = if host_net {
        let port = free_port();
        let dist = free_port();
        let c = base
            .with_network("host")
            .with_env_var("RABBITMQ_NODE_PORT", port.to_string())
            .with_env_var("RABBITMQ_DIST_PORT", dist.to_string())
            .with_env_var(
                "RABBITMQ_NODENAME",
                format!("sync-run-test-{port}@localhost"),
            )
            .with_env_var("HOME", "/var/lib/rabbitmq")
            .with_startup_timeout(Duration::from_secs(180))
            .start()
            .await
            .expect("start RabbitMQ container (host network)");
        (c, format!("amqp://guest:guest@127.0.0.1:{port}/%2f"))
    } else {
        let c = base
            .with_exposed_port(ContainerPort::Tcp(5672))
            .with_startup_timeout(Duration::from_secs(180))
            .start()
            .await
            .expect("start RabbitMQ container");
        let host = c.get_host().await.expect("container host");
        let port = c.get_host_port_ipv4(5672).await.expect("mapped AMQP port");
        (c, format!("amqp://guest:guest@{host}:{port}/%2f"))
    };
    // "Server startup complete" precedes the listener by a moment on some images.
    for _ in 0..100 {
        if answers(&url) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    TestBroker {
        url,
        local_ctl: false,
        _container: Some(container),
    }
}

/// A run id no other test uses: `prefix-r-xxxxxxxx`.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", sync_run::run::random_run_id())
}

/// Starts the built `sync-run` binary with `args` against `url`, stdout and stderr piped
/// (wait for it with [`finish`]).
pub fn spawn(url: &str, args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_sync-run"))
        .args(args)
        .env("AMQP_URL", url)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn sync-run")
}

/// Runs the built `sync-run` binary with `args` against `url`.
pub fn sync_run(url: &str, args: &[&str]) -> Output {
    finish_output(spawn(url, args))
}

/// Names of queues and exchanges on the broker that contain `needle`, via rabbitmqctl
/// (None when rabbitmqctl cannot be used against this broker).
pub fn broker_objects_containing(tb: &TestBroker, needle: &str) -> Option<Vec<String>> {
    if !tb.local_ctl {
        return None;
    }
    let mut found = vec![];
    for what in ["list_queues", "list_exchanges"] {
        let out = Command::new("rabbitmqctl")
            .args(["-q", what, "name"])
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        found.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| l.contains(needle))
                .map(str::to_owned),
        );
    }
    Some(found)
}

/// Asks the broker, by passive declares over AMQP, whether any queue or exchange the run
/// `run_id` could have created still exists; and, where rabbitmqctl works, lists everything
/// on the broker that carries the run id. Returns what is left.
pub async fn leftovers(tb: &TestBroker, run_id: &str, workers: u32) -> Vec<String> {
    use lapin::options::{ExchangeDeclareOptions, QueueDeclareOptions};
    use lapin::types::FieldTable;
    use sync_run::protocol::Names;
    let names = Names::new(run_id);
    let conn = sync_run::amqp::connect(&tb.broker().url, "leak check", Duration::from_secs(10))
        .await
        .expect("connect for the leak check");
    let mut left = vec![];
    let mut queues = vec![names.master_queue(), names.results_queue(), names.log()];
    queues.extend((1..=workers).map(|w| names.worker_queue(w)));
    for q in queues {
        // A passive declare of a missing queue closes the channel: one channel per probe.
        let ch = conn.create_channel().await.expect("channel");
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        if ch
            .queue_declare(q.as_str().into(), passive, FieldTable::default())
            .await
            .is_ok()
        {
            left.push(format!("queue {q}"));
        }
    }
    for x in [names.fanout(), names.direct()] {
        let ch = conn.create_channel().await.expect("channel");
        let passive = ExchangeDeclareOptions {
            passive: true,
            ..Default::default()
        };
        if ch
            .exchange_declare(
                x.as_str().into(),
                lapin::ExchangeKind::Fanout,
                passive,
                FieldTable::default(),
            )
            .await
            .is_ok()
        {
            left.push(format!("exchange {x}"));
        }
    }
    let _ = conn.close(200, "leak check done".into()).await;
    if let Some(objs) = broker_objects_containing(tb, &format!("sync-run.{run_id}.")) {
        left.extend(objs.into_iter().map(|o| format!("rabbitmqctl: {o}")));
    }
    left.sort();
    left.dedup();
    left
}

/// The longest any test waits for a sync-run process. Every run in the suite has a
/// `--timeout` of at most 60 s; a process still alive past this limit hangs, which is a
/// defect: it is killed and the test fails saying so, instead of the suite hanging.
pub const HANG_LIMIT: Duration = Duration::from_secs(150);

/// Waits for `child` (stdout and stderr piped) at most [`HANG_LIMIT`]; returns its exit
/// code, stdout and stderr.
pub fn finish(child: std::process::Child) -> (i32, String, String) {
    let out = finish_output(child);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// [`finish`], as an [`Output`].
pub fn finish_output(mut child: std::process::Child) -> Output {
    use std::io::Read;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut v);
            }
            v
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let limit = std::time::Instant::now() + HANG_LIMIT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if std::time::Instant::now() < limit => {
                std::thread::sleep(Duration::from_millis(50))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let (stdout, stderr) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    match status {
        Some(status) => Output {
            status,
            stdout,
            stderr,
        },
        None => panic!(
            "sync-run was still running after {HANG_LIMIT:?} and was killed: it must stop by its --timeout.\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        ),
    }
}
