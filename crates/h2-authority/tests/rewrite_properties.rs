//! Property tests of the `:authority` rewriter, judged by HPACK code that
//! shares nothing with the crate's:
//!
//! * the client side is `httlib-hpack`'s encoder, asked for every
//!   representation (indexed, literal with / without / never indexing,
//!   indexed or literal name, Huffman or raw strings, dynamic table size
//!   updates);
//! * what h2 would see is decoded by `fluke-hpack` (a fork of the `hpack`
//!   crate), one decoder for the original stream and one for the rewritten
//!   stream, each keeping its dynamic table across the whole connection;
//! * an `:authority` counts as repaired when `http::uri::Authority` — the
//!   parser h2 applies to it — accepts it with the URL's host and port.
//!
//! Frames, padding, priority and CONTINUATION splits are written and parsed
//! by the test's own code (`support/`), and every stream is read through
//! the public `AuthorityFixIo` in chunks of random sizes, with `Pending`
//! between them, into caller buffers of random sizes.

mod support;

use axum::http::uri::Authority;
use httlib_hpack::Encoder;
use proptest::prelude::*;

use support::cases::*;
use support::client::*;
use support::server::*;
use support::*;

/// The host and port of a URL-valued `:authority` that a valid authority of
/// the same length can stand for: `http(s)://` + an authority without
/// userinfo + at most six trailing slashes. `None` for anything else.
fn repairable(value: &[u8]) -> Option<Authority> {
    let rest = value
        .strip_prefix(b"http://")
        .or_else(|| value.strip_prefix(b"https://"))?;
    let host_port_len = rest.len() - rest.iter().rev().take_while(|&&b| b == b'/').count();
    let (host_port, slashes) = rest.split_at(host_port_len);
    if slashes.len() > MAX_REPAIRABLE_SLASHES || host_port.contains(&b'@') {
        return None;
    }
    Authority::try_from(host_port).ok()
}

/// What h2 sees for `:authority` against what the client sent.
fn check_authority(sent: &[u8], seen: &[u8]) -> Result<(), TestCaseError> {
    prop_assert_eq!(seen.len(), sent.len(), "the length is kept");
    let want = repairable(sent);
    if seen == sent {
        prop_assert!(
            want.is_none(),
            "{:?} was not repaired",
            String::from_utf8_lossy(sent)
        );
        return Ok(());
    }
    prop_assert!(
        sent.starts_with(b"http://") || sent.starts_with(b"https://"),
        "only URLs are rewritten: {:?} became {:?}",
        String::from_utf8_lossy(sent),
        String::from_utf8_lossy(seen)
    );
    if let Some(want) = want {
        let got = Authority::try_from(seen);
        prop_assert!(
            got.is_ok(),
            "h2 refuses {:?}",
            String::from_utf8_lossy(seen)
        );
        let got = got.expect("checked");
        prop_assert_eq!(got.host(), want.host());
        prop_assert_eq!(
            got.port().map(|p| p.as_str().to_string()),
            want.port().map(|p| p.as_str().to_string())
        );
    }
    Ok(())
}

/// The decoded header lists must match the fields the client encoded.
fn check_sent(block: &SentBlock, decoded: &Headers) -> Result<(), TestCaseError> {
    prop_assert_eq!(decoded.len(), block.expects.len());
    for (expect, (name, value)) in block.expects.iter().zip(decoded) {
        match expect {
            Expect::FromTable => {}
            Expect::Value(want) => prop_assert_eq!(value, want),
            Expect::Header(want_name, want_value) => {
                prop_assert_eq!(name, want_name);
                prop_assert_eq!(value, want_value);
            }
        }
    }
    Ok(())
}

/// Decodes the blocks as sent and as rewritten, each side with its own
/// decoder kept across the connection, and compares them header by header.
fn check_blocks(sent: &[SentBlock], seen: &[SeenBlock]) -> Result<(), TestCaseError> {
    prop_assert_eq!(seen.len(), sent.len());
    let mut sent_decoder = decoder();
    let mut seen_decoder = decoder();
    for (i, (sent, seen)) in sent.iter().zip(seen).enumerate() {
        prop_assert_eq!(seen.stream_id, sent.stream_id);
        prop_assert_eq!(seen.end_stream, sent.end_stream);
        prop_assert_eq!(seen.priority, sent.priority);
        let original = sent_decoder.decode(&sent.fragment);
        prop_assert!(
            original.is_ok(),
            "block {}: {:?}",
            i,
            original.as_ref().err()
        );
        let original = original.expect("checked");
        check_sent(sent, &original)?;
        let rewritten = seen_decoder.decode(&seen.fragment);
        prop_assert!(
            rewritten.is_ok(),
            "block {} as rewritten: {:?}",
            i,
            rewritten.as_ref().err()
        );
        let rewritten = rewritten.expect("checked");
        prop_assert_eq!(rewritten.len(), original.len());
        for ((name, value), (seen_name, seen_value)) in original.iter().zip(&rewritten) {
            prop_assert_eq!(seen_name, name);
            if name == b":authority" {
                check_authority(value, seen_value)?;
            } else {
                prop_assert_eq!(seen_value, value);
            }
        }
    }
    Ok(())
}

fn check_stream(client: &Client, output: &[u8]) -> Result<(), TestCaseError> {
    let parsed = parse_frames(output);
    prop_assert!(
        parsed.is_ok(),
        "output framing: {:?}",
        parsed.as_ref().err()
    );
    let (seen, others) = parsed.expect("checked");
    prop_assert_eq!(&others, &client.others, "other frames pass as sent");
    check_blocks(&client.blocks, &seen)
}

// ---------------------------------------------------------------------------
// Properties.

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any sequence of header blocks, in any framing and any delivery,
    /// reaches h2 as the same headers with every URL `:authority` repaired,
    /// and both ends' tables stay in step to the end of the connection.
    #[test]
    fn rewritten_blocks_decode_to_the_same_headers(
        specs in prop::collection::vec(block(), 1..8),
        delivery in delivery(),
    ) {
        let mut client = Client::new();
        client.send_all(&specs);
        let output = read_through(&client.stream, &delivery);
        check_stream(&client, &output)?;
        // The delivery does not matter.
        let whole = Delivery { chunks: vec![client.stream.len()], reads: vec![1 << 20] };
        prop_assert_eq!(read_through(&client.stream, &whole), output);
    }

    /// A header block the rewriter cannot parse, and everything after it,
    /// reaches h2 byte for byte as sent; what came before is rewritten.
    #[test]
    fn unparseable_blocks_pass_through_untouched(
        specs in prop::collection::vec(block(), 0..4),
        garbage in garbage(),
        spec in block(),
        delivery in delivery(),
    ) {
        let mut client = Client::new();
        client.send_all(&specs);
        let valid_len = client.stream.len();
        let frames = garbage_frames(&mut client, &garbage, &spec);
        client.stream.extend_from_slice(&frames);
        let next = client.take_stream_id();
        client.stream.extend(url_request(next));
        let tail = &client.stream[valid_len..];
        let output = read_through(&client.stream, &delivery);
        prop_assert!(output.ends_with(tail), "the rest passes as sent");
        check_stream(&client, &output[..output.len() - tail.len()])?;
    }

    /// A connection that does not open with HTTP/2's preface passes
    /// through byte for byte.
    #[test]
    fn non_http2_streams_pass_through(
        data in prop::collection::vec(any::<u8>(), 0..2000),
        delivery in delivery(),
    ) {
        let n = data.len().min(PREFACE.len());
        prop_assume!(data[..n] != PREFACE[..n]);
        prop_assert_eq!(read_through(&data, &delivery), data);
    }

    /// Arbitrary bytes after the preface never stall or panic the wrapper,
    /// and what comes out does not depend on how the bytes arrive.
    #[test]
    fn arbitrary_frames_are_read_to_the_end(
        data in prop::collection::vec(any::<u8>(), 0..2000),
        delivery in delivery(),
    ) {
        let stream = [PREFACE, &data].concat();
        let whole = Delivery { chunks: vec![stream.len()], reads: vec![1 << 20] };
        prop_assert_eq!(read_through(&stream, &delivery), read_through(&stream, &whole));
    }
}

#[test]
fn the_reference_encoder_and_decoder_agree_on_an_rfc_example() {
    // RFC 7541 C.4.1: the first request of C.4, with Huffman coding.
    let mut encoder = Encoder::default();
    let mut block = Vec::new();
    encoder.encode(2u32, &mut block).unwrap();
    encoder.encode(6u32, &mut block).unwrap();
    encoder.encode(4u32, &mut block).unwrap();
    let flags = Encoder::WITH_INDEXING | Encoder::HUFFMAN_VALUE;
    encoder
        .encode((1u32, b"www.example.com".to_vec(), flags), &mut block)
        .unwrap();
    let hex: String = block.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, "828684418cf1e3c2e5f23a6ba0ab90f4ff");
    let headers = decoder().decode(&block).unwrap();
    assert_eq!(
        headers[3],
        (b":authority".to_vec(), b"www.example.com".to_vec())
    );
}

#[test]
fn etcdctl_34_request_is_repaired() {
    // What grpc-go 1.26 (etcdctl 3.4) sends first on a connection.
    let mut client = Client::new();
    let spec = |fields| BlockSpec {
        size_updates: Vec::new(),
        fields,
        framing: Framing {
            end_stream: false,
            padding: None,
            priority: None,
            splits: Vec::new(),
        },
        others: Vec::new(),
    };
    let literal = |name: &str, value: &str| Field::Literal {
        name: Name::Literal {
            name: name.as_bytes().to_vec(),
            huffman: true,
        },
        value: value.as_bytes().to_vec(),
        indexing: Indexing::With,
        huffman: true,
    };
    let fields = vec![
        Field::Indexed(Pick::Static(3)),
        Field::Indexed(Pick::Static(6)),
        literal(":path", "/etcdserverpb.KV/Range"),
        literal(":authority", "http://127.0.0.1:2379"),
        literal("content-type", "application/grpc"),
        literal("user-agent", "grpc-go/1.26.0"),
        literal("te", "trailers"),
    ];
    // The second request references the dynamic `:authority` entry.
    let again = vec![
        Field::Indexed(Pick::Static(3)),
        Field::Indexed(Pick::Dynamic(3)),
    ];
    client.send_all(&[spec(fields), spec(again)]);
    let delivery = Delivery {
        chunks: vec![1],
        reads: vec![1],
    };
    let output = read_through(&client.stream, &delivery);
    check_stream(&client, &output).unwrap();
    let (seen, _) = parse_frames(&output).unwrap();
    let mut decoder = decoder();
    let first = decoder.decode(&seen[0].fragment).unwrap();
    assert_eq!(first[3].1, b"http::@127.0.0.1:2379");
    let second = decoder.decode(&seen[1].fragment).unwrap();
    assert_eq!(
        second[1],
        (b":authority".to_vec(), b"http::@127.0.0.1:2379".to_vec())
    );
}
