//! Watched keys and ranges, and the index of synced watchers an event is
//! matched through.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use crate::interval::{Bound, IntervalTree};
use crate::WatchId;

/// A watcher, by its stream and its id there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct WatcherKey {
    pub stream: u64,
    pub id: WatchId,
}

/// What a watcher watches: one key, or `[start, end)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum KeyRange {
    Key(Vec<u8>),
    Range(Range<Bound>),
}

impl KeyRange {
    /// etcd's reading of `key` and `range_end`: no end is the key alone,
    /// `[0]` (or an empty end given as "from key") every key from `key`,
    /// else `[key, range_end)`. `None` for an empty range.
    pub fn new(key: &[u8], range_end: &[u8]) -> Option<KeyRange> {
        if range_end.is_empty() {
            return Some(KeyRange::Key(key.to_vec()));
        }
        let end = if range_end == [0] {
            Bound::Unbounded
        } else if key < range_end {
            Bound::Key(range_end.to_vec())
        } else {
            return None;
        };
        Some(KeyRange::Range(Bound::Key(key.to_vec())..end))
    }

    /// Whether `key` is watched.
    pub fn contains(&self, key: &[u8]) -> bool {
        match self {
            KeyRange::Key(k) => k == key,
            KeyRange::Range(r) => r.start.is_at_or_before(key) && r.end.is_after(key),
        }
    }
}

/// The synced watchers, indexed for matching: single keys by hash, ranges
/// in an interval tree. Watchers of the same key or range share an entry.
#[derive(Default)]
pub(crate) struct SyncedIndex {
    keys: HashMap<Vec<u8>, HashSet<WatcherKey>>,
    ranges: IntervalTree<HashSet<WatcherKey>>,
    len: usize,
}

impl SyncedIndex {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn add(&mut self, w: WatcherKey, range: &KeyRange) {
        let added = match range {
            KeyRange::Key(k) => self.keys.entry(k.clone()).or_default().insert(w),
            KeyRange::Range(r) => match self.ranges.get_mut(r) {
                Some(set) => set.insert(w),
                None => {
                    self.ranges.insert(r.clone(), HashSet::from([w]));
                    true
                }
            },
        };
        if added {
            self.len += 1;
        }
    }

    pub fn remove(&mut self, w: WatcherKey, range: &KeyRange) -> bool {
        let removed = match range {
            KeyRange::Key(k) => match self.keys.get_mut(k) {
                Some(set) => {
                    let removed = set.remove(&w);
                    if set.is_empty() {
                        self.keys.remove(k);
                    }
                    removed
                }
                None => false,
            },
            KeyRange::Range(r) => match self.ranges.get_mut(r) {
                Some(set) => {
                    let removed = set.remove(&w);
                    if set.is_empty() {
                        self.ranges.remove(r);
                    }
                    removed
                }
                None => false,
            },
        };
        if removed {
            self.len -= 1;
        }
        removed
    }

    /// Every watcher of `key`, into `out`.
    pub fn matching(&self, key: &[u8], out: &mut Vec<WatcherKey>) {
        if let Some(set) = self.keys.get(key) {
            out.extend(set.iter().copied());
        }
        self.ranges
            .for_each_containing(key, |set| out.extend(set.iter().copied()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(id: WatchId) -> WatcherKey {
        WatcherKey { stream: 1, id }
    }

    #[test]
    fn ranges_as_etcd_reads_them() {
        assert_eq!(KeyRange::new(b"a", b""), Some(KeyRange::Key(b"a".to_vec())));
        assert!(KeyRange::new(b"b", b"a").is_none());
        assert!(KeyRange::new(b"a", b"a").is_none());
        let from = KeyRange::new(b"b", &[0]).unwrap();
        assert!(from.contains(b"b") && from.contains(b"zzz") && !from.contains(b"a"));
        let r = KeyRange::new(b"b", b"d").unwrap();
        assert!(r.contains(b"b") && r.contains(b"c\xff") && !r.contains(b"d"));
    }

    #[test]
    fn matching_through_keys_and_ranges() {
        let mut index = SyncedIndex::default();
        let ranges = [
            KeyRange::new(b"k", b"").unwrap(),
            KeyRange::new(b"k", b"").unwrap(),
            KeyRange::new(b"a", b"m").unwrap(),
            KeyRange::new(b"k", &[0]).unwrap(),
            KeyRange::new(b"l", b"z").unwrap(),
            KeyRange::new(b"a", b"m").unwrap(),
        ];
        for (i, r) in ranges.iter().enumerate() {
            index.add(w(i as i64), r);
        }
        assert_eq!(index.len(), 6);
        let mut out = Vec::new();
        index.matching(b"k", &mut out);
        out.sort();
        assert_eq!(out, vec![w(0), w(1), w(2), w(3), w(5)]);
        out.clear();
        index.matching(b"z", &mut out);
        assert_eq!(out, vec![w(3)]);
        assert!(index.remove(w(2), &ranges[2]));
        assert!(!index.remove(w(2), &ranges[2]));
        out.clear();
        index.matching(b"b", &mut out);
        assert_eq!(out, vec![w(5)]);
        assert_eq!(index.len(), 5);
    }
}
