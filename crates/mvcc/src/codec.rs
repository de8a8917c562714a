//! The `key`-bucket value codec: `mvccpb.KeyValue` protobuf, as etcd stores
//! it, plus a restore-time scanner that reads only the fields it needs.

use ironcd_proto::mvccpb::KeyValue;
use prost::Message;

use crate::{Error, Result};

pub(crate) fn encode(kv: &KeyValue) -> Vec<u8> {
    kv.encode_to_vec()
}

pub(crate) fn decode(bytes: &[u8]) -> Result<KeyValue> {
    KeyValue::decode(bytes).map_err(|e| Error::Corrupt(format!("undecodable KeyValue: {e}")))
}

/// The fields restore needs, borrowed from the encoded record.
pub(crate) struct KeyFields<'a> {
    pub key: &'a [u8],
    pub create_revision: i64,
    pub version: i64,
}

/// Reads `key`, `create_revision` and `version` of an encoded `KeyValue`
/// without copying the value.
pub(crate) fn decode_key_fields(mut buf: &[u8]) -> Result<KeyFields<'_>> {
    use prost::encoding::{decode_key, decode_varint, WireType};
    let corrupt = |what: &str| Error::Corrupt(format!("KeyValue record: {what}"));
    let mut out = KeyFields {
        key: &[],
        create_revision: 0,
        version: 0,
    };
    while !buf.is_empty() {
        let (tag, wire) = decode_key(&mut buf).map_err(|_| corrupt("bad field key"))?;
        match wire {
            WireType::Varint => {
                let v = decode_varint(&mut buf).map_err(|_| corrupt("bad varint"))? as i64;
                match tag {
                    2 => out.create_revision = v,
                    4 => out.version = v,
                    _ => {}
                }
            }
            WireType::LengthDelimited => {
                let len = decode_varint(&mut buf).map_err(|_| corrupt("bad length"))?;
                let len = usize::try_from(len).map_err(|_| corrupt("length overflow"))?;
                if len > buf.len() {
                    return Err(corrupt("field past end"));
                }
                let (field, rest) = buf.split_at(len);
                if tag == 1 {
                    out.key = field;
                }
                buf = rest;
            }
            WireType::SixtyFourBit if buf.len() >= 8 => buf = &buf[8..],
            WireType::ThirtyTwoBit if buf.len() >= 4 => buf = &buf[4..],
            _ => return Err(corrupt("unexpected wire type")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_fields_match_full_decode() {
        let kv = KeyValue {
            key: b"some/key".to_vec(),
            create_revision: 12,
            mod_revision: 99,
            version: 7,
            value: vec![0xab; 300],
            lease: 0x1234_5678,
        };
        let bytes = encode(&kv);
        let fields = decode_key_fields(&bytes).expect("decode");
        assert_eq!(fields.key, kv.key.as_slice());
        assert_eq!(fields.create_revision, 12);
        assert_eq!(fields.version, 7);
        assert_eq!(decode(&bytes).expect("decode"), kv);
        assert!(decode_key_fields(&bytes[..bytes.len() - 3]).is_err());
    }
}
