//! Crash safety of the store: a child process applying write txns (each
//! with a `consistent_index` in the same backend batch, as the server does)
//! and compacting now and then is killed with SIGKILL at random points.
//! Reopening must give exactly the state after some txn `i` — never a torn
//! txn — with `consistent_index == i`, the revision in step with it, every
//! synced txn present, and an interrupted compaction resumed.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;

use ironcd_backend::{Backend, BackendConfig, BatchTx, Bucket, ReadTx, RocksBackend};
use ironcd_mvcc::{RangeOptions, Store, StoreConfig};
use rand::Rng;

const CHILD_ENV: &str = "IRONCD_MVCC_CRASH_DIR";
const SLOTS: u64 = 20;

fn open(dir: &str) -> Store<RocksBackend> {
    let config = BackendConfig {
        batch_interval_ms: 2,
        batch_limit: 100,
        ..BackendConfig::default()
    };
    let backend = Arc::new(RocksBackend::open(dir, config).expect("open backend"));
    let store_config = StoreConfig {
        compaction_batch_limit: 7,
        ..StoreConfig::default()
    };
    Store::open(backend, store_config).expect("open store")
}

fn consistent_index(store: &Store<RocksBackend>) -> u64 {
    store
        .backend()
        .read_tx()
        .get(Bucket::META, b"consistent_index")
        .expect("read")
        .map_or(0, |v| u64::from_be_bytes(v.try_into().expect("8 bytes")))
}

/// Txn `i` puts slot `i % SLOTS` and deletes the marker of txn `i - 1`.
fn apply(store: &Store<RocksBackend>, i: u64) {
    let mut txn = store.write();
    txn.put(
        format!("slot/{:02}", i % SLOTS).as_bytes(),
        &i.to_be_bytes(),
        0,
    );
    txn.put(format!("marker/{i}").as_bytes(), b"m", 0);
    txn.delete_range(format!("marker/{}", i - 1).as_bytes(), None);
    txn.backend_tx()
        .put(Bucket::META, b"consistent_index", &i.to_be_bytes());
}

#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = open(&dir);
    let first = consistent_index(&store) + 1;
    let mut out = std::io::stdout().lock();
    for i in first..first + 1_000_000 {
        apply(&store, i);
        if i % 64 == 0 {
            // Leave the compaction running: the kill may land inside it.
            let _ = store.compact(store.current_rev() - 10);
        }
        if i % 41 == 0 {
            store.backend().force_commit().expect("force commit");
            writeln!(out, "synced {i}").expect("stdout");
            out.flush().expect("flush");
        }
    }
}

#[test]
fn sigkill_leaves_a_consistent_prefix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_str().expect("utf8 path").to_owned();
    let mut rng = rand::thread_rng();
    for round in 0..15 {
        let mut child = Command::new(std::env::current_exe().expect("exe"))
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let wanted = rng.gen_range(1..25);
        let (mut synced, mut seen) = (0u64, 0);
        for line in BufReader::new(child.stdout.take().expect("stdout")).lines() {
            if let Some(n) = line.expect("line").strip_prefix("synced ") {
                synced = n.parse().expect("number");
                seen += 1;
                if seen == wanted {
                    break;
                }
            }
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");

        let store = open(&path);
        let index = consistent_index(&store);
        assert!(
            index >= synced,
            "round {round}: synced txn {synced} lost (index {index})"
        );
        // Each txn took exactly one revision after the empty store's 1.
        assert_eq!(store.current_rev(), index as i64 + 1, "round {round}");
        let slots = store
            .range(b"slot/", Some(b"slot0"), RangeOptions::default())
            .expect("range");
        for kv in &slots.kvs {
            let slot: u64 = std::str::from_utf8(&kv.key[5..])
                .expect("utf8")
                .parse()
                .expect("num");
            let expected = (1..=index)
                .rev()
                .find(|i| i % SLOTS == slot)
                .expect("slot written");
            assert_eq!(
                kv.value,
                expected.to_be_bytes(),
                "round {round} slot {slot}"
            );
            assert_eq!(kv.mod_revision, expected as i64 + 1);
        }
        assert_eq!(slots.kvs.len() as u64, index.min(SLOTS), "round {round}");
        let markers = store
            .range(b"marker/", Some(b"marker0"), RangeOptions::default())
            .expect("range");
        let marker = format!("marker/{index}").into_bytes();
        assert_eq!(
            markers
                .kvs
                .iter()
                .map(|kv| kv.key.clone())
                .collect::<Vec<_>>(),
            [marker]
        );
        // Any interrupted compaction has been resumed and can finish.
        let compact_rev = store.compact_rev();
        if compact_rev < store.current_rev() {
            store
                .compact(store.current_rev())
                .expect("compact")
                .wait()
                .expect("finish");
        }
    }
}
