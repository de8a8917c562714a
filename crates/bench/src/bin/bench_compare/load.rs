//! Runs `ironcd-bench` against a cluster and reads its `--json` report.
//!
//! The contract relied on: globals before the workload name; with `--json`
//! stdout is one JSON object with `requests`, `errors`, `first_errors`,
//! `not_served`, `elapsed_secs`, `requests_per_sec` and `latency_secs`
//! (`p50`, `p99`, …); exit 0 means the run completed (perhaps with errors,
//! perhaps stopped early because the service is not served), anything else
//! that it could not run.

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use serde_json::Value;

use crate::system;

/// Stands in for the endpoint list in the command lines the report shows.
const ENDPOINTS_PLACEHOLDER: &str = "<endpoints>";
/// Lines of `ironcd-bench`'s stderr quoted when it fails.
const STDERR_TAIL_LINES: usize = 15;

/// One `ironcd-bench` invocation, without its endpoints.
#[derive(Clone, Debug)]
pub struct BenchCommand {
    /// Global options (before the workload name), `--json` and
    /// `--endpoints` excluded.
    pub global: Vec<String>,
    /// The workload, e.g. `put`.
    pub workload: String,
    /// The workload's own options (after its name).
    pub workload_args: Vec<String>,
}

impl BenchCommand {
    /// The arguments for a run against `endpoints` (comma-separated).
    fn args(&self, endpoints: &str) -> Vec<String> {
        let mut args = vec![
            "--endpoints".to_string(),
            endpoints.to_string(),
            "--json".to_string(),
        ];
        args.extend(self.global.iter().cloned());
        args.push(self.workload.clone());
        args.extend(self.workload_args.iter().cloned());
        args
    }

    /// The command line as the report shows it.
    pub fn display(&self) -> String {
        format!(
            "ironcd-bench {}",
            self.args(ENDPOINTS_PLACEHOLDER).join(" ")
        )
    }
}

/// What a completed run measured.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchReport {
    /// Requests completed without error (events delivered, for `watch`).
    pub requests: u64,
    /// Requests that failed.
    pub errors: u64,
    /// The first few distinct errors, as `ironcd-bench` words them.
    pub first_errors: Vec<String>,
    /// `requests` over the measured time (events/s, for `watch`).
    pub requests_per_sec: f64,
    /// Median latency (put→event, for `watch`).
    pub p50_secs: f64,
    /// 99th-percentile latency.
    pub p99_secs: f64,
}

/// How one `ironcd-bench` run ended.
#[derive(Clone, Debug, PartialEq)]
pub enum RunOutcome {
    /// The run completed; perhaps with errors.
    Completed(BenchReport),
    /// The server answered the workload's service with Unimplemented.
    NotServed {
        /// The gRPC service, e.g. `Watch`.
        service: String,
    },
    /// The run could not be done; why, with `ironcd-bench`'s stderr tail.
    Failed {
        /// A multi-line explanation; its first line stands alone.
        reason: String,
    },
}

/// Runs `command` against `endpoints`, its output kept in files under
/// `scratch`; kills it if it has not finished within `timeout`.
pub fn run(
    bench_binary: &Path,
    command: &BenchCommand,
    endpoints: &[String],
    scratch: &Path,
    timeout: Duration,
) -> RunOutcome {
    match run_inner(bench_binary, command, endpoints, scratch, timeout) {
        Ok(outcome) => outcome,
        Err(error) => RunOutcome::Failed {
            reason: format!("{error:#}"),
        },
    }
}

fn run_inner(
    bench_binary: &Path,
    command: &BenchCommand,
    endpoints: &[String],
    scratch: &Path,
    timeout: Duration,
) -> Result<RunOutcome> {
    let stdout_path = scratch.join(format!("{}.stdout", command.workload));
    let stderr_path = scratch.join(format!("{}.stderr", command.workload));
    let mut process = Command::new(bench_binary);
    process
        .args(command.args(&endpoints.join(",")))
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path).context("create the stdout file")?)
        .stderr(File::create(&stderr_path).context("create the stderr file")?);
    // The load generator must not pick up the caller's `ETCD*` settings.
    ironcd_tests::process::scrub_env(&mut process);
    let mut child = process
        .spawn()
        .with_context(|| format!("spawn {}", bench_binary.display()))?;
    let status = system::wait_until(&mut child, Instant::now() + timeout);
    let status = match status {
        Ok(Some(status)) => status,
        other => {
            let _ = child.kill();
            let _ = child.wait();
            other?;
            return Ok(failed(
                format!("ironcd-bench did not finish within {timeout:?}; killed"),
                &stderr_path,
            ));
        }
    };
    if !status.success() {
        return Ok(failed(
            format!("ironcd-bench failed ({status})"),
            &stderr_path,
        ));
    }
    let stdout = std::fs::read_to_string(&stdout_path).context("read ironcd-bench's stdout")?;
    match parse_report(&stdout) {
        Ok(outcome) => Ok(outcome),
        Err(error) => Ok(failed(
            format!("unreadable ironcd-bench --json output: {error:#}"),
            &stderr_path,
        )),
    }
}

/// A failure whose first line ends with stderr's last line (what the table
/// cell shows) and whose further lines are stderr's tail (for the notes).
fn failed(what: String, stderr_path: &Path) -> RunOutcome {
    let tail = system::file_tail(stderr_path, STDERR_TAIL_LINES);
    let last = tail.lines().rev().find(|line| !line.trim().is_empty());
    let reason = match last {
        None => what,
        Some(last) => format!("{what}: {}\n{tail}", last.trim()),
    };
    RunOutcome::Failed { reason }
}

/// Reads `ironcd-bench --json`'s stdout.
pub fn parse_report(stdout: &str) -> Result<RunOutcome> {
    let json: Value = serde_json::from_str(stdout.trim()).context("not one JSON object")?;
    if let Some(service) = json.get("not_served").and_then(Value::as_str) {
        return Ok(RunOutcome::NotServed {
            service: service.to_string(),
        });
    }
    let u64_field = |name: &str| {
        json.get(name)
            .and_then(Value::as_u64)
            .ok_or_else(|| anyhow!("no unsigned integer {name:?}"))
    };
    let f64_field = |value: &Value, name: &str| {
        value
            .get(name)
            .and_then(Value::as_f64)
            .ok_or_else(|| anyhow!("no number {name:?}"))
    };
    let latency = json
        .get("latency_secs")
        .ok_or_else(|| anyhow!("no \"latency_secs\""))?;
    let first_errors = json
        .get("first_errors")
        .and_then(Value::as_array)
        .map(|errors| {
            errors
                .iter()
                .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Ok(RunOutcome::Completed(BenchReport {
        requests: u64_field("requests")?,
        errors: u64_field("errors")?,
        first_errors,
        requests_per_sec: f64_field(&json, "requests_per_sec")?,
        p50_secs: f64_field(latency, "p50")?,
        p99_secs: f64_field(latency, "p99")?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = r#"{"workload": "put", "endpoints": ["http://127.0.0.1:1"],
        "clients": 256, "conns": 16, "requests": 1000, "errors": 2,
        "first_errors": ["etcdserver: too many requests"], "not_served": null,
        "elapsed_secs": 1.5, "requests_per_sec": 666.7,
        "latency_secs": {"fastest": 0.001, "slowest": 0.2, "average": 0.01,
        "stddev": 0.002, "p10": 0.002, "p25": 0.003, "p50": 0.004, "p75": 0.005,
        "p90": 0.006, "p95": 0.007, "p99": 0.05, "p99.9": 0.1}, "extra": 1}"#;

    #[test]
    fn completed_report_parses() {
        let outcome = parse_report(REPORT).unwrap();
        assert_eq!(
            outcome,
            RunOutcome::Completed(BenchReport {
                requests: 1000,
                errors: 2,
                first_errors: vec!["etcdserver: too many requests".to_string()],
                requests_per_sec: 666.7,
                p50_secs: 0.004,
                p99_secs: 0.05,
            })
        );
    }

    #[test]
    fn not_served_wins_over_figures() {
        let text = REPORT.replace(r#""not_served": null"#, r#""not_served": "Watch""#);
        assert_eq!(
            parse_report(&text).unwrap(),
            RunOutcome::NotServed {
                service: "Watch".to_string()
            }
        );
    }

    #[test]
    fn missing_fields_and_garbage_are_errors() {
        assert!(parse_report("").is_err());
        assert!(parse_report("progress 50%\n{}").is_err());
        let text = REPORT.replace(r#""p99": 0.05,"#, "");
        assert!(parse_report(&text).is_err());
    }

    /// An executable script at `dir/name`, written by a child process so
    /// that this (multi-threaded) test process never holds a writable
    /// descriptor of a file it executes (ETXTBSY).
    fn script(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        let status = Command::new("sh")
            .args([
                "-c",
                r#"printf '#!/bin/sh\n%s\n' "$1" > "$2" && chmod +x "$2""#,
                "sh",
            ])
            .arg(body)
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
        path
    }

    fn run_script(body: &str, timeout: Duration) -> RunOutcome {
        let dir = tempfile::tempdir().unwrap();
        let binary = script(dir.path(), "fake-bench", body);
        let command = BenchCommand {
            global: vec!["--clients".into(), "1".into()],
            workload: "put".into(),
            workload_args: Vec::new(),
        };
        let endpoints = ["http://127.0.0.1:1".to_string(), "127.0.0.1:2".to_string()];
        run(&binary, &command, &endpoints, dir.path(), timeout)
    }

    #[test]
    fn runs_report_what_the_process_printed() {
        let echo_args = format!(
            r#"test "$*" = "--endpoints http://127.0.0.1:1,127.0.0.1:2 --json --clients 1 put" || exit 9
cat <<'EOF'
{REPORT}
EOF"#
        );
        let outcome = run_script(&echo_args, Duration::from_secs(30));
        assert!(matches!(outcome, RunOutcome::Completed(_)), "{outcome:?}");
    }

    #[test]
    fn failed_runs_quote_stderr_s_last_line_first() {
        let outcome = run_script(
            "echo 'connecting' >&2; echo 'no route | to host' >&2; exit 3",
            Duration::from_secs(30),
        );
        let RunOutcome::Failed { reason } = outcome else {
            panic!("{outcome:?}");
        };
        assert_eq!(
            reason,
            "ironcd-bench failed (exit status: 3): no route | to host\nconnecting\nno route | to host"
        );
        let outcome = run_script("echo '{\"requests\": 1}'", Duration::from_secs(30));
        let RunOutcome::Failed { reason } = outcome else {
            panic!("{outcome:?}");
        };
        assert!(
            reason.starts_with("unreadable ironcd-bench --json output"),
            "{reason}"
        );
    }

    #[test]
    fn runs_past_their_bound_are_killed() {
        let started = Instant::now();
        let outcome = run_script("exec sleep 60", Duration::from_millis(200));
        assert!(started.elapsed() < Duration::from_secs(30));
        let RunOutcome::Failed { reason } = outcome else {
            panic!("{outcome:?}");
        };
        assert!(
            reason.starts_with("ironcd-bench did not finish within"),
            "{reason}"
        );
    }

    #[test]
    fn display_puts_globals_before_the_workload() {
        let command = BenchCommand {
            global: vec!["--clients".into(), "8".into()],
            workload: "watch".into(),
            workload_args: vec!["--watchers".into(), "100".into()],
        };
        assert_eq!(
            command.display(),
            "ironcd-bench --endpoints <endpoints> --json --clients 8 watch --watchers 100"
        );
    }
}
