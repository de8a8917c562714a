//! The child process of `tests/crash.rs`: `mvcc-crash-child <dir>` opens the
//! store in `dir` and applies write txns after the last one found there,
//! each with its `consistent_index` in the same backend batch (as the server
//! does), compacting every 64th txn and force-committing every 41st, which
//! it reports as `synced <i>`. The parent SIGKILLs it at random points.
//!
//! A binary of its own, not a test, so the test count stays honest; it uses
//! only the crate's normal dependencies (the parent makes the temporary
//! directory).

#[path = "crash_workload.rs"]
mod workload;

use std::io::Write;

use ironcd_backend::{Backend, BatchTx, Bucket, RocksBackend};
use ironcd_mvcc::Store;
use workload::{consistent_index, open, SLOTS};

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

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(dir), None) = (args.next(), args.next()) else {
        eprintln!("usage: mvcc-crash-child <dir>");
        std::process::exit(2);
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
