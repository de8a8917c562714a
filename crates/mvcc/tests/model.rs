//! Model-based tests: the store against a plain model of its whole history.
//! Every range at every revision must match, before and after compaction,
//! and (on RocksDB) after close and reopen.

use std::collections::BTreeMap;
use std::sync::Arc;

use ironcd_backend::{Backend, BackendConfig, MemBackend, RocksBackend};
use ironcd_mvcc::{Error, RangeOptions, Store, StoreConfig};
use ironcd_proto::mvccpb::KeyValue;
use proptest::prelude::*;

const KEYS: &[&str] = &["a", "ab", "b", "c", "cc", "d"];

#[derive(Clone, Debug)]
enum Op {
    Put(usize, u8, i64),
    Delete(usize, Option<usize>),
}

#[derive(Clone, Debug)]
enum Step {
    Txn(Vec<Op>),
    /// Compact at `current - back` (clamped into the valid window).
    Compact(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..KEYS.len(), any::<u8>(), 0i64..3).prop_map(|(k, v, l)| Op::Put(k, v, l)),
        1 => (0..KEYS.len(), proptest::option::of(0..KEYS.len())).prop_map(|(k, e)| Op::Delete(k, e)),
    ]
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        8 => proptest::collection::vec(op(), 1..4).prop_map(Step::Txn),
        1 => (0i64..6).prop_map(Step::Compact),
    ];
    proptest::collection::vec(step, 1..40)
}

/// The model: the full key space at every revision.
struct Model {
    history: Vec<BTreeMap<Vec<u8>, KeyValue>>,
    compacted: i64,
}

impl Model {
    fn new() -> Self {
        // Revision 0 is never read; revision 1 is the empty store.
        Self {
            history: vec![BTreeMap::new(), BTreeMap::new()],
            compacted: 0,
        }
    }

    fn current(&self) -> i64 {
        self.history.len() as i64 - 1
    }

    fn apply(&mut self, ops: &[Op]) {
        let rev = self.current() + 1;
        let mut state = self.history.last().expect("history").clone();
        let mut changed = false;
        for op in ops {
            match *op {
                Op::Put(k, v, lease) => {
                    let key = KEYS[k].as_bytes().to_vec();
                    let (create_revision, version) = match state.get(&key) {
                        Some(old) => (old.create_revision, old.version + 1),
                        None => (rev, 1),
                    };
                    state.insert(
                        key.clone(),
                        KeyValue {
                            key,
                            create_revision,
                            mod_revision: rev,
                            version,
                            value: vec![v; (v % 5) as usize + 1],
                            lease,
                        },
                    );
                    changed = true;
                }
                Op::Delete(k, end) => {
                    let (start, end) = bounds(k, end);
                    let doomed: Vec<Vec<u8>> = state
                        .keys()
                        .filter(|key| in_range(key, &start, end.as_deref()))
                        .cloned()
                        .collect();
                    for key in doomed {
                        state.remove(&key);
                        changed = true;
                    }
                }
            }
        }
        if changed {
            self.history.push(state);
        }
    }

    fn range(&self, rev: i64, start: &[u8], end: Option<&[u8]>) -> Vec<KeyValue> {
        self.history[rev as usize]
            .values()
            .filter(|kv| in_range(&kv.key, start, end))
            .cloned()
            .collect()
    }
}

fn bounds(k: usize, end: Option<usize>) -> (Vec<u8>, Option<Vec<u8>>) {
    let start = KEYS[k].as_bytes().to_vec();
    let end = end.map(|e| {
        if e == 0 {
            Vec::new()
        } else {
            KEYS[e].as_bytes().to_vec()
        }
    });
    (start, end)
}

fn in_range(key: &[u8], start: &[u8], end: Option<&[u8]>) -> bool {
    match end {
        None => key == start,
        Some([]) => key >= start,
        Some(end) => key >= start && key < end,
    }
}

fn apply_to_store<B: Backend>(store: &Store<B>, ops: &[Op]) {
    let mut txn = store.write();
    for op in ops {
        match *op {
            Op::Put(k, v, lease) => {
                txn.put(KEYS[k].as_bytes(), &vec![v; (v % 5) as usize + 1], lease)
            }
            Op::Delete(k, end) => {
                let (start, end) = bounds(k, end);
                txn.delete_range(&start, end.as_deref());
            }
        }
    }
}

fn compact<B: Backend>(store: &Store<B>, model: &mut Model, back: i64) {
    let target = (model.current() - back).max(model.compacted + 1);
    if target > model.current() {
        return;
    }
    store
        .compact(target)
        .expect("compact")
        .wait()
        .expect("compaction");
    model.compacted = target;
}

/// Every range shape at every revision agrees with the model.
fn check<B: Backend>(store: &Store<B>, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(store.current_rev(), model.current());
    prop_assert_eq!(store.compact_rev(), model.compacted);
    let mut shapes: Vec<(Vec<u8>, Option<Vec<u8>>)> = vec![(Vec::new(), Some(Vec::new()))];
    for s in 0..KEYS.len() {
        shapes.push(bounds(s, None));
        for e in 0..KEYS.len() {
            shapes.push(bounds(s, Some(e)));
        }
    }
    for rev in 1..=model.current() {
        for (start, end) in &shapes {
            let got = store.range(
                start,
                end.as_deref(),
                RangeOptions {
                    rev,
                    ..Default::default()
                },
            );
            if rev < model.compacted {
                let compacted = matches!(got, Err(Error::Compacted { .. }));
                prop_assert!(
                    compacted,
                    "rev {} below compaction {}",
                    rev,
                    model.compacted
                );
                continue;
            }
            let got = got.expect("range");
            let want = model.range(rev, start, end.as_deref());
            prop_assert_eq!(&got.kvs, &want, "rev {} range {:?}..{:?}", rev, start, end);
            prop_assert_eq!(got.count, want.len() as u64);
            prop_assert_eq!(got.rev, model.current());
            let limited = store
                .range(
                    start,
                    end.as_deref(),
                    RangeOptions {
                        rev,
                        limit: 1,
                        ..Default::default()
                    },
                )
                .expect("limited range");
            prop_assert_eq!(&limited.kvs[..], &want[..want.len().min(1)]);
            prop_assert_eq!(limited.more(), want.len() > 1);
            let counted = store
                .range(
                    start,
                    end.as_deref(),
                    RangeOptions {
                        rev,
                        count_only: true,
                        ..Default::default()
                    },
                )
                .expect("count");
            prop_assert_eq!(counted.count, want.len() as u64);
            prop_assert!(counted.kvs.is_empty());
        }
    }
    let future = store.range(
        b"a",
        None,
        RangeOptions {
            rev: model.current() + 1,
            ..Default::default()
        },
    );
    let is_future = matches!(future, Err(Error::FutureRevision { .. }));
    prop_assert!(is_future, "reading past the current revision must fail");
    Ok(())
}

fn run<B: Backend>(store: &Store<B>, model: &mut Model, steps: &[Step]) {
    for step in steps {
        match step {
            Step::Txn(ops) => {
                apply_to_store(store, ops);
                model.apply(ops);
            }
            Step::Compact(back) => compact(store, model, *back),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn in_memory_store_matches_model(steps in steps()) {
        let backend = Arc::new(MemBackend::open_in_memory(BackendConfig::default()));
        let store = Store::open(backend, StoreConfig::default()).expect("open");
        let mut model = Model::new();
        run(&store, &mut model, &steps);
        check(&store, &model)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn rocksdb_store_matches_model_across_reopen(steps in steps(), split in 0usize..40) {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = BackendConfig { batch_limit: 3, ..BackendConfig::default() };
        let mut model = Model::new();
        let (first, second) = steps.split_at(split.min(steps.len()));
        let hash_before;
        {
            let backend = Arc::new(RocksBackend::open(dir.path(), config.clone()).expect("open"));
            let store = Store::open(backend, StoreConfig { compaction_batch_limit: 2, ..Default::default() })
                .expect("open store");
            run(&store, &mut model, first);
            check(&store, &model)?;
            hash_before = store.hash_by_rev(0).expect("hash");
        }
        let backend = Arc::new(RocksBackend::open(dir.path(), config).expect("reopen"));
        let store = Store::open(backend, StoreConfig::default()).expect("reopen store");
        check(&store, &model)?;
        prop_assert_eq!(store.hash_by_rev(0).expect("hash"), hash_before);
        run(&store, &mut model, second);
        check(&store, &model)?;
    }
}
