//! Crash safety: a child process applying write txns is killed with SIGKILL
//! at random points; reopening must give exactly a prefix of the txns it
//! applied (never a torn one), covering at least every txn that
//! `force_commit` made durable, with the `consistent_index` meta key in step
//! with the data it describes.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use ironcd_backend::{Backend, BackendConfig, BatchTx, Bucket, ReadTx, RocksBackend};
use rand::Rng;

const CHILD_ENV: &str = "IRONCD_BACKEND_CRASH_DIR";
const SLOTS: u64 = 50;

fn config() -> BackendConfig {
    BackendConfig {
        batch_interval_ms: 2,
        batch_limit: 64,
        ..BackendConfig::default()
    }
}

fn read_index(b: &RocksBackend) -> u64 {
    b.read_tx()
        .get(Bucket::META, b"consistent_index")
        .expect("read")
        .map_or(0, |v| u64::from_be_bytes(v.try_into().expect("8 bytes")))
}

/// The child's body: runs only when the parent sets `CHILD_ENV`.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let b = RocksBackend::open(&dir, config()).expect("child open");
    let first = read_index(&b) + 1;
    let mut out = std::io::stdout().lock();
    for i in first..first + 1_000_000 {
        {
            let mut tx = b.batch_tx();
            tx.put(
                Bucket::KEY,
                format!("slot{}", i % SLOTS).as_bytes(),
                &i.to_be_bytes(),
            );
            tx.put(Bucket::LEASE, format!("log{i:09}").as_bytes(), b"applied");
            tx.put(Bucket::META, b"consistent_index", &i.to_be_bytes());
        }
        if i % 97 == 0 {
            b.force_commit().expect("force commit");
            writeln!(out, "synced {i}").expect("stdout");
            out.flush().expect("flush");
        }
    }
}

#[test]
fn sigkill_leaves_a_prefix_of_committed_txns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = rand::thread_rng();
    let mut previous = 0;
    for round in 0..20 {
        let mut child = Command::new(std::env::current_exe().expect("exe"))
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let wanted = rng.gen_range(1..30);
        let mut synced = 0;
        let mut seen = 0;
        for line in BufReader::new(child.stdout.take().expect("stdout")).lines() {
            let line = line.expect("line");
            if let Some(n) = line.strip_prefix("synced ") {
                synced = n.parse().expect("number");
                seen += 1;
                if seen == wanted {
                    break;
                }
            }
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        assert!(synced > 0, "round {round}: child never synced");

        let b = RocksBackend::open(dir.path(), config()).expect("reopen after crash");
        let index = read_index(&b);
        assert!(
            index >= synced,
            "round {round}: lost synced txns: {index} < {synced}"
        );
        assert!(index > previous, "round {round}: no progress");
        let tx = b.read_tx();
        for slot in 0..SLOTS {
            let expected = (1..=index).rev().find(|i| i % SLOTS == slot);
            let got = tx
                .get(Bucket::KEY, format!("slot{slot}").as_bytes())
                .expect("read")
                .map(|v| u64::from_be_bytes(v.try_into().expect("8 bytes")));
            assert_eq!(
                got, expected,
                "round {round}: slot {slot} out of step with index {index}"
            );
        }
        let log = tx
            .range(Bucket::LEASE, b"log", Some(b"loh"), 0)
            .expect("range");
        assert_eq!(
            log.len() as u64,
            index,
            "round {round}: log is not a prefix"
        );
        assert_eq!(
            log.last().map(|(k, _)| k.clone()),
            Some(format!("log{index:09}").into_bytes())
        );
        previous = index;
    }
}
