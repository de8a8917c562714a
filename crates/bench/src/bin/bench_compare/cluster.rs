//! Clusters of real `etcd` or `ironcd` processes on loopback ports, each
//! member with a fresh data directory under one scratch directory.
//!
//! Both servers take the same flags (etcd's), so one command line serves
//! both; nothing beyond the cluster's shape is passed, so each runs with its
//! own defaults. Every wait is bounded; a member that exits or never serves
//! is an error carrying the tail of its log. Dropping a [`Cluster`] kills
//! whatever still runs, so an error or a panic leaves no orphans.

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::probe::Probe;
use crate::system;

/// Both etcd 3.4 and ironcd log this line once they serve clients.
pub const READY_LINE: &str = "ready to serve client requests";
/// How long a member may take from spawn to serving a linearizable read.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a member may take to exit after SIGTERM before it is killed.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a starting member's log and process are checked.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// How often a restarted member is probed while its restart is timed: the
/// resolution of the restart figure.
const RESTART_POLL_INTERVAL: Duration = Duration::from_millis(5);
/// Lines of a member's log quoted in an error.
const LOG_TAIL_LINES: usize = 30;

/// Which server a cluster runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Implementation {
    /// etcd 3.4, the reference.
    Etcd,
    /// This workspace's `ironcd`.
    Ironcd,
}

impl Implementation {
    /// The name used in progress lines, table headers and scratch dirs.
    pub fn name(self) -> &'static str {
        match self {
            Implementation::Etcd => "etcd",
            Implementation::Ironcd => "ironcd",
        }
    }
}

/// One member: its ports, files and (while it runs) its process.
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
    log_path: PathBuf,
    /// Where the current run's output starts in the log (the log is appended
    /// to across restarts; only the current run's ready line counts).
    log_offset: u64,
    child: Option<Child>,
}

/// A running cluster of one implementation; member `i` is named `m{i+1}`.
pub struct Cluster {
    implementation: Implementation,
    binary: PathBuf,
    token: String,
    initial_cluster: String,
    members: Vec<Member>,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts `size` fresh members of `implementation` (its binary at
    /// `binary`) and waits until each logs its ready line and serves a
    /// linearizable read.
    pub fn start(
        implementation: Implementation,
        binary: &Path,
        size: usize,
        probe: &Probe,
    ) -> Result<Cluster> {
        assert!(size > 0, "a cluster needs at least one member");
        let dir = tempfile::Builder::new()
            .prefix(&format!("bench-compare-{}-", implementation.name()))
            .tempdir()
            .context("create the cluster's scratch directory")?;
        let ports = free_ports(2 * size)?;
        let members: Vec<Member> = (0..size)
            .map(|i| Member {
                name: format!("m{}", i + 1),
                client_port: ports[2 * i],
                peer_port: ports[2 * i + 1],
                data_dir: dir.path().join(format!("m{}.data", i + 1)),
                log_path: dir.path().join(format!("m{}.log", i + 1)),
                log_offset: 0,
                child: None,
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Cluster {
            implementation,
            binary: binary.to_path_buf(),
            token: unique_token(),
            initial_cluster,
            members,
            dir,
        };
        // A member of a multi-member cluster serves only once a quorum runs,
        // so every member is spawned before any is waited for.
        let deadline = Instant::now() + READY_TIMEOUT;
        for i in 0..size {
            cluster.spawn(i)?;
        }
        cluster.await_ready_lines(deadline)?;
        for i in 0..size {
            cluster.await_serving(i, deadline, POLL_INTERVAL, probe)?;
        }
        Ok(cluster)
    }

    /// The cluster's scratch directory (removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Every member's client URL, `http://127.0.0.1:PORT`.
    pub fn client_urls(&self) -> Vec<String> {
        (0..self.members.len())
            .map(|i| self.client_url(i))
            .collect()
    }

    fn client_url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.members[i].client_port)
    }

    /// Member `i`'s process ID, if it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.members[i].child.as_ref().map(Child::id)
    }

    /// Member `i`'s data directory.
    pub fn data_dir(&self, i: usize) -> &Path {
        &self.members[i].data_dir
    }

    /// SIGTERM to every running member, then a bounded wait for each; a
    /// member still running after [`EXIT_TIMEOUT`] is killed and reported.
    pub fn stop(&mut self) -> Result<()> {
        let running: Vec<usize> = (0..self.members.len())
            .filter(|&i| self.members[i].child.is_some())
            .collect();
        for &i in &running {
            self.signal_term(i)?;
        }
        let deadline = Instant::now() + EXIT_TIMEOUT;
        let mut stuck = Vec::new();
        for &i in &running {
            if !self.reap_by(i, deadline)? {
                stuck.push(self.members[i].name.clone());
            }
        }
        if stuck.is_empty() {
            Ok(())
        } else {
            bail!(
                "{} member(s) {} did not exit within {EXIT_TIMEOUT:?} of SIGTERM and were killed",
                self.implementation.name(),
                stuck.join(", ")
            )
        }
    }

    /// Stops member `i` with SIGTERM, starts it again over its data
    /// directory, and returns the time from spawn until it served a
    /// linearizable read.
    pub fn restart_timed(&mut self, i: usize, probe: &Probe) -> Result<Duration> {
        self.signal_term(i)?;
        if !self.reap_by(i, Instant::now() + EXIT_TIMEOUT)? {
            bail!(
                "{} did not exit within {EXIT_TIMEOUT:?} of SIGTERM and was killed",
                self.members[i].name
            );
        }
        let spawned = self.spawn(i)?;
        self.await_serving(i, spawned + READY_TIMEOUT, RESTART_POLL_INTERVAL, probe)?;
        Ok(spawned.elapsed())
    }

    /// The last lines of member `i`'s log (stdout and stderr, every run).
    pub fn log_tail(&self, i: usize) -> String {
        let member = &self.members[i];
        let bytes = fs::read(&member.log_path).unwrap_or_default();
        format!(
            "--- last {LOG_TAIL_LINES} lines of {} {}'s log ---\n{}",
            self.implementation.name(),
            member.name,
            system::tail_lines(&String::from_utf8_lossy(&bytes), LOG_TAIL_LINES)
        )
    }

    /// Spawns member `i` with its output appended to its log; returns the
    /// instant just before the spawn.
    fn spawn(&mut self, i: usize) -> Result<Instant> {
        assert!(self.members[i].child.is_none(), "member {i} already runs");
        let args = self.member_args(i);
        let member = &mut self.members[i];
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&member.log_path)
            .with_context(|| format!("open {}", member.log_path.display()))?;
        writeln!(
            log,
            "=== bench-compare: {} {}",
            self.binary.display(),
            args.join(" ")
        )?;
        member.log_offset = log.metadata()?.len();
        let stderr = log.try_clone()?;
        let mut command = Command::new(&self.binary);
        command
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr);
        system::scrub_etcd_env(&mut command);
        let spawned = Instant::now();
        let child = command
            .spawn()
            .with_context(|| format!("spawn {}", self.binary.display()))?;
        member.child = Some(child);
        Ok(spawned)
    }

    /// etcd's flags for member `i`; identical for both implementations.
    fn member_args(&self, i: usize) -> Vec<String> {
        let m = &self.members[i];
        let client = format!("http://127.0.0.1:{}", m.client_port);
        let peer = format!("http://127.0.0.1:{}", m.peer_port);
        vec![
            format!("--name={}", m.name),
            format!("--data-dir={}", m.data_dir.display()),
            format!("--listen-client-urls={client}"),
            format!("--advertise-client-urls={client}"),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--initial-cluster={}", self.initial_cluster),
            "--initial-cluster-state=new".to_string(),
            format!("--initial-cluster-token={}", self.token),
        ]
    }

    /// Waits until every member's current run has logged [`READY_LINE`];
    /// fails at once if any member exits (its peers would wait for it).
    fn await_ready_lines(&mut self, deadline: Instant) -> Result<()> {
        let mut waiting: Vec<usize> = (0..self.members.len()).collect();
        loop {
            self.ensure_running_alive()?;
            waiting.retain(|&i| !self.current_log(i).contains(READY_LINE));
            if waiting.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let tails: Vec<String> = waiting.iter().map(|&i| self.log_tail(i)).collect();
                bail!(
                    "{} did not log {READY_LINE:?} within {READY_TIMEOUT:?}\n{}",
                    self.implementation.name(),
                    tails.join("\n")
                );
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Probes member `i` every `interval` until a linearizable read succeeds.
    fn await_serving(
        &mut self,
        i: usize,
        deadline: Instant,
        interval: Duration,
        probe: &Probe,
    ) -> Result<()> {
        let address = format!("127.0.0.1:{}", self.members[i].client_port);
        loop {
            self.ensure_alive(i)?;
            self.ensure_running_alive()?;
            let last_error = match probe.linearizable_get(&address) {
                Ok(()) => return Ok(()),
                Err(error) => error,
            };
            if Instant::now() >= deadline {
                bail!(
                    "{} {} did not serve a linearizable read within {READY_TIMEOUT:?} \
                     (last error: {last_error:#})\n{}",
                    self.implementation.name(),
                    self.members[i].name,
                    self.log_tail(i)
                );
            }
            thread::sleep(interval);
        }
    }

    /// The part of member `i`'s log written since its last spawn.
    fn current_log(&self, i: usize) -> String {
        let member = &self.members[i];
        let bytes = fs::read(&member.log_path).unwrap_or_default();
        let start = usize::try_from(member.log_offset)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        String::from_utf8_lossy(&bytes[start..]).into_owned()
    }

    /// An error with the log tail if member `i`'s process has exited.
    fn ensure_alive(&mut self, i: usize) -> Result<()> {
        let child = self.members[i]
            .child
            .as_mut()
            .ok_or_else(|| anyhow!("member {i} is not running"))?;
        match child.try_wait().context("poll a member")? {
            None => Ok(()),
            Some(status) => {
                self.members[i].child = None;
                bail!(
                    "{} {} exited before serving ({status})\n{}",
                    self.implementation.name(),
                    self.members[i].name,
                    self.log_tail(i)
                )
            }
        }
    }

    /// [`Cluster::ensure_alive`] for every member that should be running.
    fn ensure_running_alive(&mut self) -> Result<()> {
        for i in 0..self.members.len() {
            if self.members[i].child.is_some() {
                self.ensure_alive(i)?;
            }
        }
        Ok(())
    }

    fn signal_term(&self, i: usize) -> Result<()> {
        match self.pid(i) {
            Some(pid) => system::signal_term(pid),
            None => bail!("member {i} is not running"),
        }
    }

    /// Waits until `deadline` for member `i` to exit; kills it if it has not.
    /// Returns whether it exited by itself.
    fn reap_by(&mut self, i: usize, deadline: Instant) -> Result<bool> {
        let Some(mut child) = self.members[i].child.take() else {
            return Ok(true);
        };
        let exited = system::wait_until(&mut child, deadline)?.is_some();
        if !exited {
            let _ = child.kill();
            child.wait().context("reap a killed member")?;
        }
        Ok(exited)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for member in &mut self.members {
            if let Some(mut child) = member.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// A cluster token no other cluster of this process (or a concurrent one)
/// uses, so members of different clusters can never join each other.
fn unique_token() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "bench-compare-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// `n` distinct loopback ports that were free a moment ago and that this
/// process has not handed out before (a stopped cluster's ports may linger
/// in TIME_WAIT).
fn free_ports(n: usize) -> Result<Vec<u16>> {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    // Every listener is held until all ports are chosen, so the kernel
    // cannot hand the same port out twice in this loop.
    let mut listeners = Vec::new();
    let mut ports = Vec::new();
    for _ in 0..n * 100 {
        if ports.len() == n {
            break;
        }
        let listener = TcpListener::bind("127.0.0.1:0").context("bind a loopback port")?;
        let port = listener.local_addr()?.port();
        if handed_out.insert(port) {
            ports.push(port);
        }
        listeners.push(listener);
    }
    if ports.len() != n {
        bail!("could not find {n} free loopback ports");
    }
    Ok(ports)
}
