//! Crash points for tests that kill a member in the middle of a multi-step
//! disk change: `IRONCD_FAILPOINTS=name[,name…]` in the environment makes
//! the process abort (as a SIGKILL would end it: no unwinding, no
//! destructors, nothing flushed) when it reaches a named point.
//!
//! The points are compiled into every build, so tests drive the very
//! binary users run; unarmed, a point costs one read of a value parsed
//! once at the first call. Points: `restore_before_swap`,
//! `restore_after_set_aside`, `restore_after_swap` (see
//! `RocksStorage::install`).

use std::sync::OnceLock;

/// The environment variable that arms crash points.
pub const FAILPOINTS_ENV: &str = "IRONCD_FAILPOINTS";

fn armed() -> &'static [String] {
    static ARMED: OnceLock<Vec<String>> = OnceLock::new();
    ARMED.get_or_init(|| {
        std::env::var(FAILPOINTS_ENV)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    })
}

/// Aborts the process here if `name` is armed.
pub fn crash_point(name: &'static str) {
    if armed().iter().any(|a| a == name) {
        eprintln!("{FAILPOINTS_ENV}: crashing at {name}");
        std::process::abort();
    }
}
