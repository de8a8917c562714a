//! How raft messages leave and reach a node: the [`Transport`] trait the
//! Ready loop sends through, the [`Inbox`] a transport delivers into, and
//! [`FaultyTransport`], a wrapper that drops, delays and partitions for tests.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;
use raft::eraftpb::Message;
use raft::SnapshotStatus;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::node::Input;

/// Carries raft messages to other members. Implementations must not block
/// in [`send`](Transport::send): messages are queued, and dropped (with an
/// unreachable report) when a peer's queue is full; raft resends.
pub trait Transport: Send + Sync + 'static {
    /// Called once, by `RaftNode::start`: where inbound messages and reports
    /// about peers go from now on.
    fn attach(&self, inbox: Inbox);
    /// Queues `messages` for their recipients (`Message::to`).
    fn send(&self, messages: Vec<Message>);
}

/// The way into a node's Ready loop for a transport.
#[derive(Clone, Debug)]
pub struct Inbox {
    pub(crate) id: u64,
    pub(crate) tx: mpsc::Sender<Input>,
    /// The node's `snap/` directory: snapshot data received from a peer is
    /// written there ([`Inbox::snapshot_data_path`]) before the snapshot
    /// message is delivered.
    pub(crate) snapshot_dir: PathBuf,
    pub(crate) max_snapshot_bytes: u64,
}

impl Inbox {
    /// The id of the member this inbox belongs to.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Where a transport puts the data of a snapshot at `index` received
    /// from a peer, complete and fsynced, before it delivers the snapshot
    /// message (whose own data is then empty). The node hands the path to
    /// the applier with the snapshot.
    pub fn snapshot_data_path(&self, index: u64) -> PathBuf {
        crate::disk::snapshot_data_path(&self.snapshot_dir, index)
    }

    /// Largest snapshot data to accept from a peer, in bytes
    /// ([`Config::max_snapshot_bytes`](crate::Config::max_snapshot_bytes)).
    pub fn max_snapshot_bytes(&self) -> u64 {
        self.max_snapshot_bytes
    }

    /// Hands a peer's message to raft, waiting while the inbox is full. The
    /// transport has checked the sender; raft refuses what does not fit.
    pub async fn deliver(&self, message: Message) -> Result<()> {
        if message.to != self.id {
            return Err(Error::InvalidRequest(format!(
                "message for member {:x} delivered to {:x}",
                message.to, self.id
            )));
        }
        self.tx
            .send(Input::Step(Box::new(message)))
            .await
            .map_err(|_| Error::Stopped)
    }

    /// Tells raft that `peer` could not be reached (it probes it again
    /// instead of streaming appends). Dropped when the inbox is full.
    pub fn report_unreachable(&self, peer: u64) {
        let _ = self.tx.try_send(Input::Unreachable(peer));
    }

    /// Tells raft how sending a snapshot to `peer` ended. Waits for room:
    /// raft does not send another snapshot to `peer` until it knows.
    pub async fn report_snapshot(&self, peer: u64, status: SnapshotStatus) {
        let _ = self.tx.send(Input::SnapshotStatus(peer, status)).await;
    }
}

/// Faults shared by every [`FaultyTransport`] of a test cluster.
#[derive(Debug, Default)]
pub struct Faults {
    state: Mutex<FaultState>,
}

#[derive(Debug, Default)]
struct FaultState {
    blocked: HashSet<(u64, u64)>,
    drop_one_in: u32,
    delay_ms: u64,
}

impl Faults {
    /// No faults.
    pub fn new() -> Arc<Faults> {
        Arc::default()
    }

    /// Drops every message from `from` to `to` (one way).
    pub fn block(&self, from: u64, to: u64) {
        self.state.lock().blocked.insert((from, to));
    }

    /// Cuts every link between the two groups, both ways.
    pub fn partition(&self, a: &[u64], b: &[u64]) {
        let mut state = self.state.lock();
        for &x in a {
            for &y in b {
                state.blocked.insert((x, y));
                state.blocked.insert((y, x));
            }
        }
    }

    /// Drops one message in `n` at random (0: none).
    pub fn drop_one_in(&self, n: u32) {
        self.state.lock().drop_one_in = n;
    }

    /// Delays every message by `ms`.
    pub fn delay_ms(&self, ms: u64) {
        self.state.lock().delay_ms = ms;
    }

    /// Removes every fault.
    pub fn heal(&self) {
        *self.state.lock() = FaultState::default();
    }

    /// Whether a message from `from` to `to` passes now, and its delay.
    fn verdict(&self, from: u64, to: u64) -> Option<u64> {
        let state = self.state.lock();
        if state.blocked.contains(&(from, to)) {
            return None;
        }
        if state.drop_one_in > 0 && rand::random::<u32>().is_multiple_of(state.drop_one_in) {
            return None;
        }
        Some(state.delay_ms)
    }
}

/// A transport that applies [`Faults`] to what `inner` sends.
pub struct FaultyTransport<T> {
    id: u64,
    inner: Arc<T>,
    faults: Arc<Faults>,
    runtime: tokio::runtime::Handle,
}

impl<T: Transport> FaultyTransport<T> {
    /// Wraps member `id`'s transport. Must be called inside a tokio runtime
    /// (delayed messages are sent from tasks on it).
    pub fn new(id: u64, inner: Arc<T>, faults: Arc<Faults>) -> Self {
        FaultyTransport {
            id,
            inner,
            faults,
            runtime: tokio::runtime::Handle::current(),
        }
    }
}

impl<T: Transport> Transport for FaultyTransport<T> {
    fn attach(&self, inbox: Inbox) {
        self.inner.attach(inbox);
    }

    fn send(&self, messages: Vec<Message>) {
        let mut now = Vec::with_capacity(messages.len());
        for message in messages {
            match self.faults.verdict(self.id, message.to) {
                None => {}
                Some(0) => now.push(message),
                Some(ms) => {
                    let inner = self.inner.clone();
                    self.runtime.spawn(async move {
                        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                        inner.send(vec![message]);
                    });
                }
            }
        }
        if !now.is_empty() {
            self.inner.send(now);
        }
    }
}
