//! Memory per lease: 1 000 000 leases granted on a primary lessor (each in
//! the expiry heap), resident memory growth per lease and in all, without
//! the backend (the records are written to a batch that is thrown away,
//! so only the lessor's own memory counts); then one 24-byte key attached
//! to each, and the growth again. Run:
//! `cargo bench -p ironcd-lease --bench lease_memory`.

use std::sync::Arc;
use std::time::Duration;

use ironcd_backend::{BatchTx, Bucket, ReadTx, Visitor};
use ironcd_lease::{Lessor, LessorConfig, ManualClock};

/// A batch that keeps nothing.
struct Discard;

impl ReadTx for Discard {
    fn get_with(
        &self,
        _: Bucket,
        _: &[u8],
        _: ironcd_backend::ValueReader<'_>,
    ) -> ironcd_backend::Result<bool> {
        Ok(false)
    }
    fn scan(
        &self,
        _: Bucket,
        _: &[u8],
        _: Option<&[u8]>,
        _: Visitor<'_>,
    ) -> ironcd_backend::Result<()> {
        Ok(())
    }
}

impl BatchTx for Discard {
    fn put(&mut self, _: Bucket, _: &[u8], _: &[u8]) {}
    fn delete(&mut self, _: Bucket, _: &[u8]) {}
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("rss field");
    pages * 4096
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    const LEASES: i64 = 1_000_000;
    let lessor = Lessor::new(LessorConfig::default(), Arc::new(ManualClock::new()));
    lessor.promote(Duration::ZERO);
    let before = rss_bytes();
    for id in 1..=LEASES {
        lessor
            .grant(&mut Discard, id, 60 + id % 600)
            .expect("grant");
    }
    let after = rss_bytes();
    println!(
        "lease_memory leases={LEASES} rss_per_lease={:.0} bytes total={:.1} MiB",
        (after - before) as f64 / LEASES as f64,
        (after - before) as f64 / (1024.0 * 1024.0)
    );
    for id in 1..=LEASES {
        lessor.attach_key(format!("/registry/leases/{id:07}").as_bytes(), id);
    }
    let with_keys = rss_bytes();
    println!(
        "lease_memory leases={LEASES} keys_per_lease=1 key_bytes=24 rss_per_lease={:.0} bytes total={:.1} MiB",
        (with_keys - before) as f64 / LEASES as f64,
        (with_keys - before) as f64 / (1024.0 * 1024.0)
    );
    std::hint::black_box(&lessor);
}
