//! The backend conformance suite on both engines, plus RocksDB's own
//! persistence cases.

use ironcd_backend::{
    testkit, Backend, BackendConfig, BatchTx, Bucket, MemBackend, ReadTx, RocksBackend,
};

#[test]
fn in_memory_engine_conforms() {
    testkit::run_all(&MemBackend::open_in_memory);
}

#[test]
fn rocksdb_engine_conforms() {
    let root = tempfile::tempdir().expect("tempdir");
    let next = std::sync::atomic::AtomicU32::new(0);
    let make = |config: BackendConfig| {
        let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        RocksBackend::open(root.path().join(format!("db{n}")), config).expect("open")
    };
    testkit::run_all(&make);
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
