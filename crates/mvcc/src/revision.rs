//! Revisions and their on-disk key encoding.
//!
//! Every write txn takes one *main* revision; each change inside it takes a
//! *sub* revision. In the `key` bucket a change is stored under its revision:
//!
//! ```text
//!  0               8   9               17  18
//!  +---------------+---+---------------+---+
//!  | main (u64 BE) | _ | sub (u64 BE)  | t |   `t` only on tombstones
//!  +---------------+---+---------------+---+
//! ```
//!
//! Big-endian keeps byte order equal to revision order, so a bucket scan
//! walks history in order.

/// Length of an encoded revision without the tombstone marker.
pub const REV_BYTES_LEN: usize = 17;
/// Length of an encoded tombstone revision.
pub const MARKED_REV_BYTES_LEN: usize = REV_BYTES_LEN + 1;
const TOMBSTONE_MARK: u8 = b't';

/// A point in the store's history.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision {
    /// The write txn's revision (etcd's `mod_revision` of its changes).
    pub main: i64,
    /// The change's position inside its txn.
    pub sub: i64,
}

impl Revision {
    /// A revision.
    pub const fn new(main: i64, sub: i64) -> Self {
        Self { main, sub }
    }

    /// The 17-byte key of this revision.
    pub fn to_bytes(self) -> [u8; REV_BYTES_LEN] {
        let mut out = [0u8; REV_BYTES_LEN];
        out[..8].copy_from_slice(&(self.main as u64).to_be_bytes());
        out[8] = b'_';
        out[9..].copy_from_slice(&(self.sub as u64).to_be_bytes());
        out
    }

    /// The 18-byte key of this revision marked as a tombstone.
    pub fn to_tombstone_bytes(self) -> [u8; MARKED_REV_BYTES_LEN] {
        let mut out = [0u8; MARKED_REV_BYTES_LEN];
        out[..REV_BYTES_LEN].copy_from_slice(&self.to_bytes());
        out[REV_BYTES_LEN] = TOMBSTONE_MARK;
        out
    }
}

/// A decoded `key`-bucket key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BucketKey {
    /// The revision.
    pub rev: Revision,
    /// Whether the change is a delete.
    pub tombstone: bool,
}

impl BucketKey {
    /// Decodes a `key`-bucket key; `None` when it is not one.
    pub fn decode(bytes: &[u8]) -> Option<BucketKey> {
        let tombstone = match bytes.len() {
            REV_BYTES_LEN => false,
            MARKED_REV_BYTES_LEN if bytes[REV_BYTES_LEN] == TOMBSTONE_MARK => true,
            _ => return None,
        };
        if bytes[8] != b'_' {
            return None;
        }
        let main = u64::from_be_bytes(bytes[..8].try_into().ok()?) as i64;
        let sub = u64::from_be_bytes(bytes[9..17].try_into().ok()?) as i64;
        Some(BucketKey {
            rev: Revision { main, sub },
            tombstone,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn encoding_round_trips_and_keeps_order(
            a in (0i64..i64::MAX, 0i64..i64::MAX), b in (0i64..i64::MAX, 0i64..i64::MAX)
        ) {
            let (ra, rb) = (Revision::new(a.0, a.1), Revision::new(b.0, b.1));
            prop_assert_eq!(BucketKey::decode(&ra.to_bytes()), Some(BucketKey { rev: ra, tombstone: false }));
            prop_assert_eq!(BucketKey::decode(&ra.to_tombstone_bytes()), Some(BucketKey { rev: ra, tombstone: true }));
            prop_assert_eq!(ra.cmp(&rb), ra.to_bytes().cmp(&rb.to_bytes()));
        }
    }

    #[test]
    fn malformed_keys_are_rejected() {
        assert_eq!(BucketKey::decode(b"short"), None);
        let mut bad = Revision::new(1, 2).to_bytes();
        bad[8] = b'x';
        assert_eq!(BucketKey::decode(&bad), None);
        let mut marked = Revision::new(1, 2).to_tombstone_bytes();
        marked[17] = b'x';
        assert_eq!(BucketKey::decode(&marked), None);
    }
}
