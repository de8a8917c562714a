//! [`RaftNode`]: the handle the server holds, and what it receives.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ironcd_wal::{StdIo, WalIo};
use parking_lot::Mutex;
use raft::eraftpb::{ConfChangeV2, Message};
use raft::SnapshotStatus;
use tokio::sync::{mpsc, oneshot};

use crate::conf::{AppliedConfChange, ConfChangeRequest, Membership};
use crate::config::Config;
use crate::driver::Driver;
use crate::error::{Error, Result};
use crate::transport::Transport;

/// What the applier receives, in log order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Apply {
    /// Committed entries, consecutive. The commit index covering them is
    /// durable.
    Entries(Vec<Committed>),
    /// Replace the whole state with this snapshot's; it covers the log up
    /// to its index.
    Snapshot(SnapshotData),
    /// `snapshot_count` entries were applied since the last snapshot: once
    /// the state at `index` (everything received so far) is durable, make
    /// one with [`RaftNode::create_snapshot`].
    SnapshotDue {
        /// Index of the last entry delivered before this request.
        index: u64,
    },
    /// This member became leader (`true`) or stopped being it (`false`).
    /// Delivered in order with the entries: every entry committed in a
    /// term this member leads comes after its `Leadership(true)` (etcd
    /// promotes its lessor at that point).
    Leadership(bool),
}

/// One committed entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    /// Its log index.
    pub index: u64,
    /// The term it was proposed in.
    pub term: u64,
    /// What it carries.
    pub kind: CommittedKind,
}

/// The payload of a committed entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommittedKind {
    /// Proposed bytes; empty for the entry each new leader appends.
    Normal(Vec<u8>),
    /// A membership change, already applied to raft.
    ConfChange(AppliedConfChange),
}

/// A snapshot for the applier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotData {
    /// Last index it covers.
    pub index: u64,
    /// Term of that entry.
    pub term: u64,
    /// Membership at `index`.
    pub membership: Membership,
    /// Where the state at `index` is.
    pub payload: SnapshotPayload,
}

/// Where a snapshot's state comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotPayload {
    /// Nowhere: the applier already holds it (the bootstrap snapshot a new
    /// cluster starts from, or one this member made without data).
    None,
    /// The data this member gave `create_snapshot`, read back from its
    /// snapshot file at start (an applier that keeps its state elsewhere
    /// gives none).
    Inline(Vec<u8>),
    /// The data a peer sent, complete and fsynced in this file under
    /// `snap/`, as the peer's snapshot source wrote it. The applier reads
    /// it from there (it may be larger than memory), and removes it once
    /// the restored state is durable; until then a restart delivers the
    /// same file again.
    File(std::path::PathBuf),
}

/// The receiving end of the applier's stream. It ends when the node stops.
#[derive(Debug)]
pub struct ApplyStream {
    pub(crate) rx: mpsc::Receiver<Apply>,
}

impl ApplyStream {
    /// The next item, or `None` once the node has stopped.
    pub async fn next(&mut self) -> Option<Apply> {
        self.rx.recv().await
    }
}

/// A member's role in its term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Checking it could win before starting an election.
    PreCandidate,
    /// Standing for election.
    Candidate,
    /// The leader.
    Leader,
}

/// How the leader replicates to one member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReplicationState {
    /// Probing for where the logs agree.
    Probe,
    /// Streaming appends.
    Replicate,
    /// Waiting for a snapshot to be applied.
    Snapshot,
}

/// The leader's view of one member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerProgress {
    /// The member.
    pub id: u64,
    /// Highest index known replicated there.
    pub matched: u64,
    /// Next index to send.
    pub next_index: u64,
    /// How it is being replicated to.
    pub state: ReplicationState,
    /// Heard from within the last election timeout.
    pub recent_active: bool,
}

/// A snapshot of a node's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// This member.
    pub id: u64,
    /// The leader this member knows of, 0 for none.
    pub leader: u64,
    /// Current term.
    pub term: u64,
    /// Commit index.
    pub commit: u64,
    /// Last index delivered to the applier.
    pub applied: u64,
    /// Last index the applier reported durable.
    pub durable_applied: u64,
    /// Index of the newest snapshot.
    pub snapshot_index: u64,
    /// First index still in the log.
    pub first_index: u64,
    /// Last index in the log.
    pub last_index: u64,
    /// Role in the current term.
    pub role: Role,
    /// Current membership (as applied).
    pub membership: Membership,
    /// Per-member replication, on the leader only (empty elsewhere).
    pub progress: Vec<PeerProgress>,
}

/// Requests into the Ready loop.
pub(crate) enum Input {
    Propose {
        seq: u64,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<u64>>,
    },
    ProposeConfChange {
        seq: u64,
        change: ConfChangeV2,
        context: Vec<u8>,
        reply: oneshot::Sender<Result<u64>>,
    },
    ReadIndex(oneshot::Sender<Result<u64>>),
    Step(Box<Message>),
    Unreachable(u64),
    SnapshotStatus(u64, SnapshotStatus),
    TransferLeader(u64),
    Status(oneshot::Sender<Status>),
    Stop,
}

/// The applier's requests. They have a queue of their own, which the Ready
/// loop serves even while it waits for room in the apply queue: an applier
/// waiting on one of these is not draining its stream.
pub(crate) enum Control {
    CreateSnapshot {
        index: u64,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<()>>,
    },
    CompactTo {
        index: u64,
        reply: oneshot::Sender<Result<()>>,
    },
}

/// Capacity of the applier's control queue.
const CONTROL_QUEUE_CAPACITY: usize = 16;

/// The channels between the handle, the transport and the Ready loop.
pub(crate) struct Wiring {
    pub(crate) tx: mpsc::Sender<Input>,
    pub(crate) inbox: mpsc::Receiver<Input>,
    pub(crate) control: mpsc::Receiver<Control>,
    pub(crate) apply_tx: mpsc::Sender<Apply>,
    pub(crate) durable_applied: Arc<AtomicU64>,
    /// The last committed index handed to the applier (raised by the Ready
    /// loop as it delivers).
    pub(crate) delivered: Arc<AtomicU64>,
}

/// A running raft member. Cloning gives another handle to the same member.
#[derive(Clone)]
pub struct RaftNode {
    shared: Arc<Shared>,
}

struct Shared {
    id: u64,
    tx: mpsc::Sender<Input>,
    control: mpsc::Sender<Control>,
    durable_applied: Arc<AtomicU64>,
    delivered: Arc<AtomicU64>,
    next_seq: AtomicU64,
    timeout: Duration,
    max_proposal_bytes: u64,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for RaftNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftNode")
            .field("id", &self.shared.id)
            .finish()
    }
}

impl RaftNode {
    /// Opens (or creates) the member directory `dir` and starts the Ready
    /// loop on a thread of its own. `applied` is the applier's durable index
    /// (0 for a new applier): entries after it are delivered again.
    pub fn start(
        config: Config,
        dir: &Path,
        transport: Arc<dyn Transport>,
        applied: u64,
    ) -> Result<(RaftNode, ApplyStream)> {
        Self::start_with_io(config, dir, transport, applied, Arc::new(StdIo))
    }

    /// [`RaftNode::start`] with the WAL's IO given (an in-memory one in
    /// tests).
    pub fn start_with_io(
        config: Config,
        dir: &Path,
        transport: Arc<dyn Transport>,
        applied: u64,
        io: Arc<dyn WalIo>,
    ) -> Result<(RaftNode, ApplyStream)> {
        config.validate()?;
        let (tx, inbox) = mpsc::channel(config.inbox_capacity as usize);
        let (control_tx, control) = mpsc::channel(CONTROL_QUEUE_CAPACITY);
        let (apply_tx, apply_rx) = mpsc::channel(config.apply_queue_capacity as usize);
        let durable_applied = Arc::new(AtomicU64::new(0));
        let delivered = Arc::new(AtomicU64::new(0));
        let wiring = Wiring {
            tx: tx.clone(),
            inbox,
            control,
            apply_tx,
            durable_applied: durable_applied.clone(),
            delivered: delivered.clone(),
        };
        let driver = Driver::open(config.clone(), dir, io, transport, applied, wiring)?;
        let thread = std::thread::Builder::new()
            .name(format!("raft-{:x}", config.id))
            .spawn(move || driver.run())
            .map_err(|e| Error::Transport(format!("spawning the raft thread: {e}")))?;
        let node = RaftNode {
            shared: Arc::new(Shared {
                id: config.id,
                tx,
                control: control_tx,
                durable_applied,
                delivered,
                next_seq: AtomicU64::new(1),
                timeout: Duration::from_millis(config.request_timeout_ms),
                max_proposal_bytes: config.max_proposal_bytes,
                thread: Mutex::new(Some(thread)),
            }),
        };
        Ok((node, ApplyStream { rx: apply_rx }))
    }

    /// This member's id.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// Proposes `data`; resolves with its index once it is committed (on
    /// this member's log). On a follower the proposal goes to the leader.
    pub async fn propose(&self, data: Vec<u8>) -> Result<u64> {
        let size = data.len() as u64 + crate::driver::PROPOSAL_ID_BYTES;
        if size > self.shared.max_proposal_bytes {
            return Err(Error::TooLarge {
                size,
                max: self.shared.max_proposal_bytes,
            });
        }
        let seq = self.shared.next_seq.fetch_add(1, Ordering::Relaxed);
        self.call(|reply| Input::Propose { seq, data, reply })
            .await?
    }

    /// Proposes a membership change; resolves with its index once it is
    /// committed. A change raft refuses commits with
    /// [`AppliedConfChange::refused`] set and resolves as `InvalidRequest`.
    pub async fn propose_conf_change(&self, request: ConfChangeRequest) -> Result<u64> {
        let size = request.context.len() as u64
            + crate::driver::PROPOSAL_ID_BYTES
            + 64 * request.changes.len() as u64;
        if size > self.shared.max_proposal_bytes {
            return Err(Error::TooLarge {
                size,
                max: self.shared.max_proposal_bytes,
            });
        }
        let seq = self.shared.next_seq.fetch_add(1, Ordering::Relaxed);
        let change = request.to_raft();
        let context = request.context;
        self.call(|reply| Input::ProposeConfChange {
            seq,
            change,
            context,
            reply,
        })
        .await?
    }

    /// The index a linearizable read may be served at once the applier has
    /// applied it. Concurrent callers share one round of heartbeats.
    pub async fn read_index(&self) -> Result<u64> {
        self.call(Input::ReadIndex).await?
    }

    /// Asks the leader to hand leadership to `to` (a no-op elsewhere).
    /// Watch [`status`](RaftNode::status) for the outcome.
    pub async fn transfer_leader(&self, to: u64) -> Result<()> {
        self.send(Input::TransferLeader(to)).await
    }

    /// The member's current state.
    pub async fn status(&self) -> Result<Status> {
        self.call(Input::Status).await
    }

    /// The last committed index handed to the applier's stream, read
    /// without a round trip to the Ready loop: what the applier has still to
    /// apply is this minus its own applied index (etcd refuses new requests
    /// when that gap grows too large).
    pub fn delivered_index(&self) -> u64 {
        self.shared.delivered.load(Ordering::Acquire)
    }

    /// Reports that the applier's state up to `index` is durable. Never
    /// waits: it only raises a shared mark.
    pub fn report_durable_applied(&self, index: u64) {
        self.shared
            .durable_applied
            .fetch_max(index, Ordering::Release);
    }

    /// Stores a snapshot of the applier's state at `index` (which it has
    /// reported durable), and compacts the log to `snapshot_catchup_entries`
    /// behind it.
    pub async fn create_snapshot(&self, index: u64, data: Vec<u8>) -> Result<()> {
        self.control(|reply| Control::CreateSnapshot { index, data, reply })
            .await?
    }

    /// Drops log entries up to `index`, which must not pass the newest
    /// snapshot.
    pub async fn compact_to(&self, index: u64) -> Result<()> {
        self.control(|reply| Control::CompactTo { index, reply })
            .await?
    }

    /// Stops the Ready loop and waits for it; pending calls fail with
    /// `Stopped`. Safe to call more than once.
    pub async fn stop(&self) {
        let _ = self.shared.tx.send(Input::Stop).await;
        let thread = self.shared.thread.lock().take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }

    async fn send(&self, input: Input) -> Result<()> {
        self.shared.tx.send(input).await.map_err(|_| Error::Stopped)
    }

    async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Input) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        let deadline = tokio::time::Instant::now() + self.shared.timeout;
        tokio::time::timeout_at(deadline, self.send(make(reply)))
            .await
            .map_err(|_| Error::Timeout)??;
        Self::answer(deadline, answer).await
    }

    async fn control<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Control) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        let deadline = tokio::time::Instant::now() + self.shared.timeout;
        tokio::time::timeout_at(deadline, self.shared.control.send(make(reply)))
            .await
            .map_err(|_| Error::Timeout)?
            .map_err(|_| Error::Stopped)?;
        Self::answer(deadline, answer).await
    }

    async fn answer<T>(deadline: tokio::time::Instant, answer: oneshot::Receiver<T>) -> Result<T> {
        match tokio::time::timeout_at(deadline, answer).await {
            Err(_) => Err(Error::Timeout),
            Ok(Err(_)) => Err(Error::Stopped),
            Ok(Ok(value)) => Ok(value),
        }
    }
}
