//! Background compaction: trims the index, deletes compacted revisions from
//! the backend in batches (so reads and writes keep flowing), then records
//! the finished mark.

use std::collections::HashSet;
use std::sync::mpsc::{Receiver, SyncSender};

use ironcd_backend::{Backend, BatchTx, Bucket, ReadTx};

use crate::revision::{BucketKey, Revision};
use crate::store::{Inner, FINISHED_COMPACT_KEY};
use crate::Result;

pub(crate) struct CompactionJob {
    pub rev: i64,
    pub done: SyncSender<Result<()>>,
}

pub(crate) fn run_worker<B: Backend>(inner: &Inner<B>, jobs: Receiver<CompactionJob>) {
    while let Ok(job) = jobs.recv() {
        let result = compact(inner, job.rev);
        if let Err(e) = &result {
            tracing::error!(rev = job.rev, error = %e, "compaction failed");
        }
        let _ = job.done.try_send(result);
    }
}

fn compact<B: Backend>(inner: &Inner<B>, rev: i64) -> Result<()> {
    let mut keep = HashSet::new();
    let mut from = Vec::new();
    loop {
        let next = inner.index.write().compact_chunk(&from, rev, &mut keep);
        match next {
            Some(next) => from = next,
            None => break,
        }
    }
    delete_compacted(inner, rev, &keep)
}

fn delete_compacted<B: Backend>(
    inner: &Inner<B>,
    rev: i64,
    keep: &HashSet<Revision>,
) -> Result<()> {
    let end = Revision::new(rev + 1, 0).to_bytes();
    let limit = inner.config.compaction_batch_limit;
    let mut from: Vec<u8> = Vec::new();
    loop {
        let mut tx = inner.backend.batch_tx();
        let batch = tx.range(Bucket::KEY, &from, Some(&end), limit)?;
        for (k, _) in &batch {
            let compacted = BucketKey::decode(k).is_some_and(|bk| !keep.contains(&bk.rev));
            if compacted {
                tx.delete(Bucket::KEY, k);
            }
        }
        if (batch.len() as u64) < limit {
            fail::fail_point!("compactBeforeSetFinishedCompact");
            tx.put(
                Bucket::META,
                FINISHED_COMPACT_KEY,
                &Revision::new(rev, 0).to_bytes(),
            );
            drop(tx);
            fail::fail_point!("compactAfterSetFinishedCompact");
            tracing::info!(rev, "finished compaction");
            return Ok(());
        }
        from = batch.last().map(|(k, _)| k.clone()).unwrap_or_default();
        from.push(0);
        // etcd force-commits each batch here; ironcd's batch ends when its
        // txn does (its deletes published, committed with the next batch
        // interval), so etcd's points around the commit sit around that.
        fail::fail_point!("compactBeforeCommitBatch");
        drop(tx);
        fail::fail_point!("compactAfterCommitBatch");
        if inner.config.compaction_pause_ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(
                inner.config.compaction_pause_ms,
            ));
        } else {
            std::thread::yield_now();
        }
    }
}
