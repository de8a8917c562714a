//! Record framing and payload layouts (diagrams in the crate docs).
//!
//! Encoding appends to a caller's buffer so a whole batch becomes one write;
//! decoding works on borrowed bytes and never trusts a length it has not
//! checked.

use crate::types::{Entry, HardState, SnapshotMarker};

/// Bytes before the payload: length, type, padding, reserved, header CRC.
pub(crate) const HEADER_BYTES: usize = 12;
/// Bytes after the padding: the chained CRC and the end marker.
pub(crate) const TRAILER_BYTES: usize = 8;
/// Every frame starts at a multiple of this, so a header never straddles
/// more than one sector boundary and offsets stay word-aligned.
pub(crate) const ALIGN_BYTES: u64 = 8;
/// Smallest unit a disk writes atomically; a torn write can leave whole
/// sectors of zeros (see `reader`).
pub(crate) const SECTOR_BYTES: u64 = 512;
/// The last four bytes of every frame. Each byte has four bits set, so no
/// single flipped bit can make a complete frame look unfinished (ending
/// in zeros): only a write that stopped short can.
pub(crate) const END_MARKER: [u8; 4] = [0xA5; 4];

/// Payload size of an entry record before its data: index and term.
pub(crate) const ENTRY_PREFIX_BYTES: usize = 16;
const HARD_STATE_BYTES: usize = 24;
const MARKER_BYTES: usize = 16;
const CRC_PAYLOAD_BYTES: usize = 4;

/// The kind of a record. Every value has two bits set, so no single
/// flipped bit turns a header into zeros (0 is never written: an all-zero
/// header is where the data in a preallocated segment ends).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum RecordType {
    /// Opaque metadata given at create; repeated at the head of every segment.
    Metadata = 0x03,
    /// One raft entry.
    Entry = 0x05,
    /// A raft hard state.
    HardState = 0x06,
    /// The chained CRC carried over from the previous segment.
    Crc = 0x09,
    /// A snapshot marker.
    SnapshotMarker = 0x0A,
    /// The single record of a `.snap` file.
    Snapshot = 0x0C,
}

impl RecordType {
    fn from_u8(byte: u8) -> Option<Self> {
        Some(match byte {
            0x03 => RecordType::Metadata,
            0x05 => RecordType::Entry,
            0x06 => RecordType::HardState,
            0x09 => RecordType::Crc,
            0x0A => RecordType::SnapshotMarker,
            0x0C => RecordType::Snapshot,
            _ => return None,
        })
    }
}

/// Zero bytes after a payload of `len` bytes so that the whole frame,
/// header and trailer included, is a multiple of [`ALIGN_BYTES`].
pub(crate) fn padding_for(len: u64) -> u64 {
    let fixed = (HEADER_BYTES + TRAILER_BYTES) as u64;
    (ALIGN_BYTES - (len + fixed) % ALIGN_BYTES) % ALIGN_BYTES
}

/// Whole frame size for a payload of `len` bytes.
pub(crate) fn frame_bytes(len: u64) -> u64 {
    (HEADER_BYTES + TRAILER_BYTES) as u64 + len + padding_for(len)
}

/// Starts a record in `out`: reserves its header. Write the payload with
/// `out.extend_from_slice`, then call [`finish`].
pub(crate) fn begin(out: &mut Vec<u8>) -> usize {
    debug_assert_eq!(out.len() as u64 % ALIGN_BYTES, 0, "records start aligned");
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_BYTES]);
    start
}

/// Finishes the record begun at `start`: header, padding and the CRC chained
/// from `prev_crc`. Returns the record's CRC, the next record's `prev_crc`.
///
/// The payload must fit a `u32`; callers check it against the configured
/// limit (at most 2 GiB) first.
pub(crate) fn finish(out: &mut Vec<u8>, start: usize, kind: RecordType, prev_crc: u32) -> u32 {
    let len = out.len() - start - HEADER_BYTES;
    let len32 = u32::try_from(len).expect("record payload checked against its limit");
    let pad = padding_for(len as u64) as u8;
    let crc = crc32c::crc32c_append(prev_crc, &out[start + HEADER_BYTES..]);
    let header = encode_header(len32, kind, pad);
    out[start..start + HEADER_BYTES].copy_from_slice(&header);
    out.resize(out.len() + usize::from(pad), 0);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&END_MARKER);
    debug_assert_eq!((out.len() - start) as u64, frame_bytes(len as u64));
    crc
}

fn encode_header(len: u32, kind: RecordType, pad: u8) -> [u8; HEADER_BYTES] {
    let mut header = [0u8; HEADER_BYTES];
    header[0..4].copy_from_slice(&len.to_le_bytes());
    header[4] = kind as u8;
    header[5] = pad;
    let header_crc = crc32c::crc32c(&header[0..8]);
    header[8..12].copy_from_slice(&header_crc.to_le_bytes());
    header
}

/// A header that passed its own CRC and field checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) len: u64,
    pub(crate) kind: RecordType,
}

impl Header {
    pub(crate) fn frame_bytes(&self) -> u64 {
        frame_bytes(self.len)
    }
}

/// What the 12 header bytes at an offset say.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeaderCheck {
    /// All zeros: nothing was ever written here.
    Zero,
    /// The header CRC fails.
    BadCrc,
    /// The CRC holds but a field is impossible.
    Malformed(&'static str),
    /// A good header.
    Valid(Header),
}

pub(crate) fn check_header(bytes: &[u8; HEADER_BYTES]) -> HeaderCheck {
    if bytes.iter().all(|&b| b == 0) {
        return HeaderCheck::Zero;
    }
    let stored = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if crc32c::crc32c(&bytes[0..8]) != stored {
        return HeaderCheck::BadCrc;
    }
    let len = u64::from(u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")));
    let Some(kind) = RecordType::from_u8(bytes[4]) else {
        return HeaderCheck::Malformed("unknown record type");
    };
    if u64::from(bytes[5]) != padding_for(len) {
        return HeaderCheck::Malformed("padding length does not match payload length");
    }
    if bytes[6..8] != [0, 0] {
        return HeaderCheck::Malformed("reserved header bytes are not zero");
    }
    HeaderCheck::Valid(Header { len, kind })
}

/// The chained CRC stored in a frame's trailer.
pub(crate) fn stored_crc(frame: &[u8]) -> u32 {
    let at = frame.len() - TRAILER_BYTES;
    u32::from_le_bytes(frame[at..at + 4].try_into().expect("4 bytes"))
}

/// Whether a frame ends with the end marker: it was written to its end.
pub(crate) fn has_end_marker(frame: &[u8]) -> bool {
    frame.ends_with(&END_MARKER)
}

/// The payload and padding of a whole frame.
pub(crate) fn split_frame<'a>(frame: &'a [u8], header: &Header) -> (&'a [u8], &'a [u8]) {
    let payload_end = HEADER_BYTES + header.len as usize;
    (
        &frame[HEADER_BYTES..payload_end],
        &frame[payload_end..frame.len() - TRAILER_BYTES],
    )
}

// ---- payloads (all integers little-endian) ----

pub(crate) fn put_entry(out: &mut Vec<u8>, prev_crc: u32, entry: &Entry) -> u32 {
    let start = begin(out);
    out.extend_from_slice(&entry.index.to_le_bytes());
    out.extend_from_slice(&entry.term.to_le_bytes());
    out.extend_from_slice(&entry.data);
    finish(out, start, RecordType::Entry, prev_crc)
}

pub(crate) fn put_hard_state(out: &mut Vec<u8>, prev_crc: u32, hs: &HardState) -> u32 {
    let start = begin(out);
    for word in [hs.term, hs.vote, hs.commit] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    finish(out, start, RecordType::HardState, prev_crc)
}

pub(crate) fn put_marker(
    out: &mut Vec<u8>,
    prev_crc: u32,
    kind: RecordType,
    m: &SnapshotMarker,
) -> u32 {
    let start = begin(out);
    out.extend_from_slice(&m.index.to_le_bytes());
    out.extend_from_slice(&m.term.to_le_bytes());
    finish(out, start, kind, prev_crc)
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, prev_crc: u32, kind: RecordType, bytes: &[u8]) -> u32 {
    let start = begin(out);
    out.extend_from_slice(bytes);
    finish(out, start, kind, prev_crc)
}

/// A CRC record carries the previous segment's last CRC, which the reader
/// compares with the chain it has; the records after it chain from the CRC
/// record's own CRC, so the chain runs unbroken across segment files.
///
/// Its own CRC starts from seed 0, not from the value it carries: CRC-32C
/// XORs its seed into the first four payload bytes, so seeding with the
/// payload itself would cancel any flipped bit in it.
pub(crate) fn put_crc(out: &mut Vec<u8>, prev_crc: u32) -> u32 {
    put_bytes(
        out,
        CRC_RECORD_SEED,
        RecordType::Crc,
        &prev_crc.to_le_bytes(),
    )
}

/// Seed of a CRC record's own checksum (see [`put_crc`]).
pub(crate) const CRC_RECORD_SEED: u32 = 0;

fn u64_at(payload: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(payload[at..at + 8].try_into().expect("8 bytes"))
}

/// Decodes an entry payload; `None` when it is shorter than index + term.
pub(crate) fn decode_entry(payload: &[u8]) -> Option<Entry> {
    (payload.len() >= ENTRY_PREFIX_BYTES).then(|| Entry {
        index: u64_at(payload, 0),
        term: u64_at(payload, 8),
        data: payload[ENTRY_PREFIX_BYTES..].to_vec(),
    })
}

pub(crate) fn decode_hard_state(payload: &[u8]) -> Option<HardState> {
    (payload.len() == HARD_STATE_BYTES).then(|| HardState {
        term: u64_at(payload, 0),
        vote: u64_at(payload, 8),
        commit: u64_at(payload, 16),
    })
}

/// Decodes a marker payload; a snapshot file's payload is a marker followed
/// by the snapshot data, so `exact` is false there.
pub(crate) fn decode_marker(payload: &[u8], exact: bool) -> Option<SnapshotMarker> {
    let size_ok = if exact {
        payload.len() == MARKER_BYTES
    } else {
        payload.len() >= MARKER_BYTES
    };
    size_ok.then(|| SnapshotMarker {
        index: u64_at(payload, 0),
        term: u64_at(payload, 8),
    })
}

pub(crate) fn decode_crc(payload: &[u8]) -> Option<u32> {
    (payload.len() == CRC_PAYLOAD_BYTES)
        .then(|| u32::from_le_bytes(payload.try_into().expect("4 bytes")))
}

/// Payload length of an entry record.
pub(crate) fn entry_payload_bytes(entry: &Entry) -> u64 {
    (ENTRY_PREFIX_BYTES + entry.data.len()) as u64
}

/// Length of the payload that precedes the data of a snapshot file.
pub(crate) const SNAPSHOT_PREFIX_BYTES: usize = MARKER_BYTES;

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_of(out: &[u8]) -> (Header, &[u8], &[u8]) {
        let HeaderCheck::Valid(header) = check_header(out[..HEADER_BYTES].try_into().unwrap())
        else {
            panic!("invalid header");
        };
        let (payload, pad) = split_frame(out, &header);
        (header, payload, pad)
    }

    #[test]
    fn frames_are_aligned_and_padded_with_zeros() {
        for len in 0..40usize {
            let mut out = Vec::new();
            let data = vec![0xAB; len];
            let crc = put_bytes(&mut out, 7, RecordType::Metadata, &data);
            assert_eq!(out.len() as u64 % ALIGN_BYTES, 0, "len {len}");
            assert_eq!(out.len() as u64, frame_bytes(len as u64));
            let (header, payload, pad) = frame_of(&out);
            assert_eq!(
                header,
                Header {
                    len: len as u64,
                    kind: RecordType::Metadata
                }
            );
            assert_eq!(payload, &data[..]);
            assert!(pad.iter().all(|&b| b == 0));
            assert!(has_end_marker(&out));
            assert_eq!(stored_crc(&out), crc);
            assert_eq!(crc, crc32c::crc32c_append(7, &data));
        }
    }

    #[test]
    fn byte_layout_matches_the_diagram() {
        let mut out = Vec::new();
        put_entry(
            &mut out,
            0,
            &Entry {
                index: 0x0102,
                term: 3,
                data: b"xyz".to_vec(),
            },
        );
        assert_eq!(&out[0..4], &19u32.to_le_bytes(), "length = 16 + 3");
        assert_eq!(out[4], RecordType::Entry as u8);
        assert_eq!(out[5], 1, "12 + 19 + 1 + 8 = 40, a multiple of 8");
        assert_eq!(&out[6..8], &[0, 0]);
        assert_eq!(&out[8..12], &crc32c::crc32c(&out[0..8]).to_le_bytes());
        assert_eq!(&out[12..20], &0x0102u64.to_le_bytes());
        assert_eq!(&out[20..28], &3u64.to_le_bytes());
        assert_eq!(&out[28..31], b"xyz");
        assert_eq!(out[31], 0);
        assert_eq!(&out[32..36], &crc32c::crc32c(&out[12..31]).to_le_bytes());
        assert_eq!(&out[36..40], &[0xA5; 4]);
        assert_eq!(out.len(), 40);
    }

    #[test]
    fn no_single_bit_flip_zeroes_a_type_or_marker_byte() {
        let types = [
            RecordType::Metadata,
            RecordType::Entry,
            RecordType::HardState,
            RecordType::Crc,
            RecordType::SnapshotMarker,
            RecordType::Snapshot,
        ];
        for byte in types.map(|t| t as u8).into_iter().chain(END_MARKER) {
            assert!(byte.count_ones() >= 2, "{byte:#x}");
        }
    }

    #[test]
    fn payloads_round_trip() {
        let entry = Entry {
            index: u64::MAX,
            term: 9,
            data: vec![1, 2, 3],
        };
        let hs = HardState {
            term: 4,
            vote: 2,
            commit: u64::MAX - 1,
        };
        let marker = SnapshotMarker { index: 77, term: 5 };
        let mut out = Vec::new();
        let c1 = put_entry(&mut out, 0, &entry);
        let c2 = put_hard_state(&mut out, c1, &hs);
        put_marker(&mut out, c2, RecordType::SnapshotMarker, &marker);
        let mut at = 0;
        let mut payloads = Vec::new();
        while at < out.len() {
            let (header, payload, _) = frame_of(&out[at..]);
            payloads.push(payload.to_vec());
            at += header.frame_bytes() as usize;
        }
        assert_eq!(decode_entry(&payloads[0]), Some(entry));
        assert_eq!(decode_hard_state(&payloads[1]), Some(hs));
        assert_eq!(decode_marker(&payloads[2], true), Some(marker));
        assert_eq!(
            decode_marker(&payloads[1], true),
            None,
            "24 bytes is not a marker"
        );
        assert_eq!(decode_hard_state(&payloads[2]), None);
        assert_eq!(decode_entry(&payloads[2][..15]), None);
    }

    #[test]
    fn crc_record_checksum_does_not_depend_on_the_value_it_carries() {
        let mut out = Vec::new();
        let crc = put_crc(&mut out, 0xDEAD_BEEF);
        let (_, payload, _) = frame_of(&out);
        assert_eq!(decode_crc(payload), Some(0xDEAD_BEEF));
        assert_eq!(crc, crc32c::crc32c(payload));
        // Why: seeded with its own payload, a flipped payload bit cancels out.
        let flipped = 0xDEAD_BEEFu32 ^ 1;
        assert_eq!(
            crc32c::crc32c_append(0xDEAD_BEEF, &0xDEAD_BEEFu32.to_le_bytes()),
            crc32c::crc32c_append(flipped, &flipped.to_le_bytes())
        );
    }

    #[test]
    fn header_checks() {
        assert_eq!(check_header(&[0; HEADER_BYTES]), HeaderCheck::Zero);
        let good = encode_header(5, RecordType::Entry, padding_for(5) as u8);
        assert!(matches!(check_header(&good), HeaderCheck::Valid(_)));
        for bit in 0..HEADER_BYTES * 8 {
            let mut bad = good;
            bad[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(check_header(&bad), HeaderCheck::BadCrc, "bit {bit}");
        }
        let mut unknown = [0u8; HEADER_BYTES];
        unknown[4] = 0x11;
        let crc = crc32c::crc32c(&unknown[0..8]);
        unknown[8..12].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(check_header(&unknown), HeaderCheck::Malformed(_)));
        let wrong_pad = encode_header(5, RecordType::Entry, padding_for(5) as u8 + 1);
        assert!(matches!(
            check_header(&wrong_pad),
            HeaderCheck::Malformed(_)
        ));
    }
}
