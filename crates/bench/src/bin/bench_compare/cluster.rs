//! bench-compare's clusters: the workspace harness's (`ironcd_tests`), each
//! server with its own defaults (nothing beyond the cluster's shape is
//! passed), plus what the measurements need — a member counts as started
//! once it serves a linearizable read, and a restart is timed from spawn to
//! that read. Every wait is bounded; dropping a [`Cluster`] kills whatever
//! still runs, so an error or a panic leaves no orphans.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use ironcd_tests::{Impl, Opts, Server, READY_TIMEOUT};

use crate::probe::Probe;

/// How often a starting member is probed.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// How often a restarted member is probed while its restart is timed: the
/// resolution of the restart figure.
const RESTART_POLL_INTERVAL: Duration = Duration::from_millis(5);
/// Lines of a member's log quoted in an error.
const LOG_TAIL_LINES: usize = 30;

/// A running cluster of one implementation; member `i` is named `m{i+1}`.
pub struct Cluster {
    inner: ironcd_tests::Cluster,
}

impl Cluster {
    /// Starts `size` fresh members of `implementation` (its binary at
    /// `binary`) and waits until each logs its ready line and serves a
    /// linearizable read.
    pub fn start(
        implementation: Impl,
        binary: &Path,
        size: usize,
        probe: &Probe,
    ) -> Result<Cluster> {
        let server = Server::new(implementation, binary);
        let inner = ironcd_tests::Cluster::try_start(server, size, Opts::server_defaults())?;
        let mut cluster = Cluster { inner };
        let deadline = Instant::now() + READY_TIMEOUT;
        for i in 0..size {
            cluster.await_serving(i, deadline, POLL_INTERVAL, probe)?;
        }
        Ok(cluster)
    }

    /// The cluster's scratch directory (removed on drop).
    pub fn dir(&self) -> &Path {
        self.inner.dir()
    }

    /// Every member's client URL, `http://127.0.0.1:PORT`.
    pub fn client_urls(&self) -> Vec<String> {
        self.inner.endpoints()
    }

    /// Member `i`'s process ID, if it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.inner.try_pid(i).ok()
    }

    /// Member `i`'s data directory.
    pub fn data_dir(&self, i: usize) -> &Path {
        self.inner.data_dir(i)
    }

    /// SIGTERM to every running member, then a bounded wait for each; a
    /// member still running after [`ironcd_tests::EXIT_TIMEOUT`] is killed
    /// and reported.
    pub fn stop(&mut self) -> Result<()> {
        Ok(self.inner.try_stop()?)
    }

    /// Stops member `i` with SIGTERM, starts it again over its data
    /// directory, and returns the time from spawn until it served a
    /// linearizable read.
    pub fn restart_timed(&mut self, i: usize, probe: &Probe) -> Result<Duration> {
        self.inner.try_terminate(i)?;
        let spawned = Instant::now();
        self.inner.try_spawn_with_env(i, &[])?;
        self.await_serving(i, spawned + READY_TIMEOUT, RESTART_POLL_INTERVAL, probe)?;
        Ok(spawned.elapsed())
    }

    /// Probes member `i` every `interval` until a linearizable read
    /// succeeds; fails at once if any running member exits.
    fn await_serving(
        &mut self,
        i: usize,
        deadline: Instant,
        interval: Duration,
        probe: &Probe,
    ) -> Result<()> {
        let address = self.inner.host_port(i);
        loop {
            self.inner.check_alive(i)?;
            for other in 0..self.inner.len() {
                if self.inner.is_running(other) {
                    self.inner.check_alive(other)?;
                }
            }
            let last_error = match probe.linearizable_get(&address) {
                Ok(()) => return Ok(()),
                Err(error) => error,
            };
            if Instant::now() >= deadline {
                bail!(
                    "{} {} did not serve a linearizable read within {READY_TIMEOUT:?} \
                     (last error: {last_error:#})\n{}",
                    self.inner.implementation().name(),
                    self.inner.name(i),
                    self.inner.log_tail(i, LOG_TAIL_LINES)
                );
            }
            thread::sleep(interval);
        }
    }
}
