//! `SmallKey`: a byte string stored inline when short. Public so that the
//! mvcc key index can use it too.
//!
//! Ordered maps compare keys at every level of a lookup; a key on the heap
//! costs a cache miss per comparison. Revision keys (17–18 bytes) and most
//! meta keys fit inline, so a lookup touches only the tree's own nodes.

use std::borrow::Borrow;
use std::cmp::Ordering;

/// Longest key the backend's buffers and in-memory engine keep inline
/// (revision keys are 17–18 bytes); the whole key takes 32 bytes.
pub const INLINE_KEY_BYTES: usize = 30;

/// A byte string kept inline up to `N` bytes (`N` ≤ 255), on the heap
/// beyond. Pick `N` so that `N + 2` is a multiple of 8: the enum then has no
/// padding.
#[derive(Clone)]
pub enum SmallKey<const N: usize = INLINE_KEY_BYTES> {
    /// Short keys: length and bytes in place.
    Inline(u8, [u8; N]),
    /// Long keys.
    Heap(Box<[u8]>),
}

impl<const N: usize> SmallKey<N> {
    /// The key's bytes.
    pub fn as_slice(&self) -> &[u8] {
        match self {
            SmallKey::Inline(len, bytes) => &bytes[..*len as usize],
            SmallKey::Heap(bytes) => bytes,
        }
    }
}

impl<const N: usize> From<&[u8]> for SmallKey<N> {
    fn from(key: &[u8]) -> Self {
        const { assert!(N <= u8::MAX as usize, "inline length must fit a u8") };
        if key.len() <= N {
            let mut bytes = [0u8; N];
            bytes[..key.len()].copy_from_slice(key);
            SmallKey::Inline(key.len() as u8, bytes)
        } else {
            SmallKey::Heap(key.into())
        }
    }
}

// Ordering, equality and hashing are those of the bytes, so `Borrow<[u8]>`
// lets maps be searched with plain slices.
impl<const N: usize> Borrow<[u8]> for SmallKey<N> {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

impl<const N: usize> PartialEq for SmallKey<N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<const N: usize> Eq for SmallKey<N> {}

impl<const N: usize> PartialOrd for SmallKey<N> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<const N: usize> Ord for SmallKey<N> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_slice().cmp(other.as_slice())
    }
}

impl<const N: usize> std::fmt::Debug for SmallKey<N> {
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
            let (ka, kb) = (SmallKey::<30>::from(a.as_slice()), SmallKey::<30>::from(b.as_slice()));
            prop_assert_eq!(ka.as_slice(), a.as_slice());
            prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
            prop_assert_eq!(ka == kb, a == b);
        }
    }
}
