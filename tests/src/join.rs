//! A member that joins a running [`Cluster`] as etcd's runbook has it:
//! `etcdctl member add` first, then the new process started with
//! `--initial-cluster-state existing` and the cluster's members plus
//! itself in `--initial-cluster`.
//!
//! Its URLs have the cluster's schemes ([`crate::Opts::client_scheme`],
//! [`crate::Opts::peer_scheme`]) and `member add` passes the cluster's
//! [`crate::Opts::etcdctl_args`]; its certificate flags, like every other
//! flag of its own, are the caller's `extra_args`.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};

use crate::cluster::Cluster;
use crate::ports::free_ports;
use crate::process::{scrub_env, tail_lines};

/// A member started by [`Cluster::join`]; killed when dropped.
pub struct Joiner {
    child: Child,
    /// Its client URL, `http://127.0.0.1:PORT` (`https` if the cluster's
    /// clients use TLS).
    pub client_url: String,
    /// Its client address without a scheme, for etcdctl.
    pub host_port: String,
    /// Where its stderr goes.
    pub log_path: PathBuf,
    /// What `etcdctl member add` printed.
    pub member_add_output: String,
}

impl Joiner {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How it ended, if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail_lines(
            &std::fs::read_to_string(&self.log_path).unwrap_or_default(),
            lines,
        )
    }
}

impl Drop for Joiner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Cluster {
    /// Adds member `name` (a learner if `learner`) with `etcdctl member
    /// add` through the cluster's members, then starts it with
    /// `--initial-cluster-state existing` and `extra_args`, not waiting for
    /// it to serve. A TLS cluster's joiner needs its certificate flags in
    /// `extra_args` (the cluster's are in [`Cluster::opts`]). `member add`
    /// is retried while the cluster refuses it for now (a member connected
    /// to its peers for less than 5 s answers "unhealthy cluster", as
    /// etcd's does); panics if it fails.
    pub fn join(&self, name: &str, learner: bool, extra_args: &[&str]) -> Joiner {
        let eps: Vec<String> = (0..self.len()).map(|i| self.host_port(i)).collect();
        let ports = free_ports(2);
        let client = self.opts().client_scheme.loopback_url(ports[0]);
        let peer = self.opts().peer_scheme.loopback_url(ports[1]);
        let mut add = vec!["member", "add", name];
        if learner {
            add.push("--learner");
        }
        let peer_flag = format!("--peer-urls={peer}");
        add.push(&peer_flag);
        let added = self.reconfigure(&eps, &add, "Peer URLs already exists");
        let member_add_output = String::from_utf8_lossy(&added.stdout).into_owned();
        assert!(
            added.status.success(),
            "member add {name}: {member_add_output}{}",
            String::from_utf8_lossy(&added.stderr)
        );
        let mut initial: Vec<String> = (0..self.len())
            .map(|i| {
                let url = self.opts().peer_scheme.loopback_url(self.peer_port(i));
                format!("{}={url}", self.name(i))
            })
            .collect();
        initial.push(format!("{name}={peer}"));
        let log_path = self.dir().join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path).expect("create the joiner's log");
        let mut command = Command::new(self.server().binary());
        command
            .args([
                format!("--name={name}"),
                format!(
                    "--data-dir={}",
                    self.dir().join(format!("{name}.data")).display()
                ),
                format!("--listen-client-urls={client}"),
                format!("--advertise-client-urls={client}"),
                format!("--listen-peer-urls={peer}"),
                format!("--initial-advertise-peer-urls={peer}"),
                format!("--initial-cluster={}", initial.join(",")),
                "--initial-cluster-state=existing".to_string(),
                "--election-timeout=2000".to_string(),
            ])
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        scrub_env(&mut command);
        let child = command.spawn().expect("start the joining member");
        Joiner {
            child,
            host_port: format!("127.0.0.1:{}", ports[0]),
            client_url: client,
            log_path,
            member_add_output,
        }
    }
}
