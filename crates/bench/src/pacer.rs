//! `--rate`: spaces request starts evenly across all clients.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Hands out start times `1/rate` apart; a client that reserves a slot in
/// the future sleeps until it. A slow phase does not build up a burst: a slot
/// is never earlier than the moment it is asked for.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    next: Mutex<Option<Instant>>,
}

impl Pacer {
    /// `None` for an unlimited rate (0).
    pub fn new(rate: u64) -> Option<Pacer> {
        (rate > 0).then(|| Pacer {
            interval: Duration::from_secs_f64(1.0 / rate as f64),
            next: Mutex::new(None),
        })
    }

    /// The start time of the next request asked for at `now`.
    pub fn reserve(&self, now: Instant) -> Instant {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let slot = next.map_or(now, |n| n.max(now));
        *next = Some(slot + self.interval);
        slot
    }

    /// Waits for the next slot.
    pub async fn wait(&self) {
        let slot = self.reserve(Instant::now());
        tokio::time::sleep_until(slot.into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_is_no_pacer() {
        assert!(Pacer::new(0).is_none());
    }

    #[test]
    fn slots_are_spaced_and_never_in_the_past() {
        let pacer = Pacer::new(100).unwrap();
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(pacer.reserve(t0), t0);
        assert_eq!(pacer.reserve(t0), t0 + ms(10));
        assert_eq!(pacer.reserve(t0 + ms(1)), t0 + ms(20));
        // Idle for a while: the next slot is now, not a backlog.
        assert_eq!(pacer.reserve(t0 + ms(500)), t0 + ms(500));
        assert_eq!(pacer.reserve(t0 + ms(500)), t0 + ms(510));
    }
}
