//! Snapshots over the peer transport: the sending task of each peer (one
//! `Snapshot` call per snapshot, its data streamed in chunks as it is
//! produced) and the receiving side's writer of the data into a durable
//! file.

use std::sync::Arc;

use raft::eraftpb::Message;
use raft::SnapshotStatus;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt as _;
use tonic::{Status, Streaming};

use super::{Shared, SNAPSHOT_STREAM_CHUNKS};
use crate::codec;
use crate::pb::SnapshotChunk;
use crate::transport::Inbox;

/// Sends each queued snapshot on its own `Snapshot` call.
pub(super) async fn snapshot_loop(
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
    let (head, data) = codec::split_snapshot(message);
    let produce = snapshot_producer(shared, index, data);
    let mut client = shared.connect(url).await?;
    let (tx, rx) = mpsc::channel(SNAPSHOT_STREAM_CHUNKS);
    let first = SnapshotChunk {
        envelope: Some(shared.envelope(peer)),
        message: head,
        ..Default::default()
    };
    tx.send(first).await.map_err(|_| "snapshot stream closed")?;
    let chunk_bytes = shared.config.snapshot_chunk_bytes;
    // The data is produced on a blocking thread and sent as it comes; a
    // failed call drops the receiver, which ends the producer's writes.
    let producer = tokio::task::spawn_blocking(move || {
        let mut writer = ChunkWriter::new(tx, chunk_bytes);
        produce(&mut writer)?;
        writer.finish()
    });
    let call = client.snapshot(ReceiverStream::new(rx));
    let (called, produced) = tokio::join!(call, producer);
    let produced = produced
        .map_err(|e| e.to_string())
        .and_then(|written| written);
    // Either side's failure ends the other: a failed source ends the stream
    // without its last chunk (the peer refuses it), a peer that refuses
    // closes the stream under the source. Name both reasons.
    match (called, produced) {
        (Ok(_), Ok(bytes)) => {
            tracing::info!(peer, index, bytes, "sent snapshot");
            Ok(())
        }
        (Err(status), Ok(_)) => Err(format!("snapshot at {index} to {peer:x}: {status}")),
        (Ok(_), Err(source)) => Err(format!("snapshot source for {index}: {source}")),
        (Err(status), Err(source)) => Err(format!(
            "snapshot at {index} to {peer:x}: {status} (snapshot source: {source})"
        )),
    }
}

type Producer = Box<dyn FnOnce(&mut dyn std::io::Write) -> std::result::Result<(), String> + Send>;

/// What writes a snapshot's data: the data raft holds (a snapshot made
/// with data), else the application's source, else the file this member
/// received it into from an earlier leader, else nothing (the bootstrap
/// snapshot of an application without a source).
fn snapshot_producer(shared: &Shared, index: u64, data: Vec<u8>) -> Producer {
    if !data.is_empty() {
        return Box::new(move |out| out.write_all(&data).map_err(|e| e.to_string()));
    }
    if let Some(source) = shared.snapshot_source.get().cloned() {
        return Box::new(move |out| source(out));
    }
    let received = shared.inbox.get().map(|i| i.snapshot_data_path(index));
    match received.filter(|path| path.exists()) {
        Some(path) => Box::new(move |out| {
            let mut file =
                std::fs::File::open(&path).map_err(|e| format!("open {}: {e}", path.display()))?;
            std::io::copy(&mut file, out)
                .map(|_| ())
                .map_err(|e| format!("read {}: {e}", path.display()))
        }),
        None => Box::new(|_| Ok(())),
    }
}

/// A `Write` that cuts what it is given into [`SnapshotChunk`]s and sends
/// them (blocking while the channel is full); [`ChunkWriter::finish`] sends
/// the last one, with the length and checksum of the whole.
struct ChunkWriter {
    tx: mpsc::Sender<SnapshotChunk>,
    chunk_bytes: usize,
    buffer: Vec<u8>,
    total: u64,
    crc: u32,
}

impl ChunkWriter {
    fn new(tx: mpsc::Sender<SnapshotChunk>, chunk_bytes: usize) -> ChunkWriter {
        ChunkWriter {
            tx,
            chunk_bytes,
            buffer: Vec::with_capacity(chunk_bytes),
            total: 0,
            crc: 0,
        }
    }

    fn send(&mut self, chunk: SnapshotChunk) -> std::io::Result<()> {
        self.tx.blocking_send(chunk).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "snapshot stream closed")
        })
    }

    fn send_buffer(&mut self) -> std::io::Result<()> {
        let data = std::mem::replace(&mut self.buffer, Vec::with_capacity(self.chunk_bytes));
        self.send(SnapshotChunk {
            data,
            ..Default::default()
        })
    }

    /// Sends what is buffered as the last chunk; returns the data's length.
    fn finish(mut self) -> std::result::Result<u64, String> {
        let last = SnapshotChunk {
            data: std::mem::take(&mut self.buffer),
            data_len: self.total,
            last: true,
            data_crc32c: self.crc,
            ..Default::default()
        };
        self.send(last).map_err(|e| e.to_string())?;
        Ok(self.total)
    }
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let room = self.chunk_bytes - self.buffer.len();
        let taken = &bytes[..bytes.len().min(room)];
        self.buffer.extend_from_slice(taken);
        self.total += taken.len() as u64;
        self.crc = crc32c::crc32c_append(self.crc, taken);
        if self.buffer.len() == self.chunk_bytes {
            self.send_buffer()?;
        }
        Ok(taken.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Streams a snapshot's data into `path` (through a `.part` file, fsynced,
/// renamed, the directory fsynced): once this returns, the data is complete
/// and durable. Refuses more than the node's limit, a stream that ends
/// before its last chunk, and a length or checksum that does not match.
pub(super) async fn receive_snapshot_data(
    inbox: &Inbox,
    first: SnapshotChunk,
    stream: &mut Streaming<SnapshotChunk>,
    path: &std::path::Path,
) -> std::result::Result<u64, Status> {
    let dir = path.parent().expect("a file under snap/").to_path_buf();
    let part = crate::disk::snapshot_data_part_path(path);
    let io = |op: &str, e: std::io::Error| Status::internal(format!("{op} snapshot data: {e}"));
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| io("mkdir", e))?;
    let mut file = tokio::fs::File::create(&part)
        .await
        .map_err(|e| io("create", e))?;
    let written = async {
        let limit = inbox.max_snapshot_bytes();
        let (mut total, mut crc) = (0u64, 0u32);
        let mut chunk = first;
        loop {
            total += chunk.data.len() as u64;
            if total > limit {
                return Err(Status::resource_exhausted(format!(
                    "snapshot data is over the limit of {limit} bytes"
                )));
            }
            crc = crc32c::crc32c_append(crc, &chunk.data);
            file.write_all(&chunk.data).await.map_err(|e| io("write", e))?;
            if chunk.last {
                if chunk.data_len != total || chunk.data_crc32c != crc {
                    return Err(Status::data_loss(format!(
                        "snapshot data of {total} bytes (CRC {crc:08x}) announced as {} bytes (CRC {:08x})",
                        chunk.data_len, chunk.data_crc32c
                    )));
                }
                break;
            }
            chunk = match stream.next().await {
                Some(next) => next?,
                None => {
                    return Err(Status::invalid_argument(
                        "snapshot stream ended before its last chunk",
                    ))
                }
            };
        }
        file.sync_all().await.map_err(|e| io("fsync", e))?;
        Ok(total)
    }
    .await;
    drop(file);
    let total = match written {
        Ok(total) => total,
        Err(status) => {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(status);
        }
    };
    tokio::fs::rename(&part, path)
        .await
        .map_err(|e| io("rename", e))?;
    tokio::task::spawn_blocking(move || std::fs::File::open(&dir)?.sync_all())
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|e| io("fsync the directory of", e))?;
    Ok(total)
}
