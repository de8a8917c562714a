//! Crash safety: a child process applying write txns (the
//! `backend-crash-child` binary, `tests/bin/crash_child.rs`) is killed with
//! SIGKILL at random points; reopening must give exactly a prefix of the
//! txns it applied (never a torn one), covering at least every txn that
//! `force_commit` made durable, with the `consistent_index` meta key in step
//! with the data it describes.

#[path = "bin/crash_workload.rs"]
mod workload;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use ironcd_backend::{Backend, Bucket, ReadTx, RocksBackend};
use rand::Rng;
use workload::{config, read_index, SLOTS};

#[test]
fn sigkill_leaves_a_prefix_of_committed_txns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = rand::thread_rng();
    let mut previous = 0;
    for round in 0..20 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_backend-crash-child"))
            .arg(dir.path())
            .stdout(Stdio::piped())
            // A child that fails says why.
            .stderr(Stdio::inherit())
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
