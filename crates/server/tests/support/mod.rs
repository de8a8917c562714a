//! Black-box test harness: clusters of real `etcd` or `ironcd` processes on
//! loopback ports, driven through their client port and through `etcdctl`.
//!
//! Every wait is bounded; a member that dies or never serves fails the test
//! with the tail of its log. Dropping a [`Cluster`] kills its processes.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The reference implementation, from Debian's `etcd-server` package.
pub const ETCD_BIN: &str = "/usr/bin/etcd";
/// etcdctl 3.4, from Debian's `etcd-client` package.
pub const ETCDCTL_BIN: &str = "/usr/bin/etcdctl";
const INSTALL_HINT: &str = "apt-get install etcd-server etcd-client";

/// Both etcd 3.4 and ironcd print this on stderr once they serve clients.
pub const READY_LINE: &str = "ready to serve client requests";
/// How long a member may take to serve after it was spawned.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a member may take to exit after SIGTERM.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(30);
/// The bound on one etcdctl invocation (its own timeouts are shorter).
pub const ETCDCTL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the members may take to agree on one leader.
pub const LEADER_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Which server a cluster runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Impl {
    /// `/usr/bin/etcd`, the reference.
    Etcd,
    /// This workspace's `ironcd` binary.
    Ironcd,
}

impl Impl {
    /// The server binary; fails the test if etcd is not installed.
    pub fn binary(self) -> PathBuf {
        match self {
            Impl::Etcd => {
                require_installed(ETCD_BIN);
                PathBuf::from(ETCD_BIN)
            }
            Impl::Ironcd => PathBuf::from(env!("CARGO_BIN_EXE_ironcd")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Impl::Etcd => "etcd",
            Impl::Ironcd => "ironcd",
        }
    }
}

/// Fails the test with the install command when a reference binary is missing.
pub fn require_installed(path: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is not installed: run `{INSTALL_HINT}` (`make test` installs them)"
    );
}

/// Flags shared by every member of a cluster.
#[derive(Clone, Debug)]
pub struct Opts {
    /// Appended to every member's command line, e.g. `--max-txn-ops=4`.
    pub extra_args: Vec<String>,
    pub heartbeat_interval_ms: u64,
    /// Generous, so a loaded 2-core machine does not trigger elections that
    /// would change the leader in the middle of a test.
    pub election_timeout_ms: u64,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            extra_args: Vec::new(),
            heartbeat_interval_ms: 100,
            election_timeout_ms: 2000,
        }
    }
}

impl Opts {
    pub fn with_args(args: &[&str]) -> Self {
        Opts {
            extra_args: args.iter().map(|a| a.to_string()).collect(),
            ..Opts::default()
        }
    }
}

/// One member's view, from `etcdctl endpoint status -w json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberStatus {
    pub cluster_id: u64,
    pub member_id: u64,
    pub leader: u64,
    pub raft_term: u64,
    pub raft_index: u64,
    pub revision: i64,
    pub is_learner: bool,
}

struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
    /// Closed by the log pump when the process closes stderr; carries one
    /// message when the ready line is seen.
    ready: Option<mpsc::Receiver<()>>,
}

/// A running cluster of one implementation. Members are numbered from 0;
/// member `i` is named `m{i+1}`.
pub struct Cluster {
    implementation: Impl,
    opts: Opts,
    token: String,
    initial_cluster: String,
    members: Vec<Member>,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts `n_members` fresh members and waits until each serves clients.
    pub fn start(implementation: Impl, n_members: usize, opts: Opts) -> Cluster {
        assert!(n_members > 0, "a cluster needs at least one member");
        let binary = implementation.binary();
        assert!(binary.exists(), "{} does not exist", binary.display());
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}-cluster-", implementation.name()))
            .tempdir()
            .expect("create the cluster's temp dir");
        let ports = free_ports(2 * n_members);
        let members: Vec<Member> = (0..n_members)
            .map(|i| Member {
                name: format!("m{}", i + 1),
                client_port: ports[2 * i],
                peer_port: ports[2 * i + 1],
                data_dir: dir.path().join(format!("m{}.data", i + 1)),
                log_path: dir.path().join(format!("m{}.log", i + 1)),
                child: None,
                ready: None,
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Cluster {
            implementation,
            opts,
            token: unique_token(),
            initial_cluster,
            members,
            dir,
        };
        let all: Vec<usize> = (0..n_members).collect();
        cluster.restart_many(&all);
        cluster
    }

    pub fn implementation(&self) -> Impl {
        self.implementation
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// The cluster's scratch directory (removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Every member's client URL, `http://127.0.0.1:PORT`.
    pub fn endpoints(&self) -> Vec<String> {
        (0..self.members.len()).map(|i| self.endpoint(i)).collect()
    }

    /// The client URLs of the members whose process runs.
    pub fn live_endpoints(&self) -> Vec<String> {
        self.live().into_iter().map(|i| self.endpoint(i)).collect()
    }

    pub fn endpoint(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.members[i].client_port)
    }

    /// Member `i`'s client address without a scheme, `127.0.0.1:PORT`.
    /// The harness's own etcdctl calls use this form: etcdctl dials an
    /// endpoint given as a URL with the whole URL as HTTP/2 authority (for
    /// `endpoint status`, `hashkv`, `move-leader`), which only the server
    /// under test should have to cope with.
    pub fn host_port(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.members[i].client_port)
    }

    pub fn client_port(&self, i: usize) -> u16 {
        self.members[i].client_port
    }

    pub fn peer_port(&self, i: usize) -> u16 {
        self.members[i].peer_port
    }

    pub fn name(&self, i: usize) -> &str {
        &self.members[i].name
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.members[i].child.is_some()
    }

    fn live(&self) -> Vec<usize> {
        (0..self.members.len())
            .filter(|&i| self.is_running(i))
            .collect()
    }

    /// SIGKILL (`Child::kill` on unix), then reap.
    pub fn kill(&mut self, i: usize) {
        let mut child = self.members[i]
            .child
            .take()
            .unwrap_or_else(|| panic!("member {i} is not running"));
        let _ = child.kill();
        child.wait().expect("reap a killed member");
        self.members[i].ready = None;
    }

    /// SIGTERM, then wait (bounded) for the process to exit.
    pub fn terminate(&mut self, i: usize) -> ExitStatus {
        let child = self.members[i]
            .child
            .as_mut()
            .unwrap_or_else(|| panic!("member {i} is not running"));
        let pid = child.id().to_string();
        let sent = run_bounded(
            Command::new("kill").args(["-TERM", &pid]),
            None,
            EXIT_TIMEOUT,
        );
        assert!(sent.status.success(), "kill -TERM {pid}: {sent:?}");
        let status = wait_bounded(child, EXIT_TIMEOUT);
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.members[i].child = None;
        self.members[i].ready = None;
        status.unwrap_or_else(|| {
            panic!(
                "member {i} did not exit within {EXIT_TIMEOUT:?} of SIGTERM\n{}",
                self.log_tail(i, 40)
            )
        })
    }

    /// Starts a stopped member again from its data dir and waits until it
    /// serves.
    pub fn restart(&mut self, i: usize) {
        self.restart_many(&[i]);
    }

    /// Starts several stopped members at once (a quorum may need them all)
    /// and waits until each serves.
    pub fn restart_many(&mut self, members: &[usize]) {
        for &i in members {
            self.spawn(i);
        }
        for &i in members {
            self.await_ready(i);
        }
    }

    fn spawn(&mut self, i: usize) {
        self.spawn_with_env(i, &[]);
    }

    /// Starts a stopped member with extra environment variables (such as
    /// `IRONCD_FAILPOINTS`), without waiting for it to serve: it may be
    /// meant to die. Follow with [`Cluster::wait_exit`] or
    /// [`Cluster::wait_ready`].
    pub fn spawn_with_env(&mut self, i: usize, env: &[(&str, &str)]) {
        assert!(!self.is_running(i), "member {i} is already running");
        let args = self.member_args(i);
        let member = &mut self.members[i];
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&member.log_path)
            .expect("open the member's log");
        writeln!(log, "=== harness: spawn {}", args.join(" ")).expect("write the log");
        let stdout = log.try_clone().expect("clone the log handle");
        let mut command = Command::new(self.implementation.binary());
        command
            .args(&args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped());
        scrub_env(&mut command);
        command.envs(env.iter().copied());
        let mut child = command.spawn().expect("spawn a member");
        let stderr = child.stderr.take().expect("piped stderr");
        let (ready_tx, ready_rx) = mpsc::channel();
        thread::spawn(move || pump_log(stderr, log, ready_tx));
        member.child = Some(child);
        member.ready = Some(ready_rx);
    }

    fn member_args(&self, i: usize) -> Vec<String> {
        let m = &self.members[i];
        let client = format!("http://127.0.0.1:{}", m.client_port);
        let peer = format!("http://127.0.0.1:{}", m.peer_port);
        let mut args = vec![
            format!("--name={}", m.name),
            format!("--data-dir={}", m.data_dir.display()),
            format!("--listen-client-urls={client}"),
            format!("--advertise-client-urls={client}"),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--initial-cluster={}", self.initial_cluster),
            "--initial-cluster-state=new".to_string(),
            format!("--initial-cluster-token={}", self.token),
            format!("--heartbeat-interval={}", self.opts.heartbeat_interval_ms),
            format!("--election-timeout={}", self.opts.election_timeout_ms),
        ];
        args.extend(self.opts.extra_args.iter().cloned());
        args
    }

    /// Waits until a member spawned by [`Cluster::spawn_with_env`] serves.
    pub fn wait_ready(&mut self, i: usize) {
        self.await_ready(i);
    }

    /// Waits (bounded by `timeout`) for member `i` to exit by itself;
    /// returns how it ended. Fails the test if it is still running then.
    pub fn wait_exit(&mut self, i: usize, timeout: Duration) -> ExitStatus {
        let mut child = self.members[i]
            .child
            .take()
            .unwrap_or_else(|| panic!("member {i} is not running"));
        self.members[i].ready = None;
        match wait_bounded(&mut child, timeout) {
            Some(status) => status,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "member {i} did not exit within {timeout:?}\n{}",
                    self.log_tail(i, 40)
                )
            }
        }
    }

    /// The process id of running member `i`.
    pub fn pid(&self, i: usize) -> u32 {
        self.members[i]
            .child
            .as_ref()
            .unwrap_or_else(|| panic!("member {i} is not running"))
            .id()
    }

    /// Member `i`'s `--data-dir`.
    pub fn data_dir(&self, i: usize) -> &Path {
        &self.members[i].data_dir
    }

    /// Sends `signal` (`STOP`, `CONT`, …) to running member `i`. A stopped
    /// member is cut off as by a partition: it neither sends nor answers,
    /// its connections stay open, and it goes on where it was once resumed.
    pub fn signal(&self, i: usize, signal: &str) {
        let pid = self.pid(i).to_string();
        let sent = run_bounded(
            Command::new("kill").args([&format!("-{signal}"), &pid]),
            None,
            EXIT_TIMEOUT,
        );
        assert!(sent.status.success(), "kill -{signal} {pid}: {sent:?}");
    }

    fn await_ready(&mut self, i: usize) {
        let ready = self.members[i].ready.take().expect("a spawned member");
        match ready.recv_timeout(READY_TIMEOUT) {
            Ok(()) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let mut child = self.members[i].child.take().expect("a spawned member");
                let status = wait_bounded(&mut child, EXIT_TIMEOUT);
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} member {i} exited before serving ({status:?})\n{}",
                    self.implementation.name(),
                    self.log_tail(i, 40)
                );
            }
            Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                "{} member {i} did not print {READY_LINE:?} within {READY_TIMEOUT:?}\n{}",
                self.implementation.name(),
                self.log_tail(i, 40)
            ),
        }
    }

    /// The last `lines` lines of member `i`'s log (stdout and stderr, all runs).
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        let member = &self.members[i];
        let bytes = fs::read(&member.log_path).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        let all: Vec<&str> = text.lines().collect();
        let tail = all[all.len().saturating_sub(lines)..].join("\n");
        format!(
            "--- last {lines} lines of {} ({}) ---\n{tail}",
            member.name,
            member.log_path.display()
        )
    }

    /// Every member's log tail, for failure messages.
    pub fn all_log_tails(&self, lines: usize) -> String {
        (0..self.members.len())
            .map(|i| self.log_tail(i, lines))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Member `i`'s status, or `None` if it is down or does not answer.
    pub fn status(&self, i: usize) -> Option<MemberStatus> {
        self.try_status(i).ok()
    }

    /// Member `i`'s status, or why it has none.
    pub fn try_status(&self, i: usize) -> Result<MemberStatus, String> {
        if !self.is_running(i) {
            return Err(format!("member {i} is not running"));
        }
        let out = etcdctl(&[self.host_port(i)], &["endpoint", "status", "-w", "json"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let failed = || {
            let stderr = String::from_utf8_lossy(&out.stderr);
            format!(
                "member {i}: endpoint status: {}: {stdout}{stderr}",
                out.status
            )
        };
        if !out.status.success() {
            return Err(failed());
        }
        let json: serde_json::Value = serde_json::from_str(&stdout).map_err(|_| failed())?;
        parse_status(&json[0]["Status"]).ok_or_else(failed)
    }

    /// The member that a live member reports as leader, if it is itself live
    /// and reports itself as leader.
    pub fn leader_index(&self) -> Option<usize> {
        let statuses: Vec<(usize, MemberStatus)> = self
            .live()
            .into_iter()
            .filter_map(|i| Some((i, self.status(i)?)))
            .collect();
        statuses
            .iter()
            .find(|(_, s)| s.leader != 0 && s.leader == s.member_id)
            .map(|(i, _)| *i)
    }

    /// Waits until every live member answers and names the same live leader;
    /// returns its index.
    pub fn wait_for_leader(&self) -> usize {
        let deadline = Instant::now() + LEADER_TIMEOUT;
        loop {
            let why_not = match self.agreed_leader() {
                Ok(leader) => return leader,
                Err(why_not) => why_not,
            };
            assert!(
                Instant::now() < deadline,
                "{} members did not agree on a leader within {LEADER_TIMEOUT:?}: {why_not}\n{}",
                self.implementation.name(),
                self.all_log_tails(20)
            );
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// The leader every live member names, or why there is none.
    fn agreed_leader(&self) -> Result<usize, String> {
        let mut statuses = Vec::new();
        for i in self.live() {
            statuses.push((i, self.try_status(i)?));
        }
        let leaders: BTreeSet<u64> = statuses.iter().map(|(_, s)| s.leader).collect();
        let leader = match leaders.iter().collect::<Vec<_>>()[..] {
            [&leader] if leader != 0 => leader,
            _ => return Err(format!("members name leaders {leaders:x?}")),
        };
        statuses
            .iter()
            .find(|(_, s)| s.member_id == leader)
            .map(|(i, _)| *i)
            .ok_or_else(|| format!("leader {leader:x} is not a live member"))
    }

    /// Member `i`'s ID as the member itself reports it.
    pub fn member_id(&self, i: usize) -> u64 {
        self.status(i)
            .unwrap_or_else(|| panic!("member {i} does not answer status"))
            .member_id
    }

    /// Moves leadership to member `target` (a no-op if it leads) and waits
    /// until every live member agrees.
    pub fn ensure_leader(&self, target: usize) {
        let id = format!("{:x}", self.member_id(target));
        let live: Vec<String> = self.live().into_iter().map(|i| self.host_port(i)).collect();
        let out = etcdctl(&live, &["move-leader", &id]);
        assert!(
            out.status.success(),
            "move-leader to member {target} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + LEADER_TIMEOUT;
        loop {
            let view = self.agreed_leader();
            if view == Ok(target) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "members did not agree that member {target} leads: {view:?}"
            );
            thread::sleep(POLL_INTERVAL);
        }
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

fn parse_status(status: &serde_json::Value) -> Option<MemberStatus> {
    let header = &status["header"];
    Some(MemberStatus {
        cluster_id: header["cluster_id"].as_u64()?,
        member_id: header["member_id"].as_u64()?,
        leader: status["leader"].as_u64().unwrap_or(0),
        raft_term: status["raftTerm"].as_u64().unwrap_or(0),
        raft_index: status["raftIndex"].as_u64().unwrap_or(0),
        revision: header["revision"].as_i64().unwrap_or(0),
        is_learner: status["isLearner"].as_bool().unwrap_or(false),
    })
}

/// Copies the member's stderr into its log; signals once on the ready line.
fn pump_log(stderr: ChildStderr, mut log: File, ready: mpsc::Sender<()>) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    let mut signalled = false;
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let _ = log.write_all(&line);
        if !signalled && String::from_utf8_lossy(&line).contains(READY_LINE) {
            signalled = true;
            let _ = ready.send(());
        }
    }
}

/// Members and etcdctl must not pick up the developer's ETCD_* settings.
fn scrub_env(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("ETCD") {
            command.env_remove(key);
        }
    }
}

fn unique_token() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "ironcd-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// `n` distinct loopback ports that were free a moment ago and that this
/// test process has never handed out before.
pub fn free_ports(n: usize) -> Vec<u16> {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    // Hold every listener until all are chosen, so the kernel cannot hand
    // the same port out twice in this loop.
    let mut listeners = Vec::new();
    let mut ports = Vec::new();
    for _ in 0..n * 100 {
        if ports.len() == n {
            break;
        }
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("local addr").port();
        if handed_out.insert(port) {
            ports.push(port);
        }
        listeners.push(listener);
    }
    assert_eq!(ports.len(), n, "could not find {n} free ports");
    ports
}

/// Runs etcdctl (API v3) against `endpoints`.
pub fn etcdctl(endpoints: &[String], args: &[&str]) -> Output {
    etcdctl_with_stdin(endpoints, args, None)
}

/// Runs etcdctl with `stdin` as its standard input (e.g. for `txn`).
pub fn etcdctl_with_stdin(endpoints: &[String], args: &[&str], stdin: Option<&str>) -> Output {
    require_installed(ETCDCTL_BIN);
    let mut command = Command::new(ETCDCTL_BIN);
    scrub_env(&mut command);
    command
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", endpoints.join(",")))
        .arg("--dial-timeout=5s")
        .arg("--command-timeout=15s")
        .args(args);
    run_bounded(&mut command, stdin, ETCDCTL_TIMEOUT)
}

/// Runs a command to completion with a bound; kills it and fails the test
/// if it takes longer.
pub fn run_bounded(command: &mut Command, stdin: Option<&str>, timeout: Duration) -> Output {
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        let text = text.to_string();
        thread::spawn(move || pipe.write_all(text.as_bytes()));
    }
    let stdout = read_all_in_background(child.stdout.take().expect("piped stdout"));
    let stderr = read_all_in_background(child.stderr.take().expect("piped stderr"));
    let Some(status) = wait_bounded(&mut child, timeout) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{command:?} did not finish within {timeout:?}");
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

fn read_all_in_background(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// Polls until the child exits or `timeout` passes (then `None`).
pub fn wait_bounded(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("poll a child") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(POLL_INTERVAL);
    }
}
