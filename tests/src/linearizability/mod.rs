//! A linearizability checker for etcd's KV and lease API: given what
//! concurrent clients asked and got back, and when, is there one order of
//! the operations, consistent with real time, in which etcd's state
//! machine gives exactly those answers? Pure Rust, no ironcd crate: the
//! checker of the robustness suite (the idea is etcd's robustness suite
//! and porcupine; the code is ours).
//!
//! # Recording
//!
//! A [`History`] is a list of [`Operation`]s: client, call time, return
//! time, [`Request`], [`Response`]. A [`Recorder`] timestamps them on one
//! monotonic clock. A definite server error ("lease not found", "required
//! revision has been compacted") is a [`Response::Error`] and means the
//! request did not happen; a timeout or lost connection is a *failed*
//! operation (`return_ns: None`): it took effect once at some point after
//! its call, or never. [`History::to_json`] saves a history (bytes as
//! UTF-8 strings, or hex when they are not) and [`History::from_json`]
//! reads it back, so a failed run can be kept and re-checked.
//!
//! # The model
//!
//! [`EtcdState`] is etcd 3.4's mvcc store and lessor, and
//! [`EtcdState::step`] applies a request as etcd's applier does:
//!
//! - a store starts at revision 1; a put makes a revision (version 1 on
//!   create, +1 per put, create revision kept), a delete makes one only if
//!   it deleted something, a txn only if the branch that ran changed
//!   something; every change of one request shares its revision;
//! - a put with lease 0 detaches the key's old lease, a put with a lease
//!   attaches it (which must exist); a revoke deletes the lease's keys in
//!   one revision (none if it has none); grants and keep-alives make none;
//! - a Range's header is the current revision, `count` counts every
//!   match and `kvs` is cut to `limit`; a Range at a past revision reads
//!   the store as it was then, or fails with the compacted / future
//!   revision errors, as do compactions at or below the last one or above
//!   the current revision;
//! - Txn compares read the state before the txn (a missing key has zeroes
//!   and fails every value compare), the branch's ranges see its own
//!   writes, and the branch's lease and revision checks, and etcd's
//!   duplicate-key rule, fail the whole txn with etcd's error.
//!
//! Past reads are answered exactly: the state keeps every key's history
//! as a persistent list shared between states (cheap to step and hash),
//! rather than checking stale reads after a linearization is found, which
//! could reject a history that another order explains.
//!
//! Relaxed: a keep-alive's TTL only has to be positive for a live lease
//! and 0 for a gone one (the model has no clock). Not modelled: lease
//! expiry (use TTLs longer than the run; an expiry would look like an
//! unrecorded revoke), serializable reads (not linearizable; do not
//! record them), `prev_kv`, sorting and min/max revision filters, auth.
//!
//! # The search
//!
//! [`check`] is the Wing–Gong–Lowe search with porcupine's memo of
//! (linearized set, state) pairs. A failed operation has no return: it
//! may be linearized anywhere after its call, or never, and the search
//! succeeds once every completed operation is linearized. Failed
//! operations are tried lazily, at a node only after every completed
//! candidate: one applied early that never happened is often contradicted
//! only much later, while one that did happen is still a candidate where a
//! completed operation first needs it.
//!
//! Porcupine's P-compositionality (check each key's operations on their
//! own) does not apply to etcd: one global revision couples every key.
//! A put's response and every read's header revision depend on how many
//! writes to *any* key came before, so a per-key history can be
//! linearizable on its own while the whole is not. What does apply is
//! splitting at quiescent points: where every completed operation called
//! so far has returned, all of them precede everything called later in
//! any linearization. [`check`] cuts the history there and walks the
//! segments in order, depth first: each end state a segment's search
//! reaches (with the failed operations not yet applied in it, which may
//! still take effect later) is carried into the next segment, and the next
//! end is looked for only if the rest of the history fails from this one.
//! Configurations (segment, state, pending failed operations) from which
//! the rest failed are remembered, so no rest is searched twice. The
//! segment search adds one sound pruning rule to porcupine's: revisions
//! never go back, so a node already past the revision some unlinearized
//! completed operation answered with is dead. Everything is bounded by
//! [`CheckLimits::max_states_explored`] (model steps); past it the answer
//! is [`CheckResult::Unknown`], never a loop without end.
//!
//! [`patch`] narrows failed writes first, from unique put values read
//! back later and from what the WAL shows was persisted.
//!
//! # Reading a violation
//!
//! A [`Violation`] gives the longest prefix the search linearized (history
//! indexes, in order), the model's state after it, and the completed
//! operations that could come next in real time, the one that returned
//! first leading: it must be linearized before anything called after its
//! return, and it fits nowhere. Each [`StuckOperation`] shows the request
//! and the observed response next to what the model answers there — a read
//! of an older value, a revision already used, a txn outcome the state
//! contradicts. Its `Display` prints all of it; save the history's JSON
//! next to it.
//!
//! ```
//! use ironcd_tests::linearizability::{
//!     check, CheckLimits, CheckResult, History, KeyValue, Operation, Request, Response,
//! };
//!
//! let kv = KeyValue {
//!     key: b"k".to_vec(),
//!     value: b"v".to_vec(),
//!     create_revision: 2,
//!     mod_revision: 2,
//!     version: 1,
//!     lease: 0,
//! };
//! let history = History::new(vec![
//!     Operation::completed(1, 0, 10, Request::put("k", "v"), Response::Put { revision: 2 }),
//!     // Concurrent with the put, and saw it.
//!     Operation::completed(
//!         2,
//!         5,
//!         15,
//!         Request::get("k"),
//!         Response::Range { revision: 2, kvs: vec![kv], count: 1 },
//!     ),
//!     // After the put returned, yet saw nothing: a stale read.
//!     Operation::completed(
//!         3,
//!         20,
//!         30,
//!         Request::get("k"),
//!         Response::Range { revision: 1, kvs: vec![], count: 0 },
//!     ),
//! ]);
//! match check(&history, &CheckLimits::default()) {
//!     CheckResult::Violation(violation) => assert_eq!(violation.stuck[0].op, 2),
//!     other => panic!("{other:?}"),
//! }
//! ```

mod check;
mod history;
mod model;
mod patch;
mod request;
mod search;

#[cfg(test)]
mod simulate;
#[cfg(test)]
mod tests;

pub use check::{
    check, validate_order, CheckLimits, CheckResult, StuckOperation, Violation,
    DEFAULT_MAX_STATES_EXPLORED,
};
pub use history::{Call, History, HistoryError, Operation, Recorder};
pub use model::{response_matches, EtcdState, INITIAL_REVISION};
pub use patch::{patch, Persisted};
pub use request::{
    Compare, CompareOp, CompareTarget, KeyValue, Request, Response, TxnOp, TxnResult,
    ERR_COMPACTED, ERR_DUPLICATE_KEY, ERR_FUTURE_REV, ERR_LEASE_EXISTS, ERR_LEASE_NOT_FOUND,
    ERR_LEASE_TTL_TOO_LARGE, MAX_LEASE_TTL_S,
};
