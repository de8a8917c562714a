use std::sync::Arc;
use std::time::Duration;

use ironcd_backend::{Backend, BackendConfig, MemBackend};

use super::*;
use crate::ManualClock;

fn lessor(cfg: LessorConfig) -> (Lessor, Arc<ManualClock>, MemBackend) {
    let clock = Arc::new(ManualClock::new());
    let backend = MemBackend::open_in_memory(BackendConfig::default());
    (Lessor::new(cfg, clock.clone()), clock, backend)
}

#[test]
fn grant_checks_id_ttl_and_duplicates() {
    let (l, _, b) = lessor(LessorConfig::default());
    let tx = &mut b.batch_tx();
    assert_eq!(l.grant(tx, 0, 10), Err(Error::LeaseNotFound));
    assert_eq!(l.grant(tx, 1, MAX_LEASE_TTL_S + 1), Err(Error::TtlTooLarge));
    assert_eq!(l.grant(tx, 1, 1), Ok(Granted { id: 1, ttl_s: 2 }));
    assert_eq!(l.grant(tx, 1, 100), Err(Error::LeaseExists));
    assert_eq!(l.grant(tx, -5, 100).map(|g| g.id), Ok(-5));
}

#[test]
fn min_ttl_follows_the_election_timeout() {
    // etcd: ceil(1.5 election timeouts): 1 s → 2 s, 5 s → 8 s.
    assert_eq!(LessorConfig::min_ttl_s_for(10, 100), 2);
    assert_eq!(LessorConfig::min_ttl_s_for(50, 100), 8);
    assert_eq!(LessorConfig::min_ttl_s_for(2, 10), 1);
}

#[test]
fn only_the_primary_renews_and_expires() {
    let (l, clock, b) = lessor(LessorConfig::default());
    l.grant(&mut b.batch_tx(), 1, 5).unwrap();
    assert_eq!(l.renew(1), Err(Error::NotPrimary));
    clock.advance(Duration::from_secs(60));
    assert_eq!(l.tick(100), Tick::default());
    // A follower reports the TTL it would run from.
    assert_eq!(l.time_to_live(1, false).unwrap().remaining_s, 5);
    l.promote(Duration::from_secs(1));
    assert_eq!(l.time_to_live(1, false).unwrap().remaining_s, 6);
    clock.advance(Duration::from_millis(5_999));
    assert!(l.tick(100).expired.is_empty());
    clock.advance(Duration::from_millis(1));
    assert_eq!(l.tick(100).expired, vec![1]);
    // Handed out once, then again only after the retry interval.
    assert!(l.tick(100).expired.is_empty());
    clock.advance(DEFAULT_EXPIRY_RETRY);
    assert_eq!(l.tick(100).expired, vec![1]);
    l.demote();
    clock.advance(Duration::from_secs(60));
    assert!(l.tick(100).expired.is_empty());
    assert_eq!(l.renew(1), Err(Error::NotPrimary));
}

#[test]
fn tick_hands_out_at_most_the_limit() {
    let (l, clock, b) = lessor(LessorConfig::default());
    l.promote(Duration::ZERO);
    for id in 1..=50 {
        l.grant(&mut b.batch_tx(), id, 5).unwrap();
    }
    clock.advance(Duration::from_secs(5));
    let first = l.tick(20).expired;
    let second = l.tick(20).expired;
    let third = l.tick(20).expired;
    assert_eq!((first.len(), second.len(), third.len()), (20, 20, 10));
    let mut all: Vec<_> = first.into_iter().chain(second).chain(third).collect();
    all.sort_unstable();
    assert_eq!(all, (1..=50).collect::<Vec<_>>());
}

#[test]
fn renewals_push_nothing_and_stale_entries_stay_bounded() {
    let (l, clock, b) = lessor(LessorConfig::default());
    l.promote(Duration::ZERO);
    for id in 1..=10 {
        l.grant(&mut b.batch_tx(), id, 5).unwrap();
    }
    for _ in 0..10_000 {
        clock.advance(Duration::from_millis(100));
        for id in 1..=10 {
            l.renew(id).unwrap();
        }
        assert!(l.tick(100).expired.is_empty());
    }
    // Checkpoints that shorten expiries do push; the heap is rebuilt
    // before stale entries pass the slack.
    for round in 0..5_000 {
        l.checkpoint(&mut b.batch_tx(), 1 + round % 10, 4);
    }
    let inner = l.inner.lock();
    assert!(
        inner.expiry.len() <= 10 + HEAP_SLACK_ENTRIES + 1,
        "{}",
        inner.expiry.len()
    );
}

#[test]
fn promotion_spreads_a_pile_of_expiries() {
    let cfg = LessorConfig {
        revoke_rate_per_s: 100,
        // Handed-out leases are not revoked here: keep them from coming
        // back during the test.
        expiry_retry: Duration::from_secs(3600),
        ..LessorConfig::default()
    };
    let (l, clock, b) = lessor(cfg);
    for id in 1..=1_000 {
        l.grant(&mut b.batch_tx(), id, 10).unwrap();
    }
    l.promote(Duration::from_secs(1));
    // 3/4 of the rate per second: 75 at 11 s, 75 more each second after.
    clock.advance(Duration::from_secs(11));
    assert_eq!(l.tick(10_000).expired.len(), 75);
    let mut total = 75;
    for _ in 0..20 {
        clock.advance(Duration::from_secs(1));
        let n = l.tick(10_000).expired.len();
        assert!(n <= 75, "{n} in one second");
        total += n;
    }
    assert_eq!(total, 1_000);
}

#[test]
fn a_checkpoint_carries_the_remaining_ttl_to_the_next_primary() {
    let cfg = LessorConfig {
        checkpointing: true,
        checkpoint_interval: Duration::from_secs(60),
        ..LessorConfig::default()
    };
    let (l, clock, b) = lessor(cfg.clone());
    l.promote(Duration::ZERO);
    l.grant(&mut b.batch_tx(), 1, 1_000).unwrap();
    l.grant(&mut b.batch_tx(), 2, 30).unwrap();
    clock.advance(Duration::from_secs(60));
    // Only the lease longer than the interval is checkpointed.
    let tick = l.tick(100);
    assert_eq!(tick.checkpoints, vec![(1, 940)]);
    // Applied on a follower (a lessor recovered from the records), then
    // that follower is promoted: it runs from 940 s, not 1 000 s.
    l.checkpoint(&mut b.batch_tx(), 1, 940);
    let follower = Lessor::new(cfg, clock.clone());
    follower.recover(&b.read_tx()).unwrap();
    follower.promote(Duration::from_secs(2));
    assert_eq!(follower.time_to_live(1, false).unwrap().remaining_s, 942);
    // A renewal on the primary clears the checkpoint.
    let renewed = follower.renew(1).unwrap();
    assert_eq!(
        renewed,
        Renewed {
            ttl_s: 1_000,
            clear_checkpoint: true
        }
    );
    assert!(!follower.renew(1).unwrap().clear_checkpoint);
}

#[test]
fn revoke_deletes_keys_in_key_order_with_the_record() {
    struct Keys<'a, T>(Vec<Vec<u8>>, &'a mut T);
    impl<T: BatchTx> RangeDeleter for Keys<'_, T> {
        type Tx = T;
        fn delete_key(&mut self, key: &[u8]) {
            self.0.push(key.to_vec());
        }
        fn tx(&mut self) -> &mut T {
            self.1
        }
    }
    let (l, _, b) = lessor(LessorConfig::default());
    l.grant(&mut b.batch_tx(), 9, 10).unwrap();
    for k in ["c", "a", "b"] {
        l.attach_key(k.as_bytes(), 9);
    }
    l.attach_key(b"b", 0);
    let mut tx = b.batch_tx();
    let mut keys = Keys(Vec::new(), &mut tx);
    l.revoke(9, &mut keys).unwrap();
    assert_eq!(keys.0, vec![b"a".to_vec(), b"c".to_vec()]);
    drop(tx);
    assert!(Record::load_all(&b.read_tx()).unwrap().is_empty());
    assert_eq!(l.lease_of(b"a"), crate::NO_LEASE);
}

#[test]
fn corrupt_records_are_errors() {
    let (l, _, b) = lessor(LessorConfig::default());
    b.batch_tx().put(
        ironcd_backend::Bucket::LEASE,
        &crate::record::key(3),
        b"\xff\xff",
    );
    assert!(matches!(l.recover(&b.read_tx()), Err(Error::Corrupt(_))));
}
