//! The lessor: every lease, the keys attached to each, and (on the
//! primary only) when each expires.
//!
//! Mutations that the log orders (grant, revoke, checkpoint, attaching
//! keys) come from the applier, in log order, on every member, and write
//! their records into the backend batch of the entry that carries them.
//! Renewals and expiry are the primary's alone: they change only memory.
//!
//! Expiry is a min-heap of `(due, id)` with exactly one live entry per
//! lease on the primary: the lease's `due_ns` names it, so a renewal (which
//! only moves the expiry later) changes one field and pushes nothing; when
//! the entry comes due and the lease was renewed meanwhile it is pushed
//! again at the new expiry. An entry whose time is not its lease's `due_ns`
//! is stale and dropped when it surfaces.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use ironcd_backend::{BatchTx, ReadTx};
use parking_lot::Mutex;

use crate::record::Record;
use crate::{Clock, Error, LeaseId, Result};

/// The largest TTL a lease may be granted, seconds (etcd's `MaxLeaseTTL`).
pub const MAX_LEASE_TTL_S: i64 = 9_000_000_000;
/// etcd's `leaseRevokeRate`: expired leases revoked per second at most.
pub const DEFAULT_REVOKE_RATE_PER_S: u32 = 1000;
/// How long after an expired lease was handed out for revocation it is
/// handed out again if it still exists (its revoke proposal was lost).
pub const DEFAULT_EXPIRY_RETRY: Duration = Duration::from_secs(3);
/// etcd's default lease checkpoint interval.
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(300);
/// Checkpoints handed out by one [`Lessor::tick`] at most (etcd's
/// `maxLeaseCheckpointBatchSize`).
pub const MAX_CHECKPOINT_BATCH: usize = 1000;
/// Stale heap entries tolerated beyond one per lease before a heap is
/// rebuilt from the leases.
pub const HEAP_SLACK_ENTRIES: usize = 1024;

const NEVER: u64 = u64::MAX;
const NS_PER_S: u64 = 1_000_000_000;

/// How a lessor behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LessorConfig {
    /// Grants below this TTL get it instead, seconds (etcd computes it
    /// from the election timeout: [`LessorConfig::min_ttl_s_for`]).
    pub min_ttl_s: i64,
    /// Hand out checkpoints of remaining TTLs
    /// (`--experimental-enable-lease-checkpoint`).
    pub checkpointing: bool,
    /// How often a long lease's remaining TTL is checkpointed
    /// (`--experimental-lease-checkpoint-interval`).
    pub checkpoint_interval: Duration,
    /// Expired leases revoked per second at most (etcd: 1000).
    pub revoke_rate_per_s: u32,
    /// See [`DEFAULT_EXPIRY_RETRY`].
    pub expiry_retry: Duration,
}

impl Default for LessorConfig {
    fn default() -> Self {
        LessorConfig {
            min_ttl_s: LessorConfig::min_ttl_s_for(10, 100),
            checkpointing: false,
            checkpoint_interval: DEFAULT_CHECKPOINT_INTERVAL,
            revoke_rate_per_s: DEFAULT_REVOKE_RATE_PER_S,
            expiry_retry: DEFAULT_EXPIRY_RETRY,
        }
    }
}

impl LessorConfig {
    /// etcd's minimum TTL: one and a half election timeouts, rounded up
    /// to whole seconds.
    pub fn min_ttl_s_for(election_ticks: u64, heartbeat_ms: u64) -> i64 {
        let ms = (3 * election_ticks / 2) * heartbeat_ms;
        ms.div_ceil(1000).max(1) as i64
    }

    /// Checks the limits once, at start.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.min_ttl_s < 1 {
            return Err(format!("min_ttl_s {} < 1", self.min_ttl_s));
        }
        if self.revoke_rate_per_s < 2 {
            return Err(format!("revoke_rate_per_s {} < 2", self.revoke_rate_per_s));
        }
        if self.checkpointing && self.checkpoint_interval < Duration::from_secs(1) {
            return Err("the lease checkpoint interval is under 1s".into());
        }
        Ok(())
    }
}

/// What deletes the keys of a revoked lease: one mvcc write txn (the
/// server's), so they all go in one revision, whose backend batch also
/// takes the lease record's removal.
pub trait RangeDeleter {
    /// The backend batch under the txn.
    type Tx: BatchTx;
    /// Deletes `key` in the txn.
    fn delete_key(&mut self, key: &[u8]);
    /// The txn's backend batch.
    fn tx(&mut self) -> &mut Self::Tx;
}

/// A granted lease, as the grant's response carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Granted {
    /// Its id.
    pub id: LeaseId,
    /// Its TTL after the minimum was applied, seconds.
    pub ttl_s: i64,
}

/// A renewal's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Renewed {
    /// The TTL the lease runs for again, seconds.
    pub ttl_s: i64,
    /// The lease had a checkpointed remaining TTL: the caller proposes a
    /// checkpoint of 0 so that no member restarts it from the stale value.
    pub clear_checkpoint: bool,
}

/// A lease as TimeToLive reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeToLive {
    /// The lease.
    pub id: LeaseId,
    /// Granted TTL, seconds.
    pub granted_ttl_s: i64,
    /// Whole seconds left (truncated); -1 once expired.
    pub remaining_s: i64,
    /// Attached keys, in key order (empty unless asked for).
    pub keys: Vec<Vec<u8>>,
}

/// What one [`Lessor::tick`] hands out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tick {
    /// Expired leases to revoke (each handed out again after
    /// `expiry_retry` if it still exists).
    pub expired: Vec<LeaseId>,
    /// `(lease, remaining seconds)` to checkpoint.
    pub checkpoints: Vec<(LeaseId, i64)>,
}

struct Lease {
    ttl_s: i64,
    remaining_ttl_s: i64,
    /// When it expires; [`NEVER`] when this lessor is not primary.
    expiry_ns: u64,
    /// The time of its live expiry-heap entry ([`NEVER`]: none).
    due_ns: u64,
    /// The time of its live checkpoint-heap entry ([`NEVER`]: none).
    checkpoint_ns: u64,
    keys: Keys,
}

/// Keys attached to more than this many per lease go into a hash set; up
/// to it, a vector (most leases hold one or a few keys: a vector of one
/// costs one small allocation, a set far more).
pub const FEW_KEYS: usize = 8;

/// The keys attached to one lease; each key's bytes are shared with the
/// lessor's key-to-lease map.
enum Keys {
    Few(Vec<Arc<[u8]>>),
    // Boxed so that every lease pays a vector's size, not a set's.
    #[allow(clippy::box_collection)]
    Many(Box<HashSet<Arc<[u8]>>>),
}

impl Keys {
    fn new() -> Keys {
        Keys::Few(Vec::new())
    }

    /// Adds `key` (not attached to this lease yet).
    fn insert(&mut self, key: Arc<[u8]>) {
        match self {
            Keys::Few(few) if few.len() < FEW_KEYS => few.push(key),
            Keys::Few(few) => {
                let mut many: HashSet<Arc<[u8]>> = few.drain(..).collect();
                many.insert(key);
                *self = Keys::Many(Box::new(many));
            }
            Keys::Many(many) => {
                many.insert(key);
            }
        }
    }

    fn remove(&mut self, key: &[u8]) {
        match self {
            Keys::Few(few) => few.retain(|k| &**k != key),
            Keys::Many(many) => {
                many.remove(key);
            }
        }
    }

    /// The keys in key order.
    fn sorted(&self) -> Vec<Arc<[u8]>> {
        let mut all: Vec<Arc<[u8]>> = match self {
            Keys::Few(few) => few.clone(),
            Keys::Many(many) => many.iter().cloned().collect(),
        };
        all.sort_unstable();
        all
    }
}

impl Lease {
    /// The TTL it runs from when refreshed: a checkpointed remainder, or
    /// the whole TTL.
    fn run_ttl_s(&self) -> i64 {
        if self.remaining_ttl_s > 0 {
            self.remaining_ttl_s
        } else {
            self.ttl_s
        }
    }
}

type Heap = BinaryHeap<Reverse<(u64, LeaseId)>>;

#[derive(Default)]
struct Inner {
    leases: HashMap<LeaseId, Lease>,
    key_lease: HashMap<Arc<[u8]>, LeaseId>,
    expiry: Heap,
    checkpoints: Heap,
    primary: bool,
}

fn secs_ns(s: i64) -> u64 {
    (s.max(0) as u64).saturating_mul(NS_PER_S)
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(NEVER)
}

/// The lessor. Cheap to share (`Arc`); every method takes `&self`.
pub struct Lessor {
    cfg: LessorConfig,
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
}

impl Lessor {
    /// An empty lessor, not primary.
    pub fn new(cfg: LessorConfig, clock: Arc<dyn Clock>) -> Lessor {
        Lessor {
            cfg,
            clock,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &LessorConfig {
        &self.cfg
    }

    /// Replaces every lease with the records of the `lease` bucket (start,
    /// snapshot install). Attachments are gone: the caller attaches every
    /// live key with a lease again ([`Lessor::attach_key`]). A primary
    /// stays primary, its leases running from their persisted TTLs.
    pub fn recover(&self, tx: &impl ReadTx) -> Result<()> {
        let records = Record::load_all(tx)?;
        let now = self.clock.now_ns();
        let mut inner = self.inner.lock();
        let primary = inner.primary;
        *inner = Inner {
            primary,
            ..Inner::default()
        };
        for r in records {
            let lease = Lease {
                ttl_s: r.ttl_s,
                remaining_ttl_s: r.remaining_ttl_s,
                expiry_ns: NEVER,
                due_ns: NEVER,
                checkpoint_ns: NEVER,
                keys: Keys::new(),
            };
            inner.leases.insert(r.id, lease);
            if primary {
                self.refresh(&mut inner, r.id, now, 0);
            }
        }
        Ok(())
    }

    /// Grants lease `id` for `ttl_s` (raised to the minimum) and writes
    /// its record into `tx`.
    pub fn grant(&self, tx: &mut impl BatchTx, id: LeaseId, ttl_s: i64) -> Result<Granted> {
        if id == crate::NO_LEASE {
            return Err(Error::LeaseNotFound);
        }
        if ttl_s > MAX_LEASE_TTL_S {
            return Err(Error::TtlTooLarge);
        }
        let ttl_s = ttl_s.max(self.cfg.min_ttl_s);
        let mut inner = self.inner.lock();
        if inner.leases.contains_key(&id) {
            return Err(Error::LeaseExists);
        }
        Record {
            id,
            ttl_s,
            remaining_ttl_s: 0,
        }
        .put(tx);
        inner.leases.insert(
            id,
            Lease {
                ttl_s,
                remaining_ttl_s: 0,
                expiry_ns: NEVER,
                due_ns: NEVER,
                checkpoint_ns: NEVER,
                keys: Keys::new(),
            },
        );
        if inner.primary {
            let now = self.clock.now_ns();
            self.refresh(&mut inner, id, now, 0);
        }
        crate::metrics::GRANTED.inc();
        crate::metrics::TTL_SECONDS.observe(ttl_s as f64);
        Ok(Granted { id, ttl_s })
    }

    /// Revokes lease `id`: deletes every attached key through `deleter`
    /// (in key order, so every member writes the same events) and the
    /// record from its batch.
    pub fn revoke<D: RangeDeleter>(&self, id: LeaseId, deleter: &mut D) -> Result<()> {
        let keys = {
            let inner = self.inner.lock();
            let lease = inner.leases.get(&id).ok_or(Error::LeaseNotFound)?;
            lease.keys.sorted()
        };
        for key in &keys {
            deleter.delete_key(key);
        }
        Record::delete(id, deleter.tx());
        let mut inner = self.inner.lock();
        inner.leases.remove(&id);
        for key in keys {
            if inner.key_lease.get(&*key) == Some(&id) {
                inner.key_lease.remove(&*key);
            }
        }
        crate::metrics::REVOKED.inc();
        Ok(())
    }

    /// Renews lease `id` (the primary only): it runs its whole TTL again
    /// from now. An expired lease is not renewed: its revoke is on the way.
    pub fn renew(&self, id: LeaseId) -> Result<Renewed> {
        let mut inner = self.inner.lock();
        if !inner.primary {
            return Err(Error::NotPrimary);
        }
        let now = self.clock.now_ns();
        let lease = inner.leases.get_mut(&id).ok_or(Error::LeaseNotFound)?;
        if lease.expiry_ns <= now {
            return Err(Error::LeaseNotFound);
        }
        let clear_checkpoint = self.cfg.checkpointing && lease.remaining_ttl_s > 0;
        lease.remaining_ttl_s = 0;
        let ttl_s = lease.ttl_s;
        self.refresh(&mut inner, id, now, 0);
        crate::metrics::RENEWED.inc();
        Ok(Renewed {
            ttl_s,
            clear_checkpoint,
        })
    }

    /// Records a checkpoint of lease `id`'s remaining TTL (0 clears it)
    /// in memory and in `tx`; the primary restarts its expiry from it. An
    /// unknown lease is skipped (revoked after the checkpoint was made).
    pub fn checkpoint(&self, tx: &mut impl BatchTx, id: LeaseId, remaining_ttl_s: i64) {
        let mut inner = self.inner.lock();
        let Some(lease) = inner.leases.get_mut(&id) else {
            return;
        };
        lease.remaining_ttl_s = remaining_ttl_s.max(0);
        Record {
            id,
            ttl_s: lease.ttl_s,
            remaining_ttl_s: lease.remaining_ttl_s,
        }
        .put(tx);
        if inner.primary {
            let now = self.clock.now_ns();
            self.refresh(&mut inner, id, now, 0);
        }
    }

    /// Whether lease `id` exists (a Put with it is refused if not).
    pub fn exists(&self, id: LeaseId) -> bool {
        self.inner.lock().leases.contains_key(&id)
    }

    /// Binds `key` to `lease` (0 = to none), unbinding it from the lease
    /// it had. Called for every put the store applies.
    pub fn attach_key(&self, key: &[u8], lease: LeaseId) {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        match inner.key_lease.get(key) {
            Some(&old) if old == lease => return,
            Some(&old) => {
                if let Some(l) = inner.leases.get_mut(&old) {
                    l.keys.remove(key);
                }
                inner.key_lease.remove(key);
            }
            None => {}
        }
        if lease == crate::NO_LEASE {
            return;
        }
        // The applier checked the lease before the put; a put of a lease
        // revoked in between cannot be in the same log.
        let l = inner.leases.get_mut(&lease).unwrap_or_else(|| {
            panic!("attaching {key:?} to lease {lease:x}, which does not exist")
        });
        let key: Arc<[u8]> = key.into();
        l.keys.insert(key.clone());
        inner.key_lease.insert(key, lease);
    }

    /// Unbinds a deleted `key` from its lease, if it had one.
    pub fn detach_key(&self, key: &[u8]) {
        self.attach_key(key, crate::NO_LEASE);
    }

    /// The lease `key` is bound to (0 = none).
    pub fn lease_of(&self, key: &[u8]) -> LeaseId {
        let inner = self.inner.lock();
        inner.key_lease.get(key).copied().unwrap_or(crate::NO_LEASE)
    }

    /// Lease `id` as TimeToLive reports it, `None` if it does not exist.
    pub fn time_to_live(&self, id: LeaseId, with_keys: bool) -> Option<TimeToLive> {
        let inner = self.inner.lock();
        let lease = inner.leases.get(&id)?;
        let remaining_s = if lease.expiry_ns == NEVER {
            lease.run_ttl_s()
        } else {
            let now = self.clock.now_ns();
            match lease.expiry_ns.checked_sub(now) {
                Some(left) if left > 0 => (left / NS_PER_S) as i64,
                _ => -1,
            }
        };
        Some(TimeToLive {
            id,
            granted_ttl_s: lease.ttl_s,
            remaining_s,
            keys: if with_keys {
                lease.keys.sorted().iter().map(|k| k.to_vec()).collect()
            } else {
                Vec::new()
            },
        })
    }

    /// Every lease id, soonest expiry first (ties, and every lease of a
    /// lessor that is not primary, by id).
    pub fn leases(&self) -> Vec<LeaseId> {
        let inner = self.inner.lock();
        let mut all: Vec<(u64, LeaseId)> = inner
            .leases
            .iter()
            .map(|(&id, l)| (l.expiry_ns, id))
            .collect();
        all.sort_unstable();
        all.into_iter().map(|(_, id)| id).collect()
    }

    /// How many leases there are.
    pub fn len(&self) -> usize {
        self.inner.lock().leases.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether this lessor expires leases (its member leads).
    pub fn is_primary(&self) -> bool {
        self.inner.lock().primary
    }

    /// This member became leader: every lease runs again from its
    /// (checkpointed) TTL plus `extend`, so that none expires because its
    /// owner could not reach a leader during the election; expiries that
    /// pile up beyond the revoke rate are spread over later seconds.
    pub fn promote(&self, extend: Duration) {
        let mut inner = self.inner.lock();
        inner.primary = true;
        inner.expiry.clear();
        inner.checkpoints.clear();
        let now = self.clock.now_ns();
        let extend_ns = duration_ns(extend);
        let ids: Vec<LeaseId> = inner.leases.keys().copied().collect();
        for &id in &ids {
            self.refresh(&mut inner, id, now, extend_ns);
        }
        self.spread(&mut inner);
    }

    /// Moves expiries so that no second holds more than three quarters of
    /// the revoke rate: a mass expiry after a promotion leaves the rate
    /// room for leases that expire on their own.
    fn spread(&self, inner: &mut Inner) {
        let per_s = (3 * u64::from(self.cfg.revoke_rate_per_s) / 4).max(1);
        if (inner.leases.len() as u64) <= per_s {
            return;
        }
        let mut order: Vec<(u64, LeaseId)> = inner
            .leases
            .iter()
            .map(|(&id, l)| (l.expiry_ns, id))
            .collect();
        order.sort_unstable();
        // The window a lease expires in: whole seconds from `window_start`;
        // each window takes `per_s` leases, the rest move to the next.
        let mut window_start = order[0].0;
        let mut in_window = 0u64;
        for (expiry, id) in order {
            if expiry >= window_start.saturating_add(NS_PER_S) {
                window_start = expiry;
                in_window = 0;
            }
            if in_window >= per_s {
                window_start = window_start.saturating_add(NS_PER_S);
                in_window = 0;
            }
            in_window += 1;
            let at = expiry.max(window_start);
            if at != expiry {
                self.set_expiry(inner, id, at);
            }
        }
    }

    /// This member stopped leading: nothing expires here any more.
    pub fn demote(&self) {
        let mut inner = self.inner.lock();
        inner.primary = false;
        inner.expiry.clear();
        inner.checkpoints.clear();
        for lease in inner.leases.values_mut() {
            lease.expiry_ns = NEVER;
            lease.due_ns = NEVER;
            lease.checkpoint_ns = NEVER;
        }
    }

    /// Hands out up to `max_expired` expired leases and up to
    /// [`MAX_CHECKPOINT_BATCH`] due checkpoints (the primary only; the
    /// caller proposes their revokes and checkpoints).
    pub fn tick(&self, max_expired: usize) -> Tick {
        let mut inner = self.inner.lock();
        let mut out = Tick::default();
        if !inner.primary {
            return out;
        }
        let now = self.clock.now_ns();
        let retry_ns = duration_ns(self.cfg.expiry_retry);
        while out.expired.len() < max_expired {
            let Some(&Reverse((due, id))) = inner.expiry.peek() else {
                break;
            };
            if due > now {
                break;
            }
            inner.expiry.pop();
            let Some(lease) = inner.leases.get_mut(&id) else {
                continue;
            };
            if lease.due_ns != due {
                continue;
            }
            let next = if lease.expiry_ns <= now {
                out.expired.push(id);
                now.saturating_add(retry_ns)
            } else {
                lease.expiry_ns
            };
            lease.due_ns = next;
            inner.expiry.push(Reverse((next, id)));
        }
        if self.cfg.checkpointing {
            self.due_checkpoints(&mut inner, now, &mut out.checkpoints);
        }
        out
    }

    fn due_checkpoints(&self, inner: &mut Inner, now: u64, out: &mut Vec<(LeaseId, i64)>) {
        let interval_ns = duration_ns(self.cfg.checkpoint_interval);
        while out.len() < MAX_CHECKPOINT_BATCH {
            let Some(&Reverse((at, id))) = inner.checkpoints.peek() else {
                break;
            };
            if at > now {
                break;
            }
            inner.checkpoints.pop();
            let Some(lease) = inner.leases.get_mut(&id) else {
                continue;
            };
            if lease.checkpoint_ns != at || lease.expiry_ns <= now {
                continue;
            }
            let remaining_s = (lease.expiry_ns - now).div_ceil(NS_PER_S) as i64;
            if remaining_s < lease.ttl_s {
                out.push((id, remaining_s));
            }
            // Again later, in case this checkpoint's proposal is lost; its
            // apply reschedules it anyway.
            lease.checkpoint_ns = now.saturating_add(interval_ns);
            inner.checkpoints.push(Reverse((lease.checkpoint_ns, id)));
        }
    }

    /// Lease `id` runs from now (plus `extend_ns`) for its run TTL; its
    /// next checkpoint is scheduled if it is long enough to need one.
    fn refresh(&self, inner: &mut Inner, id: LeaseId, now: u64, extend_ns: u64) {
        let Some(lease) = inner.leases.get(&id) else {
            return;
        };
        let expiry = now
            .saturating_add(extend_ns)
            .saturating_add(secs_ns(lease.run_ttl_s()));
        let long = lease.run_ttl_s() as u64 > self.cfg.checkpoint_interval.as_secs();
        self.set_expiry(inner, id, expiry);
        if self.cfg.checkpointing && long {
            let at = now.saturating_add(duration_ns(self.cfg.checkpoint_interval));
            if let Some(lease) = inner.leases.get_mut(&id) {
                lease.checkpoint_ns = at;
            }
            push_bounded(
                &mut inner.checkpoints,
                (at, id),
                |l| l.checkpoint_ns,
                &inner.leases,
            );
        }
    }

    /// Sets lease `id`'s expiry; pushes a heap entry only when it has none
    /// or the new expiry comes before it.
    fn set_expiry(&self, inner: &mut Inner, id: LeaseId, expiry: u64) {
        let Some(lease) = inner.leases.get_mut(&id) else {
            return;
        };
        lease.expiry_ns = expiry;
        if lease.due_ns <= expiry && lease.due_ns != NEVER {
            return;
        }
        lease.due_ns = expiry;
        push_bounded(&mut inner.expiry, (expiry, id), |l| l.due_ns, &inner.leases);
    }
}

/// Pushes onto `heap`, first rebuilding it from the leases' live entries
/// (`live`) if stale ones have piled up past one per lease plus
/// [`HEAP_SLACK_ENTRIES`].
fn push_bounded(
    heap: &mut Heap,
    entry: (u64, LeaseId),
    live: impl Fn(&Lease) -> u64,
    all: &HashMap<LeaseId, Lease>,
) {
    if heap.len() > all.len() + HEAP_SLACK_ENTRIES {
        let rebuilt: Vec<Reverse<(u64, LeaseId)>> = all
            .iter()
            .map(|(&id, l)| (live(l), id))
            .filter(|&(t, id)| t != NEVER && (t, id) != entry)
            .map(Reverse)
            .collect();
        *heap = BinaryHeap::from(rebuilt);
    }
    heap.push(Reverse(entry));
}

#[cfg(test)]
mod tests;
