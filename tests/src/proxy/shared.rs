//! The state a proxy's threads share: faults, stats, the open connections
//! and a count of live threads, each behind its own lock.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::conn::Conn;
use super::{Direction, Stats};

/// A delay set on one direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Delay {
    pub(super) base: Duration,
    pub(super) jitter: Duration,
}

/// The faults of one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct DirectionFaults {
    pub(super) blackholed: bool,
    pub(super) paused: bool,
    pub(super) delay: Option<Delay>,
}

#[derive(Debug, Default)]
struct Faults {
    refuse: bool,
    directions: [DirectionFaults; 2],
}

/// What [`Shared::close_all`] is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Closing {
    /// `drop_connections`: new connections are still accepted.
    Connections,
    /// The proxy is dropped: nothing new is admitted from now on.
    Stop,
}

/// The answer to [`Shared::reserve`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Reservation {
    Reserved,
    Full,
    Stopping,
}

/// Connections admitted (a slot each, taken before the upstream is
/// dialled) and those of them proxied.
#[derive(Debug)]
struct Registry {
    stopping: bool,
    max_connections: usize,
    slots_in_use: usize,
    open: HashMap<u64, Arc<Conn>>,
}

#[derive(Debug)]
pub(super) struct Shared {
    pub(super) upstream: SocketAddr,
    pub(super) seed: u64,
    faults: Mutex<Faults>,
    faults_changed: Condvar,
    stats: Mutex<Stats>,
    stats_changed: Condvar,
    registry: Mutex<Registry>,
    live_threads: Mutex<usize>,
    threads_changed: Condvar,
}

/// A pump that panicked must not wedge the others, so poisoned locks are
/// used as they are (every update below is a single assignment).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(super) fn new(upstream: SocketAddr, seed: u64, max_connections: usize) -> Self {
        Shared {
            upstream,
            seed,
            faults: Mutex::new(Faults::default()),
            faults_changed: Condvar::new(),
            stats: Mutex::new(Stats::default()),
            stats_changed: Condvar::new(),
            registry: Mutex::new(Registry {
                stopping: false,
                max_connections,
                slots_in_use: 0,
                open: HashMap::new(),
            }),
            live_threads: Mutex::new(0),
            threads_changed: Condvar::new(),
        }
    }

    pub(super) fn update(&self, direction: Direction, change: impl FnOnce(&mut DirectionFaults)) {
        change(&mut lock(&self.faults).directions[direction.index()]);
        self.faults_changed.notify_all();
    }

    pub(super) fn set_refuse(&self, refuse: bool) {
        lock(&self.faults).refuse = refuse;
    }

    pub(super) fn refusing(&self) -> bool {
        lock(&self.faults).refuse
    }

    pub(super) fn heal(&self) {
        *lock(&self.faults) = Faults::default();
        self.faults_changed.notify_all();
    }

    /// Waits while `direction` is paused; its faults once it is not, or
    /// `None` once `conn` is closed.
    pub(super) fn wait_released(
        &self,
        direction: Direction,
        conn: &Conn,
    ) -> Option<DirectionFaults> {
        let faults = lock(&self.faults);
        let faults = self
            .faults_changed
            .wait_while(faults, |f| {
                f.directions[direction.index()].paused && !conn.is_closed()
            })
            .unwrap_or_else(PoisonError::into_inner);
        (!conn.is_closed()).then(|| faults.directions[direction.index()])
    }

    pub(super) fn stats(&self) -> Stats {
        *lock(&self.stats)
    }

    pub(super) fn record(&self, change: impl FnOnce(&mut Stats)) {
        change(&mut lock(&self.stats));
        self.stats_changed.notify_all();
    }

    pub(super) fn record_bytes(&self, direction: Direction, forwarded: u64, discarded: u64) {
        self.record(|stats| {
            let counts = stats.direction_mut(direction);
            counts.forwarded_bytes += forwarded;
            counts.discarded_bytes += discarded;
        });
    }

    pub(super) fn wait_for_stats(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&Stats) -> bool,
    ) -> Result<Stats, Stats> {
        let deadline = Instant::now() + timeout;
        let mut stats = lock(&self.stats);
        loop {
            if done(&stats) {
                return Ok(*stats);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(*stats);
            }
            stats = self
                .stats_changed
                .wait_timeout(stats, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    pub(super) fn is_stopping(&self) -> bool {
        lock(&self.registry).stopping
    }

    /// Takes a connection slot for a newly accepted connection.
    pub(super) fn reserve(&self) -> Reservation {
        let mut registry = lock(&self.registry);
        if registry.stopping {
            Reservation::Stopping
        } else if registry.slots_in_use >= registry.max_connections {
            Reservation::Full
        } else {
            registry.slots_in_use += 1;
            Reservation::Reserved
        }
    }

    /// Adds `conn` (whose slot is reserved) to the open connections; false
    /// if the proxy is stopping, so a connection set up during the stop is
    /// never missed by it.
    pub(super) fn register(&self, conn: &Arc<Conn>) -> bool {
        let mut registry = lock(&self.registry);
        if registry.stopping {
            return false;
        }
        registry.open.insert(conn.id, Arc::clone(conn));
        drop(registry);
        self.record(|stats| stats.open_connections += 1);
        true
    }

    /// Gives back connection `id`'s slot, and forgets it if it was open.
    pub(super) fn release(&self, id: u64) {
        let mut registry = lock(&self.registry);
        assert!(
            registry.slots_in_use > 0,
            "proxy connection {id} released twice"
        );
        registry.slots_in_use -= 1;
        let was_open = registry.open.remove(&id).is_some();
        drop(registry);
        if was_open {
            self.record(|stats| stats.open_connections -= 1);
        }
    }

    /// Closes one connection and wakes its pumps wherever they wait.
    pub(super) fn close(&self, conn: &Conn) {
        conn.close();
        self.wake_fault_waiters();
    }

    pub(super) fn close_all(&self, closing: Closing) {
        let mut registry = lock(&self.registry);
        if closing == Closing::Stop {
            registry.stopping = true;
        }
        for conn in registry.open.values() {
            conn.close();
        }
        drop(registry);
        self.wake_fault_waiters();
    }

    /// Taking the lock orders this wake after any waiter's check of its
    /// connection's closed flag, so no wake is lost.
    fn wake_fault_waiters(&self) {
        drop(lock(&self.faults));
        self.faults_changed.notify_all();
    }

    /// Counts a thread about to be spawned until the guard is dropped.
    pub(super) fn thread_started(self: &Arc<Self>) -> LiveThread {
        *lock(&self.live_threads) += 1;
        LiveThread {
            shared: Arc::clone(self),
        }
    }

    /// Waits until every counted thread has ended, at most `timeout`.
    pub(super) fn wait_threads_ended(&self, timeout: Duration) -> bool {
        let live = lock(&self.live_threads);
        let (live, _) = self
            .threads_changed
            .wait_timeout_while(live, timeout, |live| *live > 0)
            .unwrap_or_else(PoisonError::into_inner);
        *live == 0
    }
}

/// Held by every proxy thread for its whole life (dropped last, after the
/// sockets it owned).
#[derive(Debug)]
pub(super) struct LiveThread {
    shared: Arc<Shared>,
}

impl Drop for LiveThread {
    fn drop(&mut self) {
        *lock(&self.shared.live_threads) -= 1;
        self.shared.threads_changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(max_connections: usize) -> Shared {
        Shared::new(([127, 0, 0, 1], 1).into(), 7, max_connections)
    }

    #[test]
    fn reserve_refuses_beyond_the_limit_until_a_slot_is_released() {
        let shared = shared(2);
        assert_eq!(shared.reserve(), Reservation::Reserved);
        assert_eq!(shared.reserve(), Reservation::Reserved);
        assert_eq!(shared.reserve(), Reservation::Full);
        shared.release(0);
        assert_eq!(shared.reserve(), Reservation::Reserved);
    }

    #[test]
    fn nothing_is_reserved_once_stopping() {
        let shared = shared(2);
        shared.close_all(Closing::Connections);
        assert_eq!(shared.reserve(), Reservation::Reserved);
        shared.close_all(Closing::Stop);
        assert_eq!(shared.reserve(), Reservation::Stopping);
    }

    #[test]
    fn heal_clears_every_fault() {
        let shared = shared(1);
        for direction in Direction::ALL {
            shared.update(direction, |f| {
                f.blackholed = true;
                f.paused = true;
                f.delay = Some(Delay {
                    base: Duration::from_secs(1),
                    jitter: Duration::ZERO,
                });
            });
        }
        shared.set_refuse(true);
        shared.heal();
        assert!(!shared.refusing());
        let faults = lock(&shared.faults);
        assert_eq!(faults.directions, [DirectionFaults::default(); 2]);
    }

    #[test]
    fn wait_for_stats_returns_the_last_stats_when_the_condition_never_holds() {
        let shared = shared(1);
        shared.record_bytes(Direction::ToClient, 3, 4);
        let last = shared
            .wait_for_stats(Duration::ZERO, |s| s.to_client.forwarded_bytes == 99)
            .unwrap_err();
        assert_eq!(last.to_client.forwarded_bytes, 3);
        assert_eq!(last.to_client.discarded_bytes, 4);
        assert_eq!(last.to_upstream, Default::default());
    }
}
