//! Memory per idle watcher: 100 000 synced single-key watchers on 100
//! streams, resident memory growth per watcher (beyond nothing: the keys
//! are 23 bytes). Each measurement runs in a fresh child process. Run:
//! `cargo bench -p ironcd-watch --bench watcher_memory`.

use std::sync::Arc;

use ironcd_watch::{WatchConfig, WatchRequest, WatchStream, WatchableStore};

#[path = "support/fixed.rs"]
mod fixed;
use fixed::Fixed;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("rss field");
    pages * 4096
}

fn measure(watchers: usize, ranges: bool) {
    let store = WatchableStore::new(Arc::new(Fixed), WatchConfig::default());
    let streams: Vec<_> = (0..100).map(|_| WatchStream::new(&store)).collect();
    let before = rss_bytes();
    for i in 0..watchers {
        let key = format!("/registry/pods/{i:08}").into_bytes();
        let range_end = if ranges {
            let mut end = key.clone();
            end.push(0xff);
            end
        } else {
            Vec::new()
        };
        streams[i % streams.len()]
            .0
            .watch(WatchRequest {
                key,
                range_end,
                ..WatchRequest::default()
            })
            .expect("watch");
    }
    let after = rss_bytes();
    println!(
        "watcher_memory watchers={watchers} kind={} rss_per_watcher={:.0} bytes",
        if ranges { "range" } else { "key" },
        (after - before) as f64 / watchers as f64
    );
    std::hint::black_box(&streams);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--child") {
        measure(100_000, args[i + 1] == "range");
        return;
    }
    for kind in ["key", "range"] {
        let status = std::process::Command::new(&args[0])
            .args(["--child", kind])
            .status()
            .expect("spawn child");
        assert!(status.success());
    }
}
