//! The broker every integration test talks to: a real RabbitMQ, never a mock.
//!
//! `SYNC_RUN_TEST_BROKER` chooses it:
//! * `external` — the broker at `AMQP_URL` (default `amqp://guest:guest@127.0.0.1:5672/%2f`);
//! * `container` — a fresh RabbitMQ per test, started with testcontainers. The image is
//!   `SYNC_RUN_TEST_RABBITMQ_IMAGE` (default: the official image, pinned) and
//!   `SYNC_RUN_TEST_HOST_NETWORK=1` runs it on the host network on a free port, for
//!   places without bridge networking;
//! * unset — external if one answers, else a container.
//!
//! Tests that stop, restart or reconfigure a broker, or close its connections, never do so
//! to one of those: they use [`private_broker`], a RabbitMQ node the test binary starts
//! for itself (own node name, ports, data directory, config and cookie) and that is stopped
//! and deleted when the test process exits, however it exits. The external broker is only
//! ever listed (read-only) with `rabbitmqctl`.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use sync_run::broker::{Broker, BrokerUrl};
use testcontainers::core::{ContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

pub const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const DEFAULT_IMAGE: &str = "rabbitmq:3.13.7-management";

pub struct TestBroker {
    pub url: String,
    /// The test may use `rabbitmqctl` on this machine to list the broker's queues.
    pub local_ctl: bool,
    /// How to reach this very broker with `rabbitmqctl` (None: no way, or not sure it is
    /// this broker).
    ctl: Option<Ctl>,
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
            queue_type: Default::default(),
            pool: None,
            declared: false,
            stats: Default::default(),
        }
    }
}

/// Whether something accepts TCP connections at the host and port of `url`.
pub fn answers(url: &str) -> bool {
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

/// The external broker's URL: `AMQP_URL`, else [`DEFAULT_URL`].
pub fn external_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| DEFAULT_URL.to_string())
}

pub async fn broker() -> TestBroker {
    let url = external_url();
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
        let ctl = external_ctl(&url);
        return TestBroker {
            url,
            local_ctl: ctl.is_some(),
            ctl,
            _container: None,
        };
    }
    container().await
}

/// `rabbitmqctl` for the external broker, for listing only, when it is on this machine:
/// the URL names this host and the local default node (the one a plain `rabbitmqctl`
/// reaches) listens on the URL's port, so the listing is of the broker under test and not
/// of another one. Asked once per test binary.
fn external_ctl(url: &str) -> Option<Ctl> {
    static CHECKED: OnceLock<Option<Ctl>> = OnceLock::new();
    CHECKED
        .get_or_init(|| {
            let u = url::Url::parse(url).ok()?;
            if !matches!(u.host_str(), Some("127.0.0.1" | "localhost")) {
                return None;
            }
            let port = u.port().unwrap_or(5672).to_string();
            let mut check = Command::new("rabbitmq-diagnostics");
            check
                .args(["-q", "check_port_listener", &port])
                .stdin(Stdio::null());
            let listens = output_within(&mut check, Duration::from_secs(60))
                .is_ok_and(|o| o.status.success());
            listens.then(|| Ctl {
                program: PathBuf::from("rabbitmqctl"),
                prefix: vec![],
                env: vec![],
                private: false,
            })
        })
        .clone()
}

/// One way to run `rabbitmqctl` against one node: a program, the arguments that come
/// before the command (`-n NODE`, or `exec CONTAINER rabbitmqctl -n NODE`) and the
/// environment it needs (its own `HOME` with the node's cookie).
#[derive(Clone, Debug)]
pub struct Ctl {
    program: PathBuf,
    prefix: Vec<String>,
    env: Vec<(String, String)>,
    /// A node of our own ([`PrivateBroker`]): `eval` is fine there.
    private: bool,
}

/// The longest one `rabbitmqctl` call may take (it is an Erlang VM of its own: about a
/// second on an idle machine, far more on a loaded one).
pub const CTL_LIMIT: Duration = Duration::from_secs(120);

impl Ctl {
    /// On a private node only: the names of all queues and exchanges that contain
    /// `needle`, with one `rabbitmqctl eval` (None if that fails).
    fn eval_names(&self, needle: &str) -> Option<Vec<String>> {
        if needle.contains(['"', '\\']) {
            return None;
        }
        let expr = format!(
            r#"Names = [N || {{resource, _, _, N}} <- rabbit_amqqueue:list_names()
                ++ [element(2, X) || X <- rabbit_exchange:list()]],
            [binary_to_list(N) || N <- Names, binary:match(N, <<"{needle}">>) =/= nomatch]."#
        );
        let out = self.run(&["-q", "eval", &expr]);
        let text = String::from_utf8_lossy(&out.stdout);
        let text = text.trim();
        if !out.status.success() || !text.starts_with('[') || !text.ends_with(']') {
            return None;
        }
        Some(
            text.split('"')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect(),
        )
    }

    pub fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.prefix)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        output_within(&mut cmd, CTL_LIMIT).unwrap_or_else(|e| {
            panic!(
                "{} {} {}: {e}",
                self.program.display(),
                self.prefix.join(" "),
                args.join(" ")
            )
        })
    }
}

/// Runs `cmd` with stdout and stderr captured; kills it past `limit` (an error then).
pub fn output_within(cmd: &mut Command, limit: Duration) -> Result<Output, String> {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    let (status, stdout, stderr) = wait_within(child, limit);
    match status {
        Some(status) => Ok(Output {
            status,
            stdout,
            stderr,
        }),
        None => Err(format!(
            "still running after {limit:?}, killed; stderr: {}",
            String::from_utf8_lossy(&stderr)
        )),
    }
}

/// A RabbitMQ node of the test binary's own, for the tests that stop or restart a broker,
/// close its connections or change its users: never the user's broker. Started once per
/// test binary by [`private_broker`]; a watchdog process stops it and deletes its data
/// when the test process exits, whatever way it exits (a panic, `kill -9`).
pub struct PrivateBroker {
    /// `amqp://guest:guest@127.0.0.1:<port>/%2f`.
    pub url: String,
    /// The Erlang node name, `sync-run-test-<port>@localhost`: every `rabbitmqctl` call
    /// names it with `-n`.
    pub node: String,
    /// The AMQP port.
    pub port: u16,
    /// Everything the node writes (database, logs, pid file, config, cookie); empty for a
    /// container. Deleted with the node.
    pub dir: PathBuf,
    /// How the node runs: `rabbitmq-server <path>` or `docker container <id>`.
    pub how: String,
    ctl: Ctl,
}

impl PrivateBroker {
    /// Runs `rabbitmqctl -n NODE args…` against this node (with its cookie), within
    /// [`CTL_LIMIT`].
    pub fn ctl(&self, args: &[&str]) -> Output {
        self.ctl.run(args)
    }

    /// The node's URL with other credentials (for users a test creates with `ctl`).
    pub fn url_as(&self, user: &str, pass: &str) -> String {
        let mut u = url::Url::parse(&self.url).expect("private broker URL");
        u.set_username(user).expect("username");
        u.set_password(Some(pass)).expect("password");
        u.to_string()
    }

    /// This node as a [`TestBroker`], for [`leftovers`] and [`TestBroker::broker`].
    pub fn test_broker(&self) -> TestBroker {
        TestBroker {
            url: self.url.clone(),
            local_ctl: true,
            ctl: Some(self.ctl.clone()),
            _container: None,
        }
    }
}

/// The test binary's private RabbitMQ node, started on first use (about 10 s; more on a
/// loaded machine). With `rabbitmq-server` installed it is a node of its own from that
/// installation (the running service is not touched); otherwise, with a working Docker
/// engine, a container (`SYNC_RUN_TEST_RABBITMQ_IMAGE`). `SYNC_RUN_TEST_PRIVATE_BROKER`
/// = `local` or `docker` forces one. Panics, saying what to install, when neither works.
pub fn private_broker() -> &'static PrivateBroker {
    static PRIVATE: OnceLock<Result<PrivateBroker, String>> = OnceLock::new();
    match PRIVATE.get_or_init(start_private_broker) {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    }
}

/// Whether `SYNC_RUN_SKIP_FAULTS=1` asks to skip the tests that need [`private_broker`];
/// says so on stderr for `test` when it does.
pub fn skip_faults(test: &str) -> bool {
    let skip = std::env::var("SYNC_RUN_SKIP_FAULTS").is_ok_and(|v| v == "1");
    if skip {
        eprintln!("{test}: SKIPPED (SYNC_RUN_SKIP_FAULTS=1); it needs a private RabbitMQ node");
    }
    skip
}

const NO_PRIVATE_BROKER: &str = "the fault tests need a RabbitMQ node of their own, which they \
start, restart and stop (never the broker at AMQP_URL): install RabbitMQ's server (Debian/Ubuntu: \
`apt-get install rabbitmq-server`; the service it starts is not touched) or make a Docker engine \
available (`docker info` must work); or set SYNC_RUN_SKIP_FAULTS=1 to skip them";

fn start_private_broker() -> Result<PrivateBroker, String> {
    let forced = std::env::var("SYNC_RUN_TEST_PRIVATE_BROKER").unwrap_or_default();
    let local = local_rabbitmq();
    match (forced.as_str(), local) {
        ("" | "local", Some((server, ctl))) => start_local(&server, &ctl),
        ("local", None) => Err(format!(
            "SYNC_RUN_TEST_PRIVATE_BROKER=local but no rabbitmq-server found: {NO_PRIVATE_BROKER}"
        )),
        ("" | "docker", _) if docker_works() => start_docker(),
        ("docker", _) => Err(format!(
            "SYNC_RUN_TEST_PRIVATE_BROKER=docker but `docker info` fails: {NO_PRIVATE_BROKER}"
        )),
        ("", _) => Err(NO_PRIVATE_BROKER.to_string()),
        (other, _) => Err(format!(
            "SYNC_RUN_TEST_PRIVATE_BROKER={other:?}: use local, docker or leave it unset"
        )),
    }
}

/// `rabbitmq-server` and `rabbitmqctl` that run as the calling user with its environment:
/// Debian's `/usr/lib/rabbitmq/bin` ones (its `/usr/sbin` wrappers switch to the rabbitmq
/// user and lose the environment), else the ones on PATH.
pub fn local_rabbitmq() -> Option<(PathBuf, PathBuf)> {
    let debian = Path::new("/usr/lib/rabbitmq/bin");
    let (server, ctl) = (debian.join("rabbitmq-server"), debian.join("rabbitmqctl"));
    if server.exists() && ctl.exists() {
        return Some((server, ctl));
    }
    let on_path = |name: &str| {
        std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    };
    Some((on_path("rabbitmq-server")?, on_path("rabbitmqctl")?))
}

fn docker_works() -> bool {
    let mut cmd = Command::new("docker");
    cmd.arg("info").stdin(Stdio::null());
    output_within(&mut cmd, Duration::from_secs(30)).is_ok_and(|o| o.status.success())
}

/// Two different free ports (AMQP, Erlang distribution).
fn two_free_ports() -> (u16, u16) {
    let port = free_port();
    loop {
        let dist = free_port();
        if dist != port {
            return (port, dist);
        }
    }
}

/// Starts the watchdog: once process `pid` (the test binary) is gone, `cleanup` (a shell
/// snippet) runs. It is a process group of its own, so a Ctrl-C of the test run does not
/// reach it, and holds none of the test's pipes.
fn spawn_watchdog(cleanup: &str, env: &[(String, String)]) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    let script = format!(
        "trap '' INT HUP\nwhile kill -0 {pid} 2>/dev/null; do sleep 1; done\n{cleanup}\n",
        pid = std::process::id()
    );
    Command::new("sh")
        .args(["-c", &script])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map(drop)
        .map_err(|e| format!("cannot start the private broker's watchdog: {e}"))
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn start_local(server: &Path, ctl_program: &Path) -> Result<PrivateBroker, String> {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let (port, dist) = two_free_ports();
    let node = format!("sync-run-test-{port}@localhost");
    let dir = std::env::temp_dir().join(format!("sync-run-test-{port}-{}", std::process::id()));
    let io = |e: std::io::Error| format!("private broker directory {}: {e}", dir.display());
    std::fs::create_dir_all(&dir).map_err(io)?;
    let file = |name: &str, text: &str| -> Result<PathBuf, String> {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(io)?;
        Ok(p)
    };
    // Our own config, env file and plugin list: the installation's (in /etc/rabbitmq) name
    // the service's node and port.
    let config = file(
        "rabbitmq.conf",
        &format!("listeners.tcp.1 = 127.0.0.1:{port}\n"),
    )?;
    let env_file = file("rabbitmq-env.conf", "")?;
    let plugins = file("enabled_plugins", "[].\n")?;
    let cookie: String = (0..24)
        .map(|_| char::from(b'A' + rand::random_range(0..26u8)))
        .collect();
    let cookie_file = file(".erlang.cookie", &cookie)?;
    std::fs::set_permissions(&cookie_file, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    let path = |p: &Path| p.display().to_string();
    let env: Vec<(String, String)> = [
        ("HOME", path(&dir)),
        ("RABBITMQ_NODENAME", node.clone()),
        ("RABBITMQ_NODE_PORT", port.to_string()),
        ("RABBITMQ_DIST_PORT", dist.to_string()),
        ("RABBITMQ_CONFIG_FILE", path(&config)),
        (
            "RABBITMQ_ADVANCED_CONFIG_FILE",
            path(&dir.join("advanced.config")),
        ),
        ("RABBITMQ_CONF_ENV_FILE", path(&env_file)),
        ("RABBITMQ_ENABLED_PLUGINS_FILE", path(&plugins)),
        ("RABBITMQ_MNESIA_BASE", path(&dir.join("mnesia"))),
        ("RABBITMQ_LOG_BASE", path(&dir.join("log"))),
        ("RABBITMQ_PID_FILE", path(&dir.join("pid"))),
        ("ERL_EPMD_ADDRESS", "127.0.0.1".into()),
        (
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
            "-kernel inet_dist_use_interface {127,0,0,1}".into(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let ctl = Ctl {
        program: ctl_program.to_path_buf(),
        prefix: vec!["-n".into(), node.clone()],
        env: env.clone(),
        private: true,
    };
    // Stop the node (waiting for its pid to go), kill it if that fails, delete its data.
    let (q_ctl, q_node, q_dir) = (
        shell_quote(&path(ctl_program)),
        shell_quote(&node),
        shell_quote(&path(&dir)),
    );
    spawn_watchdog(
        &format!(
            "for i in 1 2 3; do\n\
             timeout 90 {q_ctl} -n {q_node} stop {q_dir}/pid && break\n\
             [ -s {q_dir}/pid ] && kill -9 \"$(cat {q_dir}/pid)\" && break\n\
             sleep 3\n\
             done\n\
             rm -rf {q_dir}"
        ),
        &env,
    )?;
    let mut start = Command::new(server);
    start.arg("-detached").process_group(0);
    for (k, _) in std::env::vars() {
        if k.starts_with("RABBITMQ_") || k.starts_with("ERL_") {
            start.env_remove(k);
        }
    }
    // Its output goes to a file: the detached node may keep what it inherits open.
    let start_log = dir.join("server-start.log");
    let out = std::fs::File::create(&start_log).map_err(io)?;
    let err = out.try_clone().map_err(io)?;
    start
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    let started = start
        .status()
        .map_err(|e| format!("cannot run {}: {e}", server.display()))?;
    let log_file = dir.join("log").join(format!("{node}.log"));
    let log = || {
        std::fs::read_to_string(&log_file)
            .map(|l| {
                let lines: Vec<&str> = l.lines().collect();
                lines[lines.len().saturating_sub(30)..].join("\n")
            })
            .unwrap_or_default()
    };
    if !started.success() {
        return Err(format!(
            "{} -detached failed ({started}): {}\n{}",
            server.display(),
            std::fs::read_to_string(&start_log).unwrap_or_default(),
            log()
        ));
    }
    let broker = PrivateBroker {
        url: format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
        node,
        port,
        dir: dir.clone(),
        how: format!("{} (data in {})", server.display(), dir.display()),
        ctl,
    };
    broker
        .await_startup()
        .map_err(|e| format!("{e}\n{}", log()))?;
    Ok(broker)
}

fn start_docker() -> Result<PrivateBroker, String> {
    let image =
        std::env::var("SYNC_RUN_TEST_RABBITMQ_IMAGE").unwrap_or_else(|_| DEFAULT_IMAGE.to_string());
    let host_net = std::env::var("SYNC_RUN_TEST_HOST_NETWORK").is_ok_and(|v| v == "1");
    let (port, dist) = two_free_ports();
    let node = format!("sync-run-test-{port}@localhost");
    let name = format!("sync-run-test-{port}-{}", std::process::id());
    let dir = std::env::temp_dir().join(&name);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut run = Command::new("docker");
    run.args(["run", "-d", "--rm", "--name", &name])
        .args(["-e", &format!("RABBITMQ_NODENAME={node}")]);
    if host_net {
        run.args(["--network", "host"])
            .args(["-e", &format!("RABBITMQ_NODE_PORT={port}")])
            .args(["-e", &format!("RABBITMQ_DIST_PORT={dist}")])
            .args(["-e", "HOME=/var/lib/rabbitmq"]);
    } else {
        run.args(["-p", &format!("127.0.0.1:{port}:5672")]);
    }
    run.arg(&image).stdin(Stdio::null());
    // The watchdog first: it removes the container even if the start is cut short.
    spawn_watchdog(
        &format!(
            "docker rm -f {} >/dev/null 2>&1; rm -rf {}",
            shell_quote(&name),
            shell_quote(&dir.display().to_string())
        ),
        &[],
    )?;
    let out = output_within(&mut run, Duration::from_secs(600))?;
    if !out.status.success() {
        return Err(format!(
            "docker run {image} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let broker = PrivateBroker {
        url: format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
        node: node.clone(),
        port,
        dir,
        how: format!("docker container {name} ({image})"),
        ctl: Ctl {
            program: PathBuf::from("docker"),
            prefix: vec![
                "exec".into(),
                name.clone(),
                "rabbitmqctl".into(),
                "-n".into(),
                node,
            ],
            env: vec![],
            private: true,
        },
    };
    broker.await_startup()?;
    Ok(broker)
}

impl PrivateBroker {
    /// Waits until the node's application runs and its AMQP port answers.
    pub fn await_startup(&self) -> Result<(), String> {
        let t = Instant::now();
        let mut last = String::new();
        while t.elapsed() < Duration::from_secs(180) {
            let out = self.ctl(&["await_startup", "--timeout", "60"]);
            if out.status.success() {
                while !answers(&self.url) {
                    if t.elapsed() > Duration::from_secs(180) {
                        return Err(format!("{}: port {} never answered", self.node, self.port));
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                eprintln!(
                    "private RabbitMQ node {} on 127.0.0.1:{} up after {:.1?}: {}",
                    self.node,
                    self.port,
                    t.elapsed(),
                    self.how
                );
                return Ok(());
            }
            // A node still booting refuses CLI connections for a moment.
            last = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_secs(1));
        }
        Err(format!(
            "private RabbitMQ node {} did not start within 180 s: {last}",
            self.node
        ))
    }
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
        ctl: None,
        _container: Some(container),
    }
}

/// Whether `python3` with pika is here, for the tests of participants written in Python
/// from docs/PROTOCOL.md (`tests/interop/`). CI installs it (and fails without it);
/// elsewhere a test without it says why nothing ran.
pub fn python_with_pika() -> bool {
    let has = Command::new("python3")
        .args(["-c", "import pika"])
        .status()
        .is_ok_and(|s| s.success());
    if !has {
        eprintln!("python3 with pika not available: interop test not run");
        assert!(
            std::env::var("CI").is_err(),
            "CI must provide python3 + pika"
        );
    }
    has
}

/// A run id no other test uses: `prefix-r-xxxxxxxx`.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        sync_run::algorithms::list::run::random_run_id()
    )
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
/// against that very broker: `-n NODE` for a private node, the local default node for an
/// external broker that is this machine's (None when rabbitmqctl cannot be used against
/// this broker). Only lists.
pub fn broker_objects_containing(tb: &TestBroker, needle: &str) -> Option<Vec<String>> {
    let ctl = tb.ctl.as_ref()?;
    if ctl.private {
        // One call instead of two (each is an Erlang VM of its own: seconds on a loaded
        // machine); the same lists the two commands below print.
        if let Some(found) = ctl.eval_names(needle) {
            return Some(found);
        }
    }
    let mut found = vec![];
    for what in ["list_queues", "list_exchanges"] {
        let out = ctl.run(&["-q", what, "name"]);
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
    use sync_run::algorithms::list::protocol::Names;
    let names = Names::new(run_id);
    let conn = sync_run::broker::connect(&tb.broker().url, "leak check", Duration::from_secs(10))
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
    sync_run::broker::close_quietly(&conn, "leak check done").await;
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
pub fn finish_output(child: std::process::Child) -> Output {
    let (status, stdout, stderr) = wait_within(child, HANG_LIMIT);
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

/// Waits for `child` (stdout and stderr piped, read as they come) at most `limit`; past it,
/// kills it and returns no status.
fn wait_within(
    mut child: std::process::Child,
    limit: Duration,
) -> (Option<std::process::ExitStatus>, Vec<u8>, Vec<u8>) {
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
    let limit = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < limit => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    (
        status,
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    )
}

/// Closes, with one `rabbitmqctl eval` on the private node, every client connection whose
/// name contains one of `needles`; returns how many. (One call instead of
/// `list_connections` and one `close_connection` per connection: each call is an Erlang VM
/// of its own, seconds on a loaded machine.) Falls back to those two commands if `eval`
/// fails.
pub fn close_connections(pb: &PrivateBroker, needles: &[String]) -> usize {
    let binaries: Vec<String> = needles
        .iter()
        .map(|n| {
            assert!(!n.contains(['"', '\\']), "{n}");
            format!(r#"<<"{n}">>"#)
        })
        .collect();
    let expr = format!(
        r#"Needles = [{}],
        Name = fun(P) ->
            case catch rabbit_networking:connection_info(P, [client_properties]) of
                [{{client_properties, Props}}] ->
                    case lists:keyfind(<<"connection_name">>, 1, Props) of
                        {{_, longstr, N}} -> N;
                        _ -> <<>>
                    end;
                _ -> <<>>
            end
        end,
        Hits = [P || P <- rabbit_networking:connections(),
                     lists:any(fun(X) -> binary:match(Name(P), X) =/= nomatch end, Needles)],
        [rabbit_networking:close_connection(P, "sync-run fault test") || P <- Hits],
        length(Hits)."#,
        binaries.join(",")
    );
    let out = pb.ctl(&["-q", "eval", &expr]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.success()
        && let Ok(n) = stdout.trim().parse()
    {
        return n;
    }
    eprintln!(
        "rabbitmqctl eval failed ({stdout}{}); list_connections + close_connection instead",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = pb.ctl(&["-q", "list_connections", "pid", "client_properties"]);
    let pids: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter(|l| {
            l.split("\"connection_name\",\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .is_some_and(|name| needles.iter().any(|n| name.contains(n.as_str())))
        })
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect();
    for pid in &pids {
        pb.ctl(&["close_connection", pid, "sync-run fault test"]);
    }
    pids.len()
}

pub fn ctl_ok(pb: &PrivateBroker, args: &[&str]) {
    let out = pb.ctl(args);
    assert!(
        out.status.success(),
        "rabbitmqctl -n {} {}: {}{}",
        pb.node,
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Everything of a point-to-point run (`broker::peers`) still on the broker: every name
/// its wiring declares, probed by passive declares, and whatever rabbitmqctl lists with the
/// run's prefix.
pub async fn run_leftovers(tb: &TestBroker, run: &sync_run::broker::peers::PeerRun) -> Vec<String> {
    use lapin::options::{ExchangeDeclareOptions, QueueDeclareOptions};
    use lapin::types::FieldTable;
    let conn = sync_run::broker::connect(&tb.broker().url, "leak check", Duration::from_secs(10))
        .await
        .expect("connect for the leak check");
    let mut left = vec![];
    let wiring = run.wiring();
    for q in wiring.queue_names() {
        let ch = conn.create_channel().await.expect("channel");
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        if ch
            .queue_declare(q.into(), passive, FieldTable::default())
            .await
            .is_ok()
        {
            left.push(format!("queue {q}"));
        }
    }
    let ch = conn.create_channel().await.expect("channel");
    let passive = ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    };
    if ch
        .exchange_declare(
            run.exchange().as_str().into(),
            lapin::ExchangeKind::Direct,
            passive,
            FieldTable::default(),
        )
        .await
        .is_ok()
    {
        left.push(format!("exchange {}", run.exchange()));
    }
    sync_run::broker::close_quietly(&conn, "leak check done").await;
    let prefix = format!("sync-run.{}.{}.", run.alg, run.run_id);
    if let Some(objs) = broker_objects_containing(tb, &prefix) {
        left.extend(objs.into_iter().map(|o| format!("rabbitmqctl: {o}")));
    }
    left.sort();
    left.dedup();
    left
}

/// Waits (at most 20 s) until queue `queue` has a consumer: the participant that owns it
/// is up (a run's master, its sequencer).
pub async fn wait_for_consumer(tb: &TestBroker, queue: &str) {
    let t = std::time::Instant::now();
    loop {
        let conn = sync_run::broker::connect(&tb.broker().url, "probe", Duration::from_secs(10))
            .await
            .expect("connect");
        let up = sync_run::broker::queue_consumers(&conn, queue)
            .await
            .expect("probe")
            .is_some_and(|c| c > 0);
        sync_run::broker::close_quietly(&conn, "probe").await;
        if up {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{queue} never got a consumer"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Parses the master's JSON report and checks the lists agree; returns the report.
pub fn verified(stdout: &str, entries: usize) -> serde_json::Value {
    let doc: serde_json::Value =
        serde_json::from_str(stdout).unwrap_or_else(|e| panic!("JSON report: {e}: {stdout}"));
    assert_eq!(doc["verdict"]["verified"], true, "{}", doc["verdict"]);
    let lists = doc["lists"].as_object().expect("lists");
    let first = lists.values().next().expect("a list").clone();
    for l in lists.values() {
        assert_eq!(l, &first, "lists identical");
    }
    assert_eq!(
        first.as_array().map(Vec::len),
        Some(entries),
        "no entry lost, none twice"
    );
    doc
}

// What the point-to-point algorithms' broker tests (tests/mutex.rs, tests/clocks.rs) share.

/// Everything of a mutex or clocks run still on the broker.
#[allow(dead_code)]
pub async fn peer_leftovers(
    tb: &TestBroker,
    alg: &'static str,
    run_id: &str,
    n: u32,
) -> Vec<String> {
    run_leftovers(
        tb,
        &sync_run::broker::peers::PeerRun::numbered(alg, run_id.to_owned(), n),
    )
    .await
}

/// One JSON document, or the test fails showing what was printed.
#[allow(dead_code)]
pub fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not one JSON document ({e}): {out}"))
}

/// The run document's check called `name`.
#[allow(dead_code)]
pub fn check<'a>(doc: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    doc["verdict"]["checks"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no check {name:?} in {doc}"))
}

/// Runs `alg` split over processes: the collector runs `local` (with `flags`) and renders
/// the verdict; every other id runs alone as `<alg>-process`. Returns the collector's exit
/// code, stdout and stderr, after checking that every process alone completed.
#[allow(dead_code)]
pub fn split_run(
    url: &str,
    alg: &str,
    run: &str,
    shape: &[&str],
    local: &[u32],
    flags: &[&str],
) -> (i32, String, String) {
    let n: u32 = shape[1].parse().expect("--processes N first in the shape");
    let local_ids = local
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let mut args = vec![alg, "--run-id", run, "--local", &local_ids];
    args.extend(flags);
    args.extend(shape);
    let collector = spawn(url, &args);
    let alone = format!("{alg}-process");
    let others: Vec<_> = (1..=n)
        .filter(|k| !local.contains(k))
        .map(|k| {
            let id = k.to_string();
            let mut a = vec![alone.as_str(), "--run-id", run, "--id", &id];
            a.extend(shape);
            spawn(url, &a)
        })
        .collect();
    let collected = finish(collector);
    for p in others {
        let (c, o, e) = finish(p);
        assert_eq!(c, 0, "{alone}: {o}{e}");
        assert!(o.contains("Completed"), "{alone}: {o}");
    }
    collected
}
