//! The server side: delivery through `AuthorityFixIo`, frame parsing,
//! decoding.

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use ironcd_h2_authority::AuthorityFixIo;
use tokio::io::{AsyncRead, ReadBuf};

use super::cases::Delivery;
use super::*;

/// A socket that hands out `chunks`-sized reads, each after a `Pending`.
struct Trickle<'a> {
    data: &'a [u8],
    pos: usize,
    chunks: &'a [usize],
    turn: usize,
    ready: bool,
}

impl AsyncRead for Trickle<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if !this.ready {
            this.ready = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        this.ready = false;
        let chunk = this.chunks[this.turn % this.chunks.len()];
        this.turn += 1;
        let n = chunk.min(this.data.len() - this.pos).min(buf.remaining());
        buf.put_slice(&this.data[this.pos..this.pos + n]);
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}

/// Everything h2 would read from the wrapped connection.
pub fn read_through(data: &[u8], delivery: &Delivery) -> Vec<u8> {
    let socket = Trickle {
        data,
        pos: 0,
        chunks: &delivery.chunks,
        turn: 0,
        ready: false,
    };
    let mut io = AuthorityFixIo::new(socket);
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = Vec::new();
    let mut storage = Vec::new();
    // Every second poll of the socket is Pending; each Ready read moves at
    // least one byte until the end, so this bounds the loop.
    let max_polls = 4 * (data.len() + 2) * 2;
    for turn in 0..max_polls {
        let size = delivery.reads[turn % delivery.reads.len()];
        storage.resize(size, 0);
        let mut buf = ReadBuf::new(&mut storage);
        match Pin::new(&mut io).poll_read(&mut cx, &mut buf) {
            Poll::Pending => continue,
            Poll::Ready(result) => result.expect("reads from memory do not fail"),
        }
        if buf.filled().is_empty() {
            return out;
        }
        out.extend_from_slice(buf.filled());
    }
    panic!("no end of stream after {max_polls} polls");
}

#[derive(Debug)]
pub struct SeenBlock {
    pub stream_id: u32,
    pub end_stream: bool,
    pub priority: Option<[u8; 5]>,
    pub fragment: Vec<u8>,
}

/// Splits a client stream into header blocks (padding and priority taken
/// out, fragments joined) and the other frames, as h2's framing would.
pub fn parse_frames(stream: &[u8]) -> Result<(Vec<SeenBlock>, Vec<Vec<u8>>), String> {
    let body = stream
        .strip_prefix(PREFACE)
        .ok_or("no connection preface")?;
    let mut pos = 0;
    let mut blocks = Vec::new();
    let mut others = Vec::new();
    let mut open: Option<SeenBlock> = None;
    while pos < body.len() {
        let head = body.get(pos..pos + 9).ok_or("truncated frame header")?;
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let (kind, flags) = (head[3], head[4]);
        let stream_id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]);
        let frame = body.get(pos..pos + 9 + len).ok_or("truncated frame")?;
        pos += frame.len();
        let mut payload = &frame[9..];
        match (kind, open.as_mut()) {
            (CONTINUATION, Some(block)) if block.stream_id == stream_id => {
                block.fragment.extend_from_slice(payload);
            }
            (_, Some(_)) => return Err("header block interrupted".into()),
            (HEADERS, None) => {
                let mut pad = 0;
                if flags & PADDED != 0 {
                    let (&n, rest) = payload.split_first().ok_or("no pad length")?;
                    pad = usize::from(n);
                    payload = rest;
                }
                let mut priority = None;
                if flags & PRIORITY != 0 {
                    let fields = payload.get(..5).ok_or("no priority")?;
                    priority = Some(fields.try_into().expect("5 bytes"));
                    payload = &payload[5..];
                }
                let end = payload.len().checked_sub(pad).ok_or("padding too long")?;
                open = Some(SeenBlock {
                    stream_id,
                    end_stream: flags & END_STREAM != 0,
                    priority,
                    fragment: payload[..end].to_vec(),
                });
            }
            (CONTINUATION, None) => return Err("stray CONTINUATION".into()),
            _ => others.push(frame.to_vec()),
        }
        if matches!(kind, HEADERS | CONTINUATION) && flags & END_HEADERS != 0 {
            blocks.extend(open.take());
        }
    }
    if open.is_some() {
        return Err("header block not ended".into());
    }
    Ok((blocks, others))
}

pub fn decoder() -> fluke_hpack::Decoder<'static> {
    let mut decoder = fluke_hpack::Decoder::new();
    decoder.set_max_allowed_table_size(usize::from(TABLE_SIZE_BYTES));
    decoder
}
