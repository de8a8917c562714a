//! The conformance suite every engine under [`BufferedBackend`] must pass.
//! Each case is a function taking a factory of fresh backends ([`Factory`]);
//! it panics on the first broken expectation.
//! [`backend_conformance!`](crate::backend_conformance) makes one `#[test]`
//! per case for an engine, given a runner that hands each case a factory:
//!
//! ```
//! mod mem {
//!     use ironcd_backend::{testkit::Factory, MemBackend, MemEngine};
//!
//!     fn with_memory(case: fn(Factory<'_, MemEngine>)) {
//!         case(&MemBackend::open_in_memory)
//!     }
//!     ironcd_backend::backend_conformance!(with_memory);
//! }
//! # fn main() {}
//! ```

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{
    restore_snapshot, Backend, BackendConfig, BatchTx, Bucket, BufferedBackend, Engine, Error,
    ReadTx,
};

/// Makes an empty backend with the given config.
pub type Factory<'a, E> = &'a (dyn Fn(BackendConfig) -> BufferedBackend<E> + Sync);

/// One `#[test]` per conformance case, each named after its case so a
/// failure names itself. `$run` is a function (or closure) taking one case,
/// `fn(Factory<'_, E>)`, and calling it with a factory of fresh backends of
/// the engine under test; it may set up what the factory needs (a temporary
/// directory) around the call. Expand it inside a module per engine. The
/// list here is the one list of cases: a new case is added to it.
#[macro_export]
macro_rules! backend_conformance {
    (@cases $run:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                ($run)($crate::testkit::$case)
            }
        )*
    };
    ($run:expr) => {
        $crate::backend_conformance!(@cases $run;
            put_get_delete, range_bounds_and_limit, txn_writes_hidden_until_txn_ends,
            buffered_delete_hides_committed_value, commits_when_batch_limit_reached,
            commits_on_interval, readers_never_see_half_a_txn,
            concurrent_read_is_point_in_time, snapshot_round_trip, snapshot_rejects_damage,
            hash_depends_on_content_only, defrag_keeps_data);
    };
}

fn no_auto_commit() -> BackendConfig {
    BackendConfig {
        batch_interval_ms: 3_600_000,
        batch_limit: u64::MAX,
        ..BackendConfig::default()
    }
}

fn put(b: &impl Backend, bucket: Bucket, k: &str, v: &str) {
    b.batch_tx().put(bucket, k.as_bytes(), v.as_bytes());
}

fn get(b: &impl Backend, bucket: Bucket, k: &str) -> Option<String> {
    b.read_tx()
        .get(bucket, k.as_bytes())
        .expect("read")
        .map(|v| String::from_utf8(v).expect("utf8"))
}

fn keys(
    tx: &impl ReadTx,
    bucket: Bucket,
    start: &str,
    end: Option<&str>,
    limit: u64,
) -> Vec<String> {
    tx.range(bucket, start.as_bytes(), end.map(str::as_bytes), limit)
        .expect("range")
        .into_iter()
        .map(|(k, _)| String::from_utf8(k).expect("utf8"))
        .collect()
}

/// Basic put, overwrite, delete, and bucket isolation, before and after a
/// commit to the engine.
pub fn put_get_delete<E: Engine>(make: Factory<'_, E>) {
    for commit in [false, true] {
        let b = make(no_auto_commit());
        put(&b, Bucket::KEY, "a", "1");
        put(&b, Bucket::META, "a", "meta");
        put(&b, Bucket::KEY, "a", "2");
        if commit {
            b.force_commit().expect("commit");
        }
        assert_eq!(get(&b, Bucket::KEY, "a").as_deref(), Some("2"));
        assert_eq!(get(&b, Bucket::META, "a").as_deref(), Some("meta"));
        assert_eq!(get(&b, Bucket::LEASE, "a"), None);
        b.batch_tx().delete(Bucket::KEY, b"a");
        assert_eq!(get(&b, Bucket::KEY, "a"), None);
        b.force_commit().expect("commit");
        assert_eq!(get(&b, Bucket::KEY, "a"), None);
        assert_eq!(get(&b, Bucket::META, "a").as_deref(), Some("meta"));
    }
}

/// Ranges merge buffer and engine in key order and honour bounds and limit.
pub fn range_bounds_and_limit<E: Engine>(make: Factory<'_, E>) {
    let b = make(no_auto_commit());
    for k in ["a", "c", "e"] {
        put(&b, Bucket::KEY, k, k);
    }
    b.force_commit().expect("commit");
    for k in ["b", "d", "f"] {
        put(&b, Bucket::KEY, k, k);
    }
    let tx = b.read_tx();
    assert_eq!(
        keys(&tx, Bucket::KEY, "a", Some(""), 0),
        ["a", "b", "c", "d", "e", "f"]
    );
    assert_eq!(keys(&tx, Bucket::KEY, "b", Some("e"), 0), ["b", "c", "d"]);
    assert_eq!(
        keys(&tx, Bucket::KEY, "a", Some("z"), 4),
        ["a", "b", "c", "d"]
    );
    assert_eq!(keys(&tx, Bucket::KEY, "c", None, 0), ["c"]);
    assert_eq!(keys(&tx, Bucket::KEY, "cc", None, 0), Vec::<String>::new());
    assert_eq!(
        keys(&tx, Bucket::KEY, "e", Some("b"), 0),
        Vec::<String>::new()
    );
    assert_eq!(
        keys(&tx, Bucket::META, "", Some(""), 0),
        Vec::<String>::new()
    );
    let mut seen = Vec::new();
    tx.scan(Bucket::KEY, b"b", Some(b""), &mut |k, _| {
        seen.push(k.to_vec());
        if seen.len() == 2 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .expect("scan");
    assert_eq!(seen, [b"b".to_vec(), b"c".to_vec()]);
}

/// A write txn's writes are visible to itself at once and to readers only
/// once the guard drops.
pub fn txn_writes_hidden_until_txn_ends<E: Engine>(make: Factory<'_, E>) {
    let b = make(no_auto_commit());
    let mut tx = b.batch_tx();
    tx.put(Bucket::KEY, b"k", b"v");
    assert_eq!(tx.get(Bucket::KEY, b"k").expect("get"), Some(b"v".to_vec()));
    assert_eq!(b.read_tx().get(Bucket::KEY, b"k").expect("get"), None);
    assert_eq!(
        b.concurrent_read_tx().get(Bucket::KEY, b"k").expect("get"),
        None
    );
    drop(tx);
    assert_eq!(
        b.read_tx().get(Bucket::KEY, b"k").expect("get"),
        Some(b"v".to_vec())
    );
    assert_eq!(
        b.concurrent_read_tx().get(Bucket::KEY, b"k").expect("get"),
        Some(b"v".to_vec())
    );
}

/// A delete waiting in the buffer hides the engine's older value, in point
/// reads and in ranges.
pub fn buffered_delete_hides_committed_value<E: Engine>(make: Factory<'_, E>) {
    let b = make(no_auto_commit());
    put(&b, Bucket::KEY, "a", "1");
    put(&b, Bucket::KEY, "b", "2");
    b.force_commit().expect("commit");
    b.batch_tx().delete(Bucket::KEY, b"a");
    assert_eq!(get(&b, Bucket::KEY, "a"), None);
    assert_eq!(keys(&b.read_tx(), Bucket::KEY, "", Some(""), 0), ["b"]);
    assert_eq!(
        keys(&b.concurrent_read_tx(), Bucket::KEY, "", Some(""), 0),
        ["b"]
    );
}

/// Reaching `batch_limit` buffered writes commits them to the engine.
pub fn commits_when_batch_limit_reached<E: Engine>(make: Factory<'_, E>) {
    let b = make(BackendConfig {
        batch_limit: 10,
        ..no_auto_commit()
    });
    for i in 0..9 {
        put(&b, Bucket::KEY, &format!("k{i}"), "v");
    }
    assert_eq!(b.pending_writes(), 9);
    assert_eq!(b.engine().get(Bucket::KEY, b"k0").expect("get"), None);
    put(&b, Bucket::KEY, "k9", "v");
    assert_eq!(b.pending_writes(), 0);
    assert_eq!(
        b.engine().get(Bucket::KEY, b"k0").expect("get"),
        Some(b"v".to_vec())
    );
}

/// Buffered writes reach the engine within the batch interval.
pub fn commits_on_interval<E: Engine>(make: Factory<'_, E>) {
    let b = make(BackendConfig {
        batch_interval_ms: 5,
        batch_limit: u64::MAX,
        ..BackendConfig::default()
    });
    put(&b, Bucket::KEY, "k", "v");
    let deadline = Instant::now() + Duration::from_secs(30);
    while b.engine().get(Bucket::KEY, b"k").expect("get").is_none() {
        assert!(Instant::now() < deadline, "interval commit never happened");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(b.pending_writes(), 0);
}

/// Two keys written in one txn always read equal, from every kind of read
/// tx, while commits to the engine happen underneath; and values never go
/// backwards.
pub fn readers_never_see_half_a_txn<E: Engine>(make: Factory<'_, E>) {
    let b = make(BackendConfig {
        batch_interval_ms: 1,
        batch_limit: 50,
        ..BackendConfig::default()
    });
    let done = AtomicBool::new(false);
    let read = |concurrent: bool| {
        let mut last = 0u64;
        let mut reads = 0u64;
        while !done.load(Ordering::Acquire) || reads < 100 {
            let (x, y) = if concurrent {
                let tx = b.concurrent_read_tx();
                (
                    tx.get(Bucket::KEY, b"x").expect("x"),
                    tx.get(Bucket::META, b"y").expect("y"),
                )
            } else {
                let tx = b.read_tx();
                (
                    tx.get(Bucket::KEY, b"x").expect("x"),
                    tx.get(Bucket::META, b"y").expect("y"),
                )
            };
            assert_eq!(x, y, "torn txn seen");
            let n = x.map_or(0, |v| u64::from_be_bytes(v.try_into().expect("8 bytes")));
            assert!(n >= last, "value went backwards: {n} < {last}");
            last = n;
            reads += 1;
        }
    };
    std::thread::scope(|s| {
        s.spawn(|| read(false));
        s.spawn(|| read(true));
        for i in 1..=2_000u64 {
            let mut tx = b.batch_tx();
            tx.put(Bucket::KEY, b"x", &i.to_be_bytes());
            tx.put(Bucket::KEY, format!("filler{}", i % 7).as_bytes(), b"f");
            tx.put(Bucket::META, b"y", &i.to_be_bytes());
        }
        done.store(true, Ordering::Release);
    });
}

/// A concurrent read tx keeps its point in time across later writes and
/// commits.
pub fn concurrent_read_is_point_in_time<E: Engine>(make: Factory<'_, E>) {
    let b = make(no_auto_commit());
    put(&b, Bucket::KEY, "a", "old");
    b.force_commit().expect("commit");
    put(&b, Bucket::KEY, "b", "buffered");
    let view = b.concurrent_read_tx();
    put(&b, Bucket::KEY, "a", "new");
    b.batch_tx().delete(Bucket::KEY, b"b");
    b.force_commit().expect("commit");
    assert_eq!(
        view.get(Bucket::KEY, b"a").expect("get"),
        Some(b"old".to_vec())
    );
    assert_eq!(
        view.get(Bucket::KEY, b"b").expect("get"),
        Some(b"buffered".to_vec())
    );
    assert_eq!(get(&b, Bucket::KEY, "a").as_deref(), Some("new"));
}

fn fill(b: &impl Backend, n: u32) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        let mut tx = b.batch_tx();
        for i in chunk {
            let bucket = Bucket::from_index(*i as usize % Bucket::COUNT).expect("bucket");
            tx.put(
                bucket,
                format!("key-{i:06}").as_bytes(),
                &i.to_le_bytes().repeat(5),
            );
        }
    }
}

fn contents(b: &impl Backend) -> Vec<(Bucket, Vec<u8>, Vec<u8>)> {
    let tx = b.concurrent_read_tx();
    Bucket::all()
        .flat_map(|bucket| {
            tx.range(bucket, &[], Some(&[]), 0)
                .expect("range")
                .into_iter()
                .map(move |(k, v)| (bucket, k, v))
        })
        .collect()
}

/// A snapshot stream restores into a fresh backend with identical contents
/// and hash, including writes still in the buffer when it was taken.
pub fn snapshot_round_trip<E: Engine>(make: Factory<'_, E>) {
    let b = make(no_auto_commit());
    fill(&b, 1_000);
    b.force_commit().expect("commit");
    put(&b, Bucket::ALARM, "buffered", "yes");
    let mut stream = Vec::new();
    let written = b.snapshot(&mut stream).expect("snapshot");
    assert_eq!(written, stream.len() as u64);
    let restored = make(no_auto_commit());
    assert_eq!(
        restore_snapshot(&restored, &mut stream.as_slice()).expect("restore"),
        1_001
    );
    assert_eq!(contents(&restored), contents(&b));
    let all = |_: Bucket, _: &[u8]| false;
    assert_eq!(
        restored.hash(&all).expect("hash"),
        b.hash(&all).expect("hash")
    );
    assert!(matches!(
        restore_snapshot(&restored, &mut stream.as_slice()),
        Err(Error::NotEmpty)
    ));
}

/// Truncated, bit-flipped and foreign streams are refused.
pub fn snapshot_rejects_damage<E: Engine>(make: Factory<'_, E>) {
    let b = make(no_auto_commit());
    fill(&b, 50);
    let mut stream = Vec::new();
    b.snapshot(&mut stream).expect("snapshot");
    for cut in [0, 4, 8, 20, stream.len() / 2, stream.len() - 1] {
        let r = restore_snapshot(&make(no_auto_commit()), &mut &stream[..cut]);
        assert!(
            matches!(r, Err(Error::CorruptSnapshot(_))),
            "cut at {cut}: {r:?}"
        );
    }
    for at in [3, 12, stream.len() / 3, stream.len() - 10, stream.len() - 2] {
        let mut damaged = stream.clone();
        damaged[at] ^= 0x10;
        let r = restore_snapshot(&make(no_auto_commit()), &mut damaged.as_slice());
        assert!(r.is_err(), "flip at {at} went unnoticed");
    }
}

/// The hash depends on contents only (not on commit history) and skips
/// ignored keys.
pub fn hash_depends_on_content_only<E: Engine>(make: Factory<'_, E>) {
    let none = |_: Bucket, _: &[u8]| false;
    let a = make(no_auto_commit());
    fill(&a, 300);
    let b = make(BackendConfig {
        batch_limit: 7,
        ..no_auto_commit()
    });
    fill(&b, 300);
    put(&b, Bucket::KEY, "extra", "x");
    b.batch_tx().delete(Bucket::KEY, b"extra");
    assert_eq!(a.hash(&none).expect("hash"), b.hash(&none).expect("hash"));
    put(&b, Bucket::META, "consistent_index", "9");
    assert_ne!(a.hash(&none).expect("hash"), b.hash(&none).expect("hash"));
    let skip_meta = |bucket: Bucket, k: &[u8]| bucket == Bucket::META && k == b"consistent_index";
    assert_eq!(
        a.hash(&skip_meta).expect("hash"),
        b.hash(&skip_meta).expect("hash")
    );
}

/// Defrag keeps every pair and the sizes stay sane; reads and writes work
/// from another thread while it runs.
pub fn defrag_keeps_data<E: Engine>(make: Factory<'_, E>) {
    let b = Arc::new(make(no_auto_commit()));
    fill(&*b, 2_000);
    b.force_commit().expect("commit");
    for i in (0..2_000).step_by(2) {
        let bucket = Bucket::from_index(i % Bucket::COUNT).expect("bucket");
        b.batch_tx()
            .delete(bucket, format!("key-{i:06}").as_bytes());
    }
    let before = contents(&*b);
    std::thread::scope(|s| {
        s.spawn(|| b.defrag().expect("defrag"));
        put(&*b, Bucket::KEY, "during", "defrag");
    });
    let mut expected = before;
    expected.push((Bucket::KEY, b"during".to_vec(), b"defrag".to_vec()));
    expected.sort();
    assert_eq!(contents(&*b), expected);
    assert!(b.size_bytes() > 0);
    assert!(b.size_in_use_bytes() > 0);
}
