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
    fn on_commit(&self, rev: i64, events: &[Event]) {
        self.0.lock().push((rev, events.to_vec()));
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
