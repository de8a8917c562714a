//! Delayed delivery: the seeded jitter generator, the bounded FIFO queue of
//! chunks waiting for their delivery time, and that queue shared between a
//! connection direction's reader and writer.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// xorshift64* (Vigna, "An experimental exploration of Marsaglia's xorshift
/// generators"): tiny, and a seed repeats its sequence on every platform.
#[derive(Clone, Debug)]
pub(super) struct Jitter {
    state: u64,
}

/// splitmix64's finaliser: spreads neighbouring seeds (0, 1, 2, …) over
/// the whole state space.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Jitter {
    pub(super) fn new(seed: u64) -> Self {
        // xorshift never leaves the all-zero state, so it must not start there.
        let state = match splitmix64(seed) {
            0 => 0x9E37_79B9_7F4A_7C15,
            state => state,
        };
        Jitter { state }
    }

    /// The generator of one direction (`stream` 0 or 1) of the
    /// `connection`-th accepted connection: independent of how the
    /// threads of other connections interleave.
    pub(super) fn for_stream(seed: u64, connection: u64, stream: u64) -> Self {
        Jitter::new(seed ^ splitmix64(connection.wrapping_mul(2).wrapping_add(stream)))
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..=max` (Lemire's multiply-shift; its bias, under
    /// `max / 2^64`, is far below anything a delay could show).
    fn up_to(&mut self, max: u64) -> u64 {
        match max.checked_add(1) {
            Some(bound) => ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64,
            None => self.next_u64(),
        }
    }

    /// `base ± uniform(jitter)`, never below zero.
    pub(super) fn delay(&mut self, base: Duration, jitter: Duration) -> Duration {
        // Half of u64's nanoseconds (292 years) so that twice it fits.
        let jitter_nanos = u64::try_from(jitter.as_nanos())
            .unwrap_or(u64::MAX)
            .min(u64::MAX / 2);
        let offset = Duration::from_nanos(self.up_to(2 * jitter_nanos));
        base.saturating_add(offset)
            .saturating_sub(Duration::from_nanos(jitter_nanos))
    }
}

/// What a reader hands its writer.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Payload {
    Bytes(Vec<u8>),
    /// The source reached end of stream: the writer half-closes its side.
    End,
}

/// A payload and when it may be delivered.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Chunk {
    pub(super) due: Instant,
    pub(super) payload: Payload,
}

impl Chunk {
    fn len_bytes(&self) -> u64 {
        match &self.payload {
            Payload::Bytes(bytes) => bytes.len() as u64,
            Payload::End => 0,
        }
    }
}

/// Chunks in the order they were read, delivered front first once due: a
/// chunk due early waits behind an earlier one due later, which is what
/// keeps a delayed stream in order.
#[derive(Debug)]
pub(super) struct DelayQueue {
    chunks: VecDeque<Chunk>,
    queued_bytes: u64,
    capacity_bytes: u64,
}

impl DelayQueue {
    pub(super) fn new(capacity_bytes: u64) -> Self {
        DelayQueue {
            chunks: VecDeque::new(),
            queued_bytes: 0,
            capacity_bytes,
        }
    }

    /// Whether `chunk` fits. An empty queue takes any chunk, so one larger
    /// than the capacity cannot wedge its direction.
    pub(super) fn has_room(&self, chunk: &Chunk) -> bool {
        self.chunks.is_empty() || self.queued_bytes + chunk.len_bytes() <= self.capacity_bytes
    }

    pub(super) fn push(&mut self, chunk: Chunk) {
        assert!(self.has_room(&chunk), "delay queue over capacity");
        self.queued_bytes += chunk.len_bytes();
        self.chunks.push_back(chunk);
    }

    /// The front chunk if it is due at `now`.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<Chunk> {
        if self.chunks.front()?.due > now {
            return None;
        }
        let chunk = self.chunks.pop_front()?;
        self.queued_bytes -= chunk.len_bytes();
        debug_assert!(!self.chunks.is_empty() || self.queued_bytes == 0);
        Some(chunk)
    }

    /// When the front chunk falls due.
    pub(super) fn next_due(&self) -> Option<Instant> {
        self.chunks.front().map(|chunk| chunk.due)
    }

    #[cfg(test)]
    fn queued_bytes(&self) -> u64 {
        self.queued_bytes
    }
}

/// A [`DelayQueue`] between one reader and one writer thread. Every wait
/// ends when the connection's `closed` flag is set and [`wake`] is called.
///
/// [`wake`]: DelayChannel::wake
#[derive(Debug)]
pub(super) struct DelayChannel {
    queue: Mutex<DelayQueue>,
    changed: Condvar,
}

impl DelayChannel {
    pub(super) fn new(capacity_bytes: u64) -> Self {
        DelayChannel {
            queue: Mutex::new(DelayQueue::new(capacity_bytes)),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, DelayQueue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `chunk`, waiting for room (the backpressure of a full delay
    /// queue); false if the connection closed first.
    pub(super) fn push(&self, chunk: Chunk, closed: &AtomicBool) -> bool {
        let queue = self.lock();
        let mut queue = self
            .changed
            .wait_while(queue, |q| {
                !q.has_room(&chunk) && !closed.load(Ordering::Acquire)
            })
            .unwrap_or_else(PoisonError::into_inner);
        if closed.load(Ordering::Acquire) {
            return false;
        }
        queue.push(chunk);
        drop(queue);
        self.changed.notify_all();
        true
    }

    /// The next chunk once it is due; `None` once the connection closed.
    pub(super) fn pop_due(&self, closed: &AtomicBool) -> Option<Chunk> {
        let mut queue = self.lock();
        loop {
            if closed.load(Ordering::Acquire) {
                return None;
            }
            let now = Instant::now();
            if let Some(chunk) = queue.pop_due(now) {
                drop(queue);
                self.changed.notify_all();
                return Some(chunk);
            }
            queue = match queue.next_due() {
                Some(due) => {
                    let waited = self.changed.wait_timeout(queue, due - now);
                    waited.unwrap_or_else(PoisonError::into_inner).0
                }
                None => self
                    .changed
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner),
            };
        }
    }

    /// Wakes both sides to look at the closed flag (set before this call;
    /// taking the lock orders the wake after their check).
    pub(super) fn wake(&self) {
        drop(self.lock());
        self.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn bytes(due: Instant, data: &[u8]) -> Chunk {
        Chunk {
            due,
            payload: Payload::Bytes(data.to_vec()),
        }
    }

    #[test]
    fn a_seed_repeats_its_delays_and_another_seed_does_not() {
        let draw = |seed| {
            let mut jitter = Jitter::for_stream(seed, 3, 1);
            (0..64)
                .map(|_| jitter.delay(100 * MS, 50 * MS))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(42), draw(42));
        assert_ne!(draw(42), draw(43));
    }

    #[test]
    fn streams_of_one_seed_draw_differently() {
        let first = |connection, stream| Jitter::for_stream(9, connection, stream).next_u64();
        assert_ne!(first(0, 0), first(0, 1));
        assert_ne!(first(0, 1), first(1, 0));
    }

    #[test]
    fn delays_stay_within_base_plus_or_minus_jitter_and_reach_both_sides() {
        let (base, jitter) = (100 * MS, 40 * MS);
        let mut generator = Jitter::new(0);
        let delays: Vec<_> = (0..10_000).map(|_| generator.delay(base, jitter)).collect();
        assert!(delays
            .iter()
            .all(|d| *d >= base - jitter && *d <= base + jitter));
        assert!(delays.iter().any(|d| *d < base - jitter / 2));
        assert!(delays.iter().any(|d| *d > base + jitter / 2));
    }

    #[test]
    fn no_jitter_is_exactly_base_and_jitter_beyond_base_stops_at_zero() {
        let mut generator = Jitter::new(1);
        assert!((0..100).all(|_| generator.delay(7 * MS, Duration::ZERO) == 7 * MS));
        let delays: Vec<_> = (0..1_000).map(|_| generator.delay(MS, 10 * MS)).collect();
        assert!(delays.contains(&Duration::ZERO));
        assert!(delays.iter().all(|d| *d <= 11 * MS));
        let huge = generator.delay(Duration::MAX, Duration::MAX);
        assert!(huge <= Duration::MAX);
    }

    #[test]
    fn a_chunk_due_early_waits_behind_an_earlier_chunk_due_later() {
        let start = Instant::now();
        let mut queue = DelayQueue::new(1024);
        queue.push(bytes(start + 10 * MS, b"first"));
        queue.push(bytes(start + MS, b"second"));
        assert_eq!(queue.pop_due(start + 5 * MS), None);
        assert_eq!(queue.next_due(), Some(start + 10 * MS));
        assert_eq!(
            queue.pop_due(start + 10 * MS),
            Some(bytes(start + 10 * MS, b"first"))
        );
        assert_eq!(
            queue.pop_due(start + 10 * MS),
            Some(bytes(start + MS, b"second"))
        );
        assert_eq!(queue.pop_due(start + 10 * MS), None);
        assert_eq!(queue.next_due(), None);
    }

    #[test]
    fn the_queue_holds_at_most_its_capacity_in_bytes() {
        let now = Instant::now();
        let mut queue = DelayQueue::new(8);
        queue.push(bytes(now, b"12345"));
        assert!(!queue.has_room(&bytes(now, b"6789")));
        assert!(queue.has_room(&bytes(now, b"678")));
        queue.push(bytes(now, b"678"));
        assert_eq!(queue.queued_bytes(), 8);
        assert!(queue.has_room(&Chunk {
            due: now,
            payload: Payload::End
        }));
        queue.pop_due(now);
        queue.pop_due(now);
        assert_eq!(queue.queued_bytes(), 0);
    }

    #[test]
    fn an_empty_queue_takes_a_chunk_larger_than_its_capacity() {
        let now = Instant::now();
        let mut queue = DelayQueue::new(2);
        assert!(queue.has_room(&bytes(now, b"too long")));
        queue.push(bytes(now, b"too long"));
        assert!(!queue.has_room(&bytes(now, b"x")));
    }

    #[test]
    fn a_channel_delivers_in_order_across_threads_and_ends_when_closed() {
        let channel = DelayChannel::new(16);
        let closed = AtomicBool::new(false);
        let start = Instant::now();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for i in 0..100u8 {
                    // Alternating dues: every odd chunk is due before its predecessor.
                    let due = start + if i % 2 == 0 { 2 * MS } else { Duration::ZERO };
                    assert!(channel.push(bytes(due, &[i; 4]), &closed));
                }
            });
            for i in 0..100u8 {
                let chunk = channel.pop_due(&closed).expect("open channel");
                assert_eq!(chunk.payload, Payload::Bytes(vec![i; 4]));
            }
        });
        closed.store(true, Ordering::Release);
        channel.wake();
        assert_eq!(channel.pop_due(&closed), None);
        assert!(!channel.push(bytes(start, b"late"), &closed));
    }
}
