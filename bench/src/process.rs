//! Child servers (`ceiling`, `smsflow serve`): started on a free port they announce on stdout,
//! measured through /proc, stopped with SIGTERM, killed if the harness stops first.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};

/// How long a server may take to announce its address.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a server may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running child server; killed when dropped.
#[derive(Debug)]
pub struct Server {
    child: Child,
    reaped: bool,
    name: String,
    log: PathBuf,
    /// The address it listens on.
    pub addr: SocketAddr,
    /// When it was spawned.
    pub spawned: Instant,
}

impl Server {
    /// Spawns `command` with stderr into `log` and waits until it prints
    /// `<announce>http://<address>` on stdout.
    ///
    /// # Errors
    ///
    /// When it cannot be spawned, or exits or stays silent instead of announcing an address;
    /// the message ends with its log.
    pub fn spawn(
        mut command: Command,
        name: &str,
        log: &Path,
        announce: &str,
    ) -> anyhow::Result<Self> {
        let stderr = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let spawned = Instant::now();
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("cannot start {name} ({command:?})"))?;
        let stdout = child.stdout.take().context("the child has no stdout")?;
        let (tell, told) = mpsc::channel();
        let announce = format!("{announce}http://");
        std::thread::spawn(move || {
            // Read every line, so the child never blocks on a full pipe.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(address) = line.strip_prefix(&announce) {
                    let _ = tell.send(address.trim().to_owned());
                }
            }
        });
        let mut server = Self {
            child,
            reaped: false,
            name: name.to_owned(),
            log: log.to_owned(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            spawned,
        };
        let address = told
            .recv_timeout(START_TIMEOUT)
            .map_err(|_| anyhow!("{name} did not announce its address:{}", server.log_tail()))?;
        server.addr = address
            .parse()
            .with_context(|| format!("{name} announced `{address}`, not an address"))?;
        Ok(server)
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its peak resident memory so far (`VmHWM`), in bytes.
    ///
    /// # Errors
    ///
    /// When /proc cannot be read (not Linux, or the process exited).
    pub fn peak_rss_bytes(&self) -> anyhow::Result<u64> {
        proc_status_kib(self.pid(), "VmHWM").map(|kib| kib * 1024)
    }

    /// Its resident memory now (`VmRSS`), in bytes.
    ///
    /// # Errors
    ///
    /// As [`Server::peak_rss_bytes`].
    pub fn rss_bytes(&self) -> anyhow::Result<u64> {
        proc_status_kib(self.pid(), "VmRSS").map(|kib| kib * 1024)
    }

    /// The end of its log, for an error message.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        format!("\n--- the end of {} ---\n{tail}", self.log.display())
    }

    /// SIGTERM, and waits for it to exit (killing it after 30 s).
    ///
    /// # Errors
    ///
    /// When it did not exit cleanly: the message ends with its log.
    pub fn stop(mut self) -> anyhow::Result<()> {
        let signalled = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .context("cannot run `kill`")?;
        anyhow::ensure!(signalled.success(), "cannot signal {}", self.name);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                self.reaped = true;
                anyhow::ensure!(
                    status.success(),
                    "{} exited with {status} when stopped:{}",
                    self.name,
                    self.log_tail()
                );
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(anyhow!(
            "{} did not stop within {STOP_TIMEOUT:?} of SIGTERM",
            self.name
        ))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A `kB` field of /proc/<pid>/status.
fn proc_status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    parse_status_kib(&status, field).with_context(|| format!("{path} has no {field}"))
}

/// `field` from the text of a /proc/<pid>/status file, in KiB.
pub fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse().ok())
}

/// Bytes a folder takes on disk (allocated blocks, so sparse files count what they use).
///
/// # Errors
///
/// When it cannot be read.
pub fn disk_bytes(path: &Path) -> anyhow::Result<u64> {
    use std::os::unix::fs::MetadataExt as _;
    let mut total = 0;
    for entry in
        std::fs::read_dir(path).with_context(|| format!("cannot read {}", path.display()))?
    {
        let entry = entry?;
        let metadata = entry.metadata()?;
        total += if metadata.is_dir() {
            disk_bytes(&entry.path())?
        } else {
            metadata.blocks() * 512
        };
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_memory_is_read_from_proc_status() {
        let status = "Name:\tsmsflow\nVmPeak:\t  900 kB\nVmHWM:\t   52344 kB\nVmRSS:\t 40000 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM"), Some(52_344));
        assert_eq!(parse_status_kib(status, "VmRSS"), Some(40_000));
        assert_eq!(parse_status_kib(status, "VmSwap"), None);
    }

    #[test]
    fn this_process_has_a_peak() {
        assert!(proc_status_kib(std::process::id(), "VmHWM").unwrap() > 0);
    }
}
