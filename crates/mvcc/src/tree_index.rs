//! Every key's history, ordered by key: answers "which revisions does a
//! range read at revision R touch" without reading the backend.

use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;

use crate::key_index::{KeyAt, KeyIndex};
use crate::Revision;
use ironcd_backend::SmallKey;

/// Keys compacted per index write-lock hold, so readers keep flowing.
pub const COMPACT_INDEX_CHUNK: usize = 10_000;

/// The key index (etcd's `treeIndex`). Not synchronised: the store wraps it
/// in a lock.
#[derive(Clone, Debug, Default)]
pub struct TreeIndex {
    keys: BTreeMap<IndexKey, KeyIndex>,
}

/// Keys up to 38 bytes live inside the tree's nodes (40 bytes with length
/// and tag): a lookup then compares bytes in the node instead of chasing a
/// heap pointer per comparison. Longer keys go to the heap.
type IndexKey = SmallKey<38>;

type KeyBounds<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

/// `[start, end)`; `end == None` is the single key `start`, an empty `end`
/// reaches past every key.
fn bounds<'a>(start: &'a [u8], end: &'a [u8]) -> Option<KeyBounds<'a>> {
    if end.is_empty() {
        Some((Bound::Included(start), Bound::Unbounded))
    } else if start < end {
        Some((Bound::Included(start), Bound::Excluded(end)))
    } else {
        None
    }
}

impl TreeIndex {
    /// Number of keys with any history.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no key has history.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Records a put of `key` at `rev`.
    /// Returns what the key was just before (at `rev.main`, so earlier
    /// changes of the same txn count), found by the same single lookup.
    pub fn put(&mut self, key: &[u8], rev: Revision) -> Option<KeyAt> {
        match self.keys.get_mut(key) {
            Some(ki) => {
                let prior = ki.get(rev.main);
                ki.put(rev);
                prior
            }
            None => {
                let mut ki = KeyIndex::default();
                ki.put(rev);
                self.keys.insert(key.into(), ki);
                None
            }
        }
    }

    /// Records a delete of `key` at `rev`; false when the key is not live.
    #[must_use]
    pub fn tombstone(&mut self, key: &[u8], rev: Revision) -> bool {
        self.keys.get_mut(key).is_some_and(|ki| ki.tombstone(rev))
    }

    /// Adds a change found in the backend while restoring. `kv_create` and
    /// `kv_version` come from the stored record and seed keys whose older
    /// history was compacted away.
    pub fn restore(
        &mut self,
        key: &[u8],
        rev: Revision,
        tombstone: bool,
        kv_create: i64,
        kv_version: i64,
    ) {
        match self.keys.get_mut(key) {
            Some(ki) if tombstone => {
                // A tombstone after a compacted generation may find it empty.
                if !ki.tombstone(rev) {
                    tracing::debug!(?rev, "restore: tombstone of a key not live");
                }
            }
            Some(ki) => {
                ki.put(rev);
            }
            None if tombstone => {
                // Only the tombstone of this key survived compaction (it is
                // at the compaction revision): reads never see the key, but
                // it stays indexed so that a compaction resumed at that
                // revision keeps the tombstone too (etcd #19179).
                self.keys
                    .insert(key.into(), KeyIndex::restore_tombstone(rev));
            }
            None => {
                self.keys
                    .insert(key.into(), KeyIndex::restore(kv_create, rev, kv_version));
            }
        }
    }

    /// The state of `key` at `at_rev`.
    pub fn get(&self, key: &[u8], at_rev: i64) -> Option<KeyAt> {
        self.keys.get(key)?.get(at_rev)
    }

    /// Visits keys in `[start, end)` (see [`bounds`]) live at `at_rev`, in
    /// key order, until `visit` returns false.
    pub fn visit(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        at_rev: i64,
        mut visit: impl FnMut(&[u8], KeyAt) -> bool,
    ) {
        let Some(end) = end else {
            if let Some(at) = self.get(start, at_rev) {
                visit(start, at);
            }
            return;
        };
        let Some(range) = bounds(start, end) else {
            return;
        };
        for (key, ki) in self.keys.range::<[u8], _>(range) {
            if let Some(at) = ki.get(at_rev) {
                if !visit(key.as_slice(), at) {
                    return;
                }
            }
        }
    }

    /// Up to `limit` (0 = all) revisions live at `at_rev` in the range, and
    /// how many there are in all.
    pub fn revisions(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        at_rev: i64,
        limit: u64,
    ) -> (Vec<Revision>, u64) {
        let mut revs = Vec::new();
        let mut total = 0u64;
        self.visit(start, end, at_rev, |_, at| {
            if limit == 0 || total < limit {
                revs.push(at.modified);
            }
            total += 1;
            true
        });
        (revs, total)
    }

    /// How many keys in the range are live at `at_rev`.
    pub fn count(&self, start: &[u8], end: Option<&[u8]>, at_rev: i64) -> u64 {
        let mut total = 0;
        self.visit(start, end, at_rev, |_, _| {
            total += 1;
            true
        });
        total
    }

    /// The keys in the range live at `at_rev`.
    pub fn live_keys(&self, start: &[u8], end: Option<&[u8]>, at_rev: i64) -> Vec<Vec<u8>> {
        let mut keys = Vec::new();
        self.visit(start, end, at_rev, |k, _| {
            keys.push(k.to_vec());
            true
        });
        keys
    }

    /// Compacts up to [`COMPACT_INDEX_CHUNK`] keys from `from` on, adding
    /// the revisions to keep to `keep`. Returns the key to continue from,
    /// or `None` when done.
    pub fn compact_chunk(
        &mut self,
        from: &[u8],
        at_rev: i64,
        keep: &mut HashSet<Revision>,
    ) -> Option<Vec<u8>> {
        let mut emptied = Vec::new();
        let mut next = None;
        for (i, (key, ki)) in self
            .keys
            .range_mut::<[u8], _>((Bound::Included(from), Bound::Unbounded))
            .enumerate()
        {
            if i == COMPACT_INDEX_CHUNK {
                next = Some(key.as_slice().to_vec());
                break;
            }
            ki.compact(at_rev, keep);
            if ki.is_empty() {
                emptied.push(key.clone());
            }
        }
        for key in emptied {
            self.keys.remove(&key);
        }
        next
    }

    /// Compacts every key at `at_rev`; returns the revisions to keep.
    pub fn compact(&mut self, at_rev: i64) -> HashSet<Revision> {
        let mut keep = HashSet::new();
        let mut from = Vec::new();
        while let Some(next) = self.compact_chunk(&from, at_rev, &mut keep) {
            from = next;
        }
        keep
    }

    /// The revisions a compaction at `at_rev` would keep.
    pub fn keep(&self, at_rev: i64) -> HashSet<Revision> {
        let mut keep = HashSet::new();
        for ki in self.keys.values() {
            ki.keep(at_rev, &mut keep);
        }
        keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(main: i64) -> Revision {
        Revision::new(main, 0)
    }

    #[test]
    fn ranges_respect_revision_and_bounds() {
        let mut ti = TreeIndex::default();
        ti.put(b"a", rev(2));
        ti.put(b"b", rev(3));
        ti.put(b"c", rev(4));
        assert!(ti.tombstone(b"b", rev(5)));
        assert!(!ti.tombstone(b"zz", rev(6)));
        let mains = |(revs, total): (Vec<Revision>, u64)| {
            (revs.iter().map(|r| r.main).collect::<Vec<_>>(), total)
        };
        assert_eq!(mains(ti.revisions(b"a", Some(b""), 5, 0)), (vec![2, 4], 2));
        assert_eq!(
            mains(ti.revisions(b"a", Some(b""), 4, 0)),
            (vec![2, 3, 4], 3)
        );
        assert_eq!(mains(ti.revisions(b"a", Some(b""), 4, 2)), (vec![2, 3], 3));
        assert_eq!(mains(ti.revisions(b"b", Some(b"c"), 4, 0)), (vec![3], 1));
        assert_eq!(mains(ti.revisions(b"c", Some(b"b"), 9, 0)), (vec![], 0));
        assert_eq!(mains(ti.revisions(b"b", None, 4, 0)), (vec![3], 1));
        assert_eq!(mains(ti.revisions(b"b", None, 5, 0)), (vec![], 0));
        assert_eq!(ti.count(b"", Some(b""), 2), 1);
        assert_eq!(
            ti.live_keys(b"", Some(b""), 9),
            [b"a".to_vec(), b"c".to_vec()]
        );
    }

    #[test]
    fn compaction_drops_dead_keys_in_chunks() {
        let mut ti = TreeIndex::default();
        let n = COMPACT_INDEX_CHUNK as i64 * 2 + 7;
        for i in 0..n {
            let key = format!("k{i:08}");
            ti.put(key.as_bytes(), rev(2 * i + 1));
            assert!(ti.tombstone(key.as_bytes(), rev(2 * i + 2)));
        }
        ti.put(b"live", rev(2 * n + 1));
        let keep = ti.keep(2 * n + 1);
        let kept = ti.compact(2 * n + 1);
        assert_eq!(keep, kept);
        assert_eq!(kept, HashSet::from([rev(2 * n + 1)]));
        assert_eq!(ti.len(), 1);
    }
}
