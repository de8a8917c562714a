//! ironcd-tests: the one process harness. Clusters of real etcd 3.4 or
//! ironcd processes on loopback ports, started, killed, stopped and
//! restarted by the server's integration tests and by `bench-compare`, and
//! driven through their client port and through `etcdctl`.
//!
//! It drives processes only and depends on no ironcd crate: which binary a
//! cluster runs is a [`Server`], and the ironcd binary's path is given by
//! the caller ([`ironcd!`] names the calling package's own `ironcd`).
//!
//! - [`ports`]: free loopback ports and unique cluster tokens.
//! - [`process`]: bounded runs and waits of child processes, signals.
//! - [`proxy`]: a loopback TCP [`Proxy`] that injects network faults
//!   (blackhole, pause, delay per direction; dropped and refused
//!   connections) between peers or between clients and servers.
//! - [`cluster`]: [`Server`], [`Opts`] and [`Cluster`] (start, kill,
//!   terminate, restart, spawn with extra environment, wait for exit);
//!   client and peer URLs `http` or `https` ([`Scheme`]).
//! - [`certs`]: certificates made while the test runs ([`Pki`]): a CA,
//!   member and client certificates, expired ones, ones from an unrelated
//!   CA, and CRLs.
//! - [`etcdctl`]: etcdctl 3.4 runs, bounded, with extra global flags (a
//!   TLS cluster's `--cacert`, `--cert`, `--key`) when asked.
//! - [`join`]: a member that joins a running cluster ([`Cluster::join`]).
//! - [`status`]: `endpoint status` parsed into [`MemberStatus`]; leaders.
//! - [`prometheus`]: a strict parser of `/metrics`' text format.
//! - [`linearizability`]: a checker of recorded KV and lease histories.
//! - [`robustness`]: scenarios of recorded traffic and watches under
//!   faults (kills, stops, partitions and delays through peer proxies,
//!   leader moves, defrags), checked for linearizability, etcd's watch
//!   guarantees and equal `HashKV`s.
//!
//! A TLS cluster is an [`Opts`] with `https` schemes, the members'
//! certificate flags in [`Opts::extra_args`] and etcdctl's in
//! [`Opts::etcdctl_args`], which the harness's own etcdctl runs (status,
//! leader waits, `move-leader`, `member add`) and [`Cluster::etcdctl`]
//! pass; [`Opts::tls`] sets all of it from a [`Pki`]. Certificates are
//! never checked in.
//!
//! Every wait is bounded; a member that dies or never serves is an
//! [`Error`] (or, from the panicking methods tests use, a failed test) with
//! the tail of its log. Dropping a [`Cluster`] kills its processes.
//!
//! ```no_run
//! use ironcd_tests::{etcdctl, Cluster, Opts, Server};
//!
//! let cluster = Cluster::start(Server::etcd(), 3, Opts::default());
//! let leader = cluster.wait_for_leader();
//! let out = etcdctl(&[cluster.host_port(leader)], &["put", "k", "v"]);
//! assert!(out.status.success());
//! ```
//!
//! The same over mutual TLS on client and peer URLs:
//!
//! ```no_run
//! use ironcd_tests::{Cluster, Opts, Pki, Server};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let pki = Pki::new(dir.path()).unwrap();
//! let member = pki.server("member").unwrap();
//! let client = pki.client("client").unwrap();
//! let cluster = Cluster::start(Server::etcd(), 3, Opts::tls(&pki, &member, &client));
//! let leader = cluster.wait_for_leader();
//! let out = cluster.etcdctl(&[cluster.host_port(leader)], &["put", "k", "v"]);
//! assert!(out.status.success());
//! ```

pub mod certs;
pub mod cluster;
pub mod etcdctl;
pub mod join;
pub mod linearizability;
pub mod ports;
pub mod process;
pub mod prometheus;
pub mod proxy;
pub mod robustness;
pub mod status;

pub use certs::{CertFiles, CertSpec, Pki};
pub use cluster::{Cluster, Impl, Opts, Scheme, Server, EXIT_TIMEOUT, READY_LINE, READY_TIMEOUT};
pub use etcdctl::{
    etcdctl, etcdctl_tls_args, etcdctl_with_flags, etcdctl_with_stdin, RunningEtcdctl, ETCDCTL_BIN,
    ETCDCTL_TIMEOUT,
};
pub use join::Joiner;
pub use ports::{free_ports, unique_token};
pub use process::{require_installed, run_bounded, wait_bounded};
pub use proxy::{Direction, DirectionStats, Proxy, ProxyHandle, Stats};
pub use status::{MemberStatus, LEADER_TIMEOUT};

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// Why the harness could not do what it was asked. The panicking methods
/// tests call fail with this error's message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A server binary does not exist.
    #[error("{binary} does not exist{hint}")]
    MissingBinary {
        /// The path looked at.
        binary: PathBuf,
        /// How to install it, if known (starts with `: `).
        hint: String,
    },
    /// The member is not running.
    #[error("member {member} is not running")]
    NotRunning {
        /// Its index.
        member: usize,
    },
    /// The member exited while it should have been starting or serving.
    #[error("{implementation} member {member} exited before serving ({status:?})\n{log_tail}")]
    Exited {
        /// `etcd` or `ironcd`.
        implementation: &'static str,
        /// Its index.
        member: usize,
        /// How it ended, if it was reaped.
        status: Option<ExitStatus>,
        /// The end of its log.
        log_tail: String,
    },
    /// The member did not print [`READY_LINE`] in time.
    #[error("{implementation} member {member} did not print {READY_LINE:?} within {timeout:?}\n{log_tail}")]
    NotReady {
        /// `etcd` or `ironcd`.
        implementation: &'static str,
        /// Its index.
        member: usize,
        /// The bound that passed.
        timeout: Duration,
        /// The end of its log.
        log_tail: String,
    },
    /// A membership change the harness asked a cluster for failed.
    #[error("{what}")]
    Membership {
        /// What failed, with etcdctl's output.
        what: String,
    },
    /// Members did not exit in time after SIGTERM and were killed.
    #[error("{implementation} member(s) {members:?} did not exit within {timeout:?} of SIGTERM and were killed\n{log_tails}")]
    DidNotExit {
        /// `etcd` or `ironcd`.
        implementation: &'static str,
        /// Their indexes.
        members: Vec<usize>,
        /// The bound that passed.
        timeout: Duration,
        /// The ends of their logs.
        log_tails: String,
    },
    /// A test certificate, key or CRL could not be made.
    #[error("{what}: {source}")]
    Certificate {
        /// What was being made.
        what: String,
        /// rcgen's error.
        source: rcgen::Error,
    },
    /// A helper command (`kill`) failed.
    #[error("{command}: {output}")]
    Command {
        /// The command line.
        command: String,
        /// Its status and stderr.
        output: String,
    },
}

/// `Result` with the harness's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// The calling package's `ironcd` binary as a [`Server`] (for a package with
/// an `ironcd` bin target, such as ironcd-server's integration tests).
#[macro_export]
macro_rules! ironcd {
    () => {
        $crate::Server::ironcd(env!("CARGO_BIN_EXE_ironcd"))
    };
}
