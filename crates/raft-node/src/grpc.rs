//! [`GrpcTransport`]: the peer transport over gRPC (`proto/peer.proto`).
//!
//! Per peer, two tasks (the snapshot one in [`snapshot`]): one keeps a long-lived client-streaming `Messages`
//! call open and writes batches of raft messages into it; the other sends
//! snapshots, one `Snapshot` call each, the data in chunks. Both reconnect
//! with exponential backoff. The queues in front of them are bounded: a full
//! one drops the message and reports the peer unreachable, and raft resends.
//!
//! The receiving side ([`GrpcTransport::service`]) checks every envelope
//! (cluster id, recipient, a known sender) before decoding a message, and
//! refuses what fails with a logged error — peer input never panics a node.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use raft::eraftpb::{Message, MessageType};
use raft::SnapshotStatus;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt as _;
use tonic::{Request, Response, Status, Streaming};

use crate::codec;
use crate::error::{Error, Result};
use crate::pb::peer_client::PeerClient;
use crate::pb::peer_server::{Peer, PeerServer};
use crate::pb::{Ack, Envelope, MessageBatch, SnapshotChunk};
use crate::transport::{Inbox, Transport};

mod snapshot;

use snapshot::{receive_snapshot_data, snapshot_loop};

/// Limits and timings of a [`GrpcTransport`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportConfig {
    /// Messages queued per peer before new ones are dropped. Default 4 096.
    pub peer_queue_capacity: usize,
    /// Bytes of entry data queued per peer (not yet written into its
    /// stream) before new messages are dropped: a peer that stops reading
    /// (paused, or cut off with its connection open) must not make this
    /// member hold every append raft lets fly. Default 64 MiB.
    pub peer_queue_bytes: u64,
    /// Largest batch written into the stream, in encoded bytes (a single
    /// larger message still goes alone). Default 4 MiB.
    pub max_batch_bytes: usize,
    /// Snapshot data per chunk, in bytes. Default 1 MiB, range
    /// 1 KiB..=16 MiB. (The largest snapshot accepted is the node's
    /// [`Config::max_snapshot_bytes`](crate::Config::max_snapshot_bytes).)
    pub snapshot_chunk_bytes: usize,
    /// Largest gRPC message accepted, in bytes. Default 64 MiB.
    pub max_message_bytes: usize,
    /// Connect timeout, in milliseconds. Default 1 000.
    pub dial_timeout_ms: u64,
    /// First and longest wait between reconnects, in milliseconds.
    /// Defaults 50 and 2 000.
    pub backoff_min_ms: u64,
    /// See `backoff_min_ms`.
    pub backoff_max_ms: u64,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            peer_queue_capacity: 4096,
            peer_queue_bytes: 64 << 20,
            max_batch_bytes: 4 << 20,
            snapshot_chunk_bytes: 1 << 20,
            max_message_bytes: 64 << 20,
            dial_timeout_ms: 1000,
            backoff_min_ms: 50,
            backoff_max_ms: 2000,
        }
    }
}

impl TransportConfig {
    /// Checks every field against its documented range.
    pub fn validate(&self) -> Result<()> {
        let checks: [(&'static str, u64, u64, u64); 8] = [
            (
                "peer_queue_capacity",
                self.peer_queue_capacity as u64,
                1,
                1 << 20,
            ),
            ("peer_queue_bytes", self.peer_queue_bytes, 1 << 10, 1 << 40),
            (
                "max_batch_bytes",
                self.max_batch_bytes as u64,
                1 << 10,
                1 << 30,
            ),
            (
                "snapshot_chunk_bytes",
                self.snapshot_chunk_bytes as u64,
                1 << 10,
                16 << 20,
            ),
            (
                "max_message_bytes",
                self.max_message_bytes as u64,
                1 << 10,
                1 << 30,
            ),
            ("dial_timeout_ms", self.dial_timeout_ms, 1, 600_000),
            (
                "backoff_min_ms",
                self.backoff_min_ms,
                1,
                self.backoff_max_ms.max(1),
            ),
            ("backoff_max_ms", self.backoff_max_ms, 1, 600_000),
        ];
        for (field, value, min, max) in checks {
            if !(min..=max).contains(&value) {
                return Err(Error::InvalidConfig {
                    field,
                    reason: format!("is {value}, must be in {min}..={max}"),
                });
            }
        }
        // A chunk (plus its framing) must fit in one gRPC message.
        if self.snapshot_chunk_bytes + (64 << 10) > self.max_message_bytes {
            return Err(Error::InvalidConfig {
                field: "snapshot_chunk_bytes",
                reason: format!(
                    "is {}, must leave 64 KiB below max_message_bytes ({})",
                    self.snapshot_chunk_bytes, self.max_message_bytes
                ),
            });
        }
        Ok(())
    }
}

/// Chunks buffered between the thread that produces a snapshot's data and
/// the stream that sends it: what the sender holds of a snapshot at once.
const SNAPSHOT_STREAM_CHUNKS: usize = 4;

/// Snapshots queued per peer: raft sends one at a time anyway.
const SNAPSHOT_QUEUE_CAPACITY: usize = 1;
/// Batches buffered between a peer's writer task and its stream (each up
/// to `max_batch_bytes`: with the queue, what a peer that stops reading
/// can make this member hold).
const STREAM_BUFFER_BATCHES: usize = 4;
/// How often each peer's round trip is probed (etcd: every 4 s).
const PROBE_INTERVAL: Duration = Duration::from_secs(4);
/// A probe not answered within this is not counted, and the connection is
/// dialed again.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The gRPC peer transport of one member.
#[derive(Clone)]
pub struct GrpcTransport {
    shared: Arc<Shared>,
}

struct Shared {
    id: u64,
    cluster_id: u64,
    config: TransportConfig,
    peers: RwLock<HashMap<u64, PeerQueues>>,
    inbox: OnceLock<Inbox>,
    runtime: tokio::runtime::Handle,
    snapshot_source: OnceLock<SnapshotSource>,
    /// How peers are dialed (`https://` URLs need TLS); plain by default.
    dialer: OnceLock<ironcd_tls::Dialer>,
}

/// Writes the application's state, for a snapshot sent without data, into
/// the stream to the peer as it reads it: see
/// [`GrpcTransport::set_snapshot_source`].
pub type SnapshotSource =
    Arc<dyn Fn(&mut dyn std::io::Write) -> std::result::Result<(), String> + Send + Sync>;

struct PeerQueues {
    url: String,
    messages: mpsc::Sender<Message>,
    /// [`queued_bytes`] of what `messages` holds.
    messages_bytes: Arc<AtomicU64>,
    snapshots: mpsc::Sender<Message>,
    activity: Arc<Activity>,
    tasks: [tokio::task::AbortHandle; 3],
}

/// Since when the link to a peer has been up, as etcd's transport reports
/// it (`ActiveSince`) for its strict reconfiguration check: up when the
/// message stream connects or a probe is answered, down when the stream
/// breaks, a dial fails or a probe goes unanswered.
#[derive(Default)]
struct Activity(Mutex<Option<Instant>>);

impl Activity {
    fn up(&self) {
        self.0.lock().get_or_insert_with(Instant::now);
    }

    fn down(&self) {
        *self.0.lock() = None;
    }
}

impl Drop for PeerQueues {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl GrpcTransport {
    /// A transport for member `id` of `cluster_id`, knowing `peers` (id →
    /// URL such as `http://127.0.0.1:2380`). Must be called inside a tokio
    /// runtime: the per-peer tasks run on it.
    pub fn new(
        id: u64,
        cluster_id: u64,
        peers: impl IntoIterator<Item = (u64, String)>,
        config: TransportConfig,
    ) -> Self {
        let transport = GrpcTransport {
            shared: Arc::new(Shared {
                id,
                cluster_id,
                config,
                peers: RwLock::new(HashMap::new()),
                inbox: OnceLock::new(),
                runtime: tokio::runtime::Handle::current(),
                snapshot_source: OnceLock::new(),
                dialer: OnceLock::new(),
            }),
        };
        for (peer, url) in peers {
            transport.add_peer(peer, url);
        }
        transport
    }

    /// Where the data of a snapshot created without any
    /// ([`RaftNode::create_snapshot`](crate::RaftNode::create_snapshot) with
    /// empty data) comes from when it is sent to a peer, as etcd does: the
    /// application keeps its state durable itself, so snapshot files hold
    /// only raft's metadata, and a lagging peer gets the state as it is at
    /// send time — at an applied index at or past the snapshot's, which the
    /// receiving application must read from the data (entries up to it are
    /// delivered again and must be skipped). Called on a blocking thread
    /// with a writer that sends what it is given in chunks; it blocks while
    /// the peer is slow, so the data is never held whole in memory. The
    /// receiver writes it into a file and hands the applier its path
    /// ([`SnapshotPayload::File`](crate::SnapshotPayload::File)). Set once;
    /// later calls are ignored.
    pub fn set_snapshot_source(&self, source: SnapshotSource) {
        let _ = self.shared.snapshot_source.set(source);
    }

    /// Dials peers with `dialer` (peer TLS for `https://` peer URLs), set
    /// once before the node starts; until then peers are dialed in the
    /// clear.
    pub fn set_dialer(&self, dialer: ironcd_tls::Dialer) {
        let _ = self.shared.dialer.set(dialer);
    }

    /// Starts talking to `peer` at `url` (replacing an older address).
    /// Messages from `peer` are accepted from now on.
    pub fn add_peer(&self, peer: u64, url: String) {
        if peer == self.shared.id {
            return;
        }
        let mut peers = self.shared.peers.write();
        if peers.get(&peer).is_some_and(|p| p.url == url) {
            return;
        }
        let (messages, message_rx) = mpsc::channel(self.shared.config.peer_queue_capacity);
        let messages_bytes = Arc::new(AtomicU64::new(0));
        let (snapshots, snapshot_rx) = mpsc::channel(SNAPSHOT_QUEUE_CAPACITY);
        let activity = Arc::new(Activity::default());
        let writer = self.shared.runtime.spawn(message_loop(
            self.shared.clone(),
            peer,
            url.clone(),
            message_rx,
            messages_bytes.clone(),
            activity.clone(),
        ));
        let snapper = self.shared.runtime.spawn(snapshot_loop(
            self.shared.clone(),
            peer,
            url.clone(),
            snapshot_rx,
        ));
        let prober = self.shared.runtime.spawn(probe_loop(
            self.shared.clone(),
            peer,
            url.clone(),
            activity.clone(),
        ));
        let tasks = [
            writer.abort_handle(),
            snapper.abort_handle(),
            prober.abort_handle(),
        ];
        peers.insert(
            peer,
            PeerQueues {
                url,
                messages,
                messages_bytes,
                snapshots,
                activity,
                tasks,
            },
        );
    }

    /// Since when the link to `peer` has been up without a break (etcd's
    /// `ActiveSince`); `None` while it is down or for an unknown peer.
    pub fn active_since(&self, peer: u64) -> Option<Instant> {
        let peers = self.shared.peers.read();
        let since = *peers.get(&peer)?.activity.0.lock();
        since
    }

    /// Stops talking to `peer` and refuses its messages.
    pub fn remove_peer(&self, peer: u64) {
        self.shared.peers.write().remove(&peer);
    }

    /// Stops every peer task; the transport sends nothing more. (The tasks
    /// hold the transport, so this is what ends them.)
    pub fn close(&self) {
        self.shared.peers.write().clear();
    }

    /// The peers known, with their URLs.
    pub fn peers(&self) -> Vec<(u64, String)> {
        let mut peers: Vec<_> = self
            .shared
            .peers
            .read()
            .iter()
            .map(|(id, p)| (*id, p.url.clone()))
            .collect();
        peers.sort_unstable();
        peers
    }

    /// The gRPC service that receives this member's messages.
    pub fn service(&self) -> PeerServer<PeerService> {
        let limit = self.shared.config.max_message_bytes;
        PeerServer::new(PeerService {
            shared: self.shared.clone(),
        })
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit)
    }

    /// Serves [`service`](GrpcTransport::service) on `listener` until
    /// `shutdown` resolves.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> Result<()> {
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .add_service(self.service())
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
            .map_err(|e| Error::Transport(e.to_string()))
    }

    /// Binds `addr` and serves on it in a task; returns the bound address
    /// and a handle that stops the server.
    pub async fn serve_on(&self, addr: SocketAddr) -> Result<(SocketAddr, PeerServerHandle)> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::Transport(format!("bind {addr}: {e}")))?;
        let bound = listener
            .local_addr()
            .map_err(|e| Error::Transport(e.to_string()))?;
        let transport = self.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = transport.serve(listener, std::future::pending()).await {
                tracing::error!(error = %e, "peer server stopped");
            }
        });
        Ok((bound, PeerServerHandle { task }))
    }
}

/// A peer server started by [`GrpcTransport::serve_on`].
#[derive(Debug)]
pub struct PeerServerHandle {
    task: tokio::task::JoinHandle<()>,
}

impl PeerServerHandle {
    /// Stops accepting and closes the listener (the address is free once
    /// this returns). Streams already open end as their peers notice.
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

impl Transport for GrpcTransport {
    fn attach(&self, inbox: Inbox) {
        if self.shared.inbox.set(inbox).is_err() {
            panic!("a GrpcTransport serves one raft node");
        }
    }

    fn send(&self, messages: Vec<Message>) {
        let peers = self.shared.peers.read();
        for message in messages {
            let to = message.to;
            let Some(peer) = peers.get(&to) else {
                tracing::debug!(to, "message for an unknown peer dropped");
                continue;
            };
            let is_snapshot = message.get_msg_type() == MessageType::MsgSnapshot;
            let queued = if is_snapshot {
                peer.snapshots.try_send(message).is_ok()
            } else {
                let size = queued_bytes(&message);
                let limit = self.shared.config.peer_queue_bytes;
                let before = peer.messages_bytes.fetch_add(size, Ordering::AcqRel);
                // Always room for one message, however large.
                let room = before == 0 || before + size <= limit;
                let queued = room && peer.messages.try_send(message).is_ok();
                if !queued {
                    peer.messages_bytes.fetch_sub(size, Ordering::AcqRel);
                }
                queued
            };
            if !queued {
                if let Some(inbox) = self.shared.inbox.get() {
                    if is_snapshot {
                        // Raft waits for a report before it sends another.
                        let inbox = inbox.clone();
                        self.shared.runtime.spawn(async move {
                            inbox.report_snapshot(to, SnapshotStatus::Failure).await;
                        });
                    } else {
                        inbox.report_unreachable(to);
                    }
                }
            }
        }
    }
}

impl Shared {
    fn envelope(&self, to: u64) -> Envelope {
        Envelope {
            cluster_id: self.cluster_id,
            from: self.id,
            to,
        }
    }

    fn report_unreachable(&self, peer: u64) {
        if let Some(inbox) = self.inbox.get() {
            inbox.report_unreachable(peer);
        }
    }

    async fn connect(
        &self,
        url: &str,
    ) -> std::result::Result<PeerClient<tonic::transport::Channel>, String> {
        let timeout = Duration::from_millis(self.config.dial_timeout_ms);
        let channel = self
            .dialer
            .get()
            .cloned()
            .unwrap_or_default()
            .connect(url, |endpoint| {
                endpoint.connect_timeout(timeout).tcp_nodelay(true)
            })
            .await
            .map_err(|e| format!("connect {url}: {e}"))?;
        let limit = self.config.max_message_bytes;
        Ok(PeerClient::new(channel)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit))
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let ms = self
            .config
            .backoff_min_ms
            .saturating_mul(1 << attempt.min(16));
        Duration::from_millis(ms.min(self.config.backoff_max_ms))
    }
}

/// Times a `Probe` to `peer` every [`PROBE_INTERVAL`] into its
/// round-trip histogram (while there is room for one), on a connection of
/// its own so that a queue of raft messages does not count as network
/// time; an answer marks the link up, a failed dial or an unanswered probe
/// down.
async fn probe_loop(shared: Arc<Shared>, peer: u64, url: String, activity: Arc<Activity>) {
    let rtt = crate::metrics::peer_rtt(peer);
    let mut client = None;
    let mut tick = tokio::time::interval(PROBE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if client.is_none() {
            client = shared.connect(&url).await.ok();
        }
        let Some(c) = client.as_mut() else {
            activity.down();
            continue;
        };
        let started = Instant::now();
        match tokio::time::timeout(PROBE_TIMEOUT, c.probe(Ack {})).await {
            Ok(Ok(_)) => {
                activity.up();
                if let Some(rtt) = &rtt {
                    rtt.observe_duration(started.elapsed());
                }
            }
            _ => {
                activity.down();
                client = None;
            }
        }
    }
}

/// Keeps one `Messages` stream to `peer` open and feeds it batches.
async fn message_loop(
    shared: Arc<Shared>,
    peer: u64,
    url: String,
    mut queue: mpsc::Receiver<Message>,
    queue_bytes: Arc<AtomicU64>,
    activity: Arc<Activity>,
) {
    let mut attempt = 0u32;
    loop {
        let mut client = match shared.connect(&url).await {
            Ok(client) => client,
            Err(reason) => {
                tracing::debug!(peer, %reason, "peer not reachable");
                activity.down();
                shared.report_unreachable(peer);
                // What was queued for a dead peer is stale: raft resends.
                while let Ok(stale) = queue.try_recv() {
                    queue_bytes.fetch_sub(queued_bytes(&stale), Ordering::AcqRel);
                }
                tokio::time::sleep(shared.backoff(attempt)).await;
                attempt += 1;
                continue;
            }
        };
        activity.up();
        let (stream_tx, stream_rx) = mpsc::channel(STREAM_BUFFER_BATCHES);
        let mut call =
            Box::pin(async move { client.messages(ReceiverStream::new(stream_rx)).await });
        let mut alive = true;
        while alive {
            tokio::select! {
                result = &mut call => {
                    if let Err(status) = result {
                        tracing::debug!(peer, %status, "peer stream ended");
                    }
                    alive = false;
                }
                next = queue.recv() => {
                    let Some(first) = next else { return };
                    let batch = take_batch(&shared, peer, first, &mut queue, &queue_bytes);
                    alive = stream_tx.send(batch).await.is_ok();
                    attempt = 0;
                }
            }
        }
        activity.down();
        shared.report_unreachable(peer);
        tokio::time::sleep(shared.backoff(attempt)).await;
        attempt += 1;
    }
}

/// What a queued message counts against `peer_queue_bytes`: its entries'
/// payloads and a little for the rest.
fn queued_bytes(message: &Message) -> u64 {
    let entries: usize = message
        .get_entries()
        .iter()
        .map(|e| e.data.len() + e.context.len())
        .sum();
    entries as u64 + 64
}

/// `first` and whatever else is queued, up to the batch size.
fn take_batch(
    shared: &Shared,
    peer: u64,
    first: Message,
    queue: &mut mpsc::Receiver<Message>,
    queue_bytes: &AtomicU64,
) -> MessageBatch {
    let mut bytes = 0usize;
    let mut messages = Vec::new();
    let mut next = Some(first);
    while let Some(message) = next.take() {
        queue_bytes.fetch_sub(queued_bytes(&message), Ordering::AcqRel);
        let encoded = codec::encode(&message);
        bytes += encoded.len();
        messages.push(encoded);
        if bytes < shared.config.max_batch_bytes {
            next = queue.try_recv().ok();
        }
    }
    MessageBatch {
        envelope: Some(shared.envelope(peer)),
        messages,
    }
}

/// The receiving side of the peer transport.
pub struct PeerService {
    shared: Arc<Shared>,
}

impl PeerService {
    fn inbox(&self) -> std::result::Result<&Inbox, Status> {
        self.shared
            .inbox
            .get()
            .ok_or_else(|| Status::unavailable("raft node not started"))
    }

    /// Checks who sends to whom before anything is decoded.
    fn check(&self, envelope: Option<&Envelope>) -> std::result::Result<Envelope, Status> {
        let refuse = |status: Status| {
            tracing::warn!(code = ?status.code(), message = status.message(), "refused peer stream");
            Err(status)
        };
        let Some(envelope) = envelope else {
            return refuse(Status::invalid_argument("missing envelope"));
        };
        if envelope.cluster_id != self.shared.cluster_id {
            return refuse(Status::failed_precondition(format!(
                "cluster id mismatch: got {:x}, this member is in {:x}",
                envelope.cluster_id, self.shared.cluster_id
            )));
        }
        if envelope.to != self.shared.id {
            return refuse(Status::invalid_argument(format!(
                "message for member {:x} sent to member {:x}",
                envelope.to, self.shared.id
            )));
        }
        if !self.shared.peers.read().contains_key(&envelope.from) {
            return refuse(Status::permission_denied(format!(
                "unknown member {:x}",
                envelope.from
            )));
        }
        Ok(*envelope)
    }

    fn decode(&self, envelope: &Envelope, bytes: &[u8]) -> std::result::Result<Message, Status> {
        let message: Message = codec::decode("raft message", bytes).map_err(|reason| {
            tracing::warn!(from = envelope.from, %reason, "refused peer message");
            Status::invalid_argument(reason)
        })?;
        if message.from != envelope.from || message.to != envelope.to {
            tracing::warn!(
                from = envelope.from,
                "refused a message whose ends differ from its envelope"
            );
            return Err(Status::invalid_argument(
                "message ends differ from the envelope",
            ));
        }
        Ok(message)
    }
}

type PeerResult<T> = std::result::Result<Response<T>, Status>;

#[tonic::async_trait]
impl Peer for PeerService {
    async fn probe(&self, _request: Request<Ack>) -> PeerResult<Ack> {
        Ok(Response::new(Ack {}))
    }

    async fn messages(&self, request: Request<Streaming<MessageBatch>>) -> PeerResult<Ack> {
        let inbox = self.inbox()?.clone();
        let mut stream = request.into_inner();
        let mut checked: Option<Envelope> = None;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let envelope = self.check(batch.envelope.as_ref())?;
            if checked.is_some_and(|c| c != envelope) {
                return Err(Status::invalid_argument("envelope changed within a stream"));
            }
            checked = Some(envelope);
            for bytes in &batch.messages {
                let message = self.decode(&envelope, bytes)?;
                inbox
                    .deliver(message)
                    .await
                    .map_err(|e| Status::unavailable(e.to_string()))?;
            }
        }
        Ok(Response::new(Ack {}))
    }

    async fn snapshot(&self, request: Request<Streaming<SnapshotChunk>>) -> PeerResult<Ack> {
        let inbox = self.inbox()?.clone();
        let mut stream = request.into_inner();
        let first = stream
            .next()
            .await
            .ok_or_else(|| Status::invalid_argument("empty snapshot stream"))??;
        let envelope = self.check(first.envelope.as_ref())?;
        let message: Message =
            codec::decode("snapshot message", &first.message).map_err(Status::invalid_argument)?;
        if message.from != envelope.from
            || message.to != envelope.to
            || message.get_msg_type() != MessageType::MsgSnapshot
        {
            return Err(Status::invalid_argument(
                "not a snapshot message for this stream",
            ));
        }
        let index = message.get_snapshot().get_metadata().index;
        let path = inbox.snapshot_data_path(index);
        let bytes = receive_snapshot_data(&inbox, first, &mut stream, &path)
            .await
            .inspect_err(|status| {
                tracing::warn!(from = envelope.from, index, code = ?status.code(), message = status.message(), "refused snapshot");
            })?;
        tracing::info!(from = envelope.from, index, bytes, file = %path.display(), "received snapshot");
        inbox
            .deliver(message)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(Response::new(Ack {}))
    }
}
