//! The observer (the future watch layer) receives every committed write
//! txn's events once, in revision order, even with concurrent writers.

use std::sync::Arc;

use ironcd_backend::{BackendConfig, MemBackend};
use ironcd_mvcc::{Observer, Store, StoreConfig};
use ironcd_proto::mvccpb::{event::EventType, Event};
use parking_lot::Mutex;

#[derive(Default)]
struct Recorder(Mutex<Vec<(i64, Vec<Event>)>>);

impl Observer for Recorder {
    fn on_commit(&self, rev: i64, events: Vec<Event>) {
        self.0.lock().push((rev, events));
    }
}

#[test]
fn events_arrive_once_in_revision_order() {
    let backend = Arc::new(MemBackend::open_in_memory(BackendConfig::default()));
    let store = Store::open(backend, StoreConfig::default()).expect("open");
    let recorder = Arc::new(Recorder::default());
    store.set_observer(recorder.clone());
    std::thread::scope(|s| {
        for t in 0..4u8 {
            let store = &store;
            s.spawn(move || {
                for i in 0..250u32 {
                    let mut txn = store.write();
                    txn.put(&[b'k', t], &i.to_be_bytes(), i64::from(t));
                    if i % 10 == 0 {
                        txn.delete_range(&[b'k', t], None);
                    }
                }
            });
        }
    });
    // A txn that changes nothing takes no revision and sends nothing.
    store.write().delete_range(b"absent", None);

    let seen = recorder.0.lock();
    assert_eq!(seen.len(), 1000);
    for (i, (rev, events)) in seen.iter().enumerate() {
        assert_eq!(*rev, i as i64 + 2, "revisions in order, none skipped");
        let put = events[0].kv.as_ref().expect("kv");
        assert_eq!(events[0].r#type, EventType::Put as i32);
        assert_eq!(put.mod_revision, *rev);
        assert_eq!(put.lease, i64::from(put.key[1]));
        if events.len() == 2 {
            let del = events[1].kv.as_ref().expect("kv");
            assert_eq!(events[1].r#type, EventType::Delete as i32);
            assert_eq!(
                (del.key.as_slice(), del.mod_revision),
                (put.key.as_slice(), *rev)
            );
        }
    }
    assert_eq!(store.current_rev(), 1001);
}

/// What the observer was sent is what the history reads back: the same
/// events, batched by whole revisions, and refused once compacted.
#[test]
fn the_history_reads_back_the_events_observed() {
    let backend = Arc::new(MemBackend::open_in_memory(BackendConfig::default()));
    let store = Store::open(backend, StoreConfig::default()).expect("open");
    let recorder = Arc::new(Recorder::default());
    store.set_observer(recorder.clone());
    for i in 0..20u8 {
        let mut txn = store.write();
        txn.put(&[b'a' + i % 3], &[i], 0);
        if i % 4 == 0 {
            txn.put(b"z", &[i], 7);
        }
        if i % 5 == 0 {
            txn.delete_range(b"a", Some(b"c"));
        }
    }
    let observed: Vec<Event> = recorder
        .0
        .lock()
        .iter()
        .flat_map(|(_, evs)| evs.clone())
        .collect();
    let (all, last) = store.read().events(2, 100, usize::MAX).expect("events");
    assert_eq!(last, store.current_rev(), "capped at the current revision");
    assert_eq!(all, observed);
    // In batches of about 5 events, never splitting a revision.
    let mut from = 2;
    let mut batched = Vec::new();
    while from <= store.current_rev() {
        let (evs, last) = store.read().events(from, i64::MAX, 5).expect("events");
        assert!(!evs.is_empty());
        let revs: Vec<i64> = evs
            .iter()
            .map(|e| e.kv.as_ref().unwrap().mod_revision)
            .collect();
        assert_eq!(*revs.last().unwrap(), last, "ends with a whole revision");
        batched.extend(evs);
        from = last + 1;
    }
    assert_eq!(batched, observed);
    // A tombstone reads back as the live delete was sent.
    let delete = all
        .iter()
        .find(|e| e.r#type == EventType::Delete as i32)
        .expect("a delete");
    assert_eq!(delete.kv.as_ref().unwrap().create_revision, 0);
    store
        .compact(10)
        .expect("compact")
        .wait()
        .expect("compacted");
    let err = store.read().events(9, 20, 10).unwrap_err();
    assert!(
        matches!(err, ironcd_mvcc::Error::Compacted { compacted: 10, .. }),
        "{err}"
    );
    assert!(store.read().events(10, 20, 10).is_ok());
}
