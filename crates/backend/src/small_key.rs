//! `SmallKey`: a byte string stored inline when short.
//!
//! Ordered maps compare keys at every level of a lookup; a key on the heap
//! costs a cache miss per comparison. Revision keys (17–18 bytes) and most
//! meta keys fit inline, so a lookup touches only the tree's own nodes.

use std::borrow::Borrow;
use std::cmp::Ordering;

/// Longest key kept inline.
pub const INLINE_KEY_BYTES: usize = 30;

/// A byte string, inline up to [`INLINE_KEY_BYTES`], on the heap beyond.
#[derive(Clone)]
pub enum SmallKey {
    /// Short keys: length and bytes in place.
    Inline(u8, [u8; INLINE_KEY_BYTES]),
    /// Long keys.
    Heap(Box<[u8]>),
}

impl SmallKey {
    /// The key's bytes.
    pub fn as_slice(&self) -> &[u8] {
        match self {
            SmallKey::Inline(len, bytes) => &bytes[..*len as usize],
            SmallKey::Heap(bytes) => bytes,
        }
    }
}

impl From<&[u8]> for SmallKey {
    fn from(key: &[u8]) -> Self {
        if key.len() <= INLINE_KEY_BYTES {
            let mut bytes = [0u8; INLINE_KEY_BYTES];
            bytes[..key.len()].copy_from_slice(key);
            SmallKey::Inline(key.len() as u8, bytes)
        } else {
            SmallKey::Heap(key.into())
        }
    }
}

// Ordering, equality and hashing are those of the bytes, so `Borrow<[u8]>`
// lets maps be searched with plain slices.
impl Borrow<[u8]> for SmallKey {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

impl PartialEq for SmallKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for SmallKey {}

impl PartialOrd for SmallKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SmallKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_slice().cmp(other.as_slice())
    }
}

impl std::fmt::Debug for SmallKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn order_matches_the_bytes(a in proptest::collection::vec(any::<u8>(), 0..64),
                                   b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let (ka, kb) = (SmallKey::from(a.as_slice()), SmallKey::from(b.as_slice()));
            prop_assert_eq!(ka.as_slice(), a.as_slice());
            prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
            prop_assert_eq!(ka == kb, a == b);
        }
    }
}
