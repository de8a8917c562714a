//! Index memory per key: builds a `TreeIndex` of 1M keys (one put each, and
//! again with three puts each) and reports resident memory growth per key
//! beyond the key bytes. Run: `cargo bench -p ironcd-mvcc --bench index_memory`.

use ironcd_mvcc::{Revision, TreeIndex};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("rss field");
    pages * 4096
}

fn measure(keys: u64, puts_per_key: i64) {
    let key_len = format!("/registry/pods/{:016}", 0).len() as u64;
    let before = rss_bytes();
    let mut index = TreeIndex::default();
    let mut main = 1;
    for _ in 0..puts_per_key {
        for i in 0..keys {
            main += 1;
            index.put(
                format!("/registry/pods/{i:016}").as_bytes(),
                Revision::new(main, 0),
            );
        }
    }
    let after = rss_bytes();
    let per_key = (after - before) as f64 / keys as f64;
    println!(
        "index_memory keys={keys} puts_per_key={puts_per_key} key_len={key_len} rss_per_key={per_key:.1} beyond_key_bytes={:.1}",
        per_key - key_len as f64
    );
    std::hint::black_box(&index);
}

/// Each measurement runs in a fresh child process: freed memory is not
/// returned to the OS, so a second index in the same process would reuse it.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let puts: i64 = args[i + 1].parse().expect("puts per key");
        measure(1_000_000, puts);
        return;
    }
    for puts in [1, 3] {
        let status = std::process::Command::new(&args[0])
            .args(["--child", &puts.to_string()])
            .status()
            .expect("spawn child");
        assert!(status.success());
    }
}
