//! The encoding of the server's own records that have no etcd format —
//! today the member identity file — with bincode, behind this one module.
//! (Buckets keep etcd's encodings: mvccpb, membership, alarms.)
//!
//! ```text
//! | version u8 | bincode (standard config) of the record |
//! ```
//!
//! Decoding is bounded ([`MAX_RECORD_BYTES`]) before anything is
//! allocated, and a record with trailing bytes is refused.

use bincode::{Decode, Encode};

use crate::error::{Error, Result};

/// Largest record decoded.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_RECORD_BYTES>()
}

/// `record` behind its `version` byte.
pub fn encode<T: Encode>(version: u8, record: &T) -> Vec<u8> {
    let mut out = vec![version];
    out.extend(bincode::encode_to_vec(record, config()).expect("encoding into a Vec cannot fail"));
    out
}

/// The record of `version` in `bytes`; `what` names it in errors.
pub fn decode<T: Decode<()>>(version: u8, bytes: &[u8], what: &str) -> Result<T> {
    let corrupt = |reason: String| Error::DataDir(format!("unreadable {what}: {reason}"));
    match bytes.split_first() {
        Some((&v, body)) if v == version => {
            let (record, read) =
                bincode::decode_from_slice(body, config()).map_err(|e| corrupt(e.to_string()))?;
            if read != body.len() {
                return Err(corrupt(format!(
                    "{} bytes after the record",
                    body.len() - read
                )));
            }
            Ok(record)
        }
        Some((&v, _)) => Err(corrupt(format!("version {v}, expected {version}"))),
        None => Err(corrupt("empty".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Encode, Decode)]
    struct Sample {
        id: u64,
        flag: bool,
        list: Vec<u64>,
    }

    #[test]
    fn records_round_trip_and_damage_is_refused() {
        let sample = Sample {
            id: u64::MAX,
            flag: true,
            list: vec![1, 2, 3],
        };
        let bytes = encode(1, &sample);
        assert_eq!(decode::<Sample>(1, &bytes, "sample").unwrap(), sample);
        assert!(decode::<Sample>(2, &bytes, "sample").is_err());
        assert!(decode::<Sample>(1, &bytes[..bytes.len() - 1], "sample").is_err());
        assert!(decode::<Sample>(1, &[bytes.clone(), vec![0]].concat(), "sample").is_err());
        assert!(decode::<Sample>(1, &[], "sample").is_err());
        // A length far past the limit is refused before it is allocated.
        let mut huge = vec![1u8, 1, 0];
        huge.extend([0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
        assert!(decode::<Sample>(1, &huge, "sample").is_err());
    }
}
