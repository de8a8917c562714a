//! etcdctl 3.4 (API v3), every run bounded.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use crate::certs::CertFiles;
use crate::process::{require_installed, run_bounded, scrub_env};

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
