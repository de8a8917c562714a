//! Criterion: the cost of a grant, a renewal and an expiry scan with 1 000,
//! 100 000 and 1 000 000 leases held. Run:
//! `cargo bench -p ironcd-lease --bench lessor`.

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ironcd_backend::{Backend, BackendConfig, MemBackend};
use ironcd_lease::{Lessor, LessorConfig, ManualClock};

const SIZES: [i64; 3] = [1_000, 100_000, 1_000_000];

/// A primary lessor holding `n` leases (ids 1..=n, TTLs 60..660 s).
fn held(n: i64) -> (Lessor, Arc<ManualClock>, MemBackend) {
    let clock = Arc::new(ManualClock::new());
    let lessor = Lessor::new(LessorConfig::default(), clock.clone());
    lessor.promote(Duration::ZERO);
    let backend = MemBackend::open_in_memory(BackendConfig::default());
    for chunk in (1..=n).collect::<Vec<_>>().chunks(10_000) {
        let mut tx = backend.batch_tx();
        for &id in chunk {
            lessor.grant(&mut tx, id, 60 + id % 600).expect("grant");
        }
    }
    (lessor, clock, backend)
}

fn bench(c: &mut Criterion) {
    let mut grant = c.benchmark_group("grant");
    for n in SIZES {
        let (lessor, _, backend) = held(n);
        let mut next = n + 1;
        grant.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                lessor
                    .grant(&mut backend.batch_tx(), next, 60)
                    .expect("grant");
                next += 1;
            })
        });
    }
    grant.finish();
    let mut renew = c.benchmark_group("renew");
    for n in SIZES {
        let (lessor, _, _backend) = held(n);
        let mut id = 0;
        renew.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                id = id % n + 1;
                lessor.renew(id).expect("renew")
            })
        });
    }
    renew.finish();
    // One tick with nothing expired (the scan every 500 ms on the leader),
    // and one that hands out 500 expired leases (the revoke rate's half
    // second), each from a pile of `n`.
    let mut scan = c.benchmark_group("expiry_scan_idle");
    for n in SIZES {
        let (lessor, _, _backend) = held(n);
        scan.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| lessor.tick(500))
        });
    }
    scan.finish();
    let mut expire = c.benchmark_group("expiry_scan_500_expired");
    for n in SIZES {
        let (lessor, clock, _backend) = held(n);
        clock.advance(Duration::from_secs(10_000));
        expire.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                let tick = lessor.tick(500);
                // Handed-out leases come back after the retry interval:
                // move past it so the pile never runs dry.
                clock.advance(Duration::from_secs(4));
                tick
            })
        });
    }
    expire.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
