//! Narrowing failed operations before checking, as etcd's robustness suite
//! patches its histories: what a failed write did is often known from
//! later reads, or from what the WAL persisted.
//!
//! The rules rest on unique values: a (key, value) pair that only one
//! operation of the history puts identifies that operation.

use super::history::{History, Operation};
use super::request::{Request, Response};
use std::collections::{HashMap, HashSet};

/// A (key, value) pair some put wrote.
pub type Persisted = (Vec<u8>, Vec<u8>);

/// The history with its failed operations narrowed:
///
/// - A failed read-only operation is dropped: it changed and observed
///   nothing.
/// - A failed write with a unique put that a completed operation read
///   did happen, before that read returned: its `return_ns` becomes the
///   earliest such read's return (not its call: the read's linearization
///   point, after the write, may be as late as its return). A failed
///   [`Request::Put`] also gets its response: the revision is the read
///   kv's `mod_revision`.
/// - With `persisted` (every put the WAL committed, from the members'
///   logs), a failed write with a unique put in it happened, at an unknown
///   time: it must be linearized, at the latest when the history ends. A
///   failed write none of whose branches could have run without
///   persisting one of its unique puts, and none persisted, never
///   happened: it is dropped.
///
/// Without `persisted`, an unread failed write stays failed (it may or may
/// not have happened): dropping it could make the checker reject a run
/// where it did happen and only shifted later revisions.
///
/// Operations keep their order; indexes shift past dropped ones.
pub fn patch(history: &History, persisted: Option<&[Persisted]>) -> History {
    let operations = &history.operations;
    let owners = unique_puts(operations);
    let observed = first_observations(operations, &owners);
    let persisted: Option<HashSet<(&[u8], &[u8])>> = persisted.map(|puts| {
        puts.iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
            .collect()
    });
    let history_end = operations
        .iter()
        .map(|op| op.return_ns.unwrap_or(op.call_ns))
        .max()
        .unwrap_or(0)
        .saturating_add(1);
    let mut patched = Vec::with_capacity(operations.len());
    for (index, op) in operations.iter().enumerate() {
        if !op.is_failed() {
            patched.push(op.clone());
            continue;
        }
        if op.request.is_read_only() {
            continue;
        }
        let unique: Vec<(&[u8], &[u8])> = op
            .request
            .puts()
            .into_iter()
            .filter(|put| owners.get(put) == Some(&index))
            .collect();
        if let Some(&(return_ns, mod_revision)) = observed.get(&index) {
            if return_ns >= op.call_ns {
                patched.push(observed_write(op, return_ns, mod_revision));
                continue;
            }
            // Read before it was called: a violation the checker names.
        }
        match &persisted {
            Some(persisted) if unique.iter().any(|put| persisted.contains(put)) => {
                let mut op = op.clone();
                op.return_ns = Some(history_end);
                patched.push(op);
            }
            Some(_) if always_puts(&op.request, &unique) => {}
            _ => patched.push(op.clone()),
        }
    }
    History::new(patched)
}

/// A failed write read back: it happened by `return_ns`.
fn observed_write(op: &Operation, return_ns: u64, mod_revision: i64) -> Operation {
    let mut op = op.clone();
    op.return_ns = Some(return_ns);
    if matches!(op.request, Request::Put { .. }) {
        op.response = Some(Response::Put {
            revision: mod_revision,
        });
    }
    op
}

/// (key, value) → the one operation that puts it, for pairs only one
/// operation puts.
fn unique_puts(operations: &[Operation]) -> HashMap<(&[u8], &[u8]), usize> {
    let mut owners: HashMap<(&[u8], &[u8]), Option<usize>> = HashMap::new();
    for (index, op) in operations.iter().enumerate() {
        for put in op.request.puts() {
            owners
                .entry(put)
                .and_modify(|owner| {
                    if *owner != Some(index) {
                        *owner = None;
                    }
                })
                .or_insert(Some(index));
        }
    }
    owners
        .into_iter()
        .filter_map(|(put, owner)| owner.map(|owner| (put, owner)))
        .collect()
}

/// Failed operation → (earliest return of a completed operation that read
/// one of its unique puts, that kv's mod revision).
fn first_observations(
    operations: &[Operation],
    owners: &HashMap<(&[u8], &[u8]), usize>,
) -> HashMap<usize, (u64, i64)> {
    let mut observed: HashMap<usize, (u64, i64)> = HashMap::new();
    for op in operations {
        let (Some(return_ns), Some(response)) = (op.return_ns, &op.response) else {
            continue;
        };
        for kv in response.kvs() {
            let Some(&owner) = owners.get(&(kv.key.as_slice(), kv.value.as_slice())) else {
                continue;
            };
            if !operations[owner].is_failed() {
                continue;
            }
            let entry = observed
                .entry(owner)
                .or_insert((return_ns, kv.mod_revision));
            if return_ns < entry.0 {
                *entry = (return_ns, kv.mod_revision);
            }
        }
    }
    observed
}

/// Whether every way the request can run (a Put; each Txn branch) puts
/// one of `unique`, so that not persisting any means it never ran.
fn always_puts(request: &Request, unique: &[(&[u8], &[u8])]) -> bool {
    let branch_puts = |ops: &[super::request::TxnOp]| {
        ops.iter().any(|op| match op {
            super::request::TxnOp::Put { key, value, .. } => {
                unique.contains(&(key.as_slice(), value.as_slice()))
            }
            _ => false,
        })
    };
    match request {
        Request::Put { .. } => !unique.is_empty(),
        Request::Txn {
            success, failure, ..
        } => branch_puts(success) && branch_puts(failure),
        _ => false,
    }
}
