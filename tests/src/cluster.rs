//! Clusters of one server implementation as processes on loopback ports,
//! each member with its data directory and log under one scratch directory.
//!
//! Both servers take etcd's flags, so one command line serves both. The
//! methods tests call panic with the member's log tail; the `try_` ones
//! (for `bench-compare`, which records a failure and goes on) return it as
//! an [`Error`].
//!
//! Client and peer URLs are `http` or `https` as [`Opts`] says; the
//! certificate flags a TLS member needs are the test's to give (see
//! [`Opts::tls`]), and the harness's own etcdctl calls pass
//! [`Opts::etcdctl_args`] so they reach a TLS cluster too.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::certs::{CertFiles, Pki};
use crate::etcdctl::{etcdctl_tls_args, etcdctl_with_flags};
use crate::ports::{free_ports, unique_token};
use crate::process::{self, scrub_env, tail_lines, wait_bounded, wait_until, INSTALL_HINT};
use crate::proxy::{Proxy, ProxyHandle};
use crate::{Error, Result};

/// The reference implementation, from Debian's `etcd-server` package.
pub const ETCD_BIN: &str = "/usr/bin/etcd";
/// Both etcd 3.4 and ironcd print this on stderr once they serve clients.
pub const READY_LINE: &str = "ready to serve client requests";
/// The variable that makes an ironcd built with the `failpoints` feature
/// serve its failpoint endpoint at an address.
pub const FAILPOINTS_HTTP_ENV: &str = "IRONCD_FAILPOINTS_HTTP";
/// How long a member may take to serve after it was spawned.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a member may take to exit after SIGTERM.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines of a member's log quoted in an error.
const LOG_TAIL_LINES: usize = 40;

/// Which implementation a server binary is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Impl {
    /// etcd 3.4, the reference.
    Etcd,
    /// This workspace's `ironcd`.
    Ironcd,
}

impl Impl {
    /// `etcd` or `ironcd`: for messages, table headers and scratch dirs.
    pub fn name(self) -> &'static str {
        match self {
            Impl::Etcd => "etcd",
            Impl::Ironcd => "ironcd",
        }
    }
}

/// A server binary a cluster runs, and which implementation it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    implementation: Impl,
    binary: PathBuf,
}

impl Server {
    /// etcd 3.4 at [`ETCD_BIN`].
    pub fn etcd() -> Server {
        Server::new(Impl::Etcd, ETCD_BIN)
    }

    /// ironcd at `binary` (in a package's tests: [`crate::ironcd!`]).
    pub fn ironcd(binary: impl Into<PathBuf>) -> Server {
        Server::new(Impl::Ironcd, binary)
    }

    /// `implementation`'s binary at `binary`.
    pub fn new(implementation: Impl, binary: impl Into<PathBuf>) -> Server {
        Server {
            implementation,
            binary: binary.into(),
        }
    }

    /// Which implementation this is.
    pub fn implementation(&self) -> Impl {
        self.implementation
    }

    /// `etcd` or `ironcd`.
    pub fn name(&self) -> &'static str {
        self.implementation.name()
    }

    /// The binary's path.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    fn check_installed(&self) -> Result<()> {
        if self.binary.exists() {
            return Ok(());
        }
        let hint = match self.implementation {
            Impl::Etcd => format!(": run `{INSTALL_HINT}` (`make test` installs them)"),
            Impl::Ironcd => String::new(),
        };
        Err(Error::MissingBinary {
            binary: self.binary.clone(),
            hint,
        })
    }
}

/// A URL scheme: whether a listener speaks TLS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scheme {
    /// Plain TCP.
    #[default]
    Http,
    /// TLS.
    Https,
}

impl Scheme {
    /// `http` or `https`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    /// `{scheme}://127.0.0.1:{port}`: every member listens on loopback.
    pub fn loopback_url(self, port: u16) -> String {
        format!("{}://127.0.0.1:{port}", self.as_str())
    }
}

/// Flags shared by every member of a cluster.
#[derive(Clone, Debug)]
pub struct Opts {
    /// Appended to every member's command line, e.g. `--max-txn-ops=4`
    /// (or a TLS member's `--cert-file=…`).
    pub extra_args: Vec<String>,
    /// `--heartbeat-interval`; `None` leaves the server's default.
    pub heartbeat_interval_ms: Option<u64>,
    /// `--election-timeout`; `None` leaves the server's default.
    pub election_timeout_ms: Option<u64>,
    /// The client URLs' scheme ([`Cluster::endpoint`], and the members'
    /// listen and advertise client URLs). `https` needs the server's
    /// `--cert-file` and `--key-file` in [`Opts::extra_args`].
    pub client_scheme: Scheme,
    /// The peer URLs' scheme (listen, advertise and `--initial-cluster`).
    /// `https` needs `--peer-cert-file` and `--peer-key-file`.
    pub peer_scheme: Scheme,
    /// Global flags every etcdctl run of the harness's own passes
    /// (`endpoint status`, `move-leader`, `member add`, and
    /// [`Cluster::etcdctl`]), e.g. `--cacert=…`, `--cert=…`, `--key=…`.
    /// etcdctl 3.4 dials TLS to a scheme-less endpoint
    /// ([`Cluster::host_port`]) once it is given a CA or a certificate.
    pub etcdctl_args: Vec<String>,
    /// `Some(seed)`: every member's peer URL is reached through a
    /// fault-injecting [`Proxy`] (its delay jitter seeded from `seed` and
    /// the member's index): the member listens on its own peer port and
    /// advertises the proxy's, so every other member dials it through the
    /// proxy ([`Cluster::peer_proxy`]). `None`: peers dial each other
    /// directly.
    pub peer_proxy_seed: Option<u64>,
    /// `Some(seed)`: a fault-injecting [`Proxy`] in front of every
    /// member's client port too ([`Cluster::client_proxy`]), for clients
    /// that dial [`Cluster::proxied_endpoint`]; the harness's own calls
    /// ([`Cluster::endpoint`], [`Cluster::host_port`]) stay direct.
    pub client_proxy_seed: Option<u64>,
    /// Give every member a loopback port for its failpoint endpoint
    /// (`IRONCD_FAILPOINTS_HTTP`, served by an ironcd built with the
    /// `failpoints` feature; [`Cluster::failpoint_addr`]).
    pub failpoint_http: bool,
}

impl Default for Opts {
    /// Heartbeat 100 ms and a generous 2 s election timeout, so a loaded
    /// 2-core machine does not trigger elections that would change the
    /// leader in the middle of a test.
    fn default() -> Self {
        Opts {
            extra_args: Vec::new(),
            heartbeat_interval_ms: Some(100),
            election_timeout_ms: Some(2000),
            client_scheme: Scheme::Http,
            peer_scheme: Scheme::Http,
            etcdctl_args: Vec::new(),
            peer_proxy_seed: None,
            client_proxy_seed: None,
            failpoint_http: false,
        }
    }
}

impl Opts {
    /// The defaults plus `args`.
    pub fn with_args(args: &[&str]) -> Self {
        Opts {
            extra_args: args.iter().map(|a| a.to_string()).collect(),
            ..Opts::default()
        }
    }

    /// Nothing beyond the cluster's shape: each server runs with its own
    /// defaults (what `bench-compare` measures).
    pub fn server_defaults() -> Self {
        Opts {
            heartbeat_interval_ms: None,
            election_timeout_ms: None,
            ..Opts::default()
        }
    }

    /// The defaults with TLS on client and peer URLs, each side requiring
    /// certificates from `pki`'s CA (etcd's `--client-cert-auth` and
    /// `--peer-client-cert-auth`): every member serves clients and peers,
    /// and dials peers, with `member` (a [`Pki::server`] certificate, valid
    /// for loopback), and the harness's etcdctl presents `client`. Further
    /// flags (a CRL, say) go on [`Opts::extra_args`].
    pub fn tls(pki: &Pki, member: &CertFiles, client: &CertFiles) -> Self {
        let ca = pki.ca_cert().display();
        let (cert, key) = (member.cert.display(), member.key.display());
        Opts {
            extra_args: vec![
                format!("--cert-file={cert}"),
                format!("--key-file={key}"),
                format!("--trusted-ca-file={ca}"),
                "--client-cert-auth".to_string(),
                format!("--peer-cert-file={cert}"),
                format!("--peer-key-file={key}"),
                format!("--peer-trusted-ca-file={ca}"),
                "--peer-client-cert-auth".to_string(),
            ],
            client_scheme: Scheme::Https,
            peer_scheme: Scheme::Https,
            etcdctl_args: etcdctl_tls_args(pki.ca_cert(), client),
            ..Opts::default()
        }
    }
}

struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    /// The peer port the member advertises: its own, or its proxy's.
    advertised_peer_port: u16,
    /// The proxy in front of the peer port ([`Opts::peer_proxy_seed`]).
    peer_proxy: Option<Proxy>,
    /// The proxy in front of the client port ([`Opts::client_proxy_seed`]).
    client_proxy: Option<Proxy>,
    /// Start it with `--initial-cluster-state=existing`: it was added to a
    /// running cluster ([`Cluster::replace`]).
    joins_existing: bool,
    /// Where its failpoint endpoint listens ([`Opts::failpoint_http`]).
    failpoint_port: Option<u16>,
    data_dir: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
    /// Closed by the log pump when the process closes stderr; carries one
    /// message when the current run's ready line is seen.
    ready: Option<mpsc::Receiver<()>>,
}

/// A running cluster of one implementation. Members are numbered from 0;
/// member `i` is named `m{i+1}`.
pub struct Cluster {
    server: Server,
    opts: Opts,
    token: String,
    initial_cluster: String,
    members: Vec<Member>,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts `n_members` fresh members and waits until each serves clients.
    pub fn start(server: Server, n_members: usize, opts: Opts) -> Cluster {
        Cluster::try_start(server, n_members, opts).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Cluster::start`], with a member that does not come up as an error.
    pub fn try_start(server: Server, n_members: usize, opts: Opts) -> Result<Cluster> {
        assert!(n_members > 0, "a cluster needs at least one member");
        server.check_installed()?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}-cluster-", server.name()))
            .tempdir()
            .map_err(|source| Error::Io {
                what: "create the cluster's temp dir".to_string(),
                source,
            })?;
        // Proxies listen on ports of this list too: one the kernel picked
        // for them could be a member's, handed out here but not yet bound.
        let ports = free_ports(PORTS_PER_MEMBER * n_members);
        let mut members = Vec::with_capacity(n_members);
        for i in 0..n_members {
            let ports = &ports[PORTS_PER_MEMBER * i..PORTS_PER_MEMBER * (i + 1)];
            let (client_port, peer_port) = (ports[0], ports[1]);
            let peer_proxy = match opts.peer_proxy_seed {
                Some(seed) => Some(start_proxy(ports[2], peer_port, seed, i)?),
                None => None,
            };
            let client_proxy = match opts.client_proxy_seed {
                Some(seed) => Some(start_proxy(ports[4], client_port, !seed, i)?),
                None => None,
            };
            members.push(Member {
                name: format!("m{}", i + 1),
                client_port,
                peer_port,
                advertised_peer_port: peer_proxy.as_ref().map_or(peer_port, |p| p.addr().port()),
                peer_proxy,
                client_proxy,
                joins_existing: false,
                failpoint_port: opts.failpoint_http.then_some(ports[3]),
                data_dir: dir.path().join(format!("m{}.data", i + 1)),
                log_path: dir.path().join(format!("m{}.log", i + 1)),
                child: None,
                ready: None,
            });
        }
        let initial_cluster = members
            .iter()
            .map(|m| {
                let url = opts.peer_scheme.loopback_url(m.advertised_peer_port);
                format!("{}={url}", m.name)
            })
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Cluster {
            server,
            opts,
            token: unique_token(),
            initial_cluster,
            members,
            dir,
        };
        let all: Vec<usize> = (0..n_members).collect();
        cluster.try_restart_many(&all)?;
        Ok(cluster)
    }

    /// Which implementation the cluster runs.
    pub fn implementation(&self) -> Impl {
        self.server.implementation()
    }

    /// The server binary the cluster runs.
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// The number of members, running or not.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Never true: a cluster has at least one member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The cluster's scratch directory (removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The options the cluster was started with.
    pub fn opts(&self) -> &Opts {
        &self.opts
    }

    /// The flags the harness's own etcdctl runs pass ([`Opts::etcdctl_args`]).
    pub fn etcdctl_args(&self) -> &[String] {
        &self.opts.etcdctl_args
    }

    /// Runs etcdctl against `endpoints` with [`Cluster::etcdctl_args`]
    /// before `args`: what a test uses so one body runs against a plain
    /// and a TLS cluster.
    pub fn etcdctl(&self, endpoints: &[String], args: &[&str]) -> Output {
        etcdctl_with_flags(endpoints, &self.opts.etcdctl_args, args, None)
    }

    /// [`Cluster::etcdctl`] with `stdin` as etcdctl's standard input.
    pub fn etcdctl_with_stdin(&self, endpoints: &[String], args: &[&str], stdin: &str) -> Output {
        etcdctl_with_flags(endpoints, &self.opts.etcdctl_args, args, Some(stdin))
    }

    /// Every member's client URL, `http://127.0.0.1:PORT` (`https` with
    /// [`Opts::client_scheme`]).
    pub fn endpoints(&self) -> Vec<String> {
        (0..self.members.len()).map(|i| self.endpoint(i)).collect()
    }

    /// The client URLs of the members whose process runs.
    pub fn live_endpoints(&self) -> Vec<String> {
        self.live().into_iter().map(|i| self.endpoint(i)).collect()
    }

    /// Member `i`'s client URL, `http://127.0.0.1:PORT` (`https` with
    /// [`Opts::client_scheme`]).
    pub fn endpoint(&self, i: usize) -> String {
        self.opts
            .client_scheme
            .loopback_url(self.members[i].client_port)
    }

    /// Member `i`'s client address without a scheme, `127.0.0.1:PORT`.
    /// The harness's own etcdctl calls use this form: etcdctl dials an
    /// endpoint given as a URL with the whole URL as HTTP/2 authority (for
    /// `endpoint status`, `hashkv`, `move-leader`), which only the server
    /// under test should have to cope with. With [`Opts::etcdctl_args`]
    /// naming a CA or a certificate, etcdctl dials this form over TLS.
    pub fn host_port(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.members[i].client_port)
    }

    /// Member `i`'s client port.
    pub fn client_port(&self, i: usize) -> u16 {
        self.members[i].client_port
    }

    /// Member `i`'s peer port.
    pub fn peer_port(&self, i: usize) -> u16 {
        self.members[i].peer_port
    }

    /// The peer port member `i` advertises (its proxy's, with
    /// [`Opts::peer_proxy_seed`]): the one other members dial.
    pub fn advertised_peer_port(&self, i: usize) -> u16 {
        self.members[i].advertised_peer_port
    }

    /// The proxy every other member reaches member `i` through, if the
    /// cluster has them ([`Opts::peer_proxy_seed`]). Faults set on it cut
    /// or slow what reaches `i` ([`crate::proxy::Direction::ToUpstream`])
    /// and `i`'s answers on those connections.
    pub fn peer_proxy(&self, i: usize) -> Option<ProxyHandle> {
        self.members[i].peer_proxy.as_ref().map(Proxy::handle)
    }

    /// The proxy in front of member `i`'s client port, with
    /// [`Opts::client_proxy_seed`]: faults set on it cut or slow what
    /// clients of [`Cluster::proxied_endpoint`] send `i`
    /// ([`crate::proxy::Direction::ToUpstream`]) and its answers.
    pub fn client_proxy(&self, i: usize) -> Option<ProxyHandle> {
        self.members[i].client_proxy.as_ref().map(Proxy::handle)
    }

    /// The client URL that reaches member `i` through its client proxy
    /// ([`Opts::client_proxy_seed`]); [`Cluster::endpoint`] without one.
    pub fn proxied_endpoint(&self, i: usize) -> String {
        match &self.members[i].client_proxy {
            Some(proxy) => self.opts.client_scheme.loopback_url(proxy.addr().port()),
            None => self.endpoint(i),
        }
    }

    /// Every member's [`Cluster::proxied_endpoint`].
    pub fn proxied_endpoints(&self) -> Vec<String> {
        (0..self.members.len())
            .map(|i| self.proxied_endpoint(i))
            .collect()
    }

    /// Replaces running member `i` with a fresh one, as etcd's runbook for
    /// a failed member has it: `etcdctl member remove` through another
    /// member, the old process killed and its data directory wiped,
    /// `etcdctl member add` with the same name and peer URL, and the new
    /// process started with `--initial-cluster-state=existing` (a restart
    /// after that finds its data and ignores the flag). Waits until it
    /// serves. Needs another live member to ask.
    pub fn replace(&mut self, i: usize) -> Result<()> {
        let others: Vec<String> = self
            .live()
            .into_iter()
            .filter(|&j| j != i)
            .map(|j| self.host_port(j))
            .collect();
        let failed = |what: &str, out: &Output| Error::Membership {
            what: format!(
                "member {i}'s replacement: {what}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        };
        let id = self.try_status(i).map_err(|why| Error::Membership {
            what: format!("member {i}'s replacement: its id: {why}"),
        })?;
        let hex_id = format!("{:x}", id.member_id);
        let removed = self.reconfigure(&others, &["member", "remove", &hex_id], "member not found");
        if !removed.status.success() {
            return Err(failed("member remove", &removed));
        }
        if self.is_running(i) {
            self.kill(i);
        }
        let data_dir = self.members[i].data_dir.clone();
        if data_dir.exists() {
            std::fs::remove_dir_all(&data_dir).map_err(|source| Error::Io {
                what: format!("wipe {}", data_dir.display()),
                source,
            })?;
        }
        // A removed leader steps down: the others elect one of their own
        // before they can add a member.
        self.wait_for_leader();
        let name = self.members[i].name.clone();
        let peer = self
            .opts
            .peer_scheme
            .loopback_url(self.members[i].advertised_peer_port);
        let peer_flag = format!("--peer-urls={peer}");
        let added = self.reconfigure(
            &others,
            &["member", "add", &name, &peer_flag],
            "Peer URLs already exists",
        );
        if !added.status.success() {
            return Err(failed("member add", &added));
        }
        self.members[i].joins_existing = true;
        self.try_restart_many(&[i])
    }

    /// Runs etcdctl's membership command `args` through `endpoints`, again
    /// (bounded by [`RECONFIGURE_TIMEOUT`]) while the cluster refuses it
    /// for now: etcd's strict reconfiguration check answers "unhealthy
    /// cluster" until the member has been connected to every voter for
    /// 5 s, and a change proposed across an election times out. A retry
    /// after a timeout that answers `done_already` (the change did
    /// happen) counts as done.
    pub(crate) fn reconfigure(
        &self,
        endpoints: &[String],
        args: &[&str],
        done_already: &str,
    ) -> Output {
        let deadline = Instant::now() + RECONFIGURE_TIMEOUT;
        let mut retried = false;
        loop {
            let mut out = self.etcdctl(endpoints, args);
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            if retried && stderr.contains(done_already) {
                out.status = ExitStatus::default();
                return out;
            }
            let for_now = [
                "unhealthy cluster",
                "not enough started members",
                "request timed out",
            ]
            .iter()
            .any(|why| stderr.contains(why));
            if out.status.success() || !for_now || Instant::now() > deadline {
                return out;
            }
            retried = true;
            thread::sleep(RECONFIGURE_RETRY);
        }
    }

    /// Where member `i`'s failpoint endpoint listens, with
    /// [`Opts::failpoint_http`].
    pub fn failpoint_addr(&self, i: usize) -> Option<std::net::SocketAddr> {
        self.members[i]
            .failpoint_port
            .map(|port| std::net::SocketAddr::from(([127, 0, 0, 1], port)))
    }

    /// Keeps the scratch directory (data dirs and logs) after the cluster
    /// is dropped, for a failed run's post-mortem; returns its path.
    pub fn keep_dir(&mut self) -> PathBuf {
        self.dir.disable_cleanup(true);
        self.dir.path().to_path_buf()
    }

    /// Member `i`'s `--name`.
    pub fn name(&self, i: usize) -> &str {
        &self.members[i].name
    }

    /// Whether member `i`'s process was started and not yet reaped.
    pub fn is_running(&self, i: usize) -> bool {
        self.members[i].child.is_some()
    }

    /// The indexes of the members whose process runs.
    pub(crate) fn live(&self) -> Vec<usize> {
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
        self.try_terminate(i).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Cluster::terminate`]; a member still running [`EXIT_TIMEOUT`]
    /// after SIGTERM is killed and reported.
    pub fn try_terminate(&mut self, i: usize) -> Result<ExitStatus> {
        process::signal(self.try_pid(i)?, "TERM")?;
        self.reap_by(i, Instant::now() + EXIT_TIMEOUT)?
            .ok_or_else(|| self.did_not_exit(vec![i]))
    }

    /// SIGTERM to every running member, then a bounded wait for each; the
    /// members still running after [`EXIT_TIMEOUT`] are killed and reported.
    pub fn try_stop(&mut self) -> Result<()> {
        let running = self.live();
        for &i in &running {
            process::signal(self.try_pid(i)?, "TERM")?;
        }
        let deadline = Instant::now() + EXIT_TIMEOUT;
        let mut stuck = Vec::new();
        for &i in &running {
            if self.reap_by(i, deadline)?.is_none() {
                stuck.push(i);
            }
        }
        if stuck.is_empty() {
            Ok(())
        } else {
            Err(self.did_not_exit(stuck))
        }
    }

    fn did_not_exit(&self, members: Vec<usize>) -> Error {
        Error::DidNotExit {
            implementation: self.server.name(),
            log_tails: members
                .iter()
                .map(|&i| self.log_tail(i, LOG_TAIL_LINES))
                .collect::<Vec<_>>()
                .join("\n"),
            members,
            timeout: EXIT_TIMEOUT,
        }
    }

    /// Waits until `deadline` for member `i` to exit and reaps it; kills it
    /// if it has not exited by then (`None`).
    fn reap_by(&mut self, i: usize, deadline: Instant) -> Result<Option<ExitStatus>> {
        let member = &mut self.members[i];
        let mut child = member.child.take().ok_or(Error::NotRunning { member: i })?;
        member.ready = None;
        let status = wait_until(&mut child, deadline);
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        Ok(status)
    }

    /// Starts a stopped member again from its data dir and waits until it
    /// serves.
    pub fn restart(&mut self, i: usize) {
        self.restart_many(&[i]);
    }

    /// Starts several stopped members at once (a quorum may need them all)
    /// and waits until each serves.
    pub fn restart_many(&mut self, members: &[usize]) {
        self.try_restart_many(members)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    fn try_restart_many(&mut self, members: &[usize]) -> Result<()> {
        for &i in members {
            self.try_spawn_with_env(i, &[])?;
        }
        for &i in members {
            self.try_wait_ready(i)?;
        }
        Ok(())
    }

    /// Starts a stopped member with extra environment variables (such as
    /// `IRONCD_FAILPOINTS`), without waiting for it to serve: it may be
    /// meant to die. Follow with [`Cluster::wait_exit`] or
    /// [`Cluster::wait_ready`].
    pub fn spawn_with_env(&mut self, i: usize, env: &[(&str, &str)]) {
        self.try_spawn_with_env(i, env)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// [`Cluster::spawn_with_env`], with a failed spawn as an error.
    pub fn try_spawn_with_env(&mut self, i: usize, env: &[(&str, &str)]) -> Result<()> {
        assert!(!self.is_running(i), "member {i} is already running");
        let args = self.member_args(i);
        let member = &mut self.members[i];
        let io = |what: &str| {
            let what = format!("{what} ({})", member.log_path.display());
            move |source| Error::Io { what, source }
        };
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&member.log_path)
            .map_err(io("open the member's log"))?;
        writeln!(
            log,
            "=== harness: spawn {} {}",
            self.server.binary.display(),
            args.join(" ")
        )
        .map_err(io("write the member's log"))?;
        let stdout = log.try_clone().map_err(io("clone the log handle"))?;
        let mut command = Command::new(&self.server.binary);
        command
            .args(&args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped());
        scrub_env(&mut command);
        if let Some(port) = member.failpoint_port {
            command.env(FAILPOINTS_HTTP_ENV, format!("127.0.0.1:{port}"));
        }
        command.envs(env.iter().copied());
        let mut child = command.spawn().map_err(io("spawn a member"))?;
        let stderr = child.stderr.take().expect("piped stderr");
        let (ready_tx, ready_rx) = mpsc::channel();
        thread::spawn(move || pump_log(stderr, log, ready_tx));
        member.child = Some(child);
        member.ready = Some(ready_rx);
        Ok(())
    }

    fn member_args(&self, i: usize) -> Vec<String> {
        let m = &self.members[i];
        let client = self.opts.client_scheme.loopback_url(m.client_port);
        let peer = self.opts.peer_scheme.loopback_url(m.peer_port);
        let advertised = self.opts.peer_scheme.loopback_url(m.advertised_peer_port);
        let mut args = vec![
            format!("--name={}", m.name),
            format!("--data-dir={}", m.data_dir.display()),
            format!("--listen-client-urls={client}"),
            format!("--advertise-client-urls={client}"),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={advertised}"),
            format!("--initial-cluster={}", self.initial_cluster),
            format!(
                "--initial-cluster-state={}",
                if m.joins_existing { "existing" } else { "new" }
            ),
            format!("--initial-cluster-token={}", self.token),
        ];
        if let Some(ms) = self.opts.heartbeat_interval_ms {
            args.push(format!("--heartbeat-interval={ms}"));
        }
        if let Some(ms) = self.opts.election_timeout_ms {
            args.push(format!("--election-timeout={ms}"));
        }
        args.extend(self.opts.extra_args.iter().cloned());
        args
    }

    /// Waits until a member spawned by [`Cluster::spawn_with_env`] serves.
    pub fn wait_ready(&mut self, i: usize) {
        self.try_wait_ready(i).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Waits until member `i`'s current run prints [`READY_LINE`]; an
    /// error if it exits first or stays silent past [`READY_TIMEOUT`].
    pub fn try_wait_ready(&mut self, i: usize) -> Result<()> {
        let ready = self.members[i].ready.take().expect("a spawned member");
        match ready.recv_timeout(READY_TIMEOUT) {
            Ok(()) => Ok(()),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let mut child = self.members[i].child.take().expect("a spawned member");
                let status = wait_bounded(&mut child, EXIT_TIMEOUT);
                let _ = child.kill();
                let _ = child.wait();
                Err(self.exited(i, status))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => Err(Error::NotReady {
                implementation: self.server.name(),
                member: i,
                timeout: READY_TIMEOUT,
                log_tail: self.log_tail(i, LOG_TAIL_LINES),
            }),
        }
    }

    /// An error with the log tail if running member `i`'s process has
    /// exited (it is reaped then).
    pub fn check_alive(&mut self, i: usize) -> Result<()> {
        let child = self.members[i]
            .child
            .as_mut()
            .ok_or(Error::NotRunning { member: i })?;
        let polled = child.try_wait().map_err(|source| Error::Io {
            what: format!("poll member {i}"),
            source,
        })?;
        match polled {
            None => Ok(()),
            Some(status) => {
                self.members[i].child = None;
                self.members[i].ready = None;
                Err(self.exited(i, Some(status)))
            }
        }
    }

    fn exited(&self, i: usize, status: Option<ExitStatus>) -> Error {
        Error::Exited {
            implementation: self.server.name(),
            member: i,
            status,
            log_tail: self.log_tail(i, LOG_TAIL_LINES),
        }
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
                    self.log_tail(i, LOG_TAIL_LINES)
                )
            }
        }
    }

    /// The process id of running member `i`.
    pub fn pid(&self, i: usize) -> u32 {
        self.try_pid(i).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The process id of member `i`, or an error if it does not run.
    pub fn try_pid(&self, i: usize) -> Result<u32> {
        self.members[i]
            .child
            .as_ref()
            .map(Child::id)
            .ok_or(Error::NotRunning { member: i })
    }

    /// Member `i`'s `--data-dir`.
    pub fn data_dir(&self, i: usize) -> &Path {
        &self.members[i].data_dir
    }

    /// Sends `signal` (`STOP`, `CONT`, …) to running member `i`. A stopped
    /// member is cut off as by a partition: it neither sends nor answers,
    /// its connections stay open, and it goes on where it was once resumed.
    pub fn signal(&self, i: usize, signal: &str) {
        process::signal(self.pid(i), signal).unwrap_or_else(|e| panic!("{e}"));
    }

    /// The last `lines` lines of member `i`'s log (stdout and stderr, all runs).
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        let member = &self.members[i];
        let bytes = fs::read(&member.log_path).unwrap_or_default();
        let tail = tail_lines(&String::from_utf8_lossy(&bytes), lines);
        format!(
            "--- last {lines} lines of {} {} ({}) ---\n{tail}",
            self.server.name(),
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

/// How long [`Cluster::replace`] retries a membership change the cluster
/// refuses for now, and how often.
const RECONFIGURE_TIMEOUT: Duration = Duration::from_secs(20);
const RECONFIGURE_RETRY: Duration = Duration::from_millis(200);

/// Loopback ports handed out per member: client, peer, peer proxy,
/// failpoint endpoint, client proxy.
const PORTS_PER_MEMBER: usize = 5;

/// A proxy on loopback port `port` in front of member `member`'s loopback
/// port `upstream`.
fn start_proxy(port: u16, upstream: u16, seed: u64, member: usize) -> Result<Proxy> {
    let upstream = std::net::SocketAddr::from(([127, 0, 0, 1], upstream));
    let seed = seed ^ (member as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    Proxy::start(("127.0.0.1", port), upstream, seed)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_binary_is_an_error_naming_it() {
        let error = Cluster::try_start(Server::ironcd("/nonexistent/ironcd"), 1, Opts::default())
            .err()
            .expect("no cluster");
        assert!(error.to_string().contains("/nonexistent/ironcd"), "{error}");
    }

    #[test]
    fn a_member_that_exits_at_once_is_reported_with_its_log() {
        // `false` takes any arguments and exits 1 without serving.
        let error = Cluster::try_start(Server::ironcd("/bin/false"), 2, Opts::default())
            .err()
            .expect("no cluster");
        let message = error.to_string();
        assert!(message.contains("exited before serving"), "{message}");
        assert!(message.contains("=== harness: spawn"), "{message}");
    }

    fn member_args_of(opts: Opts) -> Vec<String> {
        // A cluster that was never started: its members' command lines.
        let ports = [4001, 4002];
        let cluster = Cluster {
            server: Server::ironcd("/nonexistent/ironcd"),
            initial_cluster: format!("m1={}", opts.peer_scheme.loopback_url(ports[1])),
            opts,
            token: "t".to_string(),
            members: vec![Member {
                name: "m1".to_string(),
                client_port: ports[0],
                peer_port: ports[1],
                advertised_peer_port: ports[1],
                peer_proxy: None,
                client_proxy: None,
                joins_existing: false,
                failpoint_port: None,
                data_dir: PathBuf::from("/nonexistent/m1.data"),
                log_path: PathBuf::from("/nonexistent/m1.log"),
                child: None,
                ready: None,
            }],
            dir: tempfile::tempdir().unwrap(),
        };
        assert_eq!(
            cluster.endpoint(0),
            cluster.opts().client_scheme.loopback_url(4001)
        );
        assert_eq!(cluster.host_port(0), "127.0.0.1:4001");
        cluster.member_args(0)
    }

    #[test]
    fn default_urls_are_plain_http() {
        let args = member_args_of(Opts::default());
        for flag in [
            "--listen-client-urls=http://127.0.0.1:4001",
            "--advertise-client-urls=http://127.0.0.1:4001",
            "--listen-peer-urls=http://127.0.0.1:4002",
            "--initial-advertise-peer-urls=http://127.0.0.1:4002",
            "--initial-cluster=m1=http://127.0.0.1:4002",
        ] {
            assert!(args.contains(&flag.to_string()), "{flag} in {args:?}");
        }
        assert!(Opts::default().etcdctl_args.is_empty());
    }

    #[test]
    fn schemes_apply_to_client_and_peer_urls_separately() {
        let opts = Opts {
            client_scheme: Scheme::Https,
            ..Opts::with_args(&["--cert-file=c.pem"])
        };
        let args = member_args_of(opts);
        for flag in [
            "--listen-client-urls=https://127.0.0.1:4001",
            "--advertise-client-urls=https://127.0.0.1:4001",
            "--listen-peer-urls=http://127.0.0.1:4002",
            "--initial-cluster=m1=http://127.0.0.1:4002",
            "--cert-file=c.pem",
        ] {
            assert!(args.contains(&flag.to_string()), "{flag} in {args:?}");
        }
    }

    #[test]
    fn tls_opts_give_members_and_etcdctl_the_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new(dir.path()).unwrap();
        let member = pki.server("member").unwrap();
        let client = pki.client("client").unwrap();
        let opts = Opts::tls(&pki, &member, &client);
        assert_eq!(
            opts.heartbeat_interval_ms,
            Opts::default().heartbeat_interval_ms
        );
        let args = member_args_of(opts.clone());
        let ca = pki.ca_cert().display();
        for flag in [
            "--listen-client-urls=https://127.0.0.1:4001".to_string(),
            "--initial-advertise-peer-urls=https://127.0.0.1:4002".to_string(),
            "--initial-cluster=m1=https://127.0.0.1:4002".to_string(),
            format!("--peer-trusted-ca-file={ca}"),
            format!("--key-file={}", member.key.display()),
            "--peer-client-cert-auth".to_string(),
        ] {
            assert!(args.contains(&flag), "{flag} in {args:?}");
        }
        assert_eq!(
            opts.etcdctl_args,
            [
                format!("--cacert={ca}"),
                format!("--cert={}", client.cert.display()),
                format!("--key={}", client.key.display()),
            ]
        );
    }

    #[test]
    fn server_defaults_pass_no_timing_flags() {
        let opts = Opts::server_defaults();
        assert_eq!(opts.heartbeat_interval_ms, None);
        assert_eq!(opts.election_timeout_ms, None);
        assert!(Opts::with_args(&["--x"]).heartbeat_interval_ms.is_some());
    }
}
