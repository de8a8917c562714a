//! One complete header block walked representation by representation
//! (RFC 7541 §6), with every URL-valued `:authority` repaired in place.

use crate::hpack::{decode_int, encode_string, DynamicTable, StringLiteral};
use crate::Parse;

/// `http::uri::Authority` rejects more than 8 colons before the `@`.
const MAX_USERINFO_COLONS: usize = 8;

/// Walks one complete header block, keeping `table` in step with the
/// decoder's, and returns the block with every URL-valued `:authority`
/// rewritten, or `None` if nothing needed rewriting.
pub(crate) fn rewrite_block(table: &mut DynamicTable, block: &[u8]) -> Parse<Option<Vec<u8>>> {
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
pub(crate) fn fix_authority(value: &[u8]) -> Option<Vec<u8>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hpack::encode_int;
    use crate::testkit::*;
    use crate::Malformed;
    use axum::http::uri::Authority;

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
}
