//! Accepts the `:authority` that etcdctl 3.4 sends.
//!
//! grpc-go's clientv3 in etcd 3.4 (etcd issue #13192) sends the whole
//! endpoint URL, `http://127.0.0.1:2379`, as the HTTP/2 `:authority`. etcd's
//! Go server takes it; `h2` resets the stream as a "malformed authority".
//! [`AuthorityFixListener`] wraps every accepted connection in
//! [`AuthorityFixIo`], which rewrites that value in the client→server byte
//! stream, before h2 sees it, into a valid authority of the same length:
//!
//! ```text
//! http://127.0.0.1:2379    →  http::@127.0.0.1:2379    (userinfo "http::")
//! https://h:2379/          →  https:::@h:2379          (trailing '/' becomes ':')
//! ```
//!
//! The length must not change: HPACK (RFC 7541) charges every dynamic-table
//! entry `name + value + 32` bytes, so the client's encoder table and h2's
//! decoder table only stay in step if each value keeps its length. The shim
//! mirrors the table (names and sizes only) to recognise later references to
//! an `:authority` entry; indexed references need no rewrite because the
//! decoder's copy already holds the rewritten value.
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
//! Anything that does not start with the preface (HTTP/1.1 `/health`) and
//! anything that fails to parse passes through untouched for the rest of the
//! connection, so h2 reports its own error. Writes are never touched.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER_LEN: usize = 9;
const FRAME_HEADERS: u8 = 0x1;
const FRAME_CONTINUATION: u8 = 0x9;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;
const PRIORITY_LEN: usize = 5;
/// Largest frame payload the server accepts: h2's (and so hyper's) default
/// SETTINGS_MAX_FRAME_SIZE, which axum::serve does not change.
const MAX_FRAME_SIZE_BYTES: usize = 16_384;
/// Header blocks larger than this are not inspected: the connection passes
/// through untouched (h2's own header-list limit is far smaller).
const MAX_HEADER_BLOCK_BYTES: usize = 1 << 20;
/// HPACK's initial dynamic table size (SETTINGS_HEADER_TABLE_SIZE default).
const INITIAL_TABLE_SIZE_BYTES: usize = 4096;
/// RFC 7541 §4.1: an entry's size is its name and value lengths plus 32.
const ENTRY_OVERHEAD_BYTES: usize = 32;
/// Size of the buffer each socket read goes into while frames are parsed.
const READ_CHUNK_BYTES: usize = 16 * 1024;
/// `http::uri::Authority` rejects more than 8 colons before the `@`.
const MAX_USERINFO_COLONS: usize = 8;

/// Raised on any input the shim cannot follow; the connection then passes
/// through untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Malformed;

type Parse<T> = std::result::Result<T, Malformed>;

// ---------------------------------------------------------------------------
// Listener and IO wrapper
// ---------------------------------------------------------------------------

/// A client listener whose connections go through [`AuthorityFixIo`], so
/// etcdctl 3.4's URL-valued `:authority` reaches h2 as a valid authority.
pub struct AuthorityFixListener(pub TcpListener);

impl axum::serve::Listener for AuthorityFixListener {
    type Io = AuthorityFixIo<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, addr) = axum::serve::Listener::accept(&mut self.0).await;
        if let Err(e) = stream.set_nodelay(true) {
            tracing::trace!(error = %e, "failed to set TCP_NODELAY");
        }
        (AuthorityFixIo::new(stream), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// A connection whose reads go through the `:authority` rewriter and whose
/// writes go straight to `inner`.
pub struct AuthorityFixIo<S> {
    inner: S,
    rewriter: Rewriter,
    scratch: Vec<u8>,
    eof: bool,
}

impl<S> AuthorityFixIo<S> {
    /// Wraps an accepted connection.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            rewriter: Rewriter::new(),
            scratch: Vec::new(),
            eof: false,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityFixIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.rewriter.has_output() {
                this.rewriter.take_output(buf);
                return Poll::Ready(Ok(()));
            }
            if this.eof || buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            if let Some(limit) = this.rewriter.direct_read_limit() {
                return this.poll_read_direct(cx, buf, limit);
            }
            if this.scratch.is_empty() {
                this.scratch = vec![0; READ_CHUNK_BYTES];
            }
            let mut chunk = ReadBuf::new(&mut this.scratch);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut chunk))?;
            if chunk.filled().is_empty() {
                this.eof = true;
                this.rewriter.finish();
            } else {
                this.rewriter.feed(chunk.filled());
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AuthorityFixIo<S> {
    /// Reads bytes the rewriter need not see (frame payloads, or everything
    /// once passing through) straight into the caller's buffer.
    fn poll_read_direct(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
        limit: usize,
    ) -> Poll<io::Result<()>> {
        let dst = buf.initialize_unfilled_to(limit.min(buf.remaining()));
        let mut direct = ReadBuf::new(dst);
        ready!(Pin::new(&mut self.inner).poll_read(cx, &mut direct))?;
        let n = direct.filled().len();
        if n == 0 {
            self.eof = true;
        }
        buf.advance(n);
        self.rewriter.consumed_directly(n);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityFixIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

// ---------------------------------------------------------------------------
// Frame layer
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Waiting for the 24-byte connection preface.
    Preface,
    /// Parsing frames.
    Frames,
    /// Not HTTP/2, or unparseable: every byte passes through.
    PassThrough,
}

#[derive(Debug, Clone, Copy)]
struct FrameHeader {
    len: usize,
    kind: u8,
    flags: u8,
    stream_id: [u8; 4],
}

impl FrameHeader {
    fn parse(b: &[u8; FRAME_HEADER_LEN]) -> Self {
        Self {
            len: usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]),
            kind: b[3],
            flags: b[4],
            stream_id: [b[5], b[6], b[7], b[8]],
        }
    }
}

/// A header block whose END_HEADERS has not arrived yet.
struct PendingBlock {
    /// The frames exactly as received, emitted when nothing is rewritten.
    raw: Vec<u8>,
    stream_id: [u8; 4],
    /// The HEADERS frame's flags.
    flags: u8,
    priority: Option<[u8; PRIORITY_LEN]>,
    /// The header block fragments, padding and priority removed.
    fragment: Vec<u8>,
}

impl PendingBlock {
    fn new(header: &FrameHeader) -> Self {
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
    fn add_fragment(&mut self, header: &FrameHeader, payload: &[u8]) -> Parse<()> {
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

/// The client→server stream parser: bytes go in through [`Rewriter::feed`]
/// and come out, rewritten where needed, through [`Rewriter::take_output`].
struct Rewriter {
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
    fn new() -> Self {
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

    fn has_output(&self) -> bool {
        self.output_pos < self.output.len()
    }

    fn take_output(&mut self, buf: &mut ReadBuf<'_>) {
        let ready = &self.output[self.output_pos..];
        let n = ready.len().min(buf.remaining());
        buf.put_slice(&ready[..n]);
        self.output_pos += n;
        if self.output_pos == self.output.len() {
            self.output.clear();
            self.output_pos = 0;
        }
    }

    /// How many bytes may be read past the rewriter, if any: the rest of a
    /// non-header frame's payload, or everything once passing through.
    fn direct_read_limit(&self) -> Option<usize> {
        if self.has_output() || self.input_pos < self.input.len() {
            return None;
        }
        match self.mode {
            Mode::PassThrough => Some(usize::MAX),
            Mode::Frames if self.skip_bytes > 0 => Some(self.skip_bytes),
            _ => None,
        }
    }

    fn consumed_directly(&mut self, n: usize) {
        self.skip_bytes = self.skip_bytes.saturating_sub(n);
    }

    fn feed(&mut self, data: &[u8]) {
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
    fn finish(&mut self) {
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

/// Writes `block` as one HEADERS frame, followed by CONTINUATION frames if
/// it does not fit; padding is dropped, priority and END_STREAM are kept.
fn emit_headers(out: &mut Vec<u8>, pending: &PendingBlock, block: &[u8]) {
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

fn write_frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream_id: [u8; 4], payload: &[u8]) {
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

// ---------------------------------------------------------------------------
// HPACK (RFC 7541)
// ---------------------------------------------------------------------------

/// Names of the static table, RFC 7541 Appendix A, index 1 first.
const STATIC_NAMES: [&str; 61] = [
    ":authority",
    ":method",
    ":method",
    ":path",
    ":path",
    ":scheme",
    ":scheme",
    ":status",
    ":status",
    ":status",
    ":status",
    ":status",
    ":status",
    ":status",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "accept",
    "access-control-allow-origin",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-range",
    "content-type",
    "cookie",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "link",
    "location",
    "max-forwards",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "refresh",
    "retry-after",
    "server",
    "set-cookie",
    "strict-transport-security",
    "transfer-encoding",
    "user-agent",
    "vary",
    "via",
    "www-authenticate",
];

/// What the shim needs to know of a dynamic-table entry.
#[derive(Debug, Clone, Copy)]
struct Entry {
    is_authority: bool,
    name_len: usize,
    size: usize,
}

/// A mirror of the decoder's dynamic table, names and sizes only; newest
/// entry first, as HPACK indexes them.
struct DynamicTable {
    entries: VecDeque<Entry>,
    size: usize,
    max_size: usize,
}

impl DynamicTable {
    fn new() -> Self {
        Self {
            entries: VecDeque::new(),
            size: 0,
            max_size: INITIAL_TABLE_SIZE_BYTES,
        }
    }

    /// Whether the name at `index` (static or dynamic) is `:authority`, and
    /// its length.
    fn name(&self, index: usize) -> Parse<(bool, usize)> {
        match index {
            0 => Err(Malformed),
            1..=61 => Ok((index == 1, STATIC_NAMES[index - 1].len())),
            _ => {
                let entry = self.entries.get(index - 62).ok_or(Malformed)?;
                Ok((entry.is_authority, entry.name_len))
            }
        }
    }

    fn insert(&mut self, is_authority: bool, name_len: usize, value_len: usize) {
        let size = name_len + value_len + ENTRY_OVERHEAD_BYTES;
        self.evict_to(self.max_size.saturating_sub(size));
        if size > self.max_size {
            return;
        }
        self.entries.push_front(Entry {
            is_authority,
            name_len,
            size,
        });
        self.size += size;
    }

    fn set_max_size(&mut self, max_size: usize) {
        self.max_size = max_size;
        self.evict_to(max_size);
    }

    fn evict_to(&mut self, limit: usize) {
        while self.size > limit {
            let Some(oldest) = self.entries.pop_back() else {
                break;
            };
            self.size -= oldest.size;
        }
    }
}

/// Decodes an integer with an `prefix_bits`-bit prefix (RFC 7541 §5.1).
fn decode_int(block: &[u8], pos: &mut usize, prefix_bits: u32) -> Parse<usize> {
    let first = *block.get(*pos).ok_or(Malformed)?;
    *pos += 1;
    let max_prefix = (1usize << prefix_bits) - 1;
    let mut value = usize::from(first) & max_prefix;
    if value < max_prefix {
        return Ok(value);
    }
    let mut shift = 0;
    loop {
        let byte = *block.get(*pos).ok_or(Malformed)?;
        *pos += 1;
        if shift > 28 {
            return Err(Malformed);
        }
        value += usize::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
}

/// Encodes `value` with a `prefix_bits`-bit prefix; `high_bits` are the
/// first byte's bits above the prefix.
fn encode_int(out: &mut Vec<u8>, high_bits: u8, prefix_bits: u32, value: usize) {
    let max_prefix = (1usize << prefix_bits) - 1;
    if value < max_prefix {
        out.push(high_bits | low_byte(value));
        return;
    }
    out.push(high_bits | low_byte(max_prefix));
    let mut rest = value - max_prefix;
    while rest >= 0x80 {
        out.push(0x80 | low_byte(rest & 0x7f));
        rest >>= 7;
    }
    out.push(low_byte(rest));
}

fn low_byte(value: usize) -> u8 {
    (value & 0xff) as u8
}

/// Where a string literal lies in a header block.
#[derive(Debug, Clone, Copy)]
struct StringLiteral {
    /// First byte of the representation (the H bit and length).
    start: usize,
    data_start: usize,
    end: usize,
    huffman: bool,
}

impl StringLiteral {
    fn read(block: &[u8], pos: &mut usize) -> Parse<Self> {
        let start = *pos;
        let huffman = block.get(start).ok_or(Malformed)? & 0x80 != 0;
        let len = decode_int(block, pos, 7)?;
        let data_start = *pos;
        let end = data_start.checked_add(len).ok_or(Malformed)?;
        if end > block.len() {
            return Err(Malformed);
        }
        *pos = end;
        Ok(Self {
            start,
            data_start,
            end,
            huffman,
        })
    }

    fn decode(&self, block: &[u8]) -> Parse<Vec<u8>> {
        let data = &block[self.data_start..self.end];
        if self.huffman {
            huffman_decode(data)
        } else {
            Ok(data.to_vec())
        }
    }
}

/// Appends `value` as a string literal, Huffman-coded when that is shorter.
fn encode_string(out: &mut Vec<u8>, value: &[u8]) {
    if huffman_encoded_len(value) < value.len() {
        let coded = huffman_encode(value);
        encode_int(out, 0x80, 7, coded.len());
        out.extend_from_slice(&coded);
    } else {
        encode_int(out, 0, 7, value.len());
        out.extend_from_slice(value);
    }
}

/// Walks one complete header block, keeping `table` in step with the
/// decoder's, and returns the block with every URL-valued `:authority`
/// rewritten, or `None` if nothing needed rewriting.
fn rewrite_block(table: &mut DynamicTable, block: &[u8]) -> Parse<Option<Vec<u8>>> {
    let mut pos = 0;
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    while let Some(&first) = block.get(pos) {
        if first & 0x80 != 0 {
            // Indexed field: the decoder's table already holds the value.
            table.name(decode_int(block, &mut pos, 7)?)?;
            continue;
        }
        if first & 0xe0 == 0x20 {
            table.set_max_size(decode_int(block, &mut pos, 5)?);
            continue;
        }
        let indexing = first & 0xc0 == 0x40;
        let name_index = decode_int(block, &mut pos, if indexing { 6 } else { 4 })?;
        let (is_authority, name_len) = if name_index == 0 {
            let name = StringLiteral::read(block, &mut pos)?.decode(block)?;
            (name == b":authority", name.len())
        } else {
            table.name(name_index)?
        };
        let value = StringLiteral::read(block, &mut pos)?;
        let mut value_len = None;
        if is_authority {
            let decoded = value.decode(block)?;
            value_len = Some(decoded.len());
            if let Some(fixed) = fix_authority(&decoded) {
                let out = out.get_or_insert_with(|| Vec::with_capacity(block.len() + 8));
                out.extend_from_slice(&block[copied..value.start]);
                encode_string(out, &fixed);
                copied = value.end;
            }
        }
        if indexing {
            let value_len = match value_len {
                Some(len) => len,
                None => value.decode(block)?.len(),
            };
            table.insert(is_authority, name_len, value_len);
        }
    }
    Ok(out.map(|mut out| {
        out.extend_from_slice(&block[copied..]);
        out
    }))
}

/// `scheme://host:port` → `scheme::@host:port`, the same length; trailing
/// slashes become extra userinfo colons. `None` for anything else.
fn fix_authority(value: &[u8]) -> Option<Vec<u8>> {
    let scheme_len = if value.starts_with(b"http://") {
        4
    } else if value.starts_with(b"https://") {
        5
    } else {
        return None;
    };
    let rest = &value[scheme_len + 3..];
    let mut host_port = rest;
    while let Some(trimmed) = host_port.strip_suffix(b"/") {
        host_port = trimmed;
    }
    let colons = 2 + rest.len() - host_port.len();
    let unusable = |b: &u8| matches!(b, b'/' | b'?' | b'#' | b'@');
    if host_port.is_empty() || host_port.iter().any(unusable) || colons > MAX_USERINFO_COLONS {
        return None;
    }
    let mut fixed = Vec::with_capacity(value.len());
    fixed.extend_from_slice(&value[..scheme_len]);
    fixed.resize(scheme_len + colons, b':');
    fixed.push(b'@');
    fixed.extend_from_slice(host_port);
    assert_eq!(fixed.len(), value.len(), "rewrite must keep the length");
    Some(fixed)
}

// ---------------------------------------------------------------------------
// Huffman code (RFC 7541 Appendix B)
// ---------------------------------------------------------------------------

/// Code length in bits of symbols 0..=255 and EOS (256), RFC 7541
/// Appendix B. The code is canonical (codes ordered by length, then
/// symbol), so the codes follow from these lengths.
#[rustfmt::skip]
const HUFFMAN_CODE_LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
    30,
];
const EOS: u16 = 256;
const MAX_CODE_LEN: usize = 30;

/// The canonical Huffman code built from [`HUFFMAN_CODE_LENGTHS`].
struct HuffmanCode {
    codes: [u32; 257],
    /// Symbols ordered by (code length, symbol).
    sorted: Vec<u16>,
    /// Per code length: the first code, its position in `sorted`, and how
    /// many codes have that length.
    first_code: [u32; MAX_CODE_LEN + 1],
    first_index: [usize; MAX_CODE_LEN + 1],
    count: [u32; MAX_CODE_LEN + 1],
}

fn huffman() -> &'static HuffmanCode {
    static CODE: OnceLock<HuffmanCode> = OnceLock::new();
    CODE.get_or_init(HuffmanCode::build)
}

impl HuffmanCode {
    fn build() -> Self {
        let mut sorted: Vec<u16> = (0..=EOS).collect();
        sorted.sort_by_key(|&s| (HUFFMAN_CODE_LENGTHS[usize::from(s)], s));
        let mut code = Self {
            codes: [0; 257],
            sorted,
            first_code: [0; MAX_CODE_LEN + 1],
            first_index: [0; MAX_CODE_LEN + 1],
            count: [0; MAX_CODE_LEN + 1],
        };
        let mut next: u32 = 0;
        let mut prev_len = 0;
        for (i, &symbol) in code.sorted.iter().enumerate() {
            let len = HUFFMAN_CODE_LENGTHS[usize::from(symbol)];
            if i > 0 {
                next = (next + 1) << (len - prev_len);
            }
            let len = usize::from(len);
            if code.count[len] == 0 {
                code.first_code[len] = next;
                code.first_index[len] = i;
            }
            code.count[len] += 1;
            code.codes[usize::from(symbol)] = next;
            prev_len = HUFFMAN_CODE_LENGTHS[usize::from(symbol)];
        }
        assert_eq!(code.codes[usize::from(EOS)], 0x3fff_ffff, "EOS is 30 ones");
        code
    }
}

fn huffman_encoded_len(src: &[u8]) -> usize {
    let bits: usize = src
        .iter()
        .map(|&b| usize::from(HUFFMAN_CODE_LENGTHS[usize::from(b)]))
        .sum();
    bits.div_ceil(8)
}

fn huffman_encode(src: &[u8]) -> Vec<u8> {
    let code = huffman();
    let mut out = Vec::with_capacity(huffman_encoded_len(src));
    let mut acc: u64 = 0;
    let mut bits: u32 = 0;
    for &b in src {
        let len = u32::from(HUFFMAN_CODE_LENGTHS[usize::from(b)]);
        acc = (acc << len) | u64::from(code.codes[usize::from(b)]);
        bits += len;
        while bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        // Pad with the most significant bits of EOS (all ones).
        let pad = 8 - bits;
        out.push((((acc << pad) | ((1 << pad) - 1)) & 0xff) as u8);
    }
    out
}

fn huffman_decode(src: &[u8]) -> Parse<Vec<u8>> {
    let code = huffman();
    let mut out = Vec::with_capacity(src.len() * 8 / 5);
    let mut acc: u32 = 0;
    let mut len = 0;
    for &byte in src {
        for shift in (0..8).rev() {
            acc = (acc << 1) | u32::from((byte >> shift) & 1);
            len += 1;
            if len > MAX_CODE_LEN {
                return Err(Malformed);
            }
            let offset = acc.wrapping_sub(code.first_code[len]);
            if offset < code.count[len] {
                let index = code.first_index[len] + offset as usize;
                let symbol = code.sorted[index];
                out.push(u8::try_from(symbol).map_err(|_| Malformed)?);
                acc = 0;
                len = 0;
            }
        }
    }
    // What is left must be padding: fewer than 8 bits, all ones.
    if len > 7 || acc != (1 << len) - 1 {
        return Err(Malformed);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::uri::Authority;
    use rand::{Rng, SeedableRng};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    type Headers = Vec<(Vec<u8>, Vec<u8>)>;

    const URL: &str = "http://127.0.0.1:2379";
    const FIXED: &str = "http::@127.0.0.1:2379";

    // --- builders -------------------------------------------------------

    fn string(out: &mut Vec<u8>, s: &[u8], huffman: bool) {
        if huffman {
            let coded = huffman_encode(s);
            encode_int(out, 0x80, 7, coded.len());
            out.extend_from_slice(&coded);
        } else {
            encode_int(out, 0, 7, s.len());
            out.extend_from_slice(s);
        }
    }

    fn indexed(out: &mut Vec<u8>, index: usize) {
        encode_int(out, 0x80, 7, index);
    }

    /// Literal representation: `high_bits` 0x40 (incremental indexing), 0x00
    /// (without indexing) or 0x10 (never indexed); `name` is a table index
    /// or a literal name.
    fn literal(
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

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_frame(&mut out, kind, flags, stream.to_be_bytes(), payload);
        out
    }

    // --- a full decoder, to check what h2 will see ----------------------

    fn static_entry(index: usize) -> (Vec<u8>, Vec<u8>) {
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

    struct TestDecoder {
        table: VecDeque<(Vec<u8>, Vec<u8>)>,
        max_size: usize,
    }

    impl TestDecoder {
        fn new() -> Self {
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

        fn size(&self) -> usize {
            self.table.iter().map(|(n, v)| n.len() + v.len() + 32).sum()
        }

        fn evict(&mut self) {
            while self.size() > self.max_size {
                self.table.pop_back();
            }
        }

        fn decode(&mut self, block: &[u8]) -> Headers {
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
    fn decode_stream(stream: &[u8]) -> (Vec<(u32, Headers)>, Vec<Vec<u8>>) {
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

    fn rewrite_all(input: &[u8], chunk: usize) -> Vec<u8> {
        let mut rewriter = Rewriter::new();
        let mut out = Vec::new();
        for piece in input.chunks(chunk) {
            rewriter.feed(piece);
            out.extend_from_slice(&rewriter.output[rewriter.output_pos..]);
            rewriter.output.clear();
            rewriter.output_pos = 0;
        }
        rewriter.finish();
        out.extend_from_slice(&rewriter.output);
        out
    }

    fn with_fixed(headers: &Headers) -> Headers {
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

    // --- tests ----------------------------------------------------------

    #[test]
    fn rewritten_authorities_parse() {
        for ok in [
            FIXED,
            "https::@127.0.0.1:2379",
            "http:::@h:1",
            "http::@[::1]:2379",
            "http::@localhost",
        ] {
            let parsed = Authority::from_static(ok);
            assert_eq!(parsed.as_str(), ok);
            assert!(Authority::from_maybe_shared(axum::body::Bytes::from(ok)).is_ok());
        }
        assert_eq!(Authority::from_static(FIXED).host(), "127.0.0.1");
        assert_eq!(Authority::from_static(FIXED).port_u16(), Some(2379));
        assert!(
            URL.parse::<Authority>().is_err(),
            "the original is rejected"
        );
    }

    #[test]
    fn fix_authority_keeps_length() {
        let cases = [
            ("http://127.0.0.1:2379", Some("http::@127.0.0.1:2379")),
            ("https://h:2379", Some("https::@h:2379")),
            ("https://h:2379/", Some("https:::@h:2379")),
            ("http://[::1]:2379//", Some("http::::@[::1]:2379")),
            ("http://h/path", None),
            ("http://u@h:1", None),
            ("http://", None),
            ("127.0.0.1:2379", None),
            ("unix://sock", None),
        ];
        for (input, want) in cases {
            let got = fix_authority(input.as_bytes());
            assert_eq!(got.as_deref(), want.map(str::as_bytes), "{input}");
            if let Some(got) = got {
                assert_eq!(got.len(), input.len());
                Authority::from_maybe_shared(got).expect(input);
            }
        }
    }

    #[test]
    fn huffman_matches_rfc_examples() {
        let cases: [(&str, &str); 5] = [
            ("www.example.com", "f1e3c2e5f23a6ba0ab90f4ff"),
            ("no-cache", "a8eb10649cbf"),
            ("custom-key", "25a849e95ba97d7f"),
            ("custom-value", "25a849e95bb8e8b4bf"),
            (
                "Mon, 21 Oct 2013 20:13:21 GMT",
                "d07abe941054d444a8200595040b8166e082a62d1bff",
            ),
        ];
        for (text, hex) in cases {
            let coded = huffman_encode(text.as_bytes());
            let got: String = coded.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(got, hex, "{text}");
            assert_eq!(huffman_encoded_len(text.as_bytes()), coded.len());
            assert_eq!(huffman_decode(&coded).unwrap(), text.as_bytes());
        }
        let code = huffman();
        assert_eq!(
            (
                code.codes[usize::from(b'0')],
                HUFFMAN_CODE_LENGTHS[usize::from(b'0')]
            ),
            (0x0, 5)
        );
        assert_eq!((code.codes[0], HUFFMAN_CODE_LENGTHS[0]), (0x1ff8, 13));
        assert_eq!(
            (code.codes[255], HUFFMAN_CODE_LENGTHS[255]),
            (0x3ffffee, 26)
        );
    }

    #[test]
    fn huffman_round_trips_every_byte_and_random_strings() {
        for b in 0..=255u8 {
            assert_eq!(huffman_decode(&huffman_encode(&[b])).unwrap(), [b]);
        }
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(huffman_decode(&huffman_encode(&all)).unwrap(), all);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..2000 {
            let len = rng.gen_range(0..64);
            let s: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            assert_eq!(huffman_decode(&huffman_encode(&s)).unwrap(), s);
        }
    }

    #[test]
    fn huffman_rejects_bad_padding_and_eos() {
        // 'a' is 00011; eleven bits of padding is too long.
        assert_eq!(huffman_decode(&[0x1f, 0xff]), Err(Malformed));
        // Padding must be ones.
        assert_eq!(huffman_decode(&[0x18]), Err(Malformed));
        // A whole EOS symbol.
        assert_eq!(huffman_decode(&[0xff, 0xff, 0xff, 0xff]), Err(Malformed));
        assert_eq!(huffman_decode(&[0x1f]).unwrap(), b"a");
    }

    #[test]
    fn integers_round_trip() {
        for prefix in [4, 5, 6, 7] {
            for value in [
                0,
                1,
                14,
                15,
                16,
                30,
                31,
                62,
                63,
                126,
                127,
                128,
                1337,
                4096,
                1 << 20,
            ] {
                let mut out = Vec::new();
                encode_int(&mut out, 0, prefix, value);
                let mut pos = 0;
                assert_eq!(decode_int(&out, &mut pos, prefix).unwrap(), value);
                assert_eq!(pos, out.len());
            }
        }
        // RFC 7541 C.1.2: 1337 with a 5-bit prefix.
        let mut out = Vec::new();
        encode_int(&mut out, 0, 5, 1337);
        assert_eq!(out, [31, 154, 10]);
        let mut pos = 0;
        assert_eq!(
            decode_int(&[0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], &mut pos, 7),
            Err(Malformed)
        );
    }

    /// Every way `:authority` can be spelled, checked against the decoder.
    #[test]
    fn walk_rewrites_each_representation() {
        for huffman in [false, true] {
            let reps: [(u8, Result<usize, &str>); 5] = [
                (0x40, Ok(1)),
                (0x00, Ok(1)),
                (0x10, Ok(1)),
                (0x40, Err(":authority")),
                (0x00, Err(":authority")),
            ];
            for (high_bits, name) in reps {
                let mut block = Vec::new();
                indexed(&mut block, 3); // :method POST
                literal(&mut block, 0x40, Err("te"), "trailers", huffman);
                literal(&mut block, high_bits, name, URL, huffman);
                literal(
                    &mut block,
                    0x40,
                    Ok(4),
                    "/etcdserverpb.Maintenance/Status",
                    huffman,
                );
                check_block(&block, &[(":authority", FIXED)]);
            }
        }
    }

    /// Rewrites `block` with a fresh table and checks that it decodes to
    /// the original headers with `:authority` fixed.
    fn check_block(block: &[u8], want: &[(&str, &str)]) {
        let original = TestDecoder::new().decode(block);
        let rewritten = rewrite_block(&mut DynamicTable::new(), block)
            .unwrap()
            .expect("rewritten");
        let got = TestDecoder::new().decode(&rewritten);
        assert_eq!(got, with_fixed(&original));
        for (name, value) in want {
            assert!(got.contains(&(name.as_bytes().to_vec(), value.as_bytes().to_vec())));
        }
    }

    #[test]
    fn walk_follows_dynamic_table_and_size_updates() {
        let mut table = DynamicTable::new();
        let mut decoder = TestDecoder::new();
        // Block 1: a size update, then :authority added to the table.
        let mut block = Vec::new();
        encode_int(&mut block, 0x20, 5, 200);
        literal(
            &mut block,
            0x40,
            Err("user-agent-long-name"),
            "grpc-go/1.26.0",
            true,
        );
        literal(&mut block, 0x40, Ok(1), URL, true);
        let rewritten = rewrite_block(&mut table, &block).unwrap().unwrap();
        assert_eq!(decoder.decode(&rewritten)[1].1, FIXED.as_bytes());
        assert_eq!(table.entries.len(), 2);
        assert_eq!(table.size, decoder.size());
        // Block 2: an indexed reference (62 = newest) and a literal value
        // under the dynamic entry's name (62 is :authority).
        let mut block = Vec::new();
        indexed(&mut block, 62);
        literal(&mut block, 0x00, Ok(62), "https://other:1", false);
        let rewritten = rewrite_block(&mut table, &block).unwrap().unwrap();
        let got = decoder.decode(&rewritten);
        assert_eq!(got[0].1, FIXED.as_bytes());
        assert_eq!(got[1].1, b"https::@other:1");
        // Block 3: this insert evicts the oldest entry (max size 200).
        let mut block = Vec::new();
        literal(
            &mut block,
            0x40,
            Ok(1),
            "https://a-much-longer-host-name.example:2379",
            false,
        );
        rewrite_block(&mut table, &block).unwrap().unwrap();
        decoder.decode(&block);
        assert_eq!(table.entries.len(), decoder.table.len());
        assert_eq!(table.size, decoder.size());
        assert!(table.entries.iter().all(|e| e.is_authority));
        // Block 4: shrinking to 0 empties the table; index 62 is gone.
        let mut block = Vec::new();
        encode_int(&mut block, 0x20, 5, 0);
        assert_eq!(rewrite_block(&mut table, &block), Ok(None));
        assert!(table.entries.is_empty());
        assert_eq!(rewrite_block(&mut table, &[0x80 | 62]), Err(Malformed));
    }

    #[test]
    fn walk_leaves_other_blocks_alone() {
        let mut block = Vec::new();
        indexed(&mut block, 2);
        literal(&mut block, 0x40, Ok(1), "127.0.0.1:2379", true);
        literal(&mut block, 0x40, Err("x-url"), URL, true);
        assert_eq!(rewrite_block(&mut DynamicTable::new(), &block), Ok(None));
        // Truncated: a string running past the end.
        assert_eq!(
            rewrite_block(&mut DynamicTable::new(), &[0x41, 0x05, b'a']),
            Err(Malformed)
        );
        assert_eq!(
            rewrite_block(&mut DynamicTable::new(), &[0x80]),
            Err(Malformed)
        );
    }

    /// A client stream: SETTINGS, three requests (one padded with priority,
    /// one split over CONTINUATION frames, one referencing the dynamic
    /// entry), DATA in between.
    fn client_stream() -> Vec<u8> {
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

    #[tokio::test]
    async fn io_wrapper_reads_byte_by_byte() {
        let input = client_stream();
        let want = rewrite_all(&input, input.len());
        let (mut client, server) = tokio::io::duplex(1);
        let writer = tokio::spawn({
            let input = input.clone();
            async move {
                client.write_all(&input).await.unwrap();
                client.shutdown().await.unwrap();
                client
            }
        });
        let mut io = AuthorityFixIo::new(server);
        let mut got = Vec::new();
        io.read_to_end(&mut got).await.unwrap();
        writer.await.unwrap();
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn io_wrapper_passes_http1_and_writes_through() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut io = AuthorityFixIo::new(server);
        let request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
        client.write_all(request).await.unwrap();
        let mut got = vec![0; request.len()];
        io.read_exact(&mut got).await.unwrap();
        assert_eq!(got, request);
        io.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        let mut reply = vec![0; 19];
        client.read_exact(&mut reply).await.unwrap();
        assert_eq!(reply, b"HTTP/1.1 200 OK\r\n\r\n");
    }
}
