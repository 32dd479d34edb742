//! What the end-to-end tests share: the real `smsflow serve` process and its configuration;
//! [`fake_provider`] for the tests that drive it through a fake SMS provider.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod fake_provider;
pub mod nats;

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The repository's root.
pub fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A loopback port nobody listens on.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `[plugins]` for the example plugins built by `just plugins`, each granted what its manifest
/// asks for; `order_base_url` is the order API the order-status plugin may call.
pub fn plugins_section(order_base_url: &str) -> String {
    format!(
        r#"
[plugins]
dir = "{plugins}"
cache_dir = "{cache}"

[plugins.grants.crm-notes]
capabilities = ["config", "http"]

[plugins.grants.order-status]
capabilities = ["config", "http"]
http = ["{order_base_url}"]
config = {{ base_url = "{order_base_url}" }}

[plugins.grants.faq-replies]
capabilities = ["config"]
"#,
        plugins = repository().join("target/plugins").display(),
        cache = repository().join("target/plugin-cache").display(),
    )
}

/// A running `smsflow serve`, killed when dropped.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
}

/// A Tuesday, noon in New York and 9:00 in California: inside every quiet-hours window of the
/// test contacts' numbers (area code 212, New York).
pub const DAYTIME: &str = "2026-03-03T17:00:00Z";

impl Server {
    /// Starts `smsflow serve --config <config>` and waits until `/healthz` answers on `port`.
    pub fn start(config: &Path, port: u16) -> Self {
        Self::start_with_env(config, port, &[])
    }

    /// As [`Server::start`], with extra environment variables. Unless they set
    /// `SMSFLOW_CLOCK`, the server's clock starts at [`DAYTIME`], so quiet hours do not hold
    /// texts back whatever the hour the tests run at; `("SMSFLOW_CLOCK", "")` runs it on the
    /// real clock.
    pub fn start_with_env(config: &Path, port: u16, env: &[(&str, &str)]) -> Self {
        Self::spawn(config, port, env, Stdio::inherit())
    }

    /// As [`Server::start_with_env`], writing its log (stdout and stderr) to `log`.
    pub fn start_logged(config: &Path, port: u16, env: &[(&str, &str)], log: &Path) -> Self {
        let file = std::fs::File::create(log).unwrap();
        Self::spawn(config, port, env, Stdio::from(file))
    }

    /// As [`Server::start`], with SIGXFSZ ignored (set by a shell that then becomes the
    /// server): a file size limit put on it later (`prlimit --fsize`) makes writes past it fail
    /// as on a full disk, instead of killing the process.
    pub fn start_ignoring_file_size_signal(config: &Path, port: u16) -> Self {
        let mut command = Command::new("sh");
        command
            .args(["-c", r#"trap "" XFSZ; exec "$0" "$@""#])
            .arg(env!("CARGO_BIN_EXE_smsflow"));
        Self::spawn_command(command, config, port, &[], Stdio::inherit())
    }

    fn spawn(config: &Path, port: u16, env: &[(&str, &str)], stderr: Stdio) -> Self {
        let command = Command::new(env!("CARGO_BIN_EXE_smsflow"));
        Self::spawn_command(command, config, port, env, stderr)
    }

    fn spawn_command(
        mut command: Command,
        config: &Path,
        port: u16,
        env: &[(&str, &str)],
        stderr: Stdio,
    ) -> Self {
        command.env("SMSFLOW_CLOCK", DAYTIME);
        for (name, value) in env {
            if *name == "SMSFLOW_CLOCK" && value.is_empty() {
                command.env_remove(name);
            } else {
                command.env(name, value);
            }
        }
        let child = command
            .args(["serve", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if healthy(port) {
                return server;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("the server did not come up on port {port}");
    }

    /// SIGTERM, then waits for the process to exit; returns whether it exited cleanly.
    pub fn terminate(mut self) -> bool {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.child.wait().unwrap().success()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `smsflow <args> --config <config>` to its end.
pub fn cli(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_smsflow"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

/// Whether `GET /healthz` on `port` answers `ok` within 2 s.
pub fn healthy(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok")
}

/// A transactional flow the API starts (`name` needed): a text, a day's wait, the end.
pub const NOTICE: &str = r#"
id = "notice"
program = "care"
kind = "transactional"
brand = "Acme Clinic"
start = "hello"
[triggers]
api = true
fields = ["name"]
[steps.hello]
type = "send"
text = "Acme Clinic: hi {{name}}, your visit is tomorrow. Reply YES to confirm, STOP to opt out."
next = "wait"
[steps.wait]
type = "wait"
timeout = "1d"
on_reply = "done"
on_timeout = "done"
[steps.done]
type = "end"
"#;

/// The `[programs]` of the notice flow's `care` and an `offers` program, both branded.
pub const PROGRAMS: &str = r#"
[programs.care]
brand = "Acme Clinic"
help = "Acme Clinic reminders. Call (212) 555-0100. Reply STOP to opt out."

[programs.offers]
brand = "Acme Clinic"
help = "Acme Clinic offers. Call (212) 555-0100. Reply STOP to opt out."
"#;
