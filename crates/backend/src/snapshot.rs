//! The snapshot stream: a self-contained, checksummed copy of every bucket,
//! independent of the engine it came from.
//!
//! ```text
//! header  : "IRCDSNP1" (8 bytes)
//! record  : 0x01 | bucket u8 | key_len u32 BE | value_len u32 BE | key | value
//! trailer : 0x00 | record count u64 BE | CRC-32C u32 BE of every byte before it
//! ```

use std::io::{Read, Write};
use std::ops::ControlFlow;

use crate::{Backend, BatchTx, Bucket, Error, ReadTx, Result};

/// The first bytes of every snapshot stream.
pub const SNAPSHOT_MAGIC: &[u8; 8] = b"IRCDSNP1";
/// Largest key or value a stream may carry; guards allocations on restore.
const MAX_FIELD_BYTES: u32 = 64 << 20;
/// Records per write txn while restoring.
const RESTORE_TXN_RECORDS: u64 = 4096;
/// Bytes of keys and values per write txn while restoring: a txn's writes
/// wait in memory until the backend commits them, so large values must
/// not pile up there.
const RESTORE_TXN_BYTES: u64 = 4 << 20;
/// Bytes restored between forced engine commits, so that what the write
/// buffers hold stays bounded whatever the snapshot's size.
const RESTORE_COMMIT_BYTES: u64 = 32 << 20;

struct CrcWriter<'a> {
    out: &'a mut dyn Write,
    crc: u32,
    bytes: u64,
}

impl CrcWriter<'_> {
    fn put(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.crc = crc32c::crc32c_append(self.crc, data);
        self.bytes += data.len() as u64;
        self.out.write_all(data)
    }
}

pub(crate) fn write_stream(view: &impl ReadTx, out: &mut dyn Write) -> Result<u64> {
    let mut w = CrcWriter {
        out,
        crc: 0,
        bytes: 0,
    };
    w.put(SNAPSHOT_MAGIC)?;
    let mut records = 0u64;
    for bucket in Bucket::all() {
        let mut io_error = None;
        view.scan(bucket, &[], Some(&[]), &mut |k, v| {
            let mut head = [0u8; 10];
            head[0] = 1;
            head[1] = bucket.index() as u8;
            head[2..6].copy_from_slice(&(k.len() as u32).to_be_bytes());
            head[6..10].copy_from_slice(&(v.len() as u32).to_be_bytes());
            let r = w.put(&head).and_then(|_| w.put(k)).and_then(|_| w.put(v));
            match r {
                Ok(()) => {
                    records += 1;
                    ControlFlow::Continue(())
                }
                Err(e) => {
                    io_error = Some(e);
                    ControlFlow::Break(())
                }
            }
        })?;
        if let Some(e) = io_error {
            return Err(e.into());
        }
    }
    let mut tail = [0u8; 9];
    tail[1..9].copy_from_slice(&records.to_be_bytes());
    w.put(&tail)?;
    let crc = w.crc;
    w.out.write_all(&crc.to_be_bytes())?;
    w.out.flush()?;
    Ok(w.bytes + 4)
}

/// The length of the stream [`write_stream`] writes for `view`, found by a
/// pass over the same view without reading values out (etcd announces a
/// snapshot's size before its data; the stream is made as it is sent).
pub(crate) fn stream_len(view: &impl ReadTx) -> Result<u64> {
    // Magic, then per record a 10-byte head, then the 9-byte trailer and
    // the 4-byte checksum.
    let mut len = SNAPSHOT_MAGIC.len() as u64 + 9 + 4;
    for bucket in Bucket::all() {
        view.scan(bucket, &[], Some(&[]), &mut |k, v| {
            len += 10 + k.len() as u64 + v.len() as u64;
            ControlFlow::Continue(())
        })?;
    }
    Ok(len)
}

struct CrcReader<'a> {
    input: &'a mut dyn Read,
    crc: u32,
}

impl CrcReader<'_> {
    fn take(&mut self, buf: &mut [u8]) -> Result<()> {
        self.input.read_exact(buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => Error::CorruptSnapshot("truncated stream".into()),
            _ => Error::Io(e),
        })?;
        self.crc = crc32c::crc32c_append(self.crc, buf);
        Ok(())
    }

    fn take_vec(&mut self, len: u32) -> Result<Vec<u8>> {
        if len > MAX_FIELD_BYTES {
            return Err(Error::CorruptSnapshot(format!("field of {len} bytes")));
        }
        let mut v = vec![0u8; len as usize];
        self.take(&mut v)?;
        Ok(v)
    }
}

/// Loads a snapshot stream into `backend`, which must be empty, and
/// force-commits it. A stream that is truncated or fails its checksum is
/// an error; what was loaded before the error must then be discarded.
pub fn restore_snapshot<B: Backend>(backend: &B, input: &mut dyn Read) -> Result<u64> {
    if !is_empty(backend)? {
        return Err(Error::NotEmpty);
    }
    let mut r = CrcReader { input, crc: 0 };
    let mut magic = [0u8; 8];
    r.take(&mut magic)?;
    if &magic != SNAPSHOT_MAGIC {
        return Err(Error::CorruptSnapshot("bad magic".into()));
    }
    let mut records = 0u64;
    let mut uncommitted_bytes = 0u64;
    loop {
        let mut tx = backend.batch_tx();
        let mut txn_bytes = 0u64;
        for _ in 0..RESTORE_TXN_RECORDS {
            let mut tag = [0u8; 1];
            r.take(&mut tag)?;
            if tag[0] == 0 {
                drop(tx);
                return finish_restore(backend, &mut r, records);
            }
            if tag[0] != 1 {
                return Err(Error::CorruptSnapshot(format!("record tag {}", tag[0])));
            }
            let mut head = [0u8; 9];
            r.take(&mut head)?;
            let bucket = Bucket::from_index(head[0] as usize)
                .ok_or_else(|| Error::CorruptSnapshot(format!("bucket id {}", head[0])))?;
            let key_len = u32::from_be_bytes(head[1..5].try_into().expect("4 bytes"));
            let value_len = u32::from_be_bytes(head[5..9].try_into().expect("4 bytes"));
            let key = r.take_vec(key_len)?;
            let value = r.take_vec(value_len)?;
            tx.put(bucket, &key, &value);
            records += 1;
            txn_bytes += u64::from(key_len) + u64::from(value_len);
            if txn_bytes >= RESTORE_TXN_BYTES {
                break;
            }
        }
        drop(tx);
        uncommitted_bytes += txn_bytes;
        if uncommitted_bytes >= RESTORE_COMMIT_BYTES {
            backend.force_commit()?;
            uncommitted_bytes = 0;
        }
    }
}

fn finish_restore<B: Backend>(backend: &B, r: &mut CrcReader<'_>, records: u64) -> Result<u64> {
    let mut count = [0u8; 8];
    r.take(&mut count)?;
    let expected_crc = r.crc;
    let mut crc = [0u8; 4];
    r.input
        .read_exact(&mut crc)
        .map_err(|_| Error::CorruptSnapshot("missing checksum".into()))?;
    if u32::from_be_bytes(crc) != expected_crc {
        return Err(Error::CorruptSnapshot("checksum mismatch".into()));
    }
    if u64::from_be_bytes(count) != records {
        return Err(Error::CorruptSnapshot("record count mismatch".into()));
    }
    backend.force_commit()?;
    Ok(records)
}

fn is_empty<B: Backend>(backend: &B) -> Result<bool> {
    let tx = backend.read_tx();
    for bucket in Bucket::all() {
        if !tx.range(bucket, &[], Some(&[]), 1)?.is_empty() {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BackendConfig, MemBackend};

    fn backend() -> MemBackend {
        MemBackend::open_in_memory(BackendConfig::default())
    }

    #[test]
    fn the_announced_length_is_the_stream_length() {
        let b = backend();
        {
            let mut tx = b.batch_tx();
            for i in 0..300u32 {
                tx.put(Bucket::KEY, &i.to_be_bytes(), &vec![7; i as usize]);
            }
            tx.put(Bucket::META, b"consistent_index", &9u64.to_be_bytes());
        }
        let mut announced = None;
        let mut stream = Vec::new();
        let written = b
            .snapshot_sized(
                &mut |len| {
                    announced = Some(len);
                    Ok(())
                },
                &mut stream,
            )
            .unwrap();
        assert_eq!(announced, Some(stream.len() as u64));
        assert_eq!(written, stream.len() as u64);
        let mut plain = Vec::new();
        b.snapshot(&mut plain).unwrap();
        assert_eq!(plain, stream);
    }

    #[test]
    fn large_values_restore_across_many_commits() {
        // More bytes than one restore txn and one commit interval hold.
        let b = backend();
        let value = |i: u32| vec![i as u8; 1 << 20];
        let n = ((RESTORE_COMMIT_BYTES >> 20) + 8) as u32;
        for i in 0..n {
            b.batch_tx().put(Bucket::KEY, &i.to_be_bytes(), &value(i));
        }
        let mut stream = Vec::new();
        b.snapshot(&mut stream).unwrap();
        let restored = backend();
        assert_eq!(
            restore_snapshot(&restored, &mut stream.as_slice()).unwrap(),
            u64::from(n)
        );
        for i in 0..n {
            let got = restored
                .read_tx()
                .get(Bucket::KEY, &i.to_be_bytes())
                .unwrap();
            assert_eq!(got.as_deref(), Some(&value(i)[..]), "key {i}");
        }
    }
}
