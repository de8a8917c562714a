//! The applier fed committed entries in process, over the in-memory
//! backend (and the snapshot install over RocksDB too), with raft and the
//! peer transport replaced by recorders.

use std::sync::Arc;

use ironcd_backend::{Backend, BackendConfig, MemBackend, RocksBackend};
use ironcd_proto::etcdserverpb::{
    alarm_request::AlarmAction, AlarmRequest, AlarmType, InternalRaftRequest, Member, PutRequest,
    RangeRequest, RequestHeader,
};
use ironcd_raft_node::{
    Apply, Committed, CommittedKind, Membership, SnapshotData, SnapshotPayload,
};
use parking_lot::Mutex;
use prost::Message;

use super::{Applier, PeerDirectory, SnapshotSink};
use crate::state::{Applied, State};
use crate::storage::{MemStorage, RocksStorage, Storage};

#[derive(Default)]
struct Sink {
    durable: Mutex<Vec<u64>>,
    snapshots: Mutex<Vec<u64>>,
}

impl SnapshotSink for Arc<Sink> {
    fn report_durable_applied(&self, index: u64) {
        self.durable.lock().push(index);
    }

    async fn create_snapshot(&self, index: u64) -> Result<(), String> {
        self.snapshots.lock().push(index);
        Ok(())
    }
}

/// Records the revision of every write txn it is told of.
#[derive(Default)]
struct Seen(Mutex<Vec<i64>>);

impl ironcd_mvcc::Observer for Seen {
    fn on_commit(&self, rev: i64, _events: Vec<ironcd_proto::mvccpb::Event>) {
        self.0.lock().push(rev);
    }
}

impl crate::state::StoreObserver for Seen {
    fn store_replaced(&self) {
        self.0.lock().push(-1);
    }
    fn begin_batch(&self) {}
    fn end_batch(&self) {}
}

/// Records the batches it is told of and their commits, and whether the
/// proposer it holds the answer of was answered by a batch's end.
#[derive(Default)]
struct Bracket {
    log: Mutex<Vec<String>>,
    answer: Mutex<Option<tokio::sync::oneshot::Receiver<crate::state::Outcome>>>,
}

impl ironcd_mvcc::Observer for Bracket {
    fn on_commit(&self, rev: i64, _events: Vec<ironcd_proto::mvccpb::Event>) {
        self.log.lock().push(format!("commit {rev}"));
    }
}

impl crate::state::StoreObserver for Bracket {
    fn store_replaced(&self) {}
    fn begin_batch(&self) {
        self.log.lock().push("begin".into());
    }
    fn end_batch(&self) {
        let answered = self.answer.lock().as_mut().map(|rx| rx.try_recv().is_ok());
        self.log.lock().push(format!("end, answered: {answered:?}"));
    }
}

#[derive(Default)]
struct Peers(Mutex<Vec<(u64, String)>>);

impl PeerDirectory for Peers {
    fn add_peer(&self, id: u64, url: String) {
        let mut peers = self.0.lock();
        peers.retain(|(p, _)| *p != id);
        peers.push((id, url));
        peers.sort();
    }

    fn remove_peer(&self, id: u64) {
        self.0.lock().retain(|(p, _)| *p != id);
    }

    fn peers(&self) -> Vec<(u64, String)> {
        self.0.lock().clone()
    }
}

struct Member0<B: Backend = MemBackend> {
    applier: Applier<Arc<Sink>, Peers, B>,
    sink: Arc<Sink>,
}

/// A lessor on the machine's clock, with etcd's defaults.
fn test_lessor() -> ironcd_lease::Lessor {
    ironcd_lease::Lessor::new(
        ironcd_lease::LessorConfig::default(),
        Arc::new(ironcd_lease::MonotonicClock::new()),
    )
}

/// A member over `storage`; opening a clone of it again is a restart.
fn open<B: Backend>(storage: impl Storage<B>) -> Member0<B> {
    let (state, consistent_index) = State::with_storage(Box::new(storage), test_lessor()).unwrap();
    let sink = Arc::new(Sink::default());
    Member0 {
        applier: Applier {
            state,
            node: sink.clone(),
            peers: Arc::new(Peers::default()),
            consistent_index,
            lease_extend: std::time::Duration::from_secs(1),
        },
        sink,
    }
}

fn in_memory() -> Member0 {
    open(MemStorage::default())
}

fn put_entry(index: u64, key: &str, value: &str) -> Committed {
    let req = InternalRaftRequest {
        header: Some(RequestHeader {
            id: index,
            ..Default::default()
        }),
        put: Some(PutRequest {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    entry_of(index, req)
}

fn entry_of(index: u64, req: InternalRaftRequest) -> Committed {
    Committed {
        index,
        term: 2,
        kind: CommittedKind::Normal(req.encode_to_vec()),
    }
}

/// Writes `state`'s backend as a peer's snapshot stream into `name`
/// under `dir`.
fn snapshot_file<B: Backend>(
    state: &State<B>,
    dir: &tempfile::TempDir,
    name: &str,
) -> std::path::PathBuf {
    let file = dir.path().join(name);
    let mut out = std::fs::File::create(&file).unwrap();
    state
        .write_backend_snapshot(&mut |_| Ok(()), &mut out)
        .unwrap();
    file
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn value_of<B: Backend>(state: &State<B>, key: &str) -> Option<(Vec<u8>, i64)> {
    let store = state.store();
    let txn = store.read();
    let r = RangeRequest {
        key: key.into(),
        ..Default::default()
    };
    let resp = crate::kv::range(&txn, &r).unwrap();
    resp.kvs
        .first()
        .map(|kv| (kv.value.clone(), kv.mod_revision))
}

#[test]
fn entries_apply_once_across_redelivery_and_restart() {
    let rt = rt();
    let storage = MemStorage::default();
    let mut m = open(storage.clone());
    let batch: Vec<Committed> = (2..=5)
        .map(|i| put_entry(i, &format!("k{i}"), "a"))
        .collect();
    rt.block_on(m.applier.apply(Apply::Entries(batch.clone())));
    let rev = m.applier.state.store().current_rev();
    assert_eq!(rev, 5, "one revision per put, from 1");
    assert_eq!(m.applier.state.applied_index(), 5);
    // Delivered again (raft does so after a restart from an older index):
    // nothing changes.
    rt.block_on(m.applier.apply(Apply::Entries(batch)));
    assert_eq!(m.applier.state.store().current_rev(), rev);

    // Restart: the index is read back with the effects, so only the new
    // entry applies.
    m.applier.state.store().backend().force_commit().unwrap();
    drop(m);
    let mut m = open(storage);
    assert_eq!(m.applier.consistent_index, 5);
    let again: Vec<Committed> = (4..=6)
        .map(|i| put_entry(i, &format!("k{i}"), "b"))
        .collect();
    rt.block_on(m.applier.apply(Apply::Entries(again)));
    assert_eq!(m.applier.state.store().current_rev(), 6);
    assert_eq!(value_of(&m.applier.state, "k4").unwrap().0, b"a");
    assert_eq!(value_of(&m.applier.state, "k6").unwrap().0, b"b");
}

/// A follower over `storage` installs a leader's snapshot: its old state
/// goes, the leader's comes, the observer and peers follow, and entries
/// the snapshot covers are skipped.
fn a_snapshot_from_a_peer_replaces_the_state<B: Backend>(storage: impl Storage<B>) {
    let rt = rt();
    // The leader's state: keys, a member record, applied up to 40.
    let mut leader = in_memory();
    let entries: Vec<Committed> = (31..=40)
        .map(|i| put_entry(i, &format!("leader/{i}"), "v"))
        .collect();
    leader.applier.consistent_index = 30;
    rt.block_on(leader.applier.apply(Apply::Entries(entries)));
    {
        let state = &leader.applier.state;
        let store = state.store();
        let mut tx = store.backend().batch_tx();
        state.members.write().upsert(
            &mut tx,
            Member {
                id: 7,
                name: "m7".into(),
                peer_ur_ls: vec!["http://127.0.0.1:7".into()],
                ..Default::default()
            },
        );
    }
    let file_dir = tempfile::tempdir().unwrap();
    let file = snapshot_file(&leader.applier.state, &file_dir, "0000000000000024.snap.db");

    // A follower with state of its own, behind, and an observer (the
    // watch layer's) that must outlive the install.
    let mut follower = open(storage);
    let seen = Arc::new(Seen::default());
    follower.applier.state.set_observer(seen.clone());
    rt.block_on(
        follower
            .applier
            .apply(Apply::Entries(vec![put_entry(2, "mine", "x")])),
    );
    follower
        .applier
        .peers
        .add_peer(9, "http://127.0.0.1:9".into());
    rt.block_on(follower.applier.apply(Apply::Snapshot(SnapshotData {
        index: 36,
        term: 2,
        membership: Membership::default(),
        payload: SnapshotPayload::File(file.clone()),
    })));
    let state = follower.applier.state.clone();
    let state = &*state;
    // The data's index (40), not the snapshot's (36): entries up to 40 that
    // raft delivers next are skipped.
    assert_eq!(follower.applier.consistent_index, 40);
    assert_eq!(state.applied_index(), 40);
    assert!(value_of(state, "mine").is_none(), "the old state is gone");
    assert!(value_of(state, "leader/40").is_some());
    assert_eq!(state.store().current_rev(), 11);
    assert!(!file.exists(), "restored data is removed");
    assert_eq!(
        follower.applier.peers.peers(),
        vec![(7, "http://127.0.0.1:7".to_string())],
        "the peers follow the restored membership"
    );
    rt.block_on(
        follower
            .applier
            .apply(Apply::Entries(vec![put_entry(39, "late", "x")])),
    );
    assert!(value_of(state, "late").is_none(), "covered by the snapshot");
    rt.block_on(
        follower
            .applier
            .apply(Apply::Entries(vec![put_entry(41, "next", "x")])),
    );
    assert!(value_of(state, "next").is_some());
    assert_eq!(
        *seen.0.lock(),
        vec![2, -1, 12],
        "the observer saw writes before and after the install, and the install"
    );
}

#[test]
fn a_snapshot_from_a_peer_replaces_the_state_in_memory() {
    a_snapshot_from_a_peer_replaces_the_state(MemStorage::default());
}

#[test]
fn a_snapshot_from_a_peer_replaces_the_state_on_rocksdb() {
    let dir = tempfile::tempdir().unwrap();
    let storage = RocksStorage::new(&dir.path().join("member"), BackendConfig::default()).unwrap();
    a_snapshot_from_a_peer_replaces_the_state::<RocksBackend>(storage);
    let names: Vec<String> = std::fs::read_dir(dir.path().join("member"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        vec!["db".to_string()],
        "no staging or set-aside copy is left"
    );
}

#[test]
#[should_panic(expected = "does not decode as a request")]
fn an_undecodable_entry_stops_the_member() {
    let rt = rt();
    let mut m = in_memory();
    let garbage = Committed {
        index: 2,
        term: 2,
        kind: CommittedKind::Normal(vec![0xff; 7]),
    };
    rt.block_on(m.applier.apply(Apply::Entries(vec![garbage])));
}

#[test]
fn alarms_apply_for_any_member_id_and_nospace_refuses_puts() {
    let rt = rt();
    let mut m = in_memory();
    let (tx, mut rx) = tokio::sync::oneshot::channel();
    m.applier.state.waits.lock().insert(2, tx);
    let raise = InternalRaftRequest {
        header: Some(RequestHeader {
            id: 2,
            ..Default::default()
        }),
        alarm: Some(AlarmRequest {
            action: AlarmAction::Activate as i32,
            member_id: 0,
            alarm: AlarmType::Nospace as i32,
        }),
        ..Default::default()
    };
    rt.block_on(m.applier.apply(Apply::Entries(vec![entry_of(2, raise)])));
    match rx.try_recv().unwrap() {
        Ok(Applied::Alarm(resp)) => assert_eq!(resp.alarms.len(), 1),
        other => panic!("{:?}", other.err()),
    }
    assert!(m
        .applier
        .state
        .alarms
        .read()
        .contains(&(0, AlarmType::Nospace as i32)));
    let (tx, mut rx) = tokio::sync::oneshot::channel();
    m.applier.state.waits.lock().insert(3, tx);
    rt.block_on(
        m.applier
            .apply(Apply::Entries(vec![put_entry(3, "k", "v")])),
    );
    assert!(matches!(
        rx.try_recv().unwrap(),
        Err(ironcd_api::EtcdError::NoSpace)
    ));
    assert!(value_of(&m.applier.state, "k").is_none());
    assert_eq!(
        m.applier.state.applied_index(),
        3,
        "the refused entry is applied"
    );
    assert!(m.sink.durable.lock().is_empty());
}

fn grant_entry(index: u64, id: i64, ttl: i64) -> Committed {
    let req = InternalRaftRequest {
        header: Some(RequestHeader {
            id: index,
            ..Default::default()
        }),
        lease_grant: Some(ironcd_proto::etcdserverpb::LeaseGrantRequest { ttl, id }),
        ..Default::default()
    };
    entry_of(index, req)
}

fn revoke_entry(index: u64, id: i64) -> Committed {
    let req = InternalRaftRequest {
        header: Some(RequestHeader {
            id: index,
            ..Default::default()
        }),
        lease_revoke: Some(ironcd_proto::etcdserverpb::LeaseRevokeRequest { id }),
        ..Default::default()
    };
    entry_of(index, req)
}

fn leased_put_entry(index: u64, key: &str, lease: i64) -> Committed {
    let req = InternalRaftRequest {
        header: Some(RequestHeader {
            id: index,
            ..Default::default()
        }),
        put: Some(PutRequest {
            key: key.into(),
            value: b"v".to_vec(),
            lease,
            ..Default::default()
        }),
        ..Default::default()
    };
    entry_of(index, req)
}

/// Applies `entry` and returns the outcome its proposer would receive.
fn outcome_of<B: Backend>(
    m: &mut Member0<B>,
    rt: &tokio::runtime::Runtime,
    entry: Committed,
) -> crate::state::Outcome {
    let (tx, mut rx) = tokio::sync::oneshot::channel();
    m.applier.state.waits.lock().insert(entry.index, tx);
    rt.block_on(m.applier.apply(Apply::Entries(vec![entry])));
    rx.try_recv().expect("the entry's proposer is answered")
}

#[test]
fn leases_bind_keys_and_a_revoke_deletes_them_in_one_revision() {
    let rt = rt();
    let storage = MemStorage::default();
    let mut m = open(storage.clone());
    let seen = Arc::new(Seen::default());
    m.applier.state.set_observer(seen.clone());
    match outcome_of(&mut m, &rt, grant_entry(2, 0x51, 1)) {
        Ok(Applied::LeaseGrant(r)) => assert_eq!((r.id, r.ttl), (0x51, 2), "raised to the minimum"),
        _ => panic!("a grant answers with its lease"),
    }
    assert!(matches!(
        outcome_of(&mut m, &rt, grant_entry(3, 0x51, 60)),
        Err(ironcd_api::EtcdError::LeaseExist)
    ));
    assert!(matches!(
        outcome_of(&mut m, &rt, leased_put_entry(4, "nolease", 0x99)),
        Err(ironcd_api::EtcdError::LeaseNotFound)
    ));
    assert_eq!(
        m.applier.state.applied_index(),
        4,
        "a refused entry still moves the index"
    );
    let puts = (5..=7)
        .map(|i| leased_put_entry(i, &format!("svc/{i}"), 0x51))
        .collect();
    rt.block_on(m.applier.apply(Apply::Entries(puts)));
    // Re-put without the lease: the key leaves the lease.
    rt.block_on(
        m.applier
            .apply(Apply::Entries(vec![put_entry(8, "svc/7", "free")])),
    );
    let lessor = m.applier.state.lessor.clone();
    let keys = lessor.time_to_live(0x51, true).unwrap().keys;
    assert_eq!(keys, vec![b"svc/5".to_vec(), b"svc/6".to_vec()]);

    // A restart recovers the lease and its keys from the backend.
    m.applier.state.store().backend().force_commit().unwrap();
    drop(m);
    let mut m = open(storage);
    let lessor = m.applier.state.lessor.clone();
    assert_eq!(lessor.time_to_live(0x51, true).unwrap().keys, keys);
    assert_eq!(lessor.time_to_live(0x51, false).unwrap().granted_ttl_s, 2);
    let seen = Arc::new(Seen::default());
    m.applier.state.set_observer(seen.clone());
    match outcome_of(&mut m, &rt, revoke_entry(9, 0x51)) {
        Ok(Applied::LeaseRevoke(r)) => assert_eq!(r.header.unwrap().revision, 6),
        _ => panic!("a revoke answers with its revision"),
    }
    assert_eq!(*seen.0.lock(), vec![6], "both keys go in one revision");
    assert!(value_of(&m.applier.state, "svc/5").is_none());
    assert!(value_of(&m.applier.state, "svc/6").is_none());
    assert!(
        value_of(&m.applier.state, "svc/7").is_some(),
        "no longer bound"
    );
    assert!(!lessor.exists(0x51));
    assert!(matches!(
        outcome_of(&mut m, &rt, revoke_entry(10, 0x51)),
        Err(ironcd_api::EtcdError::LeaseNotFound)
    ));
}

#[test]
fn a_snapshot_install_recovers_leases_and_their_keys() {
    let rt = rt();
    let mut leader = in_memory();
    rt.block_on(leader.applier.apply(Apply::Entries(vec![
        grant_entry(2, 0x61, 600),
        leased_put_entry(3, "leased", 0x61),
    ])));
    let file_dir = tempfile::tempdir().unwrap();
    let file = snapshot_file(&leader.applier.state, &file_dir, "0000000000000003.snap.db");
    let mut follower = in_memory();
    rt.block_on(
        follower
            .applier
            .apply(Apply::Entries(vec![grant_entry(2, 0x99, 60)])),
    );
    rt.block_on(follower.applier.apply(Apply::Snapshot(SnapshotData {
        index: 3,
        term: 2,
        membership: Membership::default(),
        payload: SnapshotPayload::File(file),
    })));
    let lessor = follower.applier.state.lessor.clone();
    assert_eq!(
        lessor.leases(),
        vec![0x61],
        "the follower's own lease went with its state"
    );
    assert_eq!(
        lessor.time_to_live(0x61, true).unwrap().keys,
        vec![b"leased".to_vec()]
    );
    rt.block_on(
        follower
            .applier
            .apply(Apply::Entries(vec![revoke_entry(4, 0x61)])),
    );
    assert!(value_of(&follower.applier.state, "leased").is_none());
}

#[test]
fn a_restart_reattaches_keys_past_one_recovery_batch() {
    let rt = rt();
    let storage = MemStorage::default();
    let mut m = open(storage.clone());
    rt.block_on(
        m.applier
            .apply(Apply::Entries(vec![grant_entry(2, 0x71, 600)])),
    );
    let n = crate::state::RECOVER_LEASES_BATCH_KEYS * 2 + 1;
    {
        let store = m.applier.state.store();
        let mut txn = store.write();
        for i in 0..n {
            // Every other key unleased, so batches end on either kind.
            let lease = if i % 2 == 0 { 0x71 } else { 0 };
            txn.put(format!("k/{i:06}").as_bytes(), b"v", lease);
        }
    }
    m.applier.state.store().backend().force_commit().unwrap();
    drop(m);
    let m = open(storage);
    let keys = m
        .applier
        .state
        .lessor
        .time_to_live(0x71, true)
        .unwrap()
        .keys;
    assert_eq!(keys.len() as u64, n.div_ceil(2));
    assert_eq!(keys.first().unwrap(), b"k/000000");
    assert_eq!(keys.last().unwrap(), format!("k/{:06}", n - 1).as_bytes());
}

/// The entries raft delivers together are one batch for the watchers, and
/// their proposers are answered after it: as etcd answers a write once its
/// events went to the watchers.
#[test]
fn a_batch_of_entries_is_one_batch_for_the_watchers_and_answered_after_it() {
    let rt = rt();
    let mut m = open(MemStorage::default());
    let bracket = Arc::new(Bracket::default());
    m.applier.state.set_observer(bracket.clone());
    let (tx, rx) = tokio::sync::oneshot::channel();
    m.applier.state.waits.lock().insert(3, tx);
    *bracket.answer.lock() = Some(rx);
    rt.block_on(m.applier.apply(Apply::Entries(vec![
        put_entry(2, "a", "1"),
        put_entry(3, "b", "2"),
    ])));
    assert_eq!(
        *bracket.log.lock(),
        [
            "begin",
            "commit 2",
            "commit 3",
            "end, answered: Some(false)"
        ]
    );
    let answer = bracket.answer.lock().as_mut().unwrap().try_recv();
    assert!(matches!(answer, Ok(Ok(_))), "answered after the batch");
}
