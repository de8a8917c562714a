//! HPACK (RFC 7541) as far as the rewriter needs it: prefixed integers
//! (§5.1), string literals (§5.2), and a mirror of the decoder's dynamic
//! table (§4) that keeps names and sizes only.

use std::collections::VecDeque;

use crate::huffman::{huffman_decode, huffman_encode, huffman_encoded_len};
use crate::{Malformed, Parse};

/// HPACK's initial dynamic table size (SETTINGS_HEADER_TABLE_SIZE default).
pub(crate) const INITIAL_TABLE_SIZE_BYTES: usize = 4096;
/// RFC 7541 §4.1: an entry's size is its name and value lengths plus 32.
const ENTRY_OVERHEAD_BYTES: usize = 32;

/// Names of the static table, RFC 7541 Appendix A, index 1 first.
pub(crate) const STATIC_NAMES: [&str; 61] = [
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

/// What the rewriter needs to know of a dynamic-table entry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    pub(crate) is_authority: bool,
    name_len: usize,
    size: usize,
}

/// A mirror of the decoder's dynamic table, names and sizes only; newest
/// entry first, as HPACK indexes them.
pub(crate) struct DynamicTable {
    pub(crate) entries: VecDeque<Entry>,
    pub(crate) size: usize,
    max_size: usize,
}

impl DynamicTable {
    pub(crate) fn new() -> Self {
        Self {
            entries: VecDeque::new(),
            size: 0,
            max_size: INITIAL_TABLE_SIZE_BYTES,
        }
    }

    /// Whether the name at `index` (static or dynamic) is `:authority`, and
    /// its length.
    pub(crate) fn name(&self, index: usize) -> Parse<(bool, usize)> {
        match index {
            0 => Err(Malformed),
            1..=61 => Ok((index == 1, STATIC_NAMES[index - 1].len())),
            _ => {
                let entry = self.entries.get(index - 62).ok_or(Malformed)?;
                Ok((entry.is_authority, entry.name_len))
            }
        }
    }

    pub(crate) fn insert(&mut self, is_authority: bool, name_len: usize, value_len: usize) {
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

    pub(crate) fn set_max_size(&mut self, max_size: usize) {
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
pub(crate) fn decode_int(block: &[u8], pos: &mut usize, prefix_bits: u32) -> Parse<usize> {
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
pub(crate) fn encode_int(out: &mut Vec<u8>, high_bits: u8, prefix_bits: u32, value: usize) {
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
pub(crate) struct StringLiteral {
    /// First byte of the representation (the H bit and length).
    pub(crate) start: usize,
    data_start: usize,
    pub(crate) end: usize,
    huffman: bool,
}

impl StringLiteral {
    pub(crate) fn read(block: &[u8], pos: &mut usize) -> Parse<Self> {
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

    pub(crate) fn decode(&self, block: &[u8]) -> Parse<Vec<u8>> {
        let data = &block[self.data_start..self.end];
        if self.huffman {
            huffman_decode(data)
        } else {
            Ok(data.to_vec())
        }
    }
}

/// Appends `value` as a string literal, Huffman-coded when that is shorter.
pub(crate) fn encode_string(out: &mut Vec<u8>, value: &[u8]) {
    if huffman_encoded_len(value) < value.len() {
        let coded = huffman_encode(value);
        encode_int(out, 0x80, 7, coded.len());
        out.extend_from_slice(&coded);
    } else {
        encode_int(out, 0, 7, value.len());
        out.extend_from_slice(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn table_evicts_oldest_and_refuses_oversized_entries() {
        let mut table = DynamicTable::new();
        table.set_max_size(100);
        table.insert(true, 10, 20); // 62 bytes
        table.insert(false, 2, 2); // 36 bytes: 98 in all
        assert_eq!((table.entries.len(), table.size), (2, 98));
        assert_eq!(table.name(62), Ok((false, 2)));
        assert_eq!(table.name(63), Ok((true, 10)));
        assert_eq!(table.name(64), Err(Malformed));
        table.insert(false, 1, 1); // 34 bytes: the oldest goes
        assert_eq!((table.entries.len(), table.size), (2, 70));
        // Larger than the whole table: the table empties, nothing is added.
        table.insert(false, 50, 50);
        assert_eq!((table.entries.len(), table.size), (0, 0));
        assert_eq!(table.name(1), Ok((true, 10)));
        assert_eq!(table.name(0), Err(Malformed));
    }
}
