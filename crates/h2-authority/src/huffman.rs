//! HPACK's static Huffman code (RFC 7541 §5.2, Appendix B), built once from
//! its code lengths.

use std::sync::OnceLock;

use crate::{Malformed, Parse};

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

pub(crate) fn huffman_encoded_len(src: &[u8]) -> usize {
    let bits: usize = src
        .iter()
        .map(|&b| usize::from(HUFFMAN_CODE_LENGTHS[usize::from(b)]))
        .sum();
    bits.div_ceil(8)
}

pub(crate) fn huffman_encode(src: &[u8]) -> Vec<u8> {
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

pub(crate) fn huffman_decode(src: &[u8]) -> Parse<Vec<u8>> {
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
    use rand::{Rng, SeedableRng};

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
}
