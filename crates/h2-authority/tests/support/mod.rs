//! What the property tests share: the cases (`cases`), the client that
//! encodes and frames them (`client`), and the server side that reads them
//! through [`AuthorityFixIo`](ironcd_h2_authority::AuthorityFixIo) and
//! parses what comes out (`server`). None of it uses the crate's own HPACK
//! or framing code.

pub mod cases;
pub mod client;
pub mod server;

pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;
pub const END_STREAM: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const PADDED: u8 = 0x8;
pub const PRIORITY: u8 = 0x20;
/// SETTINGS_HEADER_TABLE_SIZE's default, which h2 keeps.
pub const TABLE_SIZE_BYTES: u16 = 4096;
pub const STATIC_ENTRIES: u32 = 61;
/// `http::uri::Authority` takes at most this many trailing slashes turned
/// into userinfo colons (8 colons, two of them from `://`).
pub const MAX_REPAIRABLE_SLASHES: usize = 6;

/// A decoded header list.
pub type Headers = Vec<(Vec<u8>, Vec<u8>)>;

pub fn write_frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream_id: u32, payload: &[u8]) {
    let len = u32::try_from(payload.len()).expect("test frames are small");
    assert!(len < 1 << 24);
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream_id.to_be_bytes());
    out.extend_from_slice(payload);
}
