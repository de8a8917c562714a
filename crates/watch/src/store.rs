//! The watchable store: the three groups, matching at commit, and the
//! background loop that syncs unsynced watchers and retries victims.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use ironcd_proto::mvccpb::{event::EventType, Event};
use ironcd_proto::watch_reply::SharedEvent;
use parking_lot::{Condvar, Mutex, MutexGuard};
use tokio::sync::mpsc;

use crate::group::{KeyRange, SyncedIndex, WatcherKey};
use crate::history::{History, HistoryError};
use crate::stream::WatchResponse;

/// The hasher of the maps keyed by watcher: seeded per process, and much
/// cheaper per lookup than SipHash on the commit path.
type FastHash = foldhash::fast::RandomState;

/// How often the unsynced group is synced when nothing wakes the loop
/// sooner (etcd: 100 ms).
pub const SYNC_INTERVAL: Duration = Duration::from_millis(100);

/// Revisions a catch-up response may hold (etcd's `watchBatchMaxRevs`):
/// a watcher that fell behind gets its backlog in few responses.
const MAX_REVISIONS_PER_RESPONSE: usize = 1000;

/// Revisions a batch holds at most before they are matched and sent
/// ([`WatchableStore::begin_batch`]); half a stream's default buffer, so
/// one batch alone does not make a reader that keeps up a victim.
const MAX_BATCHED_REVISIONS: usize = 64;

/// Events a batch holds at most before they are matched and sent (one
/// txn with more is sent on its own at once).
const MAX_BATCHED_EVENTS: usize = 4096;

/// How often victims are retried while there are any (etcd: 10 ms).
const VICTIM_RETRY: Duration = Duration::from_millis(10);

/// Limits of the watchable store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchConfig {
    /// Unsynced watchers synced in one pass (etcd's `maxWatchersPerSync`).
    pub max_watchers_per_sync: usize,
    /// Events read from the history in one pass; a revision is never split
    /// (so a pass may read more, one revision's worth).
    pub max_events_per_sync: usize,
    /// Responses a stream's channel buffers before its watchers become
    /// victims (etcd's `chanBufLen`).
    pub stream_buffer: usize,
    /// Watchers on the store at most (all streams); past it a create is
    /// refused. etcd has no such bound; each watcher costs memory.
    pub max_watchers: usize,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            max_watchers_per_sync: 512,
            max_events_per_sync: 10_000,
            stream_buffer: 128,
            max_watchers: 1 << 20,
        }
    }
}

/// The group a watcher is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Group {
    Synced,
    Unsynced,
    /// Its pending response is in `Groups::victims`.
    Victim,
}

pub(crate) struct Watcher {
    pub range: KeyRange,
    /// The next revision to deliver.
    pub min_rev: i64,
    pub no_put: bool,
    pub no_delete: bool,
    pub tx: mpsc::Sender<WatchResponse>,
    group: Group,
}

impl Watcher {
    fn wants(&self, e: &Event) -> bool {
        let key =
            e.kv.as_ref()
                .map(|kv| kv.key.as_slice())
                .unwrap_or_default();
        if !self.range.contains(key) {
            return false;
        }
        match EventType::try_from(e.r#type) {
            Ok(EventType::Put) => !self.no_put,
            Ok(EventType::Delete) => !self.no_delete,
            Err(_) => true,
        }
    }
}

#[derive(Default)]
struct Groups {
    /// The newest revision whose events were matched: every synced
    /// watcher has been sent everything up to it.
    notified_rev: i64,
    watchers: HashMap<WatcherKey, Watcher, FastHash>,
    synced: SyncedIndex,
    unsynced: HashSet<WatcherKey, FastHash>,
    victims: Vec<(WatcherKey, WatchResponse)>,
    /// Commits held while a batch is open.
    batch: Option<Batch>,
}

impl Groups {
    /// Moves `w` out of its group's index (it stays in `watchers`).
    fn detach(&mut self, key: WatcherKey) {
        let Some(w) = self.watchers.get(&key) else {
            return;
        };
        match w.group {
            Group::Synced => {
                self.synced.remove(key, &w.range);
            }
            Group::Unsynced => {
                self.unsynced.remove(&key);
            }
            Group::Victim => self.victims.retain(|(k, _)| *k != key),
        }
    }

    fn set_group(&mut self, key: WatcherKey, group: Group) {
        self.detach(key);
        let Some(w) = self.watchers.get_mut(&key) else {
            return;
        };
        w.group = group;
        match group {
            Group::Synced => self.synced.add(key, &w.range),
            Group::Unsynced => {
                self.unsynced.insert(key);
            }
            Group::Victim => {}
        }
    }

    /// Sends `resp` to `key`'s stream; on a full buffer the watcher becomes
    /// a victim holding it; a watcher whose stream is gone is dropped.
    fn deliver(&mut self, key: WatcherKey, resp: WatchResponse) -> Delivery {
        let Some(w) = self.watchers.get_mut(&key) else {
            return Delivery::Gone;
        };
        if resp.compact_revision == 0 {
            w.min_rev = w.min_rev.max(resp.revision + 1);
        }
        match w.tx.try_send(resp) {
            Ok(()) => Delivery::Sent,
            Err(mpsc::error::TrySendError::Full(resp)) => {
                self.detach(key);
                if let Some(w) = self.watchers.get_mut(&key) {
                    w.group = Group::Victim;
                }
                self.victims.push((key, resp));
                Delivery::Victim
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.detach(key);
                self.watchers.remove(&key);
                Delivery::Gone
            }
        }
    }

    /// Appends to `out` each synced watcher's share of the events of the
    /// txn committed at `rev`, in one response per watcher. Every watcher
    /// an event reaches shares one copy of it.
    fn match_commit(
        &self,
        rev: i64,
        events: Vec<Event>,
        out: &mut Vec<(WatcherKey, WatchResponse)>,
    ) {
        let single = events.len() == 1;
        // Where each watcher's response is in `out`; needed only when the
        // txn has more than one event.
        let mut response_of: HashMap<WatcherKey, usize, FastHash> = HashMap::default();
        let mut matched = Vec::new();
        let mut wanted = Vec::new();
        for e in events {
            let Some(kv) = &e.kv else { continue };
            matched.clear();
            self.synced.matching(&kv.key, &mut matched);
            wanted.clear();
            wanted.extend(matched.iter().copied().filter(|key| {
                self.watchers
                    .get(key)
                    .is_some_and(|w| w.min_rev <= rev && w.wants(&e))
            }));
            if wanted.is_empty() {
                continue;
            }
            let shared = SharedEvent::new(e);
            if single {
                // A watcher is matched once per key.
                out.reserve(wanted.len());
                out.extend(wanted.iter().map(|key| {
                    (
                        *key,
                        WatchResponse::events(key.id, rev, vec![shared.clone()]),
                    )
                }));
                continue;
            }
            for key in &wanted {
                match response_of.entry(*key) {
                    Entry::Occupied(i) => out[*i.get()].1.events.push(shared.clone()),
                    Entry::Vacant(slot) => {
                        slot.insert(out.len());
                        out.push((
                            *key,
                            WatchResponse::events(key.id, rev, vec![shared.clone()]),
                        ));
                    }
                }
            }
        }
    }
}

/// Commits held for the end of a batch ([`WatchableStore::begin_batch`]).
#[derive(Default)]
struct Batch {
    /// In revision order.
    commits: Vec<(i64, Vec<Event>)>,
    /// Their events, all told.
    events: usize,
}

impl Batch {
    fn take(&mut self) -> Vec<(i64, Vec<Event>)> {
        self.events = 0;
        std::mem::take(&mut self.commits)
    }
}

/// What became of a response handed to a watcher's stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Delivery {
    Sent,
    /// The stream's buffer was full: the watcher is a victim holding it.
    Victim,
    /// The watcher or its stream is gone.
    Gone,
}

struct Inner {
    history: Arc<dyn History>,
    config: WatchConfig,
    groups: Mutex<Groups>,
    /// Signalled when a watcher joins unsynced or becomes a victim.
    wake: Condvar,
    woken: Mutex<bool>,
    stopping: AtomicBool,
    next_stream: AtomicU64,
    /// Streams open now (for `etcd_debugging_mvcc_watch_stream_total`).
    open_streams: AtomicU64,
}

/// etcd's watchable store; see the crate docs. Register it as the mvcc
/// store's observer ([`WatchableStore::on_commit`]). Its loop runs on a
/// thread of its own until the last handle is dropped.
pub struct WatchableStore {
    inner: Arc<Inner>,
    syncer: Option<std::thread::JoinHandle<()>>,
}

impl WatchableStore {
    /// A store reading the past from `history`.
    pub fn new(history: Arc<dyn History>, config: WatchConfig) -> Arc<WatchableStore> {
        let groups = Groups {
            notified_rev: history.current_rev(),
            ..Groups::default()
        };
        let inner = Arc::new(Inner {
            history,
            config,
            groups: Mutex::new(groups),
            wake: Condvar::new(),
            woken: Mutex::new(false),
            stopping: AtomicBool::new(false),
            next_stream: AtomicU64::new(1),
            open_streams: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&inner);
        let syncer = std::thread::Builder::new()
            .name("watch-sync".into())
            .spawn(move || sync_loop(weak))
            .expect("spawning the watch sync thread");
        Arc::new(WatchableStore {
            inner,
            syncer: Some(syncer),
        })
    }

    /// The limits in force.
    pub fn config(&self) -> &WatchConfig {
        &self.inner.config
    }

    /// The history's current revision.
    pub fn current_rev(&self) -> i64 {
        self.inner.history.current_rev()
    }

    /// `key` as it was at `rev`, for `prev_kv`.
    pub fn kv_at(&self, key: &[u8], rev: i64) -> Option<ironcd_proto::mvccpb::KeyValue> {
        self.inner.history.kv_at(key, rev)
    }

    /// Watchers in all groups.
    pub fn watcher_count(&self) -> usize {
        self.inner.groups.lock().watchers.len()
    }

    /// Watchers in (synced, unsynced, victim).
    pub fn group_sizes(&self) -> (usize, usize, usize) {
        let g = self.inner.groups.lock();
        (g.synced.len(), g.unsynced.len(), g.victims.len())
    }

    /// An id for a stream being opened; [`Self::stream_closed`] when it
    /// goes.
    pub(crate) fn new_stream_id(&self) -> u64 {
        self.inner.open_streams.fetch_add(1, Ordering::Relaxed);
        self.inner.next_stream.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn stream_closed(&self) {
        self.inner.open_streams.fetch_sub(1, Ordering::Relaxed);
    }

    /// Streams open now.
    pub fn stream_count(&self) -> u64 {
        self.inner.open_streams.load(Ordering::Relaxed)
    }

    /// Matches the events of the txn committed at `rev` against the
    /// synced watchers and sends each its share, in one response. Called
    /// by the mvcc store, in revision order. Inside a batch
    /// ([`Self::begin_batch`]) the commit is held and matched with the
    /// batch's others at its end.
    pub fn on_commit(&self, rev: i64, events: Vec<Event>) {
        let mut guard = self.inner.groups.lock();
        let groups = &mut *guard;
        let commits = match &mut groups.batch {
            None => vec![(rev, events)],
            Some(batch) => {
                if batch.commits.is_empty() && groups.synced.len() == 0 {
                    // Nothing held and no one to tell.
                    groups.notified_rev = groups.notified_rev.max(rev);
                    return;
                }
                batch.events += events.len();
                batch.commits.push((rev, events));
                if batch.commits.len() < MAX_BATCHED_REVISIONS && batch.events < MAX_BATCHED_EVENTS
                {
                    return;
                }
                batch.take()
            }
        };
        self.notify(guard, commits);
    }

    /// Holds the commits from now until [`Self::end_batch`] and matches
    /// them together then (at most `MAX_BATCHED_REVISIONS` revisions or
    /// `MAX_BATCHED_EVENTS` events at a time): each stream is sent
    /// the batch's responses back to back, so it wakes, and writes to its
    /// connection, once per batch rather than once per revision. The
    /// applier brackets each batch of raft entries with these.
    pub fn begin_batch(&self) {
        self.inner
            .groups
            .lock()
            .batch
            .get_or_insert_with(Batch::default);
    }

    /// Matches and sends the commits held since [`Self::begin_batch`].
    pub fn end_batch(&self) {
        let mut groups = self.inner.groups.lock();
        let commits = groups
            .batch
            .take()
            .map(|mut b| b.take())
            .unwrap_or_default();
        self.notify(groups, commits);
    }

    /// Matches `commits` (in revision order) against the synced watchers
    /// and sends the responses: one per watcher and revision, each
    /// stream's back to back, in revision order.
    fn notify(&self, mut groups: MutexGuard<'_, Groups>, commits: Vec<(i64, Vec<Event>)>) {
        let Some(&(last, _)) = commits.last() else {
            return;
        };
        groups.notified_rev = groups.notified_rev.max(last);
        if groups.synced.len() == 0 {
            return;
        }
        let several = commits.len() > 1;
        let mut responses: Vec<(WatcherKey, WatchResponse)> = Vec::new();
        for (rev, events) in commits {
            groups.match_commit(rev, events, &mut responses);
        }
        if several {
            // Stable: a stream's responses keep their revision order.
            responses.sort_by_key(|(key, _)| key.stream);
        }
        let mut victims = false;
        let mut failed: Vec<WatcherKey> = Vec::new();
        for (key, resp) in responses {
            // A watcher whose response could not go resumes from that
            // revision through the victim and unsynced paths.
            if failed.contains(&key) {
                continue;
            }
            match groups.deliver(key, resp) {
                Delivery::Sent => {}
                Delivery::Victim => {
                    victims = true;
                    failed.push(key);
                }
                Delivery::Gone => failed.push(key),
            }
        }
        drop(groups);
        if victims {
            self.inner.wake();
        }
    }

    /// Every watcher goes back to unsynced, to resume from its next
    /// revision against the history as it is now: after a snapshot
    /// install replaced the store underneath.
    pub fn resync_all(&self) {
        // What a batch holds was committed before the replacement: it
        // goes out first.
        let mut groups = self.inner.groups.lock();
        if let Some(commits) = groups.batch.as_mut().map(Batch::take) {
            self.notify(groups, commits);
            groups = self.inner.groups.lock();
        }
        let synced: Vec<WatcherKey> = groups
            .watchers
            .iter()
            .filter(|(_, w)| w.group == Group::Synced)
            .map(|(k, _)| *k)
            .collect();
        for key in synced {
            groups.set_group(key, Group::Unsynced);
        }
        // The new store's revisions were never matched, and no watcher is
        // synced: catch-up reads up to here.
        groups.notified_rev = groups.notified_rev.max(self.inner.history.current_rev());
        drop(groups);
        self.inner.wake();
    }

    /// Adds a watcher; `start_rev` 0 is the next revision. Returns the
    /// revision the store is at, or `None` at `max_watchers`.
    pub(crate) fn watch(
        &self,
        key: WatcherKey,
        range: KeyRange,
        start_rev: i64,
        no_put: bool,
        no_delete: bool,
        tx: mpsc::Sender<WatchResponse>,
    ) -> Option<i64> {
        let mut groups = self.inner.groups.lock();
        if groups.watchers.len() >= self.inner.config.max_watchers {
            return None;
        }
        let current = self.inner.history.current_rev();
        let synced = start_rev == 0 || start_rev > current;
        let min_rev = if synced {
            start_rev.max(current + 1)
        } else {
            start_rev
        };
        groups.watchers.insert(
            key,
            Watcher {
                range,
                min_rev,
                no_put,
                no_delete,
                tx,
                group: Group::Unsynced,
            },
        );
        groups.unsynced.insert(key);
        if synced {
            groups.set_group(key, Group::Synced);
        }
        drop(groups);
        if !synced {
            self.inner.wake();
        }
        Some(current)
    }

    /// Removes a watcher; `false` if it did not exist.
    pub(crate) fn cancel(&self, key: WatcherKey) -> bool {
        let mut groups = self.inner.groups.lock();
        groups.detach(key);
        groups.watchers.remove(&key).is_some()
    }

    /// Sends `tx` a progress notification (no events, `watch_id`, the
    /// newest revision matched) if every one of `keys` is synced: then
    /// every event up to that revision has been sent to them. Whether one
    /// was sent.
    pub(crate) fn progress(
        &self,
        keys: &[WatcherKey],
        watch_id: crate::WatchId,
        tx: &mpsc::Sender<WatchResponse>,
    ) -> bool {
        let groups = self.inner.groups.lock();
        let synced = keys.iter().all(|k| {
            groups
                .watchers
                .get(k)
                .is_none_or(|w| w.group == Group::Synced)
        });
        // Under the lock: no commit's events can be matched between the
        // check and the send.
        synced
            && tx
                .try_send(WatchResponse::progress(watch_id, groups.notified_rev))
                .is_ok()
    }
}

impl ironcd_mvcc::Observer for WatchableStore {
    fn on_commit(&self, rev: i64, events: Vec<Event>) {
        WatchableStore::on_commit(self, rev, events);
    }
}

impl Drop for WatchableStore {
    fn drop(&mut self) {
        self.inner.stopping.store(true, Ordering::Relaxed);
        self.inner.wake();
        if let Some(syncer) = self.syncer.take() {
            let _ = syncer.join();
        }
    }
}

impl Inner {
    fn wake(&self) {
        *self.woken.lock() = true;
        self.wake.notify_one();
    }

    /// Retries victims' pending responses; a watcher whose response went
    /// out resumes through unsynced (or synced, when nothing is left).
    fn retry_victims(&self) {
        let mut groups = self.groups.lock();
        if groups.victims.is_empty() {
            return;
        }
        let current = groups.notified_rev;
        let victims = std::mem::take(&mut groups.victims);
        for (key, resp) in victims {
            let Some(w) = groups.watchers.get(&key) else {
                continue;
            };
            let cancels = resp.compact_revision != 0;
            match w.tx.try_send(resp) {
                Ok(()) if cancels => {
                    // The compaction cancellation it held: now told, gone.
                    groups.watchers.remove(&key);
                }
                Ok(()) => {
                    let next = if w.min_rev > current {
                        Group::Synced
                    } else {
                        Group::Unsynced
                    };
                    groups.set_group(key, next);
                }
                Err(mpsc::error::TrySendError::Full(resp)) => groups.victims.push((key, resp)),
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    groups.watchers.remove(&key);
                }
            }
        }
    }

    /// One pass over (at most `max_watchers_per_sync`) unsynced watchers:
    /// reads the history from their lowest next revision, delivers, and
    /// moves those caught up to synced. Whether work is left.
    fn sync_unsynced(&self) -> bool {
        let (batch, from) = {
            let groups = self.groups.lock();
            let batch: Vec<(WatcherKey, i64)> = groups
                .unsynced
                .iter()
                .take(self.config.max_watchers_per_sync)
                .filter_map(|k| groups.watchers.get(k).map(|w| (*k, w.min_rev)))
                .collect();
            let Some(from) = batch.iter().map(|(_, rev)| *rev).min() else {
                return false;
            };
            (batch, from)
        };
        // etcd's point, where a pass has unsynced watchers to sync; on this
        // thread and outside the groups lock, so a sleep delays syncing
        // (and victims' retries), never a commit.
        fail::fail_point!("beforeSyncWatchers");
        // Catch-up reads only what synced watchers were sent: a revision
        // past it (held in a batch, or about to be matched) reaches a
        // watcher moved to synced through the match. Read further, a
        // watcher would get events a progress notification at
        // `notified_rev` then speaks as if behind.
        let current = self.groups.lock().notified_rev;
        let read = self
            .history
            .events(from, current, self.config.max_events_per_sync)
            // Shared by every watcher they reach, made outside the lock.
            .map(|(events, last)| {
                let events: Vec<Arc<SharedEvent>> =
                    events.into_iter().map(SharedEvent::new).collect();
                (events, last)
            });
        let mut groups = self.groups.lock();
        let (events, last) = match read {
            Ok(read) => read,
            Err(HistoryError::Compacted(compact)) => {
                // Those whose next revision is gone are told and dropped;
                // the rest are read again from a later revision. One whose
                // buffer is full stays, a victim holding the cancellation,
                // until it can be told: dropped untold, its stream would
                // wait for events that never come, and count it as synced.
                for (key, min_rev) in &batch {
                    if *min_rev < compact && groups.unsynced.contains(key) {
                        let delivery =
                            groups.deliver(*key, WatchResponse::compacted(key.id, compact));
                        if delivery == Delivery::Sent {
                            groups.detach(*key);
                            groups.watchers.remove(key);
                        }
                    }
                }
                return !groups.unsynced.is_empty();
            }
            Err(HistoryError::Failed(err)) => {
                tracing::error!(%err, "reading history for unsynced watchers failed");
                return false;
            }
        };
        for (key, _) in batch {
            // Still unsynced (not cancelled, not moved meanwhile)?
            if !groups.unsynced.contains(&key) {
                continue;
            }
            let Some(w) = groups.watchers.get(&key) else {
                continue;
            };
            let from_rev = w.min_rev;
            // As etcd's catch-up batches: one response holds the events of
            // up to `MAX_REVISIONS_PER_RESPONSE` revisions (never part of
            // one), its revision the last one's.
            let mut responses: Vec<WatchResponse> = Vec::new();
            let mut revisions_in_last = 0;
            for e in &events {
                let rev = e.event().kv.as_ref().map_or(0, |kv| kv.mod_revision);
                if rev < from_rev || !w.wants(e.event()) {
                    continue;
                }
                match responses.last_mut() {
                    Some(r) if r.revision == rev => r.events.push(e.clone()),
                    Some(r) if revisions_in_last < MAX_REVISIONS_PER_RESPONSE => {
                        r.events.push(e.clone());
                        r.revision = rev;
                        revisions_in_last += 1;
                    }
                    _ => {
                        responses.push(WatchResponse::events(key.id, rev, vec![e.clone()]));
                        revisions_in_last = 1;
                    }
                }
            }
            // Sent up to `last`, unless a full buffer made it a victim
            // holding one response: then it resumes after that one.
            let mut next = last + 1;
            let mut victim = false;
            for resp in responses {
                let rev = resp.revision;
                if groups.deliver(key, resp) != Delivery::Sent {
                    victim = true;
                    next = rev + 1;
                    break;
                }
            }
            if let Some(w) = groups.watchers.get_mut(&key) {
                w.min_rev = w.min_rev.max(next);
            }
            // Caught up if nothing was matched past what was read: a
            // commit matched after that waits for this lock and finds it
            // synced.
            if !victim && last >= groups.notified_rev {
                groups.set_group(key, Group::Synced);
            }
        }
        !groups.unsynced.is_empty() || last < current
    }
}

/// The background loop: victims every [`VICTIM_RETRY`] while there are
/// any, unsynced watchers every [`SYNC_INTERVAL`] or when woken.
fn sync_loop(inner: Weak<Inner>) {
    loop {
        let Some(inner) = inner.upgrade() else {
            return;
        };
        if inner.stopping.load(Ordering::Relaxed) {
            return;
        }
        // etcd's point, before a pass that has victims to retry; outside
        // the groups lock (only a failpoints build takes it here).
        #[cfg(feature = "failpoints")]
        if !inner.groups.lock().victims.is_empty() {
            fail::fail_point!("beforeMoveVictims");
        }
        inner.retry_victims();
        let more = inner.sync_unsynced();
        let wait = if more || !inner.groups.lock().victims.is_empty() {
            VICTIM_RETRY
        } else {
            SYNC_INTERVAL
        };
        let mut woken = inner.woken.lock();
        if !*woken {
            inner.wake.wait_for(&mut woken, wait);
        }
        *woken = false;
    }
}
