//! HTTP/2 framing (RFC 9113 §4, §6.2, §6.10): frame headers, a header
//! block gathered from a HEADERS frame and its CONTINUATION frames, and the
//! frames a rewritten block is written back as.
//!
//! Client→server stream, as parsed here:
//!
//! ```text
//! "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"                    connection preface, 24 bytes
//! +-----------------------------------------------+
//! |                 Length (24)                   |
//! +---------------+---------------+---------------+
//! |   Type (8)    |   Flags (8)   |
//! +-+-------------+---------------+-------------------------------+
//! |R|                 Stream Identifier (31)                      |
//! +=+=============================================================+
//! |                   Frame Payload (Length bytes)               ...
//! ```
//!
//! A HEADERS payload (flags PADDED 0x8 and PRIORITY 0x20 optional):
//!
//! ```text
//! +---------------+
//! |Pad Length? (8)|
//! +-+-------------+-----------------------------------------------+
//! |E|                 Stream Dependency? (31)                     |
//! +-+-------------+-----------------------------------------------+
//! |  Weight? (8)  |
//! +-+-------------+-----------------------------------------------+
//! |                   Header Block Fragment (*)                 ...
//! +---------------------------------------------------------------+
//! |                           Padding (*)                       ...
//! ```

use crate::{Malformed, Parse};

pub(crate) const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
pub(crate) const FRAME_HEADER_LEN: usize = 9;
pub(crate) const FRAME_HEADERS: u8 = 0x1;
pub(crate) const FRAME_CONTINUATION: u8 = 0x9;
pub(crate) const FLAG_END_STREAM: u8 = 0x1;
pub(crate) const FLAG_END_HEADERS: u8 = 0x4;
pub(crate) const FLAG_PADDED: u8 = 0x8;
pub(crate) const FLAG_PRIORITY: u8 = 0x20;
const PRIORITY_LEN: usize = 5;
/// Largest frame payload the server accepts: h2's (and so hyper's) default
/// SETTINGS_MAX_FRAME_SIZE, which axum::serve does not change.
pub(crate) const MAX_FRAME_SIZE_BYTES: usize = 16_384;
/// Header blocks larger than this are not inspected: the connection passes
/// through untouched (h2's own header-list limit is far smaller).
pub(crate) const MAX_HEADER_BLOCK_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, Copy)]
pub(crate) struct FrameHeader {
    pub(crate) len: usize,
    pub(crate) kind: u8,
    pub(crate) flags: u8,
    pub(crate) stream_id: [u8; 4],
}

impl FrameHeader {
    pub(crate) fn parse(b: &[u8; FRAME_HEADER_LEN]) -> Self {
        Self {
            len: usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]),
            kind: b[3],
            flags: b[4],
            stream_id: [b[5], b[6], b[7], b[8]],
        }
    }
}

/// A header block whose END_HEADERS has not arrived yet.
pub(crate) struct PendingBlock {
    /// The frames exactly as received, emitted when nothing is rewritten.
    pub(crate) raw: Vec<u8>,
    pub(crate) stream_id: [u8; 4],
    /// The HEADERS frame's flags.
    flags: u8,
    priority: Option<[u8; PRIORITY_LEN]>,
    /// The header block fragments, padding and priority removed.
    pub(crate) fragment: Vec<u8>,
}

impl PendingBlock {
    pub(crate) fn new(header: &FrameHeader) -> Self {
        Self {
            raw: Vec::new(),
            stream_id: header.stream_id,
            flags: header.flags,
            priority: None,
            fragment: Vec::new(),
        }
    }

    /// Appends one frame's fragment; a HEADERS payload loses its padding
    /// and priority fields first.
    pub(crate) fn add_fragment(&mut self, header: &FrameHeader, payload: &[u8]) -> Parse<()> {
        let mut body = payload;
        if header.kind == FRAME_HEADERS {
            let mut pad = 0;
            if header.flags & FLAG_PADDED != 0 {
                let (&len, rest) = body.split_first().ok_or(Malformed)?;
                pad = usize::from(len);
                body = rest;
            }
            if header.flags & FLAG_PRIORITY != 0 {
                let priority = body.get(..PRIORITY_LEN).ok_or(Malformed)?;
                self.priority = Some(priority.try_into().map_err(|_| Malformed)?);
                body = &body[PRIORITY_LEN..];
            }
            let end = body.len().checked_sub(pad).ok_or(Malformed)?;
            body = &body[..end];
        }
        self.fragment.extend_from_slice(body);
        if self.raw.len() > MAX_HEADER_BLOCK_BYTES {
            return Err(Malformed);
        }
        Ok(())
    }
}

/// Writes `block` as one HEADERS frame, followed by CONTINUATION frames if
/// it does not fit; padding is dropped, priority and END_STREAM are kept.
pub(crate) fn emit_headers(out: &mut Vec<u8>, pending: &PendingBlock, block: &[u8]) {
    let priority: &[u8] = match &pending.priority {
        Some(p) => p,
        None => &[],
    };
    let first_len = block.len().min(MAX_FRAME_SIZE_BYTES - priority.len());
    let (first, mut rest) = block.split_at(first_len);
    let mut flags = pending.flags & (FLAG_END_STREAM | FLAG_PRIORITY);
    if rest.is_empty() {
        flags |= FLAG_END_HEADERS;
    }
    let payload = [priority, first].concat();
    write_frame(out, FRAME_HEADERS, flags, pending.stream_id, &payload);
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(rest.len().min(MAX_FRAME_SIZE_BYTES));
        rest = tail;
        let flags = if rest.is_empty() { FLAG_END_HEADERS } else { 0 };
        write_frame(out, FRAME_CONTINUATION, flags, pending.stream_id, chunk);
    }
}

pub(crate) fn write_frame(
    out: &mut Vec<u8>,
    kind: u8,
    flags: u8,
    stream_id: [u8; 4],
    payload: &[u8],
) {
    assert!(
        payload.len() <= MAX_FRAME_SIZE_BYTES,
        "frame payload too long"
    );
    let len = u32::try_from(payload.len()).expect("bounded by MAX_FRAME_SIZE_BYTES");
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream_id);
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_and_priority_are_stripped_and_kept() {
        let header = FrameHeader::parse(&[
            0,
            0,
            10,
            FRAME_HEADERS,
            FLAG_PADDED | FLAG_PRIORITY | FLAG_END_STREAM,
            0,
            0,
            0,
            3,
        ]);
        assert_eq!((header.len, header.kind), (10, FRAME_HEADERS));
        let mut block = PendingBlock::new(&header);
        let payload = [2, 0x80, 0, 0, 1, 15, 0x82, 0x84, 0, 0];
        block.add_fragment(&header, &payload).unwrap();
        assert_eq!(block.fragment, [0x82, 0x84]);
        let mut out = Vec::new();
        emit_headers(&mut out, &block, &[0x83]);
        let flags = FLAG_PRIORITY | FLAG_END_STREAM | FLAG_END_HEADERS;
        assert_eq!(
            out,
            [
                0,
                0,
                6,
                FRAME_HEADERS,
                flags,
                0,
                0,
                0,
                3,
                0x80,
                0,
                0,
                1,
                15,
                0x83
            ]
        );
        // Padding longer than what is left.
        let mut block = PendingBlock::new(&header);
        assert_eq!(
            block.add_fragment(&header, &[9, 0, 0, 0, 1, 15]),
            Err(Malformed)
        );
    }
}
