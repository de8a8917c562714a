//! Crash safety of the store: a child process (the `mvcc-crash-child`
//! binary, `tests/bin/crash_child.rs`) applying write txns (each with a
//! `consistent_index` in the same backend batch, as the server does) and
//! compacting now and then is killed with SIGKILL at random points.
//! Reopening must give exactly the state after some txn `i` — never a torn
//! txn — with `consistent_index == i`, the revision in step with it, every
//! synced txn present, and an interrupted compaction resumed.

#[path = "bin/crash_workload.rs"]
mod workload;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use ironcd_mvcc::RangeOptions;
use rand::Rng;
use workload::{consistent_index, open, SLOTS};

#[test]
fn sigkill_leaves_a_consistent_prefix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_str().expect("utf8 path").to_owned();
    let mut rng = rand::thread_rng();
    for round in 0..15 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mvcc-crash-child"))
            .arg(&path)
            .stdout(Stdio::piped())
            // A child that fails says why.
            .stderr(Stdio::inherit())
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
