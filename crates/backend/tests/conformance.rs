//! The backend conformance suite on both engines, one test per case and
//! engine (`mem::put_get_delete`, `rocks::put_get_delete`, …), plus
//! RocksDB's own persistence cases.

use std::sync::atomic::{AtomicU32, Ordering};

use ironcd_backend::testkit::Factory;
use ironcd_backend::{
    Backend, BackendConfig, BatchTx, Bucket, MemBackend, MemEngine, ReadTx, RocksBackend,
    RocksEngine,
};

/// Runs `case` on in-memory backends.
fn with_memory(case: fn(Factory<'_, MemEngine>)) {
    case(&MemBackend::open_in_memory)
}

/// Runs `case` on RocksDB backends, each in a fresh directory under one
/// temporary root that lives as long as the case.
fn with_rocksdb(case: fn(Factory<'_, RocksEngine>)) {
    let root = tempfile::tempdir().expect("tempdir");
    let next = AtomicU32::new(0);
    let make = |config: BackendConfig| {
        let n = next.fetch_add(1, Ordering::Relaxed);
        RocksBackend::open(root.path().join(format!("db{n}")), config).expect("open")
    };
    case(&make)
}

mod mem {
    ironcd_backend::backend_conformance!(super::with_memory);
}

mod rocks {
    ironcd_backend::backend_conformance!(super::with_rocksdb);
}

#[test]
fn rocksdb_keeps_committed_data_across_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let b = RocksBackend::open(dir.path(), BackendConfig::default()).expect("open");
        let mut tx = b.batch_tx();
        tx.put(Bucket::KEY, b"k", b"v");
        tx.put(Bucket::MEMBERS, b"m", b"1");
        drop(tx);
        b.force_commit().expect("commit");
        b.batch_tx()
            .put(Bucket::KEY, b"unforced", b"still committed on close");
    }
    let b = RocksBackend::open(dir.path(), BackendConfig::default()).expect("reopen");
    let tx = b.read_tx();
    assert_eq!(tx.get(Bucket::KEY, b"k").expect("get"), Some(b"v".to_vec()));
    assert_eq!(
        tx.get(Bucket::MEMBERS, b"m").expect("get"),
        Some(b"1".to_vec())
    );
    assert_eq!(
        tx.get(Bucket::KEY, b"unforced").expect("get"),
        Some(b"still committed on close".to_vec())
    );
}

#[test]
fn a_locked_directory_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _first = RocksBackend::open(dir.path(), BackendConfig::default()).expect("open");
    let second = RocksBackend::open(dir.path(), BackendConfig::default());
    assert!(matches!(second, Err(ironcd_backend::Error::Open { .. })));
}

#[test]
fn invalid_config_is_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = BackendConfig {
        batch_limit: 0,
        ..BackendConfig::default()
    };
    assert!(matches!(
        RocksBackend::open(dir.path(), config),
        Err(ironcd_backend::Error::InvalidConfig(_))
    ));
}
