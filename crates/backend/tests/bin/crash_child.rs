//! The child process of `tests/crash.rs`: `backend-crash-child <dir>` opens
//! the RocksDB backend in `dir` and applies write txns after the last one
//! found there, each putting a slot, a log key and `consistent_index` in one
//! txn; every 97th it force-commits and prints `synced <i>`. The parent
//! SIGKILLs it at random points.
//!
//! A binary of its own, not a test, so the test count stays honest; it uses
//! only the crate's normal dependencies (the parent makes the temporary
//! directory).

#[path = "crash_workload.rs"]
mod workload;

use std::io::Write;

use ironcd_backend::{Backend, BatchTx, Bucket, RocksBackend};
use workload::{config, read_index, SLOTS};

fn main() {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), None) = (args.next(), args.next()) else {
        eprintln!("usage: backend-crash-child <dir>");
        std::process::exit(2);
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
