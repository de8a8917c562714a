//! The operating system's side of the measurements: bounded waits on the
//! load generator and helper commands, `/proc` figures, `du`-like sizes, and
//! the facts about the machine the report states. (Starting and stopping
//! servers is the harness's, `ironcd_tests`.)

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// How often a child process is polled while waiting for it.
const WAIT_POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Bound on the small helper commands (`date`, `uname`, `stat`, `--version`).
const HELPER_TIMEOUT: Duration = Duration::from_secs(10);
/// The unit `du` and `stat` count blocks in, whatever the file system's.
const BLOCK_BYTES: u64 = 512;

/// Polls `child` until it exits (its status) or `deadline` passes (`None`).
pub fn wait_until(child: &mut Child, deadline: Instant) -> Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait().context("poll a child process")? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(WAIT_POLL_INTERVAL);
    }
}

/// Runs a short helper command to completion within [`HELPER_TIMEOUT`],
/// draining its output pipes as it runs; kills it if it takes longer.
pub fn run_bounded(command: &mut Command) -> Result<Output> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .with_context(|| format!("spawn {command:?}"))?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let Some(status) = wait_until(&mut child, Instant::now() + HELPER_TIMEOUT)? else {
        let _ = child.kill();
        let _ = child.wait();
        bail!("{command:?} did not finish within {HELPER_TIMEOUT:?}");
    };
    let join = |handle: thread::JoinHandle<Vec<u8>>| handle.join().unwrap_or_default();
    Ok(Output {
        status,
        stdout: join(stdout),
        stderr: join(stderr),
    })
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}

/// The first line a helper command prints on stdout, or why there is none.
pub fn first_line_of(command: &mut Command) -> String {
    match run_bounded(command) {
        Ok(output) => String::from_utf8_lossy(&output.stdout)
            .lines()
            .next()
            .map(|line| line.trim().to_string())
            .filter(|line| !line.is_empty())
            .unwrap_or_else(|| format!("unknown ({})", output.status)),
        Err(error) => format!("unknown ({error:#})"),
    }
}

/// The last `lines` lines of `text`.
pub fn tail_lines(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The last `lines` lines of the file at `path` (empty if unreadable).
pub fn file_tail(path: &Path, lines: usize) -> String {
    let bytes = fs::read(path).unwrap_or_default();
    tail_lines(&String::from_utf8_lossy(&bytes), lines)
}

/// Bytes allocated to the tree at `path`, as `du -s` counts them: every
/// file's and directory's blocks, hard links once, symlinks not followed.
pub fn disk_usage_bytes(path: &Path) -> io::Result<u64> {
    let mut seen = BTreeSet::new();
    disk_usage_walk(path, &mut seen)
}

fn disk_usage_walk(path: &Path, seen: &mut BTreeSet<(u64, u64)>) -> io::Result<u64> {
    let metadata = fs::symlink_metadata(path)?;
    let mut bytes = 0;
    if seen.insert((metadata.dev(), metadata.ino())) {
        bytes += metadata.blocks() * BLOCK_BYTES;
    }
    if metadata.is_dir() {
        for entry in fs::read_dir(path)? {
            bytes += disk_usage_walk(&entry?.path(), seen)?;
        }
    }
    Ok(bytes)
}

/// A `kB` field of `/proc/PID/status` (e.g. `VmHWM`, `VmRSS`), in bytes.
pub fn proc_status_bytes(pid: u32, field: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let mut text = String::new();
    File::open(&path)
        .and_then(|mut file| file.read_to_string(&mut text))
        .with_context(|| format!("read {path}"))?;
    status_field_bytes(&text, field).ok_or_else(|| anyhow!("{path} has no {field} in kB"))
}

/// Parses `FIELD:   1234 kB` out of a `/proc/PID/status` text.
fn status_field_bytes(status: &str, field: &str) -> Option<u64> {
    let line = status
        .lines()
        .find(|line| line.split(':').next() == Some(field))?;
    let mut words = line.split(':').nth(1)?.split_whitespace();
    let kibibytes: u64 = words.next()?.parse().ok()?;
    (words.next()? == "kB").then_some(kibibytes * 1024)
}

/// Today's date and time in UTC, from the system clock.
pub fn now_utc() -> String {
    first_line_of(Command::new("date").args(["-u", "+%F %H:%M UTC"]))
}

/// One line on the machine: CPUs, RAM, kernel, and the file system that
/// holds the data directories under `scratch`.
pub fn machine(scratch: &Path) -> String {
    let cpus = thread::available_parallelism().map_or(0, usize::from);
    let model = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|model| model.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string());
    let memory = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| status_field_bytes(&text, "MemTotal"))
        .map_or_else(
            || "unknown RAM".to_string(),
            |bytes| format!("{:.1} GiB RAM", bytes as f64 / (1u64 << 30) as f64),
        );
    let kernel = first_line_of(Command::new("uname").arg("-r"));
    let file_system = scratch_file_system(scratch);
    format!(
        "{cpus} CPUs ({model}), {memory}, Linux {kernel}; data directories under `{}` ({file_system})",
        scratch.display()
    )
}

/// The file system type of `dir`, as `stat -f` names it.
pub fn scratch_file_system(dir: &Path) -> String {
    first_line_of(Command::new("stat").args(["-f", "-c", "%T"]).arg(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn disk_usage_counts_allocated_blocks_like_du() {
        let dir = tempfile::tempdir().unwrap();
        let empty = disk_usage_bytes(dir.path()).unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        let mut file = File::create(dir.path().join("sub/data")).unwrap();
        file.write_all(&vec![7u8; 1 << 20]).unwrap();
        file.sync_all().unwrap();
        let sparse = File::create(dir.path().join("sparse")).unwrap();
        sparse.set_len(64 << 20).unwrap();
        fs::hard_link(dir.path().join("sub/data"), dir.path().join("link")).unwrap();

        let total = disk_usage_bytes(dir.path()).unwrap();
        // The written MiB counts once (hard link), the sparse file's length
        // not at all; directories add a few blocks each.
        let grown = total - empty;
        assert!(
            (1 << 20..(1 << 20) + (256 << 10)).contains(&grown),
            "grew by {grown} bytes"
        );
        let du = Command::new("du")
            .args(["-s", "-B1"])
            .arg(dir.path())
            .output()
            .unwrap();
        let du_bytes: u64 = String::from_utf8_lossy(&du.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(total, du_bytes, "du -s -B1 disagrees");
    }

    #[test]
    fn disk_usage_of_missing_path_is_an_error() {
        assert!(disk_usage_bytes(Path::new("/nonexistent/bench-compare")).is_err());
    }

    #[test]
    fn status_fields_parse_in_bytes() {
        let status =
            "Name:\tetcd\nVmPeak:\t  900 kB\nVmHWM:\t   12345 kB\nVmRSS:\t  100 kB\nThreads:\t9\n";
        assert_eq!(status_field_bytes(status, "VmHWM"), Some(12345 * 1024));
        assert_eq!(status_field_bytes(status, "VmRSS"), Some(100 * 1024));
        assert_eq!(status_field_bytes(status, "Threads"), None);
        assert_eq!(status_field_bytes(status, "VmSwap"), None);
    }

    #[test]
    fn own_process_has_a_peak_rss() {
        let peak = proc_status_bytes(std::process::id(), "VmHWM").unwrap();
        assert!(peak > 0);
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail_lines("a", 5), "a");
        assert_eq!(tail_lines("", 5), "");
    }
}
