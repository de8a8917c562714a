//! Child processes with bounds: runs to completion, waits for exit, signals
//! through the `kill` command (no `unsafe`), and the environment scrub every
//! server and etcdctl gets.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// How often a child is polled while waiting for it.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// The bound on the `kill` command.
const SIGNAL_TIMEOUT: Duration = Duration::from_secs(30);
/// How the reference binaries are installed.
pub(crate) const INSTALL_HINT: &str = "apt-get install etcd-server etcd-client";

/// Fails the test with the install command when a reference binary is missing.
pub fn require_installed(path: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is not installed: run `{INSTALL_HINT}` (`make test` installs them)"
    );
}

/// Servers and etcdctl must not pick up the caller's `ETCD*` settings (both
/// servers read every flag from the environment too).
pub fn scrub_env(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("ETCD") {
            command.env_remove(key);
        }
    }
}

/// Sends `signal` (`TERM`, `STOP`, `CONT`, …) to `pid`.
pub fn signal(pid: u32, signal: &str) -> Result<()> {
    kill(&pid.to_string(), signal)
}

/// Sends `signal` to every process of the group `pgid`: a child spawned
/// with `process_group(0)` leads its own group, whose id is its pid, so
/// this reaches the commands it started too.
pub fn signal_group(pgid: u32, signal: &str) -> Result<()> {
    kill(&format!("-{pgid}"), signal)
}

fn kill(target: &str, signal: &str) -> Result<()> {
    let flag = format!("-{signal}");
    let sent = try_run_bounded(
        Command::new("kill").args([&flag, "--", target]),
        None,
        SIGNAL_TIMEOUT,
    )?;
    if sent.status.success() {
        Ok(())
    } else {
        Err(Error::Command {
            command: format!("kill {flag} -- {target}"),
            output: format!("{}: {}", sent.status, String::from_utf8_lossy(&sent.stderr)),
        })
    }
}

/// Runs a command to completion with a bound; kills it and fails the test
/// if it takes longer.
pub fn run_bounded(command: &mut Command, stdin: Option<&str>, timeout: Duration) -> Output {
    try_run_bounded(command, stdin, timeout).unwrap_or_else(|e| panic!("{e}"))
}

/// [`run_bounded`], with failure to spawn or to finish in time as an error.
pub fn try_run_bounded(
    command: &mut Command,
    stdin: Option<&str>,
    timeout: Duration,
) -> Result<Output> {
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|source| Error::Io {
        what: format!("spawn {command:?}"),
        source,
    })?;
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
        return Err(Error::Command {
            command: format!("{command:?}"),
            output: format!("did not finish within {timeout:?}"),
        });
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
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
    wait_until(child, Instant::now() + timeout)
}

/// Polls until the child exits or `deadline` passes (then `None`).
pub fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
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

/// The last `lines` lines of `text`.
pub fn tail_lines(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bounded_run_returns_output_and_status() {
        let out = run_bounded(
            Command::new("sh").args(["-c", "cat; echo err >&2; exit 3"]),
            Some("in"),
            Duration::from_secs(10),
        );
        assert_eq!(out.stdout, b"in");
        assert_eq!(out.stderr, b"err\n");
        assert_eq!(out.status.code(), Some(3));
    }

    #[test]
    fn a_run_past_its_bound_is_an_error() {
        let error = try_run_bounded(
            Command::new("sleep").arg("10"),
            None,
            Duration::from_millis(100),
        )
        .unwrap_err();
        assert!(error.to_string().contains("did not finish"), "{error}");
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail_lines("a", 5), "a");
        assert_eq!(tail_lines("", 5), "");
    }
}
