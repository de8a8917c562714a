//! Hand-written histories: linearizable ones that must pass with a valid
//! order, anomalies that must fail naming the offending operation, failed
//! operations, patching, and the checker's bounds.

use super::*;

fn kv(key: &str, value: &str, create: i64, modified: i64, version: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: value.into(),
        create_revision: create,
        mod_revision: modified,
        version,
        lease: 0,
    }
}

fn leased(kv: KeyValue, lease: i64) -> KeyValue {
    KeyValue { lease, ..kv }
}

fn range(revision: i64, kvs: Vec<KeyValue>) -> Response {
    let count = i64::try_from(kvs.len()).unwrap();
    Response::Range {
        revision,
        kvs,
        count,
    }
}

fn op(client: u64, call: u64, ret: u64, request: Request, response: Response) -> Operation {
    Operation::completed(client, call, ret, request, response)
}

fn put(key: &str, value: &str) -> Request {
    Request::put(key, value)
}

fn put_rev(revision: i64) -> Response {
    Response::Put { revision }
}

fn put_with_lease(key: &str, value: &str, lease: i64) -> Request {
    Request::Put {
        key: key.into(),
        value: value.into(),
        lease,
    }
}

fn at_revision(key: &str, revision: i64) -> Request {
    Request::Range {
        key: key.into(),
        range_end: Vec::new(),
        revision,
        limit: 0,
    }
}

fn error(message: &str) -> Response {
    Response::Error(message.to_owned())
}

/// Checks, validates the order independently, and returns it.
fn assert_linearizable(operations: Vec<Operation>) -> Vec<usize> {
    let history = History::new(operations);
    match check(&history, &CheckLimits::default()) {
        CheckResult::Linearizable { order } => {
            validate_order(&history, &order).unwrap();
            order
        }
        other => panic!("expected linearizable, got {other:?}"),
    }
}

/// Checks that the history fails and that `culprit` leads the stuck list.
fn assert_violation(operations: Vec<Operation>, culprit: usize) -> Violation {
    let history = History::new(operations);
    match check(&history, &CheckLimits::default()) {
        CheckResult::Violation(violation) => {
            assert_eq!(
                violation.stuck.first().map(|s| s.op),
                Some(culprit),
                "{violation}"
            );
            assert!(violation.to_string().contains(&format!("#{culprit} ")));
            violation
        }
        other => panic!("expected a violation, got {other:?}"),
    }
}

#[test]
fn concurrent_puts_and_reads() {
    let order = assert_linearizable(vec![
        op(1, 0, 10, put("a", "1"), put_rev(2)),
        op(2, 5, 15, put("a", "2"), put_rev(3)),
        // Overlaps both puts and saw only the first.
        op(
            3,
            6,
            12,
            Request::get("a"),
            range(2, vec![kv("a", "1", 2, 2, 1)]),
        ),
        op(
            3,
            16,
            20,
            Request::get("a"),
            range(3, vec![kv("a", "2", 2, 3, 2)]),
        ),
        // Called before either put: may still see both.
        op(
            4,
            0,
            30,
            Request::get("a"),
            range(3, vec![kv("a", "2", 2, 3, 2)]),
        ),
    ]);
    assert_eq!(order.len(), 5);
}

#[test]
fn txn_compare_and_swap_with_one_winner() {
    let cas = |value: &str| Request::Txn {
        compares: vec![Compare::new(
            "a",
            CompareTarget::ModRevision(2),
            CompareOp::Equal,
        )],
        success: vec![TxnOp::put("a", value)],
        failure: vec![TxnOp::get("a")],
    };
    let won = Response::Txn {
        revision: 3,
        succeeded: true,
        results: vec![TxnResult::Put],
    };
    let lost = Response::Txn {
        revision: 3,
        succeeded: false,
        results: vec![TxnResult::Range {
            kvs: vec![kv("a", "y", 2, 3, 2)],
            count: 1,
        }],
    };
    let order = assert_linearizable(vec![
        op(1, 0, 5, put("a", "x"), put_rev(2)),
        op(2, 10, 20, cas("z"), lost),
        op(3, 10, 20, cas("y"), won),
    ]);
    // The winner must come before the loser, which saw its value.
    assert_eq!(order, vec![0, 2, 1]);
}

#[test]
fn lease_grant_put_and_revoke_deleting_keys() {
    let a = leased(kv("a", "1", 2, 2, 1), 7);
    assert_linearizable(vec![
        op(
            1,
            0,
            1,
            Request::LeaseGrant { id: 7, ttl_s: 60 },
            Response::LeaseGrant { revision: 1 },
        ),
        op(1, 2, 3, put_with_lease("a", "1", 7), put_rev(2)),
        op(2, 2, 4, put_with_lease("b", "1", 7), put_rev(3)),
        op(
            3,
            5,
            6,
            Request::range("", [0]),
            range(3, vec![a, leased(kv("b", "1", 3, 3, 1), 7)]),
        ),
        op(
            1,
            7,
            8,
            Request::LeaseKeepAlive { id: 7 },
            Response::LeaseKeepAlive { ttl_s: 58 },
        ),
        op(
            1,
            9,
            10,
            Request::LeaseRevoke { id: 7 },
            Response::LeaseRevoke { revision: 4 },
        ),
        op(2, 11, 12, Request::range("", [0]), range(4, vec![])),
        op(
            3,
            11,
            12,
            Request::LeaseKeepAlive { id: 7 },
            Response::LeaseKeepAlive { ttl_s: 0 },
        ),
        op(
            1,
            13,
            14,
            put_with_lease("c", "1", 7),
            error(ERR_LEASE_NOT_FOUND),
        ),
    ]);
}

#[test]
fn compaction_then_a_stale_read_of_a_compacted_revision() {
    assert_linearizable(vec![
        op(1, 0, 1, put("a", "1"), put_rev(2)),
        op(1, 2, 3, put("a", "2"), put_rev(3)),
        op(
            2,
            4,
            5,
            at_revision("a", 2),
            range(3, vec![kv("a", "1", 2, 2, 1)]),
        ),
        op(
            1,
            6,
            7,
            Request::Compact { revision: 3 },
            Response::Compact { revision: 3 },
        ),
        op(2, 8, 9, at_revision("a", 2), error(ERR_COMPACTED)),
        op(
            2,
            10,
            11,
            at_revision("a", 3),
            range(3, vec![kv("a", "2", 2, 3, 2)]),
        ),
        op(
            1,
            10,
            11,
            Request::Compact { revision: 2 },
            error(ERR_COMPACTED),
        ),
        op(3, 10, 11, at_revision("a", 9), error(ERR_FUTURE_REV)),
    ]);
}

#[test]
fn a_read_older_than_an_earlier_read_is_a_stale_read() {
    assert_violation(
        vec![
            op(1, 0, 5, put("a", "1"), put_rev(2)),
            op(2, 6, 100, put("a", "2"), put_rev(3)),
            op(
                3,
                10,
                20,
                Request::get("a"),
                range(3, vec![kv("a", "2", 2, 3, 2)]),
            ),
            op(
                4,
                30,
                40,
                Request::get("a"),
                range(2, vec![kv("a", "1", 2, 2, 1)]),
            ),
        ],
        3,
    );
}

#[test]
fn an_acknowledged_write_that_is_lost() {
    let violation = assert_violation(
        vec![
            op(1, 0, 10, put("a", "1"), put_rev(2)),
            op(2, 20, 30, Request::get("a"), range(1, vec![])),
        ],
        1,
    );
    assert_eq!(violation.prefix, vec![0]);
    assert_eq!(violation.state.revision(), 2);
    assert!(violation.stuck[0]
        .description
        .contains("the model answers rev 2"));
}

#[test]
fn a_revision_that_goes_back() {
    assert_violation(
        vec![
            op(1, 0, 10, put("a", "1"), put_rev(2)),
            op(1, 11, 20, put("b", "1"), put_rev(3)),
            op(
                2,
                30,
                40,
                Request::get("a"),
                range(2, vec![kv("a", "1", 2, 2, 1)]),
            ),
        ],
        2,
    );
}

#[test]
fn a_put_answered_with_a_revision_already_used() {
    assert_violation(
        vec![
            op(1, 0, 10, put("a", "1"), put_rev(2)),
            op(2, 20, 30, put("b", "1"), put_rev(2)),
        ],
        1,
    );
}

#[test]
fn a_txn_whose_outcome_contradicts_the_state() {
    let txn = Request::Txn {
        compares: vec![Compare::new(
            "a",
            CompareTarget::Value(b"1".to_vec()),
            CompareOp::Equal,
        )],
        success: vec![TxnOp::put("a", "2")],
        failure: vec![],
    };
    let claimed_failure = Response::Txn {
        revision: 2,
        succeeded: false,
        results: vec![],
    };
    assert_violation(
        vec![
            op(1, 0, 10, put("a", "1"), put_rev(2)),
            op(2, 20, 30, txn, claimed_failure),
        ],
        1,
    );
}

#[test]
fn keys_of_a_revoked_lease_read_afterwards() {
    assert_violation(
        vec![
            op(
                1,
                0,
                1,
                Request::LeaseGrant { id: 3, ttl_s: 60 },
                Response::LeaseGrant { revision: 1 },
            ),
            op(1, 2, 3, put_with_lease("a", "1", 3), put_rev(2)),
            op(
                1,
                4,
                5,
                Request::LeaseRevoke { id: 3 },
                Response::LeaseRevoke { revision: 3 },
            ),
            op(
                2,
                6,
                7,
                Request::get("a"),
                range(3, vec![leased(kv("a", "1", 2, 2, 1), 3)]),
            ),
        ],
        3,
    );
}

#[test]
fn a_wrong_version_or_create_revision() {
    let history = |seen: KeyValue| {
        vec![
            op(1, 0, 1, put("a", "1"), put_rev(2)),
            op(1, 2, 3, put("a", "2"), put_rev(3)),
            op(2, 4, 5, Request::get("a"), range(3, vec![seen])),
        ]
    };
    assert_violation(history(kv("a", "2", 2, 3, 1)), 2);
    assert_violation(history(kv("a", "2", 3, 3, 2)), 2);
    assert_linearizable(history(kv("a", "2", 2, 3, 2)));
}

#[test]
fn a_failed_put_that_happened_and_one_that_did_not() {
    let happened = vec![
        op(1, 0, 10, put("a", "1"), put_rev(2)),
        Operation::failed(2, 12, put("a", "lost?")),
        op(
            3,
            30,
            40,
            Request::get("a"),
            range(3, vec![kv("a", "lost?", 2, 3, 2)]),
        ),
        op(3, 50, 60, put("b", "1"), put_rev(4)),
    ];
    let order = assert_linearizable(happened.clone());
    assert!(
        order.contains(&1),
        "the failed put is in the order: {order:?}"
    );
    let did_not = vec![
        op(1, 0, 10, put("a", "1"), put_rev(2)),
        Operation::failed(2, 12, put("a", "lost")),
        op(
            3,
            30,
            40,
            Request::get("a"),
            range(2, vec![kv("a", "1", 2, 2, 1)]),
        ),
        op(3, 50, 60, put("b", "1"), put_rev(3)),
    ];
    let order = assert_linearizable(did_not.clone());
    assert!(!order.contains(&1), "the failed put is left out: {order:?}");
    // Patched, both still pass.
    for operations in [happened, did_not] {
        let patched = patch(&History::new(operations), None);
        assert!(check(&patched, &CheckLimits::default()).is_linearizable());
    }
}

#[test]
fn a_failed_put_carried_into_a_later_segment() {
    // The put fails at 0 and takes effect only after the quiescent point
    // at 25; its write is seen in the second segment.
    let operations = vec![
        Operation::failed(1, 0, put("a", "late")),
        op(2, 10, 20, put("b", "1"), put_rev(2)),
        op(
            2,
            30,
            40,
            Request::get("a"),
            range(3, vec![kv("a", "late", 3, 3, 1)]),
        ),
    ];
    let order = assert_linearizable(operations.clone());
    assert_eq!(order, vec![1, 0, 2]);
    let whole = CheckLimits {
        split_at_quiescent_points: false,
        ..CheckLimits::default()
    };
    assert!(check(&History::new(operations), &whole).is_linearizable());
}

#[test]
fn many_failed_operations_still_check_quickly() {
    // 300 sequential operations, one client after another; every tenth is
    // a failed put, half of which took effect (and every other put's
    // revision accounts for them).
    let mut operations = Vec::new();
    let mut revision = 1;
    for i in 0..300u64 {
        let (call, ret) = (i * 10, i * 10 + 5);
        let value = format!("v{i}");
        if i % 10 == 3 {
            operations.push(Operation::failed(i, call, put("f", &value)));
            if i % 20 == 3 {
                revision += 1;
            }
            continue;
        }
        revision += 1;
        operations.push(op(i, call, ret, put("k", &value), put_rev(revision)));
    }
    let history = History::new(operations);
    let limits = CheckLimits {
        max_states_explored: 100_000,
        ..CheckLimits::default()
    };
    match check(&history, &limits) {
        CheckResult::Linearizable { order } => validate_order(&history, &order).unwrap(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn failed_reads_are_ignored() {
    assert_linearizable(vec![
        Operation::failed(1, 0, Request::get("a")),
        Operation::failed(2, 0, Request::LeaseKeepAlive { id: 1 }),
        op(3, 5, 6, put("a", "1"), put_rev(2)),
    ]);
}

#[test]
fn an_exhausted_budget_is_unknown_not_a_verdict() {
    let operations: Vec<Operation> = (0..12)
        .map(|i| op(i, 0, 100, Request::get("a"), range(1, vec![])))
        .chain([op(99, 0, 100, Request::get("a"), range(5, vec![]))])
        .collect();
    let limits = CheckLimits {
        max_states_explored: 50,
        ..CheckLimits::default()
    };
    let result = check(&History::new(operations), &limits);
    assert_eq!(
        result,
        CheckResult::Unknown {
            states_explored: 50
        }
    );
}

#[test]
fn an_empty_history_is_linearizable() {
    assert_eq!(
        check(&History::default(), &CheckLimits::default()),
        CheckResult::Linearizable { order: vec![] }
    );
}

#[test]
#[should_panic(expected = "invalid history")]
fn checking_an_invalid_history_panics() {
    let backwards = op(1, 10, 5, put("a", "1"), put_rev(2));
    check(&History::new(vec![backwards]), &CheckLimits::default());
}

#[test]
fn validate_order_rejects_bad_orders() {
    let history = History::new(vec![
        op(1, 0, 10, put("a", "1"), put_rev(2)),
        op(2, 20, 30, put("a", "2"), put_rev(3)),
    ]);
    assert!(validate_order(&history, &[0, 1]).is_ok());
    assert!(validate_order(&history, &[1, 0])
        .unwrap_err()
        .contains("before #1"));
    assert!(validate_order(&history, &[0])
        .unwrap_err()
        .contains("missing"));
    assert!(validate_order(&history, &[0, 0, 1])
        .unwrap_err()
        .contains("twice"));
    assert!(validate_order(&history, &[0, 7]).is_err());
}

#[test]
fn patch_bounds_observed_failed_puts_by_the_read_that_saw_them() {
    let history = History::new(vec![
        Operation::failed(1, 0, put("a", "x")),
        op(
            2,
            10,
            20,
            Request::get("a"),
            range(2, vec![kv("a", "x", 2, 2, 1)]),
        ),
        op(
            3,
            15,
            25,
            Request::get("a"),
            range(2, vec![kv("a", "x", 2, 2, 1)]),
        ),
        Operation::failed(4, 30, Request::get("a")),
    ]);
    let patched = patch(&history, None);
    assert_eq!(patched.operations.len(), 3, "the failed read is dropped");
    assert_eq!(patched.operations[0].return_ns, Some(20));
    assert_eq!(patched.operations[0].response, Some(put_rev(2)));
    assert!(check(&patched, &CheckLimits::default()).is_linearizable());
}

#[test]
fn patch_uses_what_the_wal_persisted() {
    let cas_both_branches = Request::Txn {
        compares: vec![],
        success: vec![TxnOp::put("t", "1")],
        failure: vec![TxnOp::put("t", "2")],
    };
    let cas_one_branch = Request::Txn {
        compares: vec![],
        success: vec![TxnOp::put("u", "1")],
        failure: vec![],
    };
    let history = History::new(vec![
        Operation::failed(1, 0, put("a", "persisted")),
        Operation::failed(2, 0, put("b", "gone")),
        Operation::failed(3, 0, cas_both_branches),
        Operation::failed(4, 0, cas_one_branch),
        op(5, 10, 20, put("c", "1"), put_rev(3)),
    ]);
    let persisted = [(b"a".to_vec(), b"persisted".to_vec())];
    let patched = patch(&history, Some(&persisted));
    let requests: Vec<String> = patched
        .operations
        .iter()
        .map(|op| op.request.to_string())
        .collect();
    // The unpersisted put and the txn that would have put either way are
    // gone; the txn that might have run its empty branch stays failed.
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert_eq!(patched.operations[0].return_ns, Some(21));
    assert!(patched.operations[1].is_failed());
    assert_eq!(patched.operations[2].request, put("c", "1"));
    // The persisted put now must happen, and did (c got revision 3).
    assert!(check(&patched, &CheckLimits::default()).is_linearizable());
}

#[test]
fn a_violation_display_names_the_prefix_and_the_answers() {
    let violation = assert_violation(
        vec![
            op(1, 0, 10, put("a", "1"), put_rev(2)),
            op(2, 20, 30, Request::get("a"), range(1, vec![])),
        ],
        1,
    );
    let text = violation.to_string();
    assert!(
        text.contains("longest linearizable prefix has 1 operations (the last is #0)"),
        "{text}"
    );
    assert!(
        text.contains(r#"#1 client 2 [20, 30] range "a" → rev 1 count 0 []"#),
        "{text}"
    );
}
