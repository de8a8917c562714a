//! Backend micro-benchmarks: put, point get and 100-key range on both
//! engines. Run: `cargo bench -p ironcd-backend`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ironcd_backend::{Backend, BackendConfig, BatchTx, Bucket, MemBackend, ReadTx, RocksBackend};

const KEYS: u64 = 100_000;

fn key(i: u64) -> [u8; 8] {
    i.to_be_bytes()
}

fn fill(b: &impl Backend) {
    let value = [7u8; 256];
    for chunk in 0..KEYS / 1000 {
        let mut tx = b.batch_tx();
        for i in chunk * 1000..(chunk + 1) * 1000 {
            tx.put(Bucket::KEY, &key(i), &value);
        }
    }
    b.force_commit().expect("commit");
}

fn run<B: Backend>(c: &mut Criterion, name: &str, b: &B) {
    fill(b);
    let mut group = c.benchmark_group(format!("backend/{name}"));
    group.throughput(Throughput::Elements(1));
    let value = [9u8; 256];
    let mut i = 0u64;
    group.bench_function("put", |bench| {
        bench.iter(|| {
            i = (i + 7919) % KEYS;
            b.batch_tx().put(Bucket::KEY, &key(i), &value);
        })
    });
    group.bench_function("get", |bench| {
        bench.iter(|| {
            i = (i + 7919) % KEYS;
            black_box(b.read_tx().get(Bucket::KEY, &key(i)).expect("get"));
        })
    });
    group.throughput(Throughput::Elements(100));
    group.bench_function(BenchmarkId::new("range", 100), |bench| {
        bench.iter(|| {
            i = (i + 7919) % (KEYS - 100);
            black_box(
                b.read_tx()
                    .range(Bucket::KEY, &key(i), Some(&key(i + 100)), 0)
                    .expect("range"),
            );
        })
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let mem = MemBackend::open_in_memory(BackendConfig::default());
    run(c, "memory", &mem);
    let dir = tempfile::tempdir().expect("tempdir");
    let rocks = RocksBackend::open(dir.path(), BackendConfig::default()).expect("open");
    run(c, "rocksdb", &rocks);
}

criterion_group!(backend, benches);
criterion_main!(backend);
