//! What the unit tests share: builders for header blocks and frames, a full
//! HPACK decoder to check what h2 will see, and a stream-level driver.

use std::collections::VecDeque;

use crate::block::fix_authority;
use crate::frame::{
    write_frame, FrameHeader, PendingBlock, FLAG_END_HEADERS, FLAG_END_STREAM, FLAG_PADDED,
    FLAG_PRIORITY, FRAME_CONTINUATION, FRAME_HEADERS, FRAME_HEADER_LEN, PREFACE,
};
use crate::hpack::{decode_int, encode_int, StringLiteral, INITIAL_TABLE_SIZE_BYTES, STATIC_NAMES};
use crate::huffman::huffman_encode;
use crate::rewriter::Rewriter;

pub(crate) type Headers = Vec<(Vec<u8>, Vec<u8>)>;

pub(crate) const URL: &str = "http://127.0.0.1:2379";
pub(crate) const FIXED: &str = "http::@127.0.0.1:2379";

// --- builders ---------------------------------------------------------

pub(crate) fn string(out: &mut Vec<u8>, s: &[u8], huffman: bool) {
    if huffman {
        let coded = huffman_encode(s);
        encode_int(out, 0x80, 7, coded.len());
        out.extend_from_slice(&coded);
    } else {
        encode_int(out, 0, 7, s.len());
        out.extend_from_slice(s);
    }
}

pub(crate) fn indexed(out: &mut Vec<u8>, index: usize) {
    encode_int(out, 0x80, 7, index);
}

/// Literal representation: `high_bits` 0x40 (incremental indexing), 0x00
/// (without indexing) or 0x10 (never indexed); `name` is a table index
/// or a literal name.
pub(crate) fn literal(
    out: &mut Vec<u8>,
    high_bits: u8,
    name: Result<usize, &str>,
    value: &str,
    huffman: bool,
) {
    let prefix = if high_bits == 0x40 { 6 } else { 4 };
    match name {
        Ok(index) => encode_int(out, high_bits, prefix, index),
        Err(name) => {
            encode_int(out, high_bits, prefix, 0);
            string(out, name.as_bytes(), huffman);
        }
    }
    string(out, value.as_bytes(), huffman);
}

pub(crate) fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write_frame(&mut out, kind, flags, stream.to_be_bytes(), payload);
    out
}

// --- a full decoder, to check what h2 will see ------------------------

pub(crate) fn static_entry(index: usize) -> (Vec<u8>, Vec<u8>) {
    let value = match index {
        2 => "GET",
        3 => "POST",
        4 => "/",
        6 => "http",
        7 => "https",
        _ => "",
    };
    (STATIC_NAMES[index - 1].into(), value.into())
}

pub(crate) struct TestDecoder {
    pub(crate) table: VecDeque<(Vec<u8>, Vec<u8>)>,
    max_size: usize,
}

impl TestDecoder {
    pub(crate) fn new() -> Self {
        Self {
            table: VecDeque::new(),
            max_size: INITIAL_TABLE_SIZE_BYTES,
        }
    }

    fn entry(&self, index: usize) -> (Vec<u8>, Vec<u8>) {
        if index <= 61 {
            static_entry(index)
        } else {
            self.table[index - 62].clone()
        }
    }

    pub(crate) fn size(&self) -> usize {
        self.table.iter().map(|(n, v)| n.len() + v.len() + 32).sum()
    }

    fn evict(&mut self) {
        while self.size() > self.max_size {
            self.table.pop_back();
        }
    }

    pub(crate) fn decode(&mut self, block: &[u8]) -> Headers {
        let mut pos = 0;
        let mut headers = Vec::new();
        while pos < block.len() {
            let first = block[pos];
            if first & 0x80 != 0 {
                let index = decode_int(block, &mut pos, 7).unwrap();
                headers.push(self.entry(index));
                continue;
            }
            if first & 0xe0 == 0x20 {
                self.max_size = decode_int(block, &mut pos, 5).unwrap();
                self.evict();
                continue;
            }
            let indexing = first & 0xc0 == 0x40;
            let index = decode_int(block, &mut pos, if indexing { 6 } else { 4 }).unwrap();
            let name = if index == 0 {
                StringLiteral::read(block, &mut pos)
                    .unwrap()
                    .decode(block)
                    .unwrap()
            } else {
                self.entry(index).0
            };
            let value = StringLiteral::read(block, &mut pos)
                .unwrap()
                .decode(block)
                .unwrap();
            if indexing {
                self.table.push_front((name.clone(), value.clone()));
                self.evict();
            }
            headers.push((name, value));
        }
        headers
    }
}

/// Splits a client stream into its non-header frames and header blocks,
/// each decoded.
pub(crate) fn decode_stream(stream: &[u8]) -> (Vec<(u32, Headers)>, Vec<Vec<u8>>) {
    assert_eq!(&stream[..24], PREFACE);
    let mut pos = 24;
    let mut decoder = TestDecoder::new();
    let mut blocks = Vec::new();
    let mut others = Vec::new();
    let mut pending: Option<PendingBlock> = None;
    while pos < stream.len() {
        let header = FrameHeader::parse(stream[pos..].first_chunk().unwrap());
        let frame = &stream[pos..pos + FRAME_HEADER_LEN + header.len];
        pos += frame.len();
        if header.kind != FRAME_HEADERS && header.kind != FRAME_CONTINUATION {
            others.push(frame.to_vec());
            continue;
        }
        let block = pending.get_or_insert_with(|| PendingBlock::new(&header));
        block
            .add_fragment(&header, &frame[FRAME_HEADER_LEN..])
            .unwrap();
        if header.flags & FLAG_END_HEADERS != 0 {
            let block = pending.take().unwrap();
            let id = u32::from_be_bytes(block.stream_id);
            blocks.push((id, decoder.decode(&block.fragment)));
        }
    }
    (blocks, others)
}

/// Feeds `input` to a fresh [`Rewriter`] `chunk` bytes at a time and
/// returns everything it emits.
pub(crate) fn rewrite_all(input: &[u8], chunk: usize) -> Vec<u8> {
    let mut rewriter = Rewriter::new();
    let mut out = Vec::new();
    for piece in input.chunks(chunk) {
        rewriter.feed(piece);
        out.extend(rewriter.drain_output());
    }
    rewriter.finish();
    out.extend(rewriter.drain_output());
    out
}

pub(crate) fn with_fixed(headers: &Headers) -> Headers {
    let mut fixed = headers.clone();
    for (name, value) in &mut fixed {
        if name == b":authority" {
            if let Some(v) = fix_authority(value) {
                *value = v;
            }
        }
    }
    fixed
}

/// A client stream: SETTINGS, three requests (one padded with priority,
/// one split over CONTINUATION frames, one referencing the dynamic
/// entry), DATA in between.
pub(crate) fn client_stream() -> Vec<u8> {
    let mut s = PREFACE.to_vec();
    s.extend(frame(0x4, 0, 0, &[0, 4, 0, 0, 0x10, 0]));
    let mut block = Vec::new();
    indexed(&mut block, 3);
    indexed(&mut block, 6);
    literal(
        &mut block,
        0x40,
        Ok(4),
        "/etcdserverpb.Maintenance/Status",
        true,
    );
    literal(&mut block, 0x40, Ok(1), URL, true);
    literal(&mut block, 0x40, Ok(31), "application/grpc", true);
    s.extend(frame(FRAME_HEADERS, FLAG_END_HEADERS, 1, &block));
    s.extend(frame(0x0, FLAG_END_STREAM, 1, &[0, 0, 0, 0, 3, 1, 2, 3]));
    // Padded, with priority, carrying END_STREAM.
    let mut block = Vec::new();
    indexed(&mut block, 3);
    indexed(&mut block, 63); // :authority, one newer entry since
    literal(&mut block, 0x10, Err("authorization"), "secret", false);
    let mut payload = vec![3];
    payload.extend([0x80, 0, 0, 1, 15]);
    payload.extend(&block);
    payload.extend([0, 0, 0]);
    let flags = FLAG_END_HEADERS | FLAG_PADDED | FLAG_PRIORITY | FLAG_END_STREAM;
    s.extend(frame(FRAME_HEADERS, flags, 3, &payload));
    // Split over HEADERS + 2 CONTINUATIONs, :authority straddling them.
    let mut block = Vec::new();
    indexed(&mut block, 3);
    literal(&mut block, 0x00, Ok(1), "https://10.0.0.1:2379/", true);
    literal(&mut block, 0x00, Err("grpc-timeout"), "5S", false);
    s.extend(frame(FRAME_HEADERS, 0, 5, &block[..3]));
    s.extend(frame(FRAME_CONTINUATION, 0, 5, &block[3..6]));
    s.extend(frame(FRAME_CONTINUATION, FLAG_END_HEADERS, 5, &block[6..]));
    s.extend(frame(0x8, 0, 0, &[0, 0, 1, 0]));
    s
}
