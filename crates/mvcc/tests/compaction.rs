//! Compaction: resumes after a crash between scheduling and finishing, and
//! lets reads and writes run while it deletes history.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ironcd_backend::{Backend, BackendConfig, BatchTx, Bucket, ReadTx, RocksBackend};
use ironcd_mvcc::{
    BucketKey, Error, RangeOptions, Revision, Store, StoreConfig, FINISHED_COMPACT_KEY,
    SCHEDULED_COMPACT_KEY,
};

fn open(dir: &std::path::Path) -> Store<RocksBackend> {
    let backend = Arc::new(RocksBackend::open(dir, BackendConfig::default()).expect("open"));
    let config = StoreConfig {
        compaction_batch_limit: 10,
        ..StoreConfig::default()
    };
    Store::open(backend, config).expect("store")
}

fn revisions_in_backend(store: &Store<RocksBackend>) -> Vec<i64> {
    store
        .backend()
        .read_tx()
        .range(Bucket::KEY, &[], Some(&[]), 0)
        .expect("range")
        .iter()
        .map(|(k, _)| BucketKey::decode(k).expect("revision key").rev.main)
        .collect()
}

fn meta_rev(store: &Store<RocksBackend>, key: &[u8]) -> Option<i64> {
    let tx = store.backend().read_tx();
    let v = tx.get(Bucket::META, key).expect("meta")?;
    Some(BucketKey::decode(&v).expect("revision").rev.main)
}

#[test]
fn an_interrupted_compaction_resumes_on_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(dir.path());
        for i in 0..100u32 {
            store
                .write()
                .put(format!("k{}", i % 5).as_bytes(), &i.to_be_bytes(), 0);
        }
        // What a crash right after scheduling leaves behind: the scheduled
        // mark, but no deletions and no finished mark.
        let mut tx = store.backend().batch_tx();
        tx.put(
            Bucket::META,
            SCHEDULED_COMPACT_KEY,
            &Revision::new(90, 0).to_bytes(),
        );
        drop(tx);
        store.backend().force_commit().expect("commit");
    }
    let store = open(dir.path());
    assert_eq!(store.compact_rev(), 90);
    let below = store.range(
        b"k0",
        None,
        RangeOptions {
            rev: 89,
            ..Default::default()
        },
    );
    assert!(matches!(below, Err(Error::Compacted { compacted: 90, .. })));
    // The resumed job runs in the background; a later compaction queues
    // behind it, so waiting for that one waits for both.
    store.compact(95).expect("compact").wait().expect("finish");
    assert_eq!(meta_rev(&store, FINISHED_COMPACT_KEY), Some(95));
    let revs = revisions_in_backend(&store);
    // Each of the 5 keys keeps its latest revision ≤ 95; later ones stay.
    assert_eq!(revs, (91..=101).collect::<Vec<i64>>());
    let at_95 = store.range(
        b"k",
        Some(b"l"),
        RangeOptions {
            rev: 95,
            ..Default::default()
        },
    );
    assert_eq!(at_95.expect("range").kvs.len(), 5);
}

#[test]
fn reads_and_writes_flow_during_compaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    for i in 0..20_000u32 {
        store
            .write()
            .put(format!("key{:03}", i % 300).as_bytes(), &i.to_be_bytes(), 0);
    }
    let target = store.current_rev();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut reads = 0u64;
            while !done.load(Ordering::Acquire) || reads == 0 {
                let r = store
                    .range(b"key", Some(b"kez"), RangeOptions::default())
                    .expect("range during compaction");
                assert_eq!(r.count, 300);
                reads += 1;
            }
        });
        let wait = store.compact(target).expect("compact");
        for i in 0..500u32 {
            store.write().put(b"during", &i.to_be_bytes(), 0);
        }
        wait.wait().expect("compaction");
        done.store(true, Ordering::Release);
    });
    let revs = revisions_in_backend(&store);
    assert_eq!(revs.len(), 300 + 500);
    let latest = store
        .range(b"during", None, RangeOptions::default())
        .expect("range");
    assert_eq!(latest.kvs[0].version, 500);
    assert_eq!(meta_rev(&store, FINISHED_COMPACT_KEY), Some(target));
}

#[test]
fn compaction_bounds_are_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    store.write().put(b"a", b"1", 0);
    store.write().put(b"a", b"2", 0);
    assert!(matches!(
        store.compact(9),
        Err(Error::FutureRevision {
            requested: 9,
            current: 3
        })
    ));
    store.compact(2).expect("compact").wait().expect("wait");
    assert!(matches!(
        store.compact(2),
        Err(Error::Compacted {
            requested: 2,
            compacted: 2
        })
    ));
    assert!(matches!(store.hash_by_rev(2), Err(Error::Compacted { .. })));
    assert!(matches!(
        store.hash_by_rev(4),
        Err(Error::FutureRevision { .. })
    ));
    let at_2 = store.range(
        b"a",
        None,
        RangeOptions {
            rev: 2,
            ..Default::default()
        },
    );
    assert_eq!(at_2.expect("range at compaction point").kvs[0].value, b"1");
}

/// The index is rebuilt on open from batches a second thread scans: a store
/// of many batches' worth of revisions (puts, overwrites, deletes and
/// re-creations, with history compacted away in the middle) reads the same
/// after a reopen, at the current revision and at older ones.
#[test]
fn a_reopened_store_reads_the_same_across_many_restore_batches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let snapshot = |store: &Store<RocksBackend>, rev: i64| {
        let opts = RangeOptions {
            rev,
            ..RangeOptions::default()
        };
        let r = store.range(b"\0", Some(&[]), opts).expect("range");
        let kvs: Vec<_> = r
            .kvs
            .iter()
            .map(|kv| {
                (
                    kv.key.clone(),
                    kv.value.clone(),
                    kv.create_revision,
                    kv.mod_revision,
                    kv.version,
                )
            })
            .collect();
        (r.rev, kvs)
    };
    let (before, at_old) = {
        let store = open(dir.path());
        for i in 0..12_000u32 {
            let key = format!("key/{:05}", i % 3_000);
            store.write().put(key.as_bytes(), &i.to_be_bytes(), 0);
            if i % 7 == 0 {
                store
                    .write()
                    .delete_range(format!("key/{:05}", (i + 1) % 3_000).as_bytes(), None);
            }
        }
        store
            .compact(5_000)
            .expect("compact")
            .wait()
            .expect("compacted");
        for i in 0..2_000u32 {
            store.write().put(format!("new/{i}").as_bytes(), b"v", 0);
        }
        store.backend().force_commit().expect("commit");
        (snapshot(&store, 0), snapshot(&store, 9_000))
    };
    let store = open(dir.path());
    assert_eq!(snapshot(&store, 0), before);
    assert_eq!(snapshot(&store, 9_000), at_old);
    assert!(before.1.len() > 4_000, "{} keys", before.1.len());
}

/// The events a watcher from `from` replays, as (revision, key, deleted).
fn replay(store: &Store<RocksBackend>, from: i64) -> Vec<(i64, Vec<u8>, bool)> {
    let (events, _) = store
        .read()
        .events(from, i64::MAX, usize::MAX)
        .expect("events");
    events
        .iter()
        .map(|e| {
            let kv = e.kv.as_ref().expect("an event has a kv");
            let deleted = e.r#type == ironcd_proto::mvccpb::event::EventType::Delete as i32;
            (kv.mod_revision, kv.key.clone(), deleted)
        })
        .collect()
}

/// A compaction at a delete's revision keeps that tombstone, so a watch
/// from the compaction revision (which is still allowed) gets the delete
/// (etcd #18089); the kept tombstone is not hashed, and a later compaction
/// drops it.
#[test]
fn a_delete_at_the_compaction_revision_is_still_replayed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    store.write().put(b"gone", b"v", 0); // 2
    store.write().put(b"other", b"v", 0); // 3
    let before = store.hash_by_rev(0).expect("hash").hash;
    assert_eq!(store.write().delete_range(b"gone", None), 1); // 4
    store.compact(4).expect("compact").wait().expect("finish");
    assert_eq!(replay(&store, 4), [(4, b"gone".to_vec(), true)]);
    let at_4 = store.range(
        b"gone",
        None,
        RangeOptions {
            rev: 4,
            ..Default::default()
        },
    );
    assert!(at_4.expect("range").kvs.is_empty(), "deleted at 4");
    let compacted = store.hash_by_rev(0).expect("hash").hash;
    drop(store);
    let store = open(dir.path());
    assert_eq!(
        replay(&store, 4),
        [(4, b"gone".to_vec(), true)],
        "after a restart"
    );
    assert_eq!(store.hash_by_rev(0).expect("hash").hash, compacted);
    assert_ne!(before, compacted);
    store.write().put(b"other", b"w", 0); // 5
    store.compact(5).expect("compact").wait().expect("finish");
    assert_eq!(revisions_in_backend(&store), [5]);
}

/// A compaction at a delete's revision that a crash interrupted after it
/// had deleted the key's older revisions leaves the tombstone as the key's
/// only record; the restored index keeps the key, so the compaction
/// resumed on open keeps the tombstone as well (etcd #19179).
#[test]
fn a_resumed_compaction_keeps_a_lone_tombstone_at_its_revision() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(dir.path());
        store.write().put(b"gone", b"v", 0); // 2
        store.write().put(b"other", b"v", 0); // 3
        assert_eq!(store.write().delete_range(b"gone", None), 1); // 4
        let mut tx = store.backend().batch_tx();
        tx.put(
            Bucket::META,
            SCHEDULED_COMPACT_KEY,
            &Revision::new(4, 0).to_bytes(),
        );
        tx.delete(Bucket::KEY, &Revision::new(2, 0).to_bytes());
        drop(tx);
        store.backend().force_commit().expect("commit");
    }
    let store = open(dir.path());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while meta_rev(&store, FINISHED_COMPACT_KEY) != Some(4) {
        assert!(
            std::time::Instant::now() < deadline,
            "the resumed compaction never finished"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(replay(&store, 4), [(4, b"gone".to_vec(), true)]);
    assert_eq!(revisions_in_backend(&store), [3, 4]);
}
