//! The lessor against a plain model of leases under random grants,
//! renewals, revokes, checkpoints, key attachments and time passing, on
//! the primary; then a lessor recovered from the records the run wrote
//! must hold the same leases.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use ironcd_backend::{Backend, BackendConfig, MemBackend};
use ironcd_lease::{Error, LeaseId, Lessor, LessorConfig, ManualClock, RangeDeleter};
use proptest::prelude::*;

const MIN_TTL_S: i64 = 2;
const RETRY_S: u64 = 3;
const NS: u64 = 1_000_000_000;

#[derive(Clone, Debug)]
enum Op {
    Grant(LeaseId, i64),
    Revoke(LeaseId),
    Renew(LeaseId),
    Attach(u8, LeaseId),
    Detach(u8),
    Checkpoint(LeaseId, i64),
    AdvanceMs(u64),
    Tick,
}

fn op() -> impl Strategy<Value = Op> {
    let id = 1..6i64;
    prop_oneof![
        (id.clone(), 0..30i64).prop_map(|(i, t)| Op::Grant(i, t)),
        id.clone().prop_map(Op::Revoke),
        id.clone().prop_map(Op::Renew),
        (0..8u8, 0..6i64).prop_map(|(k, l)| Op::Attach(k, l)),
        (0..8u8).prop_map(Op::Detach),
        (id, 0..40i64).prop_map(|(i, r)| Op::Checkpoint(i, r)),
        (0..12_000u64).prop_map(Op::AdvanceMs),
        Just(Op::Tick),
    ]
}

#[derive(Debug)]
struct ModelLease {
    ttl_s: i64,
    expiry_ns: u64,
    /// When tick may hand it out (again).
    due_ns: u64,
    keys: BTreeSet<Vec<u8>>,
}

#[derive(Default)]
struct Model {
    now_ns: u64,
    leases: BTreeMap<LeaseId, ModelLease>,
}

struct Deleter<'a, T> {
    tx: T,
    deleted: &'a mut Vec<Vec<u8>>,
}

impl<T: ironcd_backend::BatchTx> RangeDeleter for Deleter<'_, T> {
    type Tx = T;
    fn delete_key(&mut self, key: &[u8]) {
        self.deleted.push(key.to_vec());
    }
    fn tx(&mut self) -> &mut T {
        &mut self.tx
    }
}

fn key(k: u8) -> Vec<u8> {
    format!("key/{k}").into_bytes()
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let clock = Arc::new(ManualClock::new());
    let cfg = LessorConfig {
        min_ttl_s: MIN_TTL_S,
        expiry_retry: Duration::from_secs(RETRY_S),
        ..LessorConfig::default()
    };
    let lessor = Lessor::new(cfg.clone(), clock.clone());
    lessor.promote(Duration::ZERO);
    let backend = MemBackend::open_in_memory(BackendConfig::default());
    let mut m = Model::default();
    for op in ops {
        match op {
            Op::Grant(id, ttl) => {
                let got = lessor.grant(&mut backend.batch_tx(), id, ttl);
                if m.leases.contains_key(&id) {
                    prop_assert_eq!(got, Err(Error::LeaseExists));
                } else {
                    let ttl = ttl.max(MIN_TTL_S);
                    prop_assert_eq!(got.map(|g| (g.id, g.ttl_s)), Ok((id, ttl)));
                    let expiry_ns = m.now_ns + ttl as u64 * NS;
                    m.leases.insert(
                        id,
                        ModelLease {
                            ttl_s: ttl,
                            expiry_ns,
                            due_ns: expiry_ns,
                            keys: BTreeSet::new(),
                        },
                    );
                }
            }
            Op::Revoke(id) => {
                let mut deleted = Vec::new();
                let got = lessor.revoke(
                    id,
                    &mut Deleter {
                        tx: backend.batch_tx(),
                        deleted: &mut deleted,
                    },
                );
                match m.leases.remove(&id) {
                    None => prop_assert_eq!(got, Err(Error::LeaseNotFound)),
                    Some(l) => {
                        prop_assert_eq!(got, Ok(()));
                        let want: Vec<Vec<u8>> = l.keys.into_iter().collect();
                        prop_assert_eq!(deleted, want);
                    }
                }
            }
            Op::Renew(id) => {
                let got = lessor.renew(id).map(|r| r.ttl_s);
                match m.leases.get_mut(&id) {
                    Some(l) if l.expiry_ns > m.now_ns => {
                        prop_assert_eq!(got, Ok(l.ttl_s));
                        l.expiry_ns = m.now_ns + l.ttl_s as u64 * NS;
                        l.due_ns = l.due_ns.min(l.expiry_ns);
                    }
                    _ => prop_assert_eq!(got, Err(Error::LeaseNotFound)),
                }
            }
            Op::Attach(k, lease) => {
                if lease != 0 && !m.leases.contains_key(&lease) {
                    continue;
                }
                lessor.attach_key(&key(k), lease);
                for l in m.leases.values_mut() {
                    l.keys.remove(&key(k));
                }
                if let Some(l) = m.leases.get_mut(&lease) {
                    l.keys.insert(key(k));
                }
            }
            Op::Detach(k) => {
                lessor.detach_key(&key(k));
                for l in m.leases.values_mut() {
                    l.keys.remove(&key(k));
                }
            }
            Op::Checkpoint(id, remaining) => {
                lessor.checkpoint(&mut backend.batch_tx(), id, remaining);
                if let Some(l) = m.leases.get_mut(&id) {
                    let run = if remaining > 0 { remaining } else { l.ttl_s };
                    l.expiry_ns = m.now_ns + run as u64 * NS;
                    // An earlier due time stays (the tick then finds it
                    // unexpired and waits for the new expiry).
                    l.due_ns = l.due_ns.min(l.expiry_ns);
                }
            }
            Op::AdvanceMs(ms) => {
                clock.advance(Duration::from_millis(ms));
                m.now_ns += ms * 1_000_000;
            }
            Op::Tick => {
                let got: BTreeSet<LeaseId> = lessor.tick(10_000).expired.into_iter().collect();
                let now = m.now_ns;
                let mut want = BTreeSet::new();
                for (&id, l) in m.leases.iter_mut() {
                    if l.expiry_ns <= now && l.due_ns <= now {
                        want.insert(id);
                        l.due_ns = now + RETRY_S * NS;
                    } else if l.due_ns <= now {
                        l.due_ns = l.expiry_ns;
                    }
                }
                prop_assert_eq!(got, want);
            }
        }
        check_views(&lessor, &m)?;
    }
    // Everything granted and checkpointed is in the records: a lessor
    // recovered from them holds the same leases with the same TTLs.
    let recovered = Lessor::new(cfg, clock.clone());
    recovered.recover(&backend.read_tx()).unwrap();
    let mut ids = recovered.leases();
    ids.sort_unstable();
    prop_assert_eq!(ids, m.leases.keys().copied().collect::<Vec<_>>());
    for (&id, l) in &m.leases {
        let ttl = recovered.time_to_live(id, false).unwrap();
        prop_assert_eq!(ttl.granted_ttl_s, l.ttl_s);
    }
    Ok(())
}

fn check_views(lessor: &Lessor, m: &Model) -> Result<(), TestCaseError> {
    let mut ids = lessor.leases();
    ids.sort_unstable();
    prop_assert_eq!(ids, m.leases.keys().copied().collect::<Vec<_>>());
    for (&id, l) in &m.leases {
        let got = lessor.time_to_live(id, true).unwrap();
        let remaining = if l.expiry_ns > m.now_ns {
            ((l.expiry_ns - m.now_ns) / NS) as i64
        } else {
            -1
        };
        prop_assert_eq!(got.remaining_s, remaining, "lease {}", id);
        prop_assert_eq!(got.granted_ttl_s, l.ttl_s);
        prop_assert_eq!(got.keys, l.keys.iter().cloned().collect::<Vec<_>>());
        for k in &l.keys {
            prop_assert_eq!(lessor.lease_of(k), id);
        }
    }
    prop_assert!(lessor.time_to_live(99, false).is_none());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn lessor_matches_the_model(ops in proptest::collection::vec(op(), 1..80)) {
        run(ops)?;
    }
}
