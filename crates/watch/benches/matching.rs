//! The cost of matching one committed event against the synced watchers:
//! 1, 1 000 and 100 000 watchers, single-key and range, the event hitting
//! one of them (sent and drained each iteration). Run:
//! `cargo bench -p ironcd-watch --bench matching`.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ironcd_proto::mvccpb::{Event, KeyValue};
use ironcd_watch::{WatchConfig, WatchRequest, WatchStream, WatchableStore};

#[path = "support/fixed.rs"]
mod fixed;
use fixed::Fixed;

fn key(i: usize) -> Vec<u8> {
    format!("/registry/pods/{i:08}").into_bytes()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("match_one_event");
    group.throughput(Throughput::Elements(1));
    for &watchers in &[1usize, 1_000, 100_000] {
        for ranges in [false, true] {
            let config = WatchConfig {
                stream_buffer: 4096,
                ..WatchConfig::default()
            };
            let store = WatchableStore::new(Arc::new(Fixed), config);
            let (stream, mut rx) = WatchStream::new(&store);
            for i in 0..watchers {
                let mut req = WatchRequest {
                    key: key(i),
                    ..WatchRequest::default()
                };
                if ranges {
                    // [key(i), key(i) + "\xff"): one key range per watcher.
                    let mut end = key(i);
                    end.push(0xff);
                    req.range_end = end;
                }
                stream.watch(req).expect("watch");
            }
            let name = if ranges { "range" } else { "key" };
            let mut rev = 1;
            group.bench_with_input(BenchmarkId::new(name, watchers), &watchers, |b, &n| {
                b.iter(|| {
                    rev += 1;
                    let event = Event {
                        kv: Some(KeyValue {
                            key: key((rev as usize * 7919) % n),
                            mod_revision: rev,
                            value: b"v".to_vec(),
                            ..KeyValue::default()
                        }),
                        ..Event::default()
                    };
                    store.on_commit(rev, vec![event]);
                    while rx.try_recv().is_ok() {}
                });
            });
            drop(stream);
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
