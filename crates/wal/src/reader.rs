//! Reads the frames of one file and tells a torn tail from corruption.
//!
//! A torn write is one whose fsync never returned. A frame that fails its
//! checks is *torn* when:
//!
//! 1. the file ends inside it (the file was cut short); or
//! 2. it stops short and nothing follows: its last byte is zero (or, with a
//!    bad header, every byte after the header is), and so is every byte
//!    after it to the end of the file — a write that stopped part-way, at
//!    any byte, over preallocated zeros (a crash, ENOSPC); or
//! 3. one of its pieces between sector boundaries is all zeros — a sector
//!    of the write that never reached the disk while a later one did.
//!
//! Otherwise it is corrupt. The frame layout keeps this honest: a frame's
//! last byte is an end-marker byte and its header's type byte has two bits
//! set, so no single flipped bit satisfies 2 or 3; only a payload holding
//! 512 sector-aligned zero bytes could make damage look like rule 3. Whether
//! a torn frame is repaired or an error is the caller's decision: only the
//! last segment may end in one.

use std::path::Path;

use crate::error::{Error, Result};
use crate::io::{read_exact_at, WalFile};
use crate::record::{self, Header, HeaderCheck, RecordType, HEADER_BYTES, SECTOR_BYTES};

/// Bytes read from a segment at a time; records are decoded from this window.
const READ_WINDOW_BYTES: u64 = 1 << 20;

/// A record that passed every check.
#[derive(Debug)]
pub(crate) struct Record<'a> {
    /// Offset of the frame in its file.
    pub(crate) offset: u64,
    pub(crate) kind: RecordType,
    pub(crate) payload: &'a [u8],
    /// The record's chained CRC: the next record chains from it.
    pub(crate) crc: u32,
}

/// One step through a file.
#[derive(Debug)]
pub(crate) enum Step<'a> {
    Record(Record<'a>),
    /// No more records at `offset`: the file ends there (`zeros == false`)
    /// or an all-zero header begins there (`zeros == true`).
    End {
        offset: u64,
        zeros: bool,
    },
    /// The frame at `offset` is torn.
    Torn {
        offset: u64,
    },
}

/// A cursor over the frames of one file.
pub(crate) struct FrameReader<'a> {
    file: &'a dyn WalFile,
    path: &'a Path,
    len: u64,
    offset: u64,
    max_record_bytes: u64,
    window: Vec<u8>,
    window_start: u64,
}

impl<'a> FrameReader<'a> {
    pub(crate) fn new(
        file: &'a dyn WalFile,
        path: &'a Path,
        max_record_bytes: u64,
    ) -> Result<Self> {
        let len = file.size_bytes().map_err(|e| Error::io("stat", path, e))?;
        Ok(FrameReader {
            file,
            path,
            len,
            offset: 0,
            max_record_bytes,
            window: Vec::new(),
            window_start: 0,
        })
    }

    /// The file's length when the reader was made.
    pub(crate) fn file_len(&self) -> u64 {
        self.len
    }

    /// The next frame, its CRC chained from `prev_crc` (a CRC record's from
    /// `CRC_RECORD_SEED`).
    pub(crate) fn next(&mut self, prev_crc: u32) -> Result<Step<'_>> {
        let offset = self.offset;
        let remaining = self.len - offset;
        if remaining == 0 {
            return Ok(Step::End {
                offset,
                zeros: false,
            });
        }
        if remaining < HEADER_BYTES as u64 {
            let zeros = is_zero(self.fill(offset, remaining)?);
            return Ok(if zeros {
                Step::End { offset, zeros }
            } else {
                Step::Torn { offset }
            });
        }
        let header_bytes: [u8; HEADER_BYTES] = self
            .fill(offset, HEADER_BYTES as u64)?
            .try_into()
            .expect("header bytes");
        let header = match record::check_header(&header_bytes) {
            HeaderCheck::Zero => {
                return Ok(Step::End {
                    offset,
                    zeros: true,
                })
            }
            HeaderCheck::BadCrc => {
                let header_end = offset + HEADER_BYTES as u64;
                if has_zero_piece(offset, &header_bytes) || self.zeros_from(header_end)? {
                    return Ok(Step::Torn { offset });
                }
                return Err(Error::CrcMismatch {
                    file: self.path.into(),
                    offset,
                });
            }
            HeaderCheck::Malformed(reason) => return Err(self.corrupt(offset, reason)),
            HeaderCheck::Valid(header) => header,
        };
        if header.len > self.max_record_bytes {
            let (file, max) = (self.path.into(), self.max_record_bytes);
            return Err(Error::RecordTooLarge {
                file,
                offset,
                len: header.len,
                max,
            });
        }
        if header.frame_bytes() > remaining {
            return Ok(Step::Torn { offset });
        }
        self.read_frame(offset, header, prev_crc)
    }

    fn read_frame(&mut self, offset: u64, header: Header, prev_crc: u32) -> Result<Step<'_>> {
        let path = self.path;
        let frame_len = header.frame_bytes();
        let start = self.load(offset, frame_len)?;
        let frame = &self.window[start..start + frame_len as usize];
        let (payload, padding) = record::split_frame(frame, &header);
        let seed = match header.kind {
            RecordType::Crc => record::CRC_RECORD_SEED,
            _ => prev_crc,
        };
        let crc = crc32c::crc32c_append(seed, payload);
        let crc_ok = crc == record::stored_crc(frame);
        let complete = record::has_end_marker(frame);
        if crc_ok && complete && is_zero(padding) {
            self.offset = offset + frame_len;
            let payload_start = start + HEADER_BYTES;
            let payload = &self.window[payload_start..payload_start + header.len as usize];
            return Ok(Step::Record(Record {
                offset,
                kind: header.kind,
                payload,
                crc,
            }));
        }
        let stopped_short = frame.last() == Some(&0);
        if has_zero_piece(offset, frame)
            || (stopped_short && self.zeros_from(offset + frame_len)?)
        {
            return Ok(Step::Torn { offset });
        }
        Err(match (crc_ok, complete) {
            (false, _) => Error::CrcMismatch {
                file: path.into(),
                offset,
            },
            (true, false) => corrupt(path, offset, "end marker is damaged"),
            (true, true) => corrupt(path, offset, "padding is not zero"),
        })
    }

    /// Whether every byte from `from` to the end of the file is zero. Read
    /// only when a frame has failed, so scanning a preallocated tail is rare.
    fn zeros_from(&mut self, from: u64) -> Result<bool> {
        let mut at = from;
        while at < self.len {
            let n = READ_WINDOW_BYTES.min(self.len - at);
            if !is_zero(self.fill(at, n)?) {
                return Ok(false);
            }
            at += n;
        }
        Ok(true)
    }

    fn corrupt(&self, offset: u64, reason: &str) -> Error {
        corrupt(self.path, offset, reason)
    }

    /// The file's bytes `[offset, offset + n)`, which the caller has checked
    /// lie inside the file (so `n` is bounded by the file, and by
    /// `max_record_bytes` for a frame).
    fn fill(&mut self, offset: u64, n: u64) -> Result<&[u8]> {
        let start = self.load(offset, n)?;
        Ok(&self.window[start..start + n as usize])
    }

    /// Makes the window cover `[offset, offset + n)`; returns where
    /// `offset` is in it.
    fn load(&mut self, offset: u64, n: u64) -> Result<usize> {
        debug_assert!(offset + n <= self.len);
        let window_end = self.window_start + self.window.len() as u64;
        if offset < self.window_start || offset + n > window_end {
            let want = n.max(READ_WINDOW_BYTES).min(self.len - offset);
            self.window.resize(want as usize, 0);
            read_exact_at(self.file, &mut self.window, offset)
                .map_err(|e| Error::io("read", self.path, e))?;
            self.window_start = offset;
        }
        Ok((offset - self.window_start) as usize)
    }
}

pub(crate) fn corrupt(path: &Path, offset: u64, reason: &str) -> Error {
    Error::Corrupt {
        file: path.into(),
        offset,
        reason: reason.to_string(),
    }
}

fn is_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0)
}

/// Whether `bytes`, which start at file offset `offset`, has a piece between
/// two sector boundaries (or its own ends) that is all zeros.
fn has_zero_piece(offset: u64, bytes: &[u8]) -> bool {
    let mut at = 0usize;
    while at < bytes.len() {
        let to_boundary = SECTOR_BYTES - (offset + at as u64) % SECTOR_BYTES;
        let end = bytes.len().min(at + to_boundary as usize);
        if is_zero(&bytes[at..end]) {
            return true;
        }
        at = end;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Entry;

    fn entry(index: u64, len: usize) -> Entry {
        Entry {
            index,
            term: 1,
            data: (0..len).map(|i| (i % 251) as u8 + 1).collect(),
        }
    }

    /// A read-only in-memory file, so the exhaustive tests stay fast.
    #[derive(Debug)]
    struct MemFile(Vec<u8>);

    impl WalFile for MemFile {
        fn size_bytes(&self) -> std::io::Result<u64> {
            Ok(self.0.len() as u64)
        }
        fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
            let rest = self.0.get(offset as usize..).unwrap_or_default();
            let n = buf.len().min(rest.len());
            buf[..n].copy_from_slice(&rest[..n]);
            Ok(n)
        }
        fn write_at(&mut self, _: &[u8], _: u64) -> std::io::Result<usize> {
            unreachable!("read only")
        }
        fn sync_data(&mut self) -> std::io::Result<()> {
            Ok(())
        }
        fn sync_all(&mut self) -> std::io::Result<()> {
            Ok(())
        }
        fn set_len(&mut self, _: u64) -> std::io::Result<()> {
            unreachable!("read only")
        }
        fn preallocate(&mut self, _: u64) -> std::io::Result<()> {
            unreachable!("read only")
        }
        fn try_lock_exclusive(&self) -> std::io::Result<bool> {
            Ok(true)
        }
    }

    /// Collects the steps a reader takes through `bytes`.
    fn steps(bytes: &[u8]) -> Result<Vec<String>> {
        let file = MemFile(bytes.to_vec());
        let path = Path::new("seg");
        let mut reader = FrameReader::new(&file, path, 1 << 20)?;
        let mut out = Vec::new();
        let mut crc = 0;
        loop {
            match reader.next(crc)? {
                Step::Record(r) => {
                    out.push(format!("record@{}", r.offset));
                    crc = r.crc;
                }
                Step::End { offset, zeros } => {
                    out.push(format!("end@{offset}{}", if zeros { " zeros" } else { "" }));
                    return Ok(out);
                }
                Step::Torn { offset } => {
                    out.push(format!("torn@{offset}"));
                    return Ok(out);
                }
            }
        }
    }

    fn two_records() -> Vec<u8> {
        let mut out = Vec::new();
        let crc = record::put_entry(&mut out, 0, &entry(1, 100));
        record::put_entry(&mut out, crc, &entry(2, 1000));
        out
    }

    // Frames: [0, 136) and [136, 1176).

    #[test]
    fn clean_ends() {
        let bytes = two_records();
        assert_eq!(bytes.len(), 1176);
        assert_eq!(
            steps(&bytes).unwrap(),
            ["record@0", "record@136", "end@1176"]
        );
        let mut padded = bytes.clone();
        padded.resize(4096, 0);
        assert_eq!(
            steps(&padded).unwrap(),
            ["record@0", "record@136", "end@1176 zeros"]
        );
        padded.truncate(1176 + 5);
        assert_eq!(
            steps(&padded).unwrap(),
            ["record@0", "record@136", "end@1176 zeros"]
        );
    }

    #[test]
    fn a_file_ending_inside_a_frame_is_torn() {
        let bytes = two_records();
        for cut in 137..1176 {
            assert_eq!(
                steps(&bytes[..cut]).unwrap(),
                ["record@0", "torn@136"],
                "cut {cut}"
            );
        }
    }

    #[test]
    fn a_write_stopped_at_any_byte_over_zeros_is_torn() {
        let mut bytes = two_records();
        bytes.resize(4096, 0);
        for stop in 137..1176 {
            let mut torn = bytes.clone();
            torn[stop..].fill(0);
            assert_eq!(
                steps(&torn).unwrap(),
                ["record@0", "torn@136"],
                "stopped at {stop}"
            );
        }
    }

    #[test]
    fn a_zero_sector_inside_a_frame_is_torn() {
        let mut bytes = two_records();
        bytes.resize(4096, 0);
        // The second frame spans [136, 1176): zero the sector [512, 1024).
        bytes[512..1024].fill(0);
        assert_eq!(steps(&bytes).unwrap(), ["record@0", "torn@136"]);
        // Its first piece, [136, 512), which holds the header.
        let mut bytes = two_records();
        bytes[136..512].fill(0);
        assert_eq!(steps(&bytes).unwrap(), ["record@0", "end@136 zeros"]);
    }

    #[test]
    fn every_flipped_bit_is_corruption() {
        let mut bytes = two_records();
        bytes.resize(2048, 0);
        for bit in 0..1176 * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            let offset = if bit / 8 < 136 { 0 } else { 136 };
            match steps(&flipped) {
                Err(Error::CrcMismatch { offset: o, .. } | Error::Corrupt { offset: o, .. }) => {
                    assert_eq!(o, offset, "bit {bit}")
                }
                other => panic!("bit {bit}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_length_over_the_limit_is_refused_before_reading_it() {
        let mut out = Vec::new();
        record::put_bytes(&mut out, 0, RecordType::Metadata, &vec![7; (1 << 20) + 1]);
        out.truncate(64);
        assert!(
            matches!(steps(&out), Err(Error::RecordTooLarge { offset: 0, len, .. }) if len == (1 << 20) + 1)
        );
    }

    #[test]
    fn zero_pieces_follow_sector_boundaries() {
        assert!(has_zero_piece(0, &[0; 4]));
        assert!(!has_zero_piece(0, &[1; 1024]));
        let mut bytes = vec![1u8; 16];
        bytes[8..].fill(0);
        assert!(
            has_zero_piece(504, &bytes),
            "the piece after the boundary at 512"
        );
        assert!(
            !has_zero_piece(496, &bytes),
            "no boundary inside: one non-zero piece"
        );
    }
}
