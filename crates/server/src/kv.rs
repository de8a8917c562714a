//! etcd's KV semantics over the mvcc store: Range options, Put's flags,
//! DeleteRange, and Txn compares and branches. Generic over the backend so
//! unit tests run on the in-memory one. Response headers carry only the
//! revision here; the server fills in the rest.

use std::cmp::Ordering;

use ironcd_api::EtcdError;
use ironcd_backend::Backend;
use ironcd_mvcc::{RangeOptions, ReadView, Store, TxnWrite};
use ironcd_proto::etcdserverpb::{
    compare::{CompareResult, CompareTarget, TargetUnion},
    range_request::{SortOrder, SortTarget},
    request_op::Request,
    response_op::Response,
    Compare, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse, RangeRequest,
    RangeResponse, RequestOp, ResponseHeader, ResponseOp, TxnRequest, TxnResponse,
};
use ironcd_proto::mvccpb::KeyValue;

/// Whether a lease exists (the lessor's answer).
pub type LeaseLookup<'a> = &'a dyn Fn(i64) -> bool;

/// Maps an mvcc error to etcd's.
pub fn mvcc_error(e: ironcd_mvcc::Error) -> EtcdError {
    match e {
        ironcd_mvcc::Error::Compacted { .. } => EtcdError::Compacted,
        ironcd_mvcc::Error::FutureRevision { .. } => EtcdError::FutureRev,
        other => EtcdError::Internal(other.to_string()),
    }
}

/// etcd's `mkGteRange`: an empty end is one key, `"\0"` means "to the end".
pub fn range_end(end: &[u8]) -> Option<&[u8]> {
    match end {
        [] => None,
        [0] => Some(&[]),
        end => Some(end),
    }
}

fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision,
        ..ResponseHeader::default()
    })
}

/// Range with every option etcd has: filters and sorts read everything,
/// then truncate to `limit`.
pub fn range(src: &dyn ReadView, r: &RangeRequest) -> Result<RangeResponse, EtcdError> {
    let filtered = r.min_mod_revision != 0
        || r.max_mod_revision != 0
        || r.min_create_revision != 0
        || r.max_create_revision != 0;
    let sorted = r.sort_order() != SortOrder::None;
    let limit = match r.limit {
        l if l <= 0 || sorted || filtered => 0,
        l => l as u64 + 1,
    };
    let opts = RangeOptions {
        limit,
        rev: r.revision,
        count_only: r.count_only,
        keys_only: false,
    };
    let mut rr = src
        .range(&r.key, range_end(&r.range_end), opts)
        .map_err(mvcc_error)?;
    rr.kvs.retain(|kv| {
        (r.max_mod_revision == 0 || kv.mod_revision <= r.max_mod_revision)
            && (r.min_mod_revision == 0 || kv.mod_revision >= r.min_mod_revision)
            && (r.max_create_revision == 0 || kv.create_revision <= r.max_create_revision)
            && (r.min_create_revision == 0 || kv.create_revision >= r.min_create_revision)
    });
    sort(&mut rr.kvs, r.sort_order(), r.sort_target());
    let mut more = false;
    if r.limit > 0 && rr.kvs.len() as i64 > r.limit {
        rr.kvs.truncate(r.limit as usize);
        more = true;
    }
    if r.keys_only {
        rr.kvs.iter_mut().for_each(|kv| kv.value.clear());
    }
    Ok(RangeResponse {
        header: header(rr.rev),
        count: rr.count as i64,
        more,
        kvs: rr.kvs,
    })
}

/// Sorts as etcd does: a non-key target with no order means ascending; the
/// store already returns keys ascending. Stable, so ties keep key order.
fn sort(kvs: &mut [KeyValue], order: SortOrder, target: SortTarget) {
    let order = match (order, target) {
        (SortOrder::None, SortTarget::Key) => return,
        (SortOrder::None, _) => SortOrder::Ascend,
        (order, _) => order,
    };
    let cmp = |a: &KeyValue, b: &KeyValue| -> Ordering {
        match target {
            SortTarget::Key => a.key.cmp(&b.key),
            SortTarget::Version => a.version.cmp(&b.version),
            SortTarget::Create => a.create_revision.cmp(&b.create_revision),
            SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
            SortTarget::Value => a.value.cmp(&b.value),
        }
    };
    match order {
        SortOrder::Descend => kvs.sort_by(|a, b| cmp(b, a)),
        _ => kvs.sort_by(cmp),
    }
}

/// The current value of `key` in `txn`, if any.
fn current<B: Backend>(txn: &TxnWrite<'_, B>, key: &[u8]) -> Result<Option<KeyValue>, EtcdError> {
    let rr = txn
        .range(key, None, RangeOptions::default())
        .map_err(mvcc_error)?;
    Ok(rr.kvs.into_iter().next())
}

/// Put, with `prev_kv`, `ignore_value` and `ignore_lease`. The lease was
/// checked before (a Put's own check, or a Txn's up-front one).
pub fn put<B: Backend>(
    txn: &mut TxnWrite<'_, B>,
    p: &PutRequest,
) -> Result<PutResponse, EtcdError> {
    let prev = if p.ignore_value || p.ignore_lease || p.prev_kv {
        current(txn, &p.key)?
    } else {
        None
    };
    if (p.ignore_value || p.ignore_lease) && prev.is_none() {
        return Err(EtcdError::KeyNotFound);
    }
    let value = match (&prev, p.ignore_value) {
        (Some(prev), true) => prev.value.as_slice(),
        _ => p.value.as_slice(),
    };
    let lease = match (&prev, p.ignore_lease) {
        (Some(prev), true) => prev.lease,
        _ => p.lease,
    };
    txn.put(&p.key, value, lease);
    Ok(PutResponse {
        header: header(txn.rev()),
        prev_kv: prev.filter(|_| p.prev_kv),
    })
}

/// DeleteRange, with `prev_kv`.
pub fn delete_range<B: Backend>(
    txn: &mut TxnWrite<'_, B>,
    d: &DeleteRangeRequest,
) -> Result<DeleteRangeResponse, EtcdError> {
    let end = range_end(&d.range_end);
    let prev_kvs = if d.prev_kv {
        txn.range(&d.key, end, RangeOptions::default())
            .map_err(mvcc_error)?
            .kvs
    } else {
        Vec::new()
    };
    let deleted = txn.delete_range(&d.key, end) as i64;
    Ok(DeleteRangeResponse {
        header: header(txn.rev()),
        deleted,
        prev_kvs,
    })
}

/// True when a txn (nested ones included) only reads.
pub fn is_read_only(t: &TxnRequest) -> bool {
    t.success
        .iter()
        .chain(&t.failure)
        .all(|op| match &op.request {
            Some(Request::RequestRange(_)) | None => true,
            Some(Request::RequestTxn(inner)) => is_read_only(inner),
            Some(Request::RequestPut(_)) | Some(Request::RequestDeleteRange(_)) => false,
        })
}

/// True when every read in the txn asked to be serializable.
pub fn is_serializable(t: &TxnRequest) -> bool {
    t.success
        .iter()
        .chain(&t.failure)
        .all(|op| match &op.request {
            Some(Request::RequestRange(r)) => r.serializable,
            Some(Request::RequestTxn(inner)) => is_serializable(inner),
            _ => true,
        })
}

/// Does every key in the compare's range satisfy it? A missing key compares
/// as a zero key-value, except that a value compare fails.
fn compare(src: &dyn ReadView, c: &Compare) -> Result<bool, EtcdError> {
    let rr = src
        .range(&c.key, range_end(&c.range_end), RangeOptions::default())
        .map_err(mvcc_error)?;
    if rr.kvs.is_empty() {
        if c.target() == CompareTarget::Value {
            return Ok(false);
        }
        return Ok(compare_kv(c, &KeyValue::default()));
    }
    Ok(rr.kvs.iter().all(|kv| compare_kv(c, kv)))
}

fn compare_kv(c: &Compare, kv: &KeyValue) -> bool {
    // As etcd's generated getters: a union of another kind reads as zero.
    let ordering = match (c.target(), &c.target_union) {
        (CompareTarget::Value, Some(TargetUnion::Value(want))) => kv.value.cmp(want),
        (CompareTarget::Value, _) => kv.value.as_slice().cmp(&[]),
        (CompareTarget::Version, u) => kv.version.cmp(&int_of(u, CompareTarget::Version)),
        (CompareTarget::Create, u) => kv.create_revision.cmp(&int_of(u, CompareTarget::Create)),
        (CompareTarget::Mod, u) => kv.mod_revision.cmp(&int_of(u, CompareTarget::Mod)),
        (CompareTarget::Lease, u) => kv.lease.cmp(&int_of(u, CompareTarget::Lease)),
    };
    match c.result() {
        CompareResult::Equal => ordering == Ordering::Equal,
        CompareResult::NotEqual => ordering != Ordering::Equal,
        CompareResult::Greater => ordering == Ordering::Greater,
        CompareResult::Less => ordering == Ordering::Less,
    }
}

/// The compared number when the union holds `target`'s kind, else 0.
fn int_of(union: &Option<TargetUnion>, target: CompareTarget) -> i64 {
    match (union, target) {
        (Some(TargetUnion::Version(v)), CompareTarget::Version)
        | (Some(TargetUnion::CreateRevision(v)), CompareTarget::Create)
        | (Some(TargetUnion::ModRevision(v)), CompareTarget::Mod)
        | (Some(TargetUnion::Lease(v)), CompareTarget::Lease) => *v,
        _ => 0,
    }
}

/// Evaluates every compare the txn will meet, depth first, before any op
/// runs (etcd's `compareToPath`): the branch each (nested) txn takes.
fn txn_path(src: &dyn ReadView, t: &TxnRequest, path: &mut Vec<bool>) -> Result<(), EtcdError> {
    let mut ok = true;
    for c in &t.compare {
        if !compare(src, c)? {
            ok = false;
            break;
        }
    }
    path.push(ok);
    let ops = if ok { &t.success } else { &t.failure };
    for op in ops {
        if let Some(Request::RequestTxn(inner)) = &op.request {
            txn_path(src, inner, path)?;
        }
    }
    Ok(())
}

/// Checks, before anything is written, what would otherwise fail half-way:
/// leases of puts, keys for `ignore_*`, revisions of reads.
fn check_path(
    src: &dyn ReadView,
    t: &TxnRequest,
    path: &mut std::slice::Iter<'_, bool>,
    lease_exists: LeaseLookup<'_>,
) -> Result<(), EtcdError> {
    let ops = if *path.next().expect("a branch per txn") {
        &t.success
    } else {
        &t.failure
    };
    for op in ops {
        match &op.request {
            Some(Request::RequestPut(p)) => {
                if p.ignore_value || p.ignore_lease {
                    let rr = src
                        .range(&p.key, None, RangeOptions::default())
                        .map_err(mvcc_error)?;
                    if rr.kvs.is_empty() {
                        return Err(EtcdError::KeyNotFound);
                    }
                }
                if p.lease != 0 && !lease_exists(p.lease) {
                    return Err(EtcdError::LeaseNotFound);
                }
            }
            Some(Request::RequestRange(r)) if r.revision != 0 => {
                let probe = RangeOptions {
                    count_only: true,
                    rev: r.revision,
                    ..RangeOptions::default()
                };
                src.range(&r.key, range_end(&r.range_end), probe)
                    .map_err(mvcc_error)?;
            }
            Some(Request::RequestTxn(inner)) => check_path(src, inner, path, lease_exists)?,
            _ => {}
        }
    }
    Ok(())
}

/// A read-only txn on a read view.
pub fn txn_read(src: &dyn ReadView, t: &TxnRequest, rev: i64) -> Result<TxnResponse, EtcdError> {
    let mut path = Vec::new();
    txn_path(src, t, &mut path)?;
    let mut branches = path.iter();
    let responses = run_reads(src, t, &mut branches)?;
    Ok(TxnResponse {
        header: header(rev),
        succeeded: path[0],
        responses,
    })
}

fn run_reads(
    src: &dyn ReadView,
    t: &TxnRequest,
    path: &mut std::slice::Iter<'_, bool>,
) -> Result<Vec<ResponseOp>, EtcdError> {
    let ok = *path.next().expect("a branch per txn");
    let ops = if ok { &t.success } else { &t.failure };
    let mut out = Vec::with_capacity(ops.len());
    for op in ops {
        let response = match &op.request {
            Some(Request::RequestRange(r)) => Some(Response::ResponseRange(range(src, r)?)),
            Some(Request::RequestTxn(inner)) => Some(Response::ResponseTxn(TxnResponse {
                header: header(0),
                succeeded: path.clone().next().copied().unwrap_or(false),
                responses: run_reads(src, inner, path)?,
            })),
            _ => None,
        };
        out.push(ResponseOp { response });
    }
    Ok(out)
}

/// A txn that writes: compares, checks, then the chosen branches, all in
/// one write txn (one revision).
pub fn txn_write<'s, B: Backend>(
    store: &'s Store<B>,
    t: &TxnRequest,
    lease_exists: LeaseLookup<'_>,
) -> Result<(TxnWrite<'s, B>, TxnResponse), EtcdError> {
    let mut txn = store.write();
    let mut path = Vec::new();
    txn_path(&txn, t, &mut path)?;
    check_path(&txn, t, &mut path.iter(), lease_exists)?;
    let mut branches = path.iter();
    let responses = run_writes(&mut txn, t, &mut branches)?;
    let response = TxnResponse {
        header: header(txn.rev()),
        succeeded: path[0],
        responses,
    };
    Ok((txn, response))
}

fn run_writes<B: Backend>(
    txn: &mut TxnWrite<'_, B>,
    t: &TxnRequest,
    path: &mut std::slice::Iter<'_, bool>,
) -> Result<Vec<ResponseOp>, EtcdError> {
    let ok = *path.next().expect("a branch per txn");
    let ops: &[RequestOp] = if ok { &t.success } else { &t.failure };
    let mut out = Vec::with_capacity(ops.len());
    for op in ops {
        let response = match &op.request {
            Some(Request::RequestRange(r)) => Some(Response::ResponseRange(range(&*txn, r)?)),
            Some(Request::RequestPut(p)) => Some(Response::ResponsePut(put(txn, p)?)),
            Some(Request::RequestDeleteRange(d)) => {
                Some(Response::ResponseDeleteRange(delete_range(txn, d)?))
            }
            Some(Request::RequestTxn(inner)) => {
                let succeeded = path.clone().next().copied().unwrap_or(false);
                let responses = run_writes(txn, inner, path)?;
                // etcd leaves a nested txn's header empty.
                Some(Response::ResponseTxn(TxnResponse {
                    header: header(0),
                    succeeded,
                    responses,
                }))
            }
            None => None,
        };
        out.push(ResponseOp { response });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironcd_backend::{BackendConfig, MemBackend};
    use ironcd_mvcc::StoreConfig;
    use ironcd_proto::etcdserverpb::compare::CompareResult as R;
    use std::sync::Arc;

    fn store() -> Store<MemBackend> {
        let backend = Arc::new(MemBackend::open_in_memory(BackendConfig::default()));
        let store = Store::open(backend, StoreConfig::default()).unwrap();
        for (k, v) in [("a", "3"), ("b", "1"), ("c", "2"), ("b", "9")] {
            store.write().put(k.as_bytes(), v.as_bytes(), 0);
        }
        store
    }

    fn keys(r: &RangeResponse) -> Vec<String> {
        r.kvs
            .iter()
            .map(|kv| String::from_utf8(kv.key.clone()).unwrap())
            .collect()
    }

    #[test]
    fn range_sorts_then_limits_and_counts_everything() {
        let s = store();
        let read = s.read();
        let all = |order: SortOrder, target: SortTarget, limit| RangeRequest {
            key: b"a".to_vec(),
            range_end: vec![0],
            sort_order: order as i32,
            sort_target: target as i32,
            limit,
            ..Default::default()
        };
        let r = range(&read, &all(SortOrder::Descend, SortTarget::Value, 2)).unwrap();
        assert_eq!(
            (keys(&r), r.count, r.more),
            (vec!["b".into(), "a".into()], 3, true)
        );
        // A non-key target with no order sorts ascending.
        let r = range(&read, &all(SortOrder::None, SortTarget::Mod, 0)).unwrap();
        assert_eq!(keys(&r), ["a", "c", "b"]);
        let r = range(&read, &all(SortOrder::None, SortTarget::Key, 1)).unwrap();
        assert_eq!((keys(&r), r.more), (vec!["a".into()], true));
    }

    fn cmp(key: &str, target: CompareTarget, result: R, union: TargetUnion) -> Compare {
        Compare {
            key: key.into(),
            target: target as i32,
            result: result as i32,
            target_union: Some(union),
            range_end: vec![],
        }
    }

    #[test]
    fn compares_follow_etcd() {
        let s = store();
        let read = s.read();
        let check = |c: Compare| compare(&read, &c).unwrap();
        assert!(check(cmp(
            "b",
            CompareTarget::Version,
            R::Equal,
            TargetUnion::Version(2)
        )));
        assert!(check(cmp(
            "b",
            CompareTarget::Value,
            R::Greater,
            TargetUnion::Value(b"1".to_vec())
        )));
        // A missing key compares as a zero key-value, except by value.
        assert!(check(cmp(
            "zz",
            CompareTarget::Create,
            R::Equal,
            TargetUnion::CreateRevision(0)
        )));
        assert!(!check(cmp(
            "zz",
            CompareTarget::Value,
            R::NotEqual,
            TargetUnion::Value(vec![])
        )));
        let mut over_range = cmp(
            "a",
            CompareTarget::Mod,
            R::Less,
            TargetUnion::ModRevision(5),
        );
        over_range.range_end = b"c".to_vec();
        assert!(!check(over_range), "b was modified at 5");
    }

    #[test]
    fn a_write_txn_takes_one_revision_and_nested_headers_stay_empty() {
        let s = store();
        let put_op = |k: &str| RequestOp {
            request: Some(Request::RequestPut(PutRequest {
                key: k.into(),
                value: b"x".to_vec(),
                ..Default::default()
            })),
        };
        let inner = TxnRequest {
            compare: vec![],
            success: vec![put_op("y")],
            failure: vec![],
        };
        let t = TxnRequest {
            compare: vec![cmp(
                "a",
                CompareTarget::Value,
                R::Equal,
                TargetUnion::Value(b"3".to_vec()),
            )],
            success: vec![
                put_op("x"),
                RequestOp {
                    request: Some(Request::RequestTxn(inner)),
                },
            ],
            failure: vec![],
        };
        let (txn, resp) = txn_write(&s, &t, &|_| false).unwrap();
        drop(txn);
        assert!(resp.succeeded);
        assert_eq!(resp.header.unwrap().revision, 6);
        assert_eq!(s.current_rev(), 6);
        match &resp.responses[1].response {
            Some(Response::ResponseTxn(nested)) => {
                assert!(nested.succeeded);
                assert_eq!(nested.header.unwrap().revision, 0);
            }
            other => panic!("{other:?}"),
        }
        // A put with an unknown lease fails before anything is written.
        let leased = TxnRequest {
            compare: vec![],
            success: vec![RequestOp {
                request: Some(Request::RequestPut(PutRequest {
                    key: b"l".to_vec(),
                    lease: 7,
                    ..Default::default()
                })),
            }],
            failure: vec![],
        };
        assert!(matches!(
            txn_write(&s, &leased, &|_| false),
            Err(EtcdError::LeaseNotFound)
        ));
        assert_eq!(s.current_rev(), 6);
    }
}
