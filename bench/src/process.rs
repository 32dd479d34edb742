//! Child servers (`ceiling`, `smsflow serve`): started on a free port they announce on stdout,
//! measured through /proc, stopped with SIGTERM, killed if the harness stops first. Any
//! process's CPU time and memory, and the machine's, are read from /proc too.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{OnceLock, mpsc};
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
        peak_rss_bytes(self.pid())
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
        log_tail(&self.log)
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

/// The last 20 lines of the log at `path`, headed by its path, for an error message.
pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(20)..].join("\n");
    format!("\n--- the end of {} ---\n{tail}", path.display())
}

/// The peak resident memory (`VmHWM`) of process `pid`, in bytes.
///
/// # Errors
///
/// When /proc cannot be read (not Linux, or the process exited).
pub fn peak_rss_bytes(pid: u32) -> anyhow::Result<u64> {
    proc_status_kib(pid, "VmHWM").map(|kib| kib * 1024)
}

/// CPU time process `pid` used so far, user and system, all its threads (`utime + stime` in
/// /proc/<pid>/stat), in seconds.
///
/// # Errors
///
/// When /proc cannot be read (not Linux, or the process exited).
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let ticks = parse_stat_ticks(&stat).with_context(|| format!("{path} has no utime/stime"))?;
    Ok(ticks as f64 / clock_ticks_per_second() as f64)
}

/// CPU time this process (the harness: load generator and fake provider) used so far.
///
/// # Errors
///
/// As [`cpu_seconds`].
pub fn own_cpu_seconds() -> anyhow::Result<f64> {
    cpu_seconds(std::process::id())
}

/// `utime + stime` (clock ticks) from the text of a /proc/<pid>/stat file. The command name
/// in parentheses may hold spaces and parentheses, so the fields are counted after the last
/// `)`: the state is field 3, utime 14, stime 15.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let (_, after) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// `getconf CLK_TCK` (the unit of /proc's CPU times), read once; 100 (Linux's value
/// everywhere in practice) when it cannot be run.
fn clock_ticks_per_second() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|output| String::from_utf8(output.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .filter(|ticks| *ticks > 0)
            .unwrap_or(100)
    })
}

/// The whole machine's CPU time so far, from the `cpu` line of /proc/stat, in seconds summed
/// over its cores.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MachineCpu {
    /// Running anything: user, nice, system, irq, softirq, steal.
    pub busy: f64,
    /// Idle with a disk request outstanding (waiting for writes and fsyncs, among others).
    pub iowait: f64,
    /// Idle otherwise.
    pub idle: f64,
}

impl MachineCpu {
    /// Reads /proc/stat.
    ///
    /// # Errors
    ///
    /// When it cannot be read or has no `cpu` line.
    pub fn read() -> anyhow::Result<Self> {
        let stat = std::fs::read_to_string("/proc/stat").context("cannot read /proc/stat")?;
        let ticks = parse_machine_ticks(&stat).context("/proc/stat has no `cpu` line")?;
        let per_second = clock_ticks_per_second() as f64;
        Ok(Self {
            busy: ticks.busy as f64 / per_second,
            iowait: ticks.iowait as f64 / per_second,
            idle: ticks.idle as f64 / per_second,
        })
    }

    /// What was used between `earlier` and `self`.
    pub fn since(&self, earlier: &Self) -> Self {
        Self {
            busy: self.busy - earlier.busy,
            iowait: self.iowait - earlier.iowait,
            idle: self.idle - earlier.idle,
        }
    }
}

/// The machine's CPU time in clock ticks, as /proc/stat's `cpu` line has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MachineTicks {
    /// user + nice + system + irq + softirq + steal.
    pub busy: u64,
    /// iowait.
    pub iowait: u64,
    /// idle.
    pub idle: u64,
}

/// The `cpu` line of a /proc/stat text.
pub fn parse_machine_ticks(stat: &str) -> Option<MachineTicks> {
    let line = stat.lines().find(|line| line.starts_with("cpu "))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let field = |n: usize| values.get(n).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal (guest time is inside user already).
    Some(MachineTicks {
        busy: field(0) + field(1) + field(2) + field(5) + field(6) + field(7),
        iowait: field(4),
        idle: field(3),
    })
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

    #[test]
    fn cpu_time_is_read_after_the_command_name() {
        // A name with a space and a parenthesis; utime 1500, stime 250.
        let stat = "4242 (tokio (rt) w) S 1 4242 4242 0 -1 4194560 9000 0 0 0 1500 250 0 0 20 0 9 0 100 5000000 1200 18446744073709551615";
        assert_eq!(parse_stat_ticks(stat), Some(1750));
        assert_eq!(parse_stat_ticks("4242 (x) S 1 2"), None);
    }

    #[test]
    fn this_process_uses_cpu_time() {
        let before = own_cpu_seconds().unwrap();
        let started = Instant::now();
        let mut spins: u64 = 0;
        // Spin until a clock tick of CPU time shows (or give up after 5 s).
        while own_cpu_seconds().unwrap() <= before && started.elapsed() < Duration::from_secs(5) {
            spins = std::hint::black_box(spins.wrapping_add(1));
        }
        assert!(own_cpu_seconds().unwrap() > before, "{spins} spins");
    }

    #[test]
    fn the_machine_line_splits_busy_idle_and_iowait() {
        let stat = "cpu  100 5 50 1000 30 2 3 1 0 0\ncpu0 50 2 25 500 15 1 1 0 0 0\nintr 1\n";
        assert_eq!(
            parse_machine_ticks(stat),
            Some(MachineTicks {
                busy: 161,
                iowait: 30,
                idle: 1000
            })
        );
        let now = MachineCpu::read().unwrap();
        assert!(now.busy > 0.0 && now.since(&now) == MachineCpu::default());
    }
}
