//! The client→server stream parser: it waits for the connection preface,
//! then walks frames, holds each header block until its END_HEADERS, and
//! emits it rewritten (or as received). Any input it cannot follow turns it
//! into a pass-through for the rest of the connection.

use tokio::io::ReadBuf;

use crate::block::rewrite_block;
use crate::frame::{
    emit_headers, FrameHeader, PendingBlock, FLAG_END_HEADERS, FRAME_CONTINUATION, FRAME_HEADERS,
    FRAME_HEADER_LEN, MAX_HEADER_BLOCK_BYTES, PREFACE,
};
use crate::hpack::DynamicTable;
use crate::{Malformed, Parse};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Waiting for the 24-byte connection preface.
    Preface,
    /// Parsing frames.
    Frames,
    /// Not HTTP/2, or unparseable: every byte passes through.
    PassThrough,
}

/// The client→server stream parser: bytes go in through [`Rewriter::feed`]
/// and come out, rewritten where needed, through [`Rewriter::take_output`].
pub(crate) struct Rewriter {
    mode: Mode,
    input: Vec<u8>,
    input_pos: usize,
    output: Vec<u8>,
    output_pos: usize,
    /// Payload bytes of the current non-header frame still to pass through.
    skip_bytes: usize,
    pending: Option<PendingBlock>,
    table: DynamicTable,
}

impl Rewriter {
    pub(crate) fn new() -> Self {
        Self {
            mode: Mode::Preface,
            input: Vec::new(),
            input_pos: 0,
            output: Vec::new(),
            output_pos: 0,
            skip_bytes: 0,
            pending: None,
            table: DynamicTable::new(),
        }
    }

    pub(crate) fn has_output(&self) -> bool {
        self.output_pos < self.output.len()
    }

    pub(crate) fn take_output(&mut self, buf: &mut ReadBuf<'_>) {
        let ready = &self.output[self.output_pos..];
        let n = ready.len().min(buf.remaining());
        buf.put_slice(&ready[..n]);
        self.output_pos += n;
        if self.output_pos == self.output.len() {
            self.output.clear();
            self.output_pos = 0;
        }
    }

    /// Everything emitted so far (tests read the output without a
    /// `ReadBuf`).
    #[cfg(test)]
    pub(crate) fn drain_output(&mut self) -> Vec<u8> {
        let out = self.output.split_off(self.output_pos);
        self.output.clear();
        self.output_pos = 0;
        out
    }

    /// How many bytes may be read past the rewriter, if any: the rest of a
    /// non-header frame's payload, or everything once passing through.
    pub(crate) fn direct_read_limit(&self) -> Option<usize> {
        if self.has_output() || self.input_pos < self.input.len() {
            return None;
        }
        match self.mode {
            Mode::PassThrough => Some(usize::MAX),
            Mode::Frames if self.skip_bytes > 0 => Some(self.skip_bytes),
            _ => None,
        }
    }

    pub(crate) fn consumed_directly(&mut self, n: usize) {
        self.skip_bytes = self.skip_bytes.saturating_sub(n);
    }

    pub(crate) fn feed(&mut self, data: &[u8]) {
        self.input.extend_from_slice(data);
        loop {
            let step = match self.mode {
                Mode::Preface => self.step_preface(),
                Mode::Frames => self.step_frame(),
                Mode::PassThrough => Ok(false),
            };
            match step {
                Ok(true) => {}
                Ok(false) => break,
                Err(Malformed) => {
                    self.pass_through();
                    break;
                }
            }
        }
        if self.mode == Mode::PassThrough {
            self.pass_through();
        }
        self.input.drain(..self.input_pos);
        self.input_pos = 0;
    }

    /// End of stream: whatever is left goes out as received.
    pub(crate) fn finish(&mut self) {
        self.pass_through();
    }

    fn pass_through(&mut self) {
        self.mode = Mode::PassThrough;
        if let Some(pending) = self.pending.take() {
            self.output.extend_from_slice(&pending.raw);
        }
        self.output.extend_from_slice(&self.input[self.input_pos..]);
        self.input.clear();
        self.input_pos = 0;
    }

    /// Returns whether progress was made; `Err` if this is not HTTP/2.
    fn step_preface(&mut self) -> Parse<bool> {
        let available = &self.input[self.input_pos..];
        let n = available.len().min(PREFACE.len());
        if available[..n] != PREFACE[..n] {
            return Err(Malformed);
        }
        if n < PREFACE.len() {
            return Ok(false);
        }
        self.output.extend_from_slice(PREFACE);
        self.input_pos += PREFACE.len();
        self.mode = Mode::Frames;
        Ok(true)
    }

    /// Handles one frame (or part of a non-header frame's payload).
    fn step_frame(&mut self) -> Parse<bool> {
        let available = &self.input[self.input_pos..];
        if self.skip_bytes > 0 {
            let n = self.skip_bytes.min(available.len());
            self.output.extend_from_slice(&available[..n]);
            self.input_pos += n;
            self.skip_bytes -= n;
            return Ok(n > 0);
        }
        let Some(head) = available.first_chunk::<FRAME_HEADER_LEN>() else {
            return Ok(false);
        };
        let header = FrameHeader::parse(head);
        if let Some(pending) = &self.pending {
            if header.kind != FRAME_CONTINUATION || header.stream_id != pending.stream_id {
                return Err(Malformed);
            }
        }
        if header.kind != FRAME_HEADERS && header.kind != FRAME_CONTINUATION {
            self.output.extend_from_slice(head);
            self.input_pos += FRAME_HEADER_LEN;
            self.skip_bytes = header.len;
            return Ok(true);
        }
        if header.len > MAX_HEADER_BLOCK_BYTES {
            return Err(Malformed);
        }
        let Some(frame) = available.get(..FRAME_HEADER_LEN + header.len) else {
            return Ok(false);
        };
        let frame = frame.to_vec();
        self.input_pos += frame.len();
        self.on_block_frame(&header, &frame)?;
        Ok(true)
    }

    /// Takes a HEADERS or CONTINUATION frame. On `Err` the frame is held in
    /// `pending.raw`, so passing through loses nothing.
    fn on_block_frame(&mut self, header: &FrameHeader, frame: &[u8]) -> Parse<()> {
        let mut pending = match (header.kind, self.pending.take()) {
            (FRAME_CONTINUATION, Some(pending)) => pending,
            (FRAME_CONTINUATION, None) => {
                // A stray CONTINUATION is h2's to reject.
                self.output.extend_from_slice(frame);
                return Ok(());
            }
            _ => PendingBlock::new(header),
        };
        pending.raw.extend_from_slice(frame);
        let added = pending.add_fragment(header, &frame[FRAME_HEADER_LEN..]);
        self.pending = Some(pending);
        added?;
        if header.flags & FLAG_END_HEADERS == 0 {
            return Ok(());
        }
        let Some(pending) = &self.pending else {
            return Ok(());
        };
        match rewrite_block(&mut self.table, &pending.fragment)? {
            None => self.output.extend_from_slice(&pending.raw),
            Some(block) => emit_headers(&mut self.output, pending, &block),
        }
        self.pending = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::frame::{FLAG_END_STREAM, FLAG_PADDED, MAX_FRAME_SIZE_BYTES};
    use crate::testkit::*;

    use super::*;

    #[test]
    fn stream_rewrites_and_keeps_everything_else() {
        let input = client_stream();
        let (blocks_in, others_in) = decode_stream(&input);
        let output = rewrite_all(&input, input.len());
        let (blocks_out, others_out) = decode_stream(&output);
        assert_eq!(others_out, others_in, "non-header frames are untouched");
        assert_eq!(blocks_out.len(), 3);
        for ((id_in, h_in), (id_out, h_out)) in blocks_in.iter().zip(&blocks_out) {
            assert_eq!(id_in, id_out);
            assert_eq!(h_out, &with_fixed(h_in));
        }
        let authority = |h: &Headers| {
            h.iter()
                .find(|(n, _)| n == b":authority")
                .unwrap()
                .1
                .clone()
        };
        assert_eq!(authority(&blocks_out[0].1), FIXED.as_bytes());
        assert_eq!(authority(&blocks_out[1].1), FIXED.as_bytes());
        assert_eq!(authority(&blocks_out[2].1), b"https:::@10.0.0.1:2379");
        // Any chunking gives the same bytes.
        for chunk in [1, 2, 7, 9, 10, 100] {
            assert_eq!(rewrite_all(&input, chunk), output, "chunk {chunk}");
        }
    }

    #[test]
    fn stream_without_url_authority_is_byte_identical() {
        let mut s = PREFACE.to_vec();
        let mut block = Vec::new();
        indexed(&mut block, 3);
        literal(&mut block, 0x40, Ok(1), "127.0.0.1:2379", true);
        s.extend(frame(
            FRAME_HEADERS,
            FLAG_END_HEADERS | FLAG_PADDED,
            1,
            &[[1].as_slice(), &block, &[0]].concat(),
        ));
        s.extend(frame(0x0, 0, 1, b"\0\0\0\0\0"));
        for chunk in [1, 5, s.len()] {
            assert_eq!(rewrite_all(&s, chunk), s);
        }
    }

    #[test]
    fn non_http2_and_garbage_pass_through() {
        let http1 = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1:2379\r\n\r\n".to_vec();
        assert_eq!(rewrite_all(&http1, 1), http1);
        let almost = b"PRI * HTTP/1.1\r\n\r\n".to_vec();
        assert_eq!(rewrite_all(&almost, 3), almost);
        let short = b"PRI".to_vec();
        assert_eq!(rewrite_all(&short, 1), short);
        // Broken HPACK, then a valid request that would otherwise be
        // rewritten: everything passes as received.
        let mut s = PREFACE.to_vec();
        s.extend(frame(FRAME_HEADERS, FLAG_END_HEADERS, 1, &[0x41, 0x7f]));
        s.extend_from_slice(&client_stream()[24..]);
        assert_eq!(rewrite_all(&s, 1), s);
        // Padding longer than the payload.
        let mut s = PREFACE.to_vec();
        s.extend(frame(
            FRAME_HEADERS,
            FLAG_END_HEADERS | FLAG_PADDED,
            1,
            &[9, 0x82],
        ));
        assert_eq!(rewrite_all(&s, 4), s);
        // CONTINUATION expected, DATA seen.
        let mut s = PREFACE.to_vec();
        s.extend(frame(FRAME_HEADERS, 0, 1, &[0x82]));
        s.extend(frame(0x0, 0, 1, b"x"));
        assert_eq!(rewrite_all(&s, 1), s);
        // A frame too large to inspect.
        let mut s = PREFACE.to_vec();
        s.extend_from_slice(&[0xff, 0xff, 0xff, FRAME_HEADERS, 0, 0, 0, 0, 1, 0x82]);
        assert_eq!(rewrite_all(&s, 2), s);
    }

    #[test]
    fn end_stream_flag_survives_a_rewrite() {
        let mut block = Vec::new();
        literal(&mut block, 0x00, Ok(1), URL, false);
        let mut s = PREFACE.to_vec();
        s.extend(frame(
            FRAME_HEADERS,
            FLAG_END_HEADERS | FLAG_END_STREAM,
            7,
            &block,
        ));
        let output = rewrite_all(&s, 3);
        assert_ne!(output, s);
        let flags = output[PREFACE.len() + 4];
        assert_eq!(flags, FLAG_END_HEADERS | FLAG_END_STREAM);
        assert_eq!(&output[PREFACE.len() + 5..PREFACE.len() + 9], [0, 0, 0, 7]);
    }

    #[test]
    fn large_block_is_split_into_continuations() {
        let mut block = Vec::new();
        literal(&mut block, 0x00, Ok(1), URL, true);
        let filler = "x".repeat(MAX_FRAME_SIZE_BYTES * 2);
        literal(&mut block, 0x00, Err("x-filler"), &filler, false);
        let mut s = PREFACE.to_vec();
        s.extend(frame(FRAME_HEADERS, 0, 1, &block[..MAX_FRAME_SIZE_BYTES]));
        s.extend(frame(
            FRAME_CONTINUATION,
            0,
            1,
            &block[MAX_FRAME_SIZE_BYTES..2 * MAX_FRAME_SIZE_BYTES],
        ));
        s.extend(frame(
            FRAME_CONTINUATION,
            FLAG_END_HEADERS,
            1,
            &block[2 * MAX_FRAME_SIZE_BYTES..],
        ));
        let output = rewrite_all(&s, 1000);
        let (blocks, _) = decode_stream(&output);
        assert_eq!(blocks[0].1[0].1, FIXED.as_bytes());
        assert_eq!(blocks[0].1[1].1, filler.as_bytes());
        assert!(output.len() > s.len());
    }
}
