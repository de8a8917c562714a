//! etcd's snapshot file layout, which `etcdctl snapshot save` checks and
//! `ironcd snapshot restore` reads: the data padded with zeros to a
//! multiple of 512 bytes, then the SHA-256 of what precedes it. The
//! backend's stream ends with its own trailer, so the padding is ignored on
//! restore.
//!
//! Both directions stream: [`SnapshotSender`] turns the backend's stream
//! into `Maintenance.Snapshot` messages as it is written, and
//! [`verify_file`] checks a file's trailer reading it once, in pieces.

use std::cell::Cell;
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::rc::Rc;

use ironcd_api::{ApiResult, EtcdError};
use ironcd_proto::etcdserverpb::{ResponseHeader, SnapshotResponse};
use sha2::Digest;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::ETCD_VERSION;

/// Bytes per Snapshot message (etcd sends 32 KiB chunks).
pub const SNAPSHOT_CHUNK_BYTES: usize = 32 * 1024;
/// Messages buffered between the thread that reads the backend and the
/// client's stream: what a snapshot in progress holds in memory.
pub const SNAPSHOT_STREAM_MESSAGES: usize = 8;
/// Length of the SHA-256 trailer.
pub const CHECKSUM_BYTES: usize = 32;
/// The data is padded to a multiple of this before its checksum.
const PAD_TO_BYTES: u64 = 512;

/// The file's length for `data_len` bytes of data.
pub fn file_len(data_len: u64) -> u64 {
    data_len.div_ceil(PAD_TO_BYTES) * PAD_TO_BYTES + CHECKSUM_BYTES as u64
}

/// Writes etcd's snapshot layout as `Maintenance.Snapshot` messages into a
/// bounded channel, blocking while the client is slow; each message says
/// how many bytes remain after it, as etcd's do.
pub struct SnapshotSender {
    tx: mpsc::Sender<ApiResult<SnapshotResponse>>,
    header: Option<ResponseHeader>,
    digest: sha2::Sha256,
    buffer: Vec<u8>,
    /// The whole file's length, once announced (shared with the closure
    /// that learns the data's length: see [`SnapshotSender::length_slot`]).
    total: Rc<Cell<Option<u64>>>,
    /// Bytes handed to the channel so far.
    sent: u64,
    data_len: u64,
}

impl SnapshotSender {
    /// A sender into `tx`; every message carries `header`.
    pub fn new(
        tx: mpsc::Sender<ApiResult<SnapshotResponse>>,
        header: Option<ResponseHeader>,
    ) -> SnapshotSender {
        SnapshotSender {
            tx,
            header,
            digest: sha2::Sha256::new(),
            buffer: Vec::with_capacity(SNAPSHOT_CHUNK_BYTES),
            total: Rc::default(),
            sent: 0,
            data_len: 0,
        }
    }

    /// Where the data's length is announced, before any data: hand it to
    /// the closure that learns it while the sender is being written to.
    pub fn length_slot(&self) -> LengthSlot {
        LengthSlot(self.total.clone())
    }

    fn send(&mut self, blob: Vec<u8>) -> std::io::Result<()> {
        self.sent += blob.len() as u64;
        let total = self
            .total
            .get()
            .expect("the length is announced before data");
        assert!(self.sent <= total, "more snapshot data than announced");
        let message = SnapshotResponse {
            header: self.header,
            remaining_bytes: total - self.sent,
            blob,
            version: ETCD_VERSION.into(),
        };
        self.tx.blocking_send(Ok(message)).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "snapshot client went away")
        })
    }

    fn push(&mut self, mut bytes: &[u8]) -> std::io::Result<()> {
        while !bytes.is_empty() {
            let room = SNAPSHOT_CHUNK_BYTES - self.buffer.len();
            let (now, later) = bytes.split_at(bytes.len().min(room));
            self.buffer.extend_from_slice(now);
            bytes = later;
            if self.buffer.len() == SNAPSHOT_CHUNK_BYTES {
                let blob =
                    std::mem::replace(&mut self.buffer, Vec::with_capacity(SNAPSHOT_CHUNK_BYTES));
                self.send(blob)?;
            }
        }
        Ok(())
    }

    /// Pads, appends the checksum and sends the rest; the last message
    /// says 0 bytes remain.
    pub fn finish(mut self) -> std::io::Result<()> {
        let padding = (file_len(self.data_len) - CHECKSUM_BYTES as u64 - self.data_len) as usize;
        let zeros = vec![0u8; padding];
        self.digest.update(&zeros);
        self.push(&zeros)?;
        let sum = std::mem::take(&mut self.digest).finalize();
        self.push(&sum)?;
        let rest = std::mem::take(&mut self.buffer);
        if !rest.is_empty() {
            self.send(rest)?;
        }
        assert_eq!(
            Some(self.sent),
            self.total.get(),
            "snapshot length as announced"
        );
        Ok(())
    }

    /// Ends the client's stream with `error` instead.
    pub fn fail(self, error: EtcdError) {
        let _ = self.tx.blocking_send(Err(error));
    }
}

/// See [`SnapshotSender::length_slot`].
pub struct LengthSlot(Rc<Cell<Option<u64>>>);

impl LengthSlot {
    /// The data will be `data_len` bytes long.
    pub fn announce(&self, data_len: u64) {
        self.0.set(Some(file_len(data_len)));
    }
}

impl Write for SnapshotSender {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.digest.update(bytes);
        self.data_len += bytes.len() as u64;
        self.push(bytes)?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Checks the SHA-256 trailer of the snapshot file at `path`, reading it
/// once in pieces; returns the length of what precedes the trailer.
pub fn verify_file(path: &Path) -> Result<u64> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let checksum = CHECKSUM_BYTES as u64;
    if len < checksum || !(len - checksum).is_multiple_of(PAD_TO_BYTES) {
        return Err(Error::DataDir(format!(
            "snapshot of {len} bytes has no SHA-256 trailer"
        )));
    }
    let data_len = len - checksum;
    let mut digest = sha2::Sha256::new();
    std::io::copy(&mut (&mut file).take(data_len), &mut digest)?;
    let mut sum = [0u8; CHECKSUM_BYTES];
    file.read_exact(&mut sum)?;
    if digest.finalize().as_slice() != sum {
        return Err(Error::DataDir("snapshot SHA-256 mismatch".into()));
    }
    file.rewind()?;
    Ok(data_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends `data` through a [`SnapshotSender`] and collects the messages.
    fn send_all(data: &[u8]) -> Vec<SnapshotResponse> {
        let (tx, mut rx) = mpsc::channel(1024);
        let mut sender = SnapshotSender::new(tx, None);
        sender.length_slot().announce(data.len() as u64);
        for piece in data.chunks(7_777) {
            sender.write_all(piece).unwrap();
        }
        sender.finish().unwrap();
        let mut out = Vec::new();
        while let Ok(m) = rx.try_recv() {
            out.push(m.unwrap());
        }
        out
    }

    #[test]
    fn messages_count_down_to_zero_and_form_a_file_that_verifies() {
        for len in [0usize, 1, 511, 512, 100_000, 3 * SNAPSHOT_CHUNK_BYTES] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let messages = send_all(&data);
            let file: Vec<u8> = messages.iter().flat_map(|m| m.blob.clone()).collect();
            assert_eq!(file.len() as u64, file_len(len as u64), "len {len}");
            assert_eq!(&file[..len], &data[..]);
            let mut remaining = file.len() as u64;
            for m in &messages {
                remaining -= m.blob.len() as u64;
                assert_eq!(m.remaining_bytes, remaining);
                assert!(m.blob.len() <= SNAPSHOT_CHUNK_BYTES);
            }
            assert_eq!(messages.last().unwrap().remaining_bytes, 0);
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("s.db");
            std::fs::write(&path, &file).unwrap();
            assert_eq!(verify_file(&path).unwrap(), file.len() as u64 - 32);
            let mut bad = file.clone();
            bad[0] ^= 1;
            std::fs::write(&path, &bad).unwrap();
            assert!(verify_file(&path).is_err());
            std::fs::write(&path, &file[..file.len() - 1]).unwrap();
            assert!(verify_file(&path).is_err());
        }
    }
}
