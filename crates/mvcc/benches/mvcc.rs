//! mvcc benchmarks. Run: `cargo bench -p ironcd-mvcc --bench mvcc`.
//!
//! put, point range, 100-key range and a read-modify-write txn on the
//! in-memory backend (one thread); compaction of 1M revisions and restore
//! (open) of 1M keys with 256-byte values on RocksDB.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ironcd_backend::{Backend, BackendConfig, MemBackend, RocksBackend};
use ironcd_mvcc::{RangeOptions, Store, StoreConfig};

const KEYS: u64 = 100_000;

fn key(i: u64) -> Vec<u8> {
    format!("/registry/pods/{i:016}").into_bytes()
}

fn mem_store() -> Store<MemBackend> {
    let backend = Arc::new(MemBackend::open_in_memory(BackendConfig::default()));
    Store::open(backend, StoreConfig::default()).expect("open")
}

fn fill<B: Backend>(store: &Store<B>, keys: u64, value: &[u8]) {
    for i in 0..keys {
        store.write().put(&key(i), value, 0);
    }
}

fn in_memory(c: &mut Criterion) {
    let value = vec![1u8; 256];
    // Writes and reads get stores of their own: puts grow history, which
    // would make the read figures depend on how long the put bench ran.
    let store = mem_store();
    fill(&store, KEYS, &value);
    let read_store = mem_store();
    fill(&read_store, KEYS, &value);
    read_store.backend().force_commit().expect("commit");
    // Keys are made up front so the loops measure the store, not format!.
    let keys: Vec<Vec<u8>> = (0..KEYS).map(key).collect();
    let key = |i: u64| keys[i as usize].as_slice();
    let mut group = c.benchmark_group("mvcc/memory");
    group.throughput(Throughput::Elements(1));
    let mut i = 0u64;
    group.bench_function("put", |b| {
        b.iter(|| {
            i = (i + 7919) % KEYS;
            store.write().put(key(i), &value, 0);
        })
    });
    group.bench_function("range_1", |b| {
        b.iter(|| {
            i = (i + 7919) % KEYS;
            black_box(
                read_store
                    .range(key(i), None, RangeOptions::default())
                    .expect("range"),
            );
        })
    });
    group.bench_function("txn_range_put", |b| {
        b.iter(|| {
            i = (i + 7919) % KEYS;
            let k = key(i);
            let mut txn = store.write();
            let found = txn.range(k, None, RangeOptions::default()).expect("range");
            if found.kvs.first().is_some_and(|kv| kv.version > 0) {
                txn.put(k, &value, 0);
            }
        })
    });
    group.throughput(Throughput::Elements(100));
    group.bench_function("range_100", |b| {
        b.iter(|| {
            i = (i + 7919) % (KEYS - 100);
            let r = read_store.range(key(i), Some(key(i + 100)), RangeOptions::default());
            black_box(r.expect("range"));
        })
    });
    group.finish();
}

fn rocks_store(dir: &std::path::Path) -> Store<RocksBackend> {
    let backend = Arc::new(RocksBackend::open(dir, BackendConfig::default()).expect("open"));
    Store::open(backend, StoreConfig::default()).expect("open store")
}

fn compaction(c: &mut Criterion) {
    let mut group = c.benchmark_group("mvcc/rocksdb");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(1_000_000));
    group.bench_function("compact_1M_revisions", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().expect("tempdir");
                let store = rocks_store(dir.path());
                // 1M revisions over 10k keys: compaction keeps 10k of them.
                for i in 0..1_000_000u64 {
                    store.write().put(&key(i % 10_000), b"v", 0);
                }
                let start = Instant::now();
                store
                    .compact(store.current_rev())
                    .expect("compact")
                    .wait()
                    .expect("wait");
                total += start.elapsed();
            }
            total
        })
    });
    group.finish();
}

fn restore(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = rocks_store(dir.path());
        fill(&store, 1_000_000, &[3u8; 256]);
        store.backend().force_commit().expect("commit");
    }
    let mut group = c.benchmark_group("mvcc/rocksdb");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(1_000_000));
    group.bench_function("restore_1M_keys_256B", |b| {
        b.iter(|| {
            let store = rocks_store(dir.path());
            assert_eq!(store.current_rev(), 1_000_001);
            black_box(store)
        })
    });
    group.finish();
}

criterion_group!(mvcc, in_memory, compaction, restore);
criterion_main!(mvcc);
