//! NATS for the cluster part: `nats-server` 2.15 processes with JetStream on loopback, one alone
//! or several routed into one JetStream cluster, each with its own ports, store folder and log;
//! killed when dropped. The logic of `tests/common/nats.rs`, which the bench cannot use, plus a
//! monitoring port per server whose `/healthz` says when JetStream is ready.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// How long the servers may take until every `/healthz` answers ok.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The `nats-server` binary: `$NATS_SERVER`, else the one pip put in Python's scripts folder
/// (`scripts/nats-deps.sh` installs it there), else the first on `PATH`.
pub fn nats_server() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER") {
        return PathBuf::from(path);
    }
    let scripts = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .map(|path| PathBuf::from(path.trim()).join("nats-server"));
    match scripts {
        Some(path) if path.exists() => path,
        _ => PathBuf::from("nats-server"),
    }
}

/// A free loopback port (bound, then released for the child to take).
///
/// # Errors
///
/// When no loopback port can be bound.
pub fn free_port() -> anyhow::Result<u16> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").context("cannot bind a loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// Running `nats-server` processes.
#[derive(Debug)]
pub struct Nats {
    servers: Vec<Child>,
    /// `nats://127.0.0.1:<port>` of each server.
    pub urls: Vec<String>,
    monitors: Vec<u16>,
    dir: tempfile::TempDir,
}

impl Nats {
    /// Starts `size` servers with JetStream (one JetStream cluster when `size > 1`) and waits
    /// until each says it is healthy.
    ///
    /// # Errors
    ///
    /// When `nats-server` cannot be run (the message says how to install it), or a server
    /// does not become healthy; the message ends with its log.
    pub async fn start(size: usize) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("smsflow-bench-nats-")
            .tempdir()?;
        let mut ports = Vec::new();
        for _ in 0..size {
            ports.push((free_port()?, free_port()?, free_port()?));
        }
        let routes = ports
            .iter()
            .map(|(_, route, _)| format!("nats://127.0.0.1:{route}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut nats = Self {
            servers: Vec::new(),
            urls: ports
                .iter()
                .map(|(client, _, _)| format!("nats://127.0.0.1:{client}"))
                .collect(),
            monitors: ports.iter().map(|(_, _, monitor)| *monitor).collect(),
            dir,
        };
        let binary = nats_server();
        for (n, (client, route, monitor)) in ports.iter().enumerate() {
            let log_path = nats.log(n);
            let log = std::fs::File::create(&log_path)
                .with_context(|| format!("cannot create {}", log_path.display()))?;
            let mut command = Command::new(&binary);
            command
                .args(["-js", "-sd"])
                .arg(nats.dir.path().join(format!("s{n}")))
                .args(["-a", "127.0.0.1", "-p", &client.to_string()])
                .args(["-m", &monitor.to_string(), "-n", &format!("s{n}")]);
            if size > 1 {
                command.args([
                    "--cluster_name",
                    "smsflow-bench",
                    "--cluster",
                    &format!("nats://127.0.0.1:{route}"),
                    "--routes",
                    &routes,
                ]);
            }
            let child = command
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(log))
                .spawn()
                .with_context(|| {
                    format!(
                        "cannot run {}: install nats-server 2.15 with `just nats-deps` \
                         (or set NATS_SERVER)",
                        binary.display()
                    )
                })?;
            nats.servers.push(child);
        }
        nats.wait_healthy().await?;
        Ok(nats)
    }

    /// Waits until every server's `/healthz` answers 200 (JetStream up, and in a cluster its
    /// meta group has a leader).
    async fn wait_healthy(&mut self) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + READY_TIMEOUT;
        for (n, monitor) in self.monitors.iter().enumerate() {
            let url = format!("http://127.0.0.1:{monitor}/healthz");
            loop {
                let answer = client
                    .get(&url)
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await;
                if matches!(&answer, Ok(response) if response.status().is_success()) {
                    break;
                }
                if let Some(status) = self.servers[n].try_wait()? {
                    anyhow::bail!("nats-server s{n} exited with {status}:{}", self.log_tail(n));
                }
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "nats-server s{n} was not healthy within {READY_TIMEOUT:?}:{}",
                    self.log_tail(n)
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// The process ids.
    pub fn pids(&self) -> Vec<u32> {
        self.servers.iter().map(Child::id).collect()
    }

    /// `[cluster] nats = [...]` for these servers.
    pub fn toml_list(&self) -> String {
        let quoted: Vec<String> = self.urls.iter().map(|url| format!("\"{url}\"")).collect();
        format!("[{}]", quoted.join(", "))
    }

    /// Server `n`'s JetStream store folder.
    pub fn store(&self, n: usize) -> PathBuf {
        self.dir.path().join(format!("s{n}"))
    }

    fn log(&self, n: usize) -> PathBuf {
        self.dir.path().join(format!("s{n}.log"))
    }

    /// The end of server `n`'s log, for an error message.
    pub fn log_tail(&self, n: usize) -> String {
        crate::process::log_tail(&self.log(n))
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        for server in &mut self.servers {
            let _ = server.kill();
            let _ = server.wait();
        }
    }
}
