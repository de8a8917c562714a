//! Random linearizable histories, made by simulating a real execution:
//! every operation takes effect at a random point inside its call–return
//! interval, applied to the model in point order; and the tests that
//! check them, mutated and not.

use super::check::{check, validate_order, CheckLimits, CheckResult};
use super::history::{History, Operation};
use super::model::EtcdState;
use super::patch::{patch, Persisted};
use super::request::{Compare, CompareOp, CompareTarget, Request, Response, TxnOp};

/// splitmix64: small, seedable, and the same on every platform.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        let len = u64::try_from(items.len()).ok()?;
        items.get(usize::try_from(self.below(len)).ok()?)
    }
}

/// The shape of a simulated run.
pub(super) struct Shape {
    pub clients: u64,
    pub ops_per_client: u64,
    pub keys: u64,
    /// Operations whose outcome the client never learns (half of them
    /// take effect).
    pub failed_percent: u64,
    pub max_duration_ns: u64,
    pub max_gap_ns: u64,
}

/// One operation's timing, decided before any request is.
struct Slot {
    client: u64,
    call_ns: u64,
    return_ns: u64,
    point_ns: u64,
    failed: bool,
    happened: bool,
}

fn slots(rng: &mut Rng, shape: &Shape) -> Vec<Slot> {
    let mut slots = Vec::new();
    for client in 0..shape.clients {
        let mut now = rng.below(shape.max_gap_ns);
        for _ in 0..shape.ops_per_client {
            let duration = 1 + rng.below(shape.max_duration_ns);
            let failed = rng.chance(shape.failed_percent);
            slots.push(Slot {
                client,
                call_ns: now,
                return_ns: now + duration,
                point_ns: now + rng.below(duration + 1),
                failed,
                happened: !failed || rng.chance(50),
            });
            now += duration + 1 + rng.below(shape.max_gap_ns);
        }
    }
    slots.sort_by_key(|slot| (slot.point_ns, slot.client));
    slots
}

/// A linearizable history of `shape`, the same for the same seed.
pub(super) fn simulate(seed: u64, shape: &Shape) -> History {
    run(seed, shape).0
}

/// The puts a request's answer shows it made: what a WAL would hold.
fn persisted_by(request: &Request, response: &Response) -> Vec<Persisted> {
    let branch_puts = |ops: &[TxnOp]| -> Vec<Persisted> {
        ops.iter()
            .filter_map(|op| match op {
                TxnOp::Put { key, value, .. } => Some((key.clone(), value.clone())),
                _ => None,
            })
            .collect()
    };
    match (request, response) {
        (Request::Put { key, value, .. }, Response::Put { .. }) => {
            vec![(key.clone(), value.clone())]
        }
        (
            Request::Txn {
                success, failure, ..
            },
            Response::Txn { succeeded, .. },
        ) => branch_puts(if *succeeded { success } else { failure }),
        _ => Vec::new(),
    }
}

/// [`simulate`], with every put that took effect (failed operations'
/// too), as the WAL would show them.
fn run(seed: u64, shape: &Shape) -> (History, Vec<Persisted>) {
    let mut rng = Rng::new(seed);
    let mut requests = Requests {
        keys: shape.keys,
        values: 0,
        leases: Vec::new(),
    };
    let mut state = EtcdState::new();
    let mut operations = Vec::new();
    let mut persisted = Vec::new();
    for slot in slots(&mut rng, shape) {
        let request = requests.next(&mut rng, &state, slot.client);
        let response = if slot.happened {
            let (next, response) = state.step(&request);
            state = next;
            persisted.extend(persisted_by(&request, &response));
            Some(response)
        } else {
            None
        };
        operations.push(match (slot.failed, response) {
            (false, Some(response)) => {
                Operation::completed(slot.client, slot.call_ns, slot.return_ns, request, response)
            }
            _ => Operation::failed(slot.client, slot.call_ns, request),
        });
    }
    operations.sort_by_key(|op| (op.call_ns, op.client));
    (History::new(operations), persisted)
}

/// Chooses requests, some of them from the state at their point (stale
/// reads of live revisions, CAS on the current mod revision) so that
/// interesting answers are common.
struct Requests {
    keys: u64,
    values: u64,
    leases: Vec<i64>,
}

impl Requests {
    fn key(&self, rng: &mut Rng) -> Vec<u8> {
        format!("k{}", rng.below(self.keys)).into_bytes()
    }

    fn value(&mut self, client: u64) -> Vec<u8> {
        self.values += 1;
        format!("c{client}-{}", self.values).into_bytes()
    }

    fn lease(&self, rng: &mut Rng) -> i64 {
        rng.pick(&self.leases).copied().unwrap_or(1)
    }

    fn next(&mut self, rng: &mut Rng, state: &EtcdState, client: u64) -> Request {
        let key = self.key(rng);
        match rng.below(100) {
            0..=21 => Request::get(key),
            22..=27 => Request::Range {
                key: b"k".to_vec(),
                range_end: b"l".to_vec(),
                revision: 0,
                limit: i64::try_from(rng.below(3)).unwrap_or(0),
            },
            28..=33 => {
                // Around the live window, so both errors turn up.
                let low = state.compact_revision().max(1) - 1;
                let span = u64::try_from(state.revision() - low + 2).unwrap_or(1);
                let revision = low + i64::try_from(rng.below(span)).unwrap_or(0);
                Request::Range {
                    key,
                    range_end: Vec::new(),
                    revision: revision.max(1),
                    limit: 0,
                }
            }
            34..=54 => Request::put(key, self.value(client)),
            55..=60 => Request::delete(key),
            61..=71 => self.cas(rng, state, key, client),
            72..=76 => {
                let id = i64::try_from(self.leases.len()).unwrap_or(0) + 1;
                self.leases.push(id);
                Request::LeaseGrant { id, ttl_s: 3600 }
            }
            77..=84 => Request::Put {
                key,
                value: self.value(client),
                lease: self.lease(rng),
            },
            85..=88 => Request::LeaseRevoke {
                id: self.lease(rng),
            },
            89..=92 => Request::LeaseKeepAlive {
                id: self.lease(rng),
            },
            93..=95 => {
                let span = u64::try_from(state.revision() - state.compact_revision().max(0) + 1);
                let back = i64::try_from(rng.below(span.unwrap_or(1))).unwrap_or(0);
                Request::Compact {
                    revision: state.revision() - back,
                }
            }
            _ => self.multi(rng, client),
        }
    }

    fn cas(&mut self, rng: &mut Rng, state: &EtcdState, key: Vec<u8>, client: u64) -> Request {
        let current = state.get(&key).map_or(0, |kv| kv.mod_revision);
        let expected = if rng.chance(60) {
            current
        } else {
            i64::try_from(rng.below(10)).unwrap_or(0)
        };
        Request::Txn {
            compares: vec![Compare::new(
                key.clone(),
                CompareTarget::ModRevision(expected),
                CompareOp::Equal,
            )],
            success: vec![TxnOp::put(key.clone(), self.value(client))],
            failure: vec![TxnOp::get(key)],
        }
    }

    /// A txn writing several keys (now and then the same one twice, which
    /// etcd refuses).
    fn multi(&mut self, rng: &mut Rng, client: u64) -> Request {
        let (a, b) = (self.key(rng), self.key(rng));
        Request::Txn {
            compares: vec![Compare::new(
                a.clone(),
                CompareTarget::Version(0),
                CompareOp::Greater,
            )],
            success: vec![
                TxnOp::put(a.clone(), self.value(client)),
                TxnOp::delete(b.clone()),
                TxnOp::Range {
                    key: b"k".to_vec(),
                    range_end: vec![0],
                    revision: 0,
                    limit: 0,
                },
            ],
            failure: vec![TxnOp::put(b, self.value(client))],
        }
    }
}

fn small(failed_percent: u64) -> Shape {
    Shape {
        clients: 4,
        ops_per_client: 15,
        keys: 3,
        failed_percent,
        max_duration_ns: 40,
        max_gap_ns: 20,
    }
}

fn assert_linearizable(history: &History, limits: &CheckLimits, what: &str) {
    match check(history, limits) {
        CheckResult::Linearizable { order } => {
            if let Err(err) = validate_order(history, &order) {
                panic!("{what}: invalid order: {err}\n{}", history.to_json());
            }
        }
        other => panic!("{what}: {other:?}\n{}", history.to_json()),
    }
}

fn assert_violation(history: &History, what: &str) {
    let result = check(history, &CheckLimits::default());
    assert!(
        matches!(result, CheckResult::Violation(_)),
        "{what}: {result:?}\n{}",
        history.to_json()
    );
}

#[test]
fn simulated_histories_are_linearizable_split_or_whole_and_patched() {
    let whole = CheckLimits {
        split_at_quiescent_points: false,
        ..CheckLimits::default()
    };
    for seed in 0..60 {
        let history = simulate(seed, &small(8));
        assert_linearizable(&history, &CheckLimits::default(), &format!("seed {seed}"));
        assert_linearizable(&history, &whole, &format!("seed {seed}, one segment"));
        let patched = patch(&history, None);
        assert_linearizable(
            &patched,
            &CheckLimits::default(),
            &format!("seed {seed}, patched"),
        );
    }
}

#[test]
fn patching_with_what_was_truly_persisted_keeps_histories_linearizable() {
    for seed in 600..660 {
        let (history, persisted) = run(seed, &small(20));
        let patched = patch(&history, Some(&persisted));
        let failed = |h: &History| h.operations.iter().filter(|op| op.is_failed()).count();
        assert!(failed(&patched) <= failed(&history));
        assert_linearizable(&patched, &CheckLimits::default(), &format!("seed {seed}"));
    }
}

#[test]
fn sparse_histories_split_into_many_segments_and_still_pass() {
    // Long gaps make quiescent points common, so failed operations are
    // carried across many of them.
    let shape = Shape {
        max_gap_ns: 200,
        ..small(15)
    };
    for seed in 100..140 {
        let history = simulate(seed, &shape);
        assert_linearizable(&history, &CheckLimits::default(), &format!("seed {seed}"));
    }
}

/// The largest revision any linearization could produce: the model's
/// revisions plus one per failed operation.
fn revision_ceiling(history: &History) -> i64 {
    let answered = history
        .operations
        .iter()
        .filter_map(|op| op.response.as_ref()?.revision())
        .max()
        .unwrap_or(1);
    answered + i64::try_from(history.operations.len()).unwrap_or(0)
}

#[test]
fn a_revision_never_produced_is_always_detected() {
    for seed in 200..230 {
        let history = simulate(seed, &small(8));
        let never = revision_ceiling(&history) + 1_000;
        let mut rng = Rng::new(seed);
        let with_revisions: Vec<usize> = (0..history.operations.len())
            .filter(|&i| {
                let response = history.operations[i].response.as_ref();
                response.and_then(Response::revision).is_some()
            })
            .collect();
        for _ in 0..3 {
            let Some(&victim) = rng.pick(&with_revisions) else {
                continue;
            };
            let mut mutated = history.clone();
            let op = &mut mutated.operations[victim];
            op.response = op.response.as_ref().map(|r| r.with_revision(never));
            assert_violation(
                &mutated,
                &format!("seed {seed}, op #{victim} at rev {never}"),
            );
        }
    }
}

#[test]
fn a_put_revision_off_by_one_is_detected_when_nothing_failed() {
    for seed in 300..320 {
        let history = simulate(seed, &small(0));
        for (victim, op) in history.operations.iter().enumerate() {
            let Some(Response::Put { revision }) = op.response else {
                continue;
            };
            for shifted in [revision - 1, revision + 1] {
                let mut mutated = history.clone();
                mutated.operations[victim].response = Some(Response::Put { revision: shifted });
                assert_violation(
                    &mutated,
                    &format!("seed {seed}, put #{victim} at {shifted}"),
                );
            }
        }
    }
}

#[test]
fn a_value_never_written_is_always_detected() {
    for seed in 400..430 {
        let history = simulate(seed, &small(8));
        let reads: Vec<usize> = (0..history.operations.len())
            .filter(|&i| match &history.operations[i].response {
                Some(Response::Range { kvs, .. }) => !kvs.is_empty(),
                _ => false,
            })
            .collect();
        let Some(&victim) = Rng::new(seed).pick(&reads) else {
            continue;
        };
        let mut mutated = history.clone();
        if let Some(Response::Range { kvs, .. }) = &mut mutated.operations[victim].response {
            kvs[0].value = b"never written".to_vec();
        }
        assert_violation(&mutated, &format!("seed {seed}, read #{victim}"));
    }
}

#[test]
fn two_thousand_operations_from_eight_clients_check_within_the_limits() {
    let shape = Shape {
        clients: 8,
        ops_per_client: 250,
        keys: 10,
        failed_percent: 2,
        max_duration_ns: 100,
        max_gap_ns: 10,
    };
    let history = simulate(7, &shape);
    assert_eq!(history.operations.len(), 2_000);
    assert_linearizable(&history, &CheckLimits::default(), "2 000 operations");
}

#[test]
fn simulation_is_deterministic_per_seed() {
    assert_eq!(simulate(5, &small(8)), simulate(5, &small(8)));
    assert_ne!(simulate(5, &small(8)), simulate(6, &small(8)));
}

/// A response changed in one way a buggy server might.
fn mutate(rng: &mut Rng, response: &Response) -> Response {
    match response {
        Response::Range {
            revision,
            kvs,
            count,
        } if !kvs.is_empty() && rng.chance(50) => Response::Range {
            revision: *revision,
            kvs: kvs[1..].to_vec(),
            count: count - 1,
        },
        Response::Txn {
            revision,
            succeeded,
            results,
        } if rng.chance(50) => Response::Txn {
            revision: *revision,
            succeeded: !succeeded,
            results: results.clone(),
        },
        Response::LeaseKeepAlive { ttl_s } => Response::LeaseKeepAlive {
            ttl_s: if *ttl_s > 0 { 0 } else { 5 },
        },
        Response::Error(_) => Response::Put { revision: 2 },
        other => {
            let revision = other.revision().unwrap_or(1);
            let shift = if rng.chance(50) { 1 } else { -1 };
            other.with_revision(revision + shift)
        }
    }
}

/// Whether some order linearizes `history`, by trying every one: any
/// operation may come next unless a completed one still waiting returned
/// before it was called; failed ones may be left out.
fn brute_force(history: &History) -> bool {
    fn extend(ops: &[Operation], used: &mut Vec<bool>, state: &EtcdState) -> bool {
        let waiting = |used: &[bool], i: usize| !used[i] && !ops[i].is_failed();
        if !(0..ops.len()).any(|i| waiting(used, i)) {
            return true;
        }
        for next in 0..ops.len() {
            if used[next] {
                continue;
            }
            let blocked = (0..ops.len()).any(|q| {
                q != next
                    && waiting(used, q)
                    && ops[q].return_ns.is_some_and(|r| r < ops[next].call_ns)
            });
            if blocked {
                continue;
            }
            let (after, expected) = state.step(&ops[next].request);
            let fits = ops[next]
                .response
                .as_ref()
                .is_none_or(|observed| super::model::response_matches(&expected, observed));
            if fits {
                used[next] = true;
                let found = extend(ops, used, &after);
                used[next] = false;
                if found {
                    return true;
                }
            }
        }
        false
    }
    let mut used = vec![false; history.operations.len()];
    extend(&history.operations, &mut used, &EtcdState::new())
}

#[test]
fn agrees_with_brute_force_on_small_histories_mutated_or_not() {
    let shape = Shape {
        clients: 3,
        ops_per_client: 2,
        keys: 2,
        failed_percent: 20,
        max_duration_ns: 30,
        max_gap_ns: 15,
    };
    let (mut linearizable, mut violations) = (0, 0);
    for seed in 500..1_100 {
        let mut history = simulate(seed, &shape);
        let mut rng = Rng::new(seed);
        if rng.chance(60) {
            let answered: Vec<usize> = (0..history.operations.len())
                .filter(|&i| history.operations[i].response.is_some())
                .collect();
            if let Some(&victim) = rng.pick(&answered) {
                let op = &mut history.operations[victim];
                op.response = op.response.as_ref().map(|r| mutate(&mut rng, r));
            }
        }
        let expected = brute_force(&history);
        let result = check(&history, &CheckLimits::default());
        assert_eq!(
            result.is_linearizable(),
            expected,
            "seed {seed}: {result:?}\n{}",
            history.to_json()
        );
        if let CheckResult::Linearizable { order } = &result {
            validate_order(&history, order).unwrap();
        }
        assert!(!matches!(result, CheckResult::Unknown { .. }));
        if expected {
            linearizable += 1;
        } else {
            violations += 1;
        }
    }
    // Both verdicts are common, so the comparison means something.
    assert!(
        linearizable > 100 && violations > 100,
        "{linearizable} / {violations}"
    );
}
