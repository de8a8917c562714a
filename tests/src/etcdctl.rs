//! etcdctl 3.4 (API v3), every run bounded.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::certs::CertFiles;
use crate::process::{
    require_installed, run_bounded, scrub_env, signal, signal_group, wait_bounded,
};

/// etcdctl 3.4, from Debian's `etcd-client` package.
pub const ETCDCTL_BIN: &str = "/usr/bin/etcdctl";
/// The bound on one etcdctl invocation (its own timeouts are shorter).
pub const ETCDCTL_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs etcdctl (API v3) against `endpoints`.
pub fn etcdctl(endpoints: &[String], args: &[&str]) -> Output {
    etcdctl_with_stdin(endpoints, args, None)
}

/// Runs etcdctl with `stdin` as its standard input (e.g. for `txn`).
pub fn etcdctl_with_stdin(endpoints: &[String], args: &[&str], stdin: Option<&str>) -> Output {
    etcdctl_with_flags(endpoints, &[], args, stdin)
}

/// Runs etcdctl with global `flags` (such as a TLS cluster's `--cacert`,
/// `--cert` and `--key`) before `args`, so that they apply even when `args`
/// ends its flags with `--`.
pub fn etcdctl_with_flags(
    endpoints: &[String],
    flags: &[String],
    args: &[&str],
    stdin: Option<&str>,
) -> Output {
    require_installed(ETCDCTL_BIN);
    let mut command = Command::new(ETCDCTL_BIN);
    scrub_env(&mut command);
    command
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", endpoints.join(",")))
        .arg("--dial-timeout=5s")
        .arg("--command-timeout=15s")
        .args(flags)
        .args(args);
    run_bounded(&mut command, stdin, ETCDCTL_TIMEOUT)
}

/// etcdctl's `--cacert`, `--cert` and `--key`: trust `ca`, present `client`
/// (for [`etcdctl_with_flags`] or [`crate::Opts::etcdctl_args`]).
pub fn etcdctl_tls_args(ca: &Path, client: &CertFiles) -> Vec<String> {
    vec![
        format!("--cacert={}", ca.display()),
        format!("--cert={}", client.cert.display()),
        format!("--key={}", client.key.display()),
    ]
}

/// A long-running etcdctl (`watch`, `elect`, `lock`) in its own process
/// group, whose standard output is collected line by line as it comes.
/// Dropping it kills the group.
pub struct RunningEtcdctl {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    /// Held open: interactive modes end when their input does.
    _stdin: Option<ChildStdin>,
    exited: bool,
}

impl RunningEtcdctl {
    /// Starts `etcdctl --endpoints=<endpoint> <args>`, with `stdin` as its
    /// input when given (and the input kept open after it).
    pub fn spawn(endpoint: &str, args: &[&str], stdin: Option<&str>) -> RunningEtcdctl {
        require_installed(ETCDCTL_BIN);
        let mut command = Command::new(ETCDCTL_BIN);
        scrub_env(&mut command);
        command
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={endpoint}"))
            .args(args)
            .process_group(0)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = command.spawn().expect("spawn etcdctl");
        let input = stdin.map(|text| {
            let mut input = child.stdin.take().expect("etcdctl's stdin");
            input
                .write_all(text.as_bytes())
                .expect("write etcdctl's stdin");
            input
        });
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let stdout = child.stdout.take().expect("etcdctl's stdout");
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        RunningEtcdctl {
            child,
            lines,
            _stdin: input,
            exited: false,
        }
    }

    /// The lines printed so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits up to `within` for `n` lines; whether they came.
    pub fn wait_for_lines(&self, n: usize, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.lines.lock().unwrap_or_else(|e| e.into_inner()).len() >= n {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// [`Self::wait_for_lines`], failing the test (with `what` and the
    /// lines so far) when they do not come.
    pub fn await_lines(&self, n: usize, within: Duration, what: &str) {
        assert!(
            self.wait_for_lines(n, within),
            "{what}: printed only {:?}",
            self.lines()
        );
    }

    /// Interrupts etcdctl as Ctrl-C would and waits up to `within` for it
    /// to exit; its status and everything it printed.
    pub fn interrupt(mut self, within: Duration) -> (ExitStatus, Vec<String>) {
        signal(self.child.id(), "INT").expect("SIGINT");
        let status = wait_bounded(&mut self.child, within).expect("etcdctl exits on SIGINT");
        self.exited = true;
        // The reader thread drains what was written before the exit.
        thread::sleep(Duration::from_millis(100));
        (status, self.lines())
    }

    /// SIGKILLs etcdctl and every process it started (its group), and
    /// returns what it printed.
    pub fn kill(mut self) -> Vec<String> {
        self.kill_group();
        thread::sleep(Duration::from_millis(100));
        self.lines()
    }

    fn kill_group(&mut self) {
        if !self.exited {
            let _ = signal_group(self.child.id(), "KILL");
            let _ = wait_bounded(&mut self.child, ETCDCTL_TIMEOUT);
            self.exited = true;
        }
    }
}

impl Drop for RunningEtcdctl {
    fn drop(&mut self) {
        self.kill_group();
    }
}
