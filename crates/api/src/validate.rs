//! Request checks done before a request reaches the server, with etcd's
//! rules: the same checks, in the same order, so the same request gets the
//! same error from ironcd and from etcd.

use std::collections::HashSet;

use ironcd_proto::etcdserverpb::{
    request_op::Request, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};

use crate::EtcdError;

/// Limits the checks enforce (the server's flags).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `--max-txn-ops`: operations per txn level (compares, success or
    /// failure, whichever is longest).
    pub max_txn_ops: u64,
    /// `--max-request-bytes`: the largest request accepted.
    pub max_request_bytes: u64,
}

/// A Range needs a key.
pub fn check_range(r: &RangeRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    Ok(())
}

/// A Put needs a key, and no value (lease) when told to keep the old one.
pub fn check_put(r: &PutRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(EtcdError::ValueProvided);
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(EtcdError::LeaseProvided);
    }
    Ok(())
}

/// A DeleteRange needs a key.
pub fn check_delete(r: &DeleteRangeRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    Ok(())
}

/// The whole txn check: sizes and keys (recursively), then the rule that
/// no key is written twice on one path through the txn.
pub fn check_txn(r: &TxnRequest, limits: &Limits) -> Result<(), EtcdError> {
    check_txn_ops(r, limits.max_txn_ops)?;
    write_set(&r.success)?;
    write_set(&r.failure)?;
    Ok(())
}

/// etcd's `checkTxnRequest`: a nested txn gets what its parent's widest
/// level left of the budget.
fn check_txn_ops(r: &TxnRequest, budget: u64) -> Result<(), EtcdError> {
    let width = r.compare.len().max(r.success.len()).max(r.failure.len()) as u64;
    if width > budget {
        return Err(EtcdError::TooManyOps);
    }
    if r.compare.iter().any(|c| c.key.is_empty()) {
        return Err(EtcdError::EmptyKey);
    }
    for op in r.success.iter().chain(&r.failure) {
        check_op(op, budget - width)?;
    }
    Ok(())
}

fn check_op(op: &RequestOp, budget: u64) -> Result<(), EtcdError> {
    match &op.request {
        Some(Request::RequestRange(r)) => check_range(r),
        Some(Request::RequestPut(r)) => check_put(r),
        Some(Request::RequestDeleteRange(r)) => check_delete(r),
        Some(Request::RequestTxn(r)) => check_txn_ops(r, budget),
        None => Err(EtcdError::KeyNotFound),
    }
}

/// A deleted span: `[start, end)`, `end == None` for an unbounded one, or a
/// single key when `point`.
#[derive(Clone, Debug)]
struct Span {
    start: Vec<u8>,
    end: Option<Vec<u8>>,
}

impl Span {
    fn of(r: &DeleteRangeRequest) -> Span {
        match r.range_end.as_slice() {
            [] => Span {
                end: Some(successor(&r.key)),
                start: r.key.clone(),
            },
            [0] => Span {
                start: r.key.clone(),
                end: None,
            },
            end => Span {
                start: r.key.clone(),
                end: Some(end.to_vec()),
            },
        }
    }

    fn contains(&self, key: &[u8]) -> bool {
        key >= self.start.as_slice() && self.end.as_deref().is_none_or(|end| key < end)
    }
}

/// The smallest key after `key`.
fn successor(key: &[u8]) -> Vec<u8> {
    let mut next = key.to_vec();
    next.push(0);
    next
}

/// What one list of ops (and the txns nested in it) writes: etcd's
/// `checkIntervals`. Then and else branches of a nested txn may put the
/// same key (only one of them runs); nothing else may touch a key twice.
fn write_set(ops: &[RequestOp]) -> Result<(HashSet<Vec<u8>>, Vec<Span>), EtcdError> {
    let mut dels: Vec<Span> = ops
        .iter()
        .filter_map(|op| match &op.request {
            Some(Request::RequestDeleteRange(d)) => Some(Span::of(d)),
            _ => None,
        })
        .collect();
    let deleted = |dels: &[Span], key: &[u8]| dels.iter().any(|s| s.contains(key));
    let mut puts = HashSet::new();
    for op in ops {
        let Some(Request::RequestTxn(txn)) = &op.request else {
            continue;
        };
        let (puts_then, dels_then) = write_set(&txn.success)?;
        let (puts_else, dels_else) = write_set(&txn.failure)?;
        for key in &puts_then {
            if puts.contains(key) || deleted(&dels, key) {
                return Err(EtcdError::DuplicateKey);
            }
        }
        puts.extend(puts_then.iter().cloned());
        for key in puts_else {
            let clash = puts.contains(&key) && !puts_then.contains(&key);
            if clash || deleted(&dels, &key) {
                return Err(EtcdError::DuplicateKey);
            }
            puts.insert(key);
        }
        dels.extend(dels_then);
        dels.extend(dels_else);
    }
    for op in ops {
        let Some(Request::RequestPut(put)) = &op.request else {
            continue;
        };
        if puts.contains(&put.key) || deleted(&dels, &put.key) {
            return Err(EtcdError::DuplicateKey);
        }
        puts.insert(put.key.clone());
    }
    Ok((puts, dels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestPut(PutRequest {
                key: key.into(),
                value: b"v".to_vec(),
                ..Default::default()
            })),
        }
    }

    fn del(key: &str, end: &[u8]) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
                key: key.into(),
                range_end: end.to_vec(),
                ..Default::default()
            })),
        }
    }

    fn txn(success: Vec<RequestOp>, failure: Vec<RequestOp>) -> TxnRequest {
        TxnRequest {
            compare: vec![],
            success,
            failure,
        }
    }

    fn nested(t: TxnRequest) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestTxn(t)),
        }
    }

    const LIMITS: Limits = Limits {
        max_txn_ops: 4,
        max_request_bytes: 1 << 20,
    };

    #[test]
    fn duplicate_keys_follow_etcds_rule() {
        let cases: Vec<(&str, TxnRequest, Result<(), EtcdError>)> = vec![
            (
                "two puts",
                txn(vec![put("a"), put("a")], vec![]),
                Err(EtcdError::DuplicateKey),
            ),
            (
                "put in a deleted range",
                txn(vec![del("a", b"c"), put("b")], vec![]),
                Err(EtcdError::DuplicateKey),
            ),
            (
                "put after from-key delete",
                txn(vec![del("a", &[0]), put("zz")], vec![]),
                Err(EtcdError::DuplicateKey),
            ),
            (
                "put beside a range",
                txn(vec![del("a", b"c"), put("c")], vec![]),
                Ok(()),
            ),
            (
                "same key in both branches",
                txn(vec![put("a")], vec![put("a")]),
                Ok(()),
            ),
            (
                "nested then and else",
                txn(vec![nested(txn(vec![put("a")], vec![put("a")]))], vec![]),
                Ok(()),
            ),
            (
                "nested and outer put",
                txn(vec![nested(txn(vec![put("a")], vec![])), put("a")], vec![]),
                Err(EtcdError::DuplicateKey),
            ),
            (
                "nested put, outer delete",
                txn(
                    vec![nested(txn(vec![put("b")], vec![])), del("a", b"c")],
                    vec![],
                ),
                Err(EtcdError::DuplicateKey),
            ),
            (
                "two deletes overlap",
                txn(vec![del("a", b"c"), del("b", b"d")], vec![]),
                Ok(()),
            ),
        ];
        for (name, t, want) in cases {
            assert_eq!(check_txn(&t, &LIMITS), want, "{name}");
        }
    }

    #[test]
    fn op_budget_is_shared_with_nested_txns() {
        let four = txn(vec![put("a"), put("b"), put("c"), put("d")], vec![]);
        assert_eq!(check_txn(&four, &LIMITS), Ok(()));
        let five = txn(
            vec![put("a"), put("b"), put("c"), put("d"), put("e")],
            vec![],
        );
        assert_eq!(check_txn(&five, &LIMITS), Err(EtcdError::TooManyOps));
        // The outer level uses 2 of 4; the nested one may have 2, not 3.
        let inner3 = txn(vec![put("x"), put("y"), put("z")], vec![]);
        let outer = txn(vec![put("a"), nested(inner3)], vec![]);
        assert_eq!(check_txn(&outer, &LIMITS), Err(EtcdError::TooManyOps));
        let empty_op = txn(vec![RequestOp { request: None }], vec![]);
        assert_eq!(check_txn(&empty_op, &LIMITS), Err(EtcdError::KeyNotFound));
    }

    #[test]
    fn keys_and_flags() {
        assert_eq!(
            check_range(&RangeRequest::default()),
            Err(EtcdError::EmptyKey)
        );
        let mut p = PutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            ignore_value: true,
            ..Default::default()
        };
        assert_eq!(check_put(&p), Err(EtcdError::ValueProvided));
        p.value.clear();
        p.ignore_lease = true;
        p.lease = 5;
        assert_eq!(check_put(&p), Err(EtcdError::LeaseProvided));
        assert_eq!(
            check_delete(&DeleteRangeRequest::default()),
            Err(EtcdError::EmptyKey)
        );
    }
}
