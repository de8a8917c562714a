//! [`GrpcTransport`]: the peer transport over gRPC (`proto/peer.proto`).
//!
//! Per peer, two tasks: one keeps a long-lived client-streaming `Messages`
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
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::RwLock;
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

/// Limits and timings of a [`GrpcTransport`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportConfig {
    /// Messages queued per peer before new ones are dropped. Default 4 096.
    pub peer_queue_capacity: usize,
    /// Largest batch written into the stream, in encoded bytes (a single
    /// larger message still goes alone). Default 4 MiB.
    pub max_batch_bytes: usize,
    /// Snapshot data per chunk, in bytes. Default 1 MiB.
    pub snapshot_chunk_bytes: usize,
    /// Largest snapshot data accepted from a peer, in bytes. Default 2 GiB.
    pub max_snapshot_bytes: u64,
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
            max_batch_bytes: 4 << 20,
            snapshot_chunk_bytes: 1 << 20,
            max_snapshot_bytes: 2 << 30,
            max_message_bytes: 64 << 20,
            dial_timeout_ms: 1000,
            backoff_min_ms: 50,
            backoff_max_ms: 2000,
        }
    }
}

/// Snapshots queued per peer: raft sends one at a time anyway.
const SNAPSHOT_QUEUE_CAPACITY: usize = 1;
/// Batches buffered between a peer's writer task and its stream.
const STREAM_BUFFER_BATCHES: usize = 16;

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
}

/// Produces the application's state for a snapshot sent without data: see
/// [`GrpcTransport::set_snapshot_source`].
pub type SnapshotSource = Arc<dyn Fn() -> std::result::Result<Vec<u8>, String> + Send + Sync>;

struct PeerQueues {
    url: String,
    messages: mpsc::Sender<Message>,
    snapshots: mpsc::Sender<Message>,
    tasks: [tokio::task::AbortHandle; 2],
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
    /// delivered again and must be skipped). Called on a blocking thread.
    /// Set once; later calls are ignored.
    pub fn set_snapshot_source(&self, source: SnapshotSource) {
        let _ = self.shared.snapshot_source.set(source);
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
        let (snapshots, snapshot_rx) = mpsc::channel(SNAPSHOT_QUEUE_CAPACITY);
        let writer = self.shared.runtime.spawn(message_loop(
            self.shared.clone(),
            peer,
            url.clone(),
            message_rx,
        ));
        let snapper = self.shared.runtime.spawn(snapshot_loop(
            self.shared.clone(),
            peer,
            url.clone(),
            snapshot_rx,
        ));
        let tasks = [writer.abort_handle(), snapper.abort_handle()];
        peers.insert(
            peer,
            PeerQueues {
                url,
                messages,
                snapshots,
                tasks,
            },
        );
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
            let queue = if is_snapshot {
                &peer.snapshots
            } else {
                &peer.messages
            };
            if queue.try_send(message).is_err() {
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
        let endpoint = tonic::transport::Endpoint::from_shared(url.to_string())
            .map_err(|e| format!("bad peer url {url}: {e}"))?
            .connect_timeout(Duration::from_millis(self.config.dial_timeout_ms))
            .tcp_nodelay(true);
        let channel = endpoint
            .connect()
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

/// Keeps one `Messages` stream to `peer` open and feeds it batches.
async fn message_loop(
    shared: Arc<Shared>,
    peer: u64,
    url: String,
    mut queue: mpsc::Receiver<Message>,
) {
    let mut attempt = 0u32;
    loop {
        let mut client = match shared.connect(&url).await {
            Ok(client) => client,
            Err(reason) => {
                tracing::debug!(peer, %reason, "peer not reachable");
                shared.report_unreachable(peer);
                // What was queued for a dead peer is stale: raft resends.
                while queue.try_recv().is_ok() {}
                tokio::time::sleep(shared.backoff(attempt)).await;
                attempt += 1;
                continue;
            }
        };
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
                    let batch = take_batch(&shared, peer, first, &mut queue);
                    alive = stream_tx.send(batch).await.is_ok();
                    attempt = 0;
                }
            }
        }
        shared.report_unreachable(peer);
        tokio::time::sleep(shared.backoff(attempt)).await;
        attempt += 1;
    }
}

/// `first` and whatever else is queued, up to the batch size.
fn take_batch(
    shared: &Shared,
    peer: u64,
    first: Message,
    queue: &mut mpsc::Receiver<Message>,
) -> MessageBatch {
    let mut bytes = 0usize;
    let mut messages = Vec::new();
    let mut next = Some(first);
    while let Some(message) = next.take() {
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

/// Sends each queued snapshot on its own `Snapshot` call.
async fn snapshot_loop(
    shared: Arc<Shared>,
    peer: u64,
    url: String,
    mut queue: mpsc::Receiver<Message>,
) {
    while let Some(message) = queue.recv().await {
        let status = match send_snapshot(&shared, peer, &url, message).await {
            Ok(()) => SnapshotStatus::Finish,
            Err(reason) => {
                tracing::warn!(peer, %reason, "sending snapshot failed");
                SnapshotStatus::Failure
            }
        };
        if let Some(inbox) = shared.inbox.get() {
            inbox.report_snapshot(peer, status).await;
        }
    }
}

async fn send_snapshot(
    shared: &Shared,
    peer: u64,
    url: &str,
    message: Message,
) -> std::result::Result<(), String> {
    let index = message.get_snapshot().get_metadata().index;
    let (head, mut data) = codec::split_snapshot(message);
    if data.is_empty() {
        if let Some(source) = shared.snapshot_source.get().cloned() {
            data = tokio::task::spawn_blocking(move || source())
                .await
                .map_err(|e| format!("snapshot source for {index}: {e}"))?
                .map_err(|e| format!("snapshot source for {index}: {e}"))?;
        }
    }
    let data_len = data.len() as u64;
    let chunk = shared.config.snapshot_chunk_bytes.max(1);
    let mut chunks = vec![SnapshotChunk {
        envelope: Some(shared.envelope(peer)),
        message: head,
        data_len,
        data: Vec::new(),
    }];
    chunks.extend(data.chunks(chunk).map(|piece| SnapshotChunk {
        data: piece.to_vec(),
        ..Default::default()
    }));
    let mut client = shared.connect(url).await?;
    client
        .snapshot(tokio_stream::iter(chunks))
        .await
        .map_err(|status| format!("snapshot at {index} to {peer:x}: {status}"))?;
    tracing::info!(peer, index, bytes = data_len, "sent snapshot");
    Ok(())
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
        if first.data_len > self.shared.config.max_snapshot_bytes {
            return Err(Status::resource_exhausted(format!(
                "snapshot of {} bytes is over the limit of {}",
                first.data_len, self.shared.config.max_snapshot_bytes
            )));
        }
        let mut data = Vec::with_capacity(first.data_len as usize);
        data.extend_from_slice(&first.data);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if (data.len() + chunk.data.len()) as u64 > first.data_len {
                return Err(Status::invalid_argument(
                    "snapshot data longer than announced",
                ));
            }
            data.extend_from_slice(&chunk.data);
        }
        if data.len() as u64 != first.data_len {
            return Err(Status::invalid_argument(
                "snapshot data shorter than announced",
            ));
        }
        let message =
            codec::join_snapshot(&first.message, data).map_err(Status::invalid_argument)?;
        if message.from != envelope.from
            || message.to != envelope.to
            || message.get_msg_type() != MessageType::MsgSnapshot
        {
            return Err(Status::invalid_argument(
                "not a snapshot message for this stream",
            ));
        }
        tracing::info!(
            from = envelope.from,
            index = message.get_snapshot().get_metadata().index,
            "received snapshot"
        );
        inbox
            .deliver(message)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(Response::new(Ack {}))
    }
}
