//! The history of one key: its generations.
//!
//! A generation runs from a key's creation to its deletion (tombstone). A
//! key put at revisions 1, 2, deleted at 3, put again at 4 has two
//! generations: `{created 1, revs [1, 2, 3(tomb)]}` and `{created 4, revs [4]}`.
//! The last generation is open (no tombstone yet) or empty (the key is
//! currently deleted).

use std::collections::HashSet;

use crate::small::Small;
use crate::Revision;

/// One life of a key, from creation to tombstone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Generation {
    /// Puts in this generation so far (the key's version).
    pub ver: i64,
    /// The main revision that created the key (etcd's `create_revision`).
    pub created: i64,
    /// Every change, ascending; the last is the tombstone in closed ones.
    pub revs: Small<Revision>,
}

impl Generation {
    fn is_empty(&self) -> bool {
        self.revs.is_empty()
    }

    /// Index of the last rev, scanning backwards, for which `keep_going`
    /// returns false.
    fn walk_back(&self, mut keep_going: impl FnMut(Revision) -> bool) -> Option<usize> {
        (0..self.revs.len())
            .rev()
            .find(|&i| !keep_going(self.revs[i]))
    }
}

/// What a key looked like at some revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyAt {
    /// The change that produced the value visible at that revision.
    pub modified: Revision,
    /// The main revision that created the key's current generation.
    pub created: i64,
    /// The key's version at that revision.
    pub version: i64,
}

/// The history of one key (etcd's `keyIndex`; the key itself is the map key
/// in [`crate::TreeIndex`]). Kept small — one of these lives in memory per
/// key: the latest change is derived from the generations, not stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyIndex {
    generations: Small<Generation>,
}

impl Default for KeyIndex {
    fn default() -> Self {
        Self {
            generations: Small::one(Generation::default()),
        }
    }
}

impl KeyIndex {
    /// The latest change (a tombstone when the key is deleted); the zero
    /// revision when there is no history.
    pub fn modified(&self) -> Revision {
        self.generations
            .iter()
            .rev()
            .find_map(|g| g.revs.last().copied())
            .unwrap_or_default()
    }

    /// The generations, oldest first.
    pub fn generations(&self) -> &[Generation] {
        &self.generations
    }

    /// No history left (a single empty generation).
    pub fn is_empty(&self) -> bool {
        self.generations.len() == 1 && self.generations[0].is_empty()
    }

    /// Records a put at `rev`.
    ///
    /// # Panics
    /// When `rev` is not newer than the last change: revisions only grow.
    pub fn put(&mut self, rev: Revision) {
        let modified = self.modified();
        assert!(
            rev > modified,
            "put at {rev:?} not after last change {modified:?}"
        );
        let g = self
            .generations
            .last_mut()
            .expect("a key index always has a generation");
        if g.revs.is_empty() {
            g.created = rev.main;
        }
        g.revs.push(rev);
        g.ver += 1;
    }

    /// Rebuilds a key seen for the first time during restore, whose older
    /// history may have been compacted away.
    pub fn restore(created: i64, modified: Revision, ver: i64) -> Self {
        Self {
            generations: Small::one(Generation {
                ver,
                created,
                revs: Small::one(modified),
            }),
        }
    }

    /// Rebuilds, during restore, a key whose only change left is a
    /// tombstone (at the compaction revision): the key stays in the index
    /// until a compaction past it, so a resumed compaction at that
    /// revision keeps the tombstone as the first run did (etcd #19179).
    pub fn restore_tombstone(tombstone: Revision) -> Self {
        let mut generations = Small::one(Generation {
            ver: 1,
            created: 0,
            revs: Small::one(tombstone),
        });
        generations.push(Generation::default());
        Self { generations }
    }

    /// Records a delete at `rev`, closing the current generation. Returns
    /// false (and changes nothing) when the key is not live.
    #[must_use]
    pub fn tombstone(&mut self, rev: Revision) -> bool {
        if self.generations.last().is_none_or(Generation::is_empty) {
            return false;
        }
        self.put(rev);
        self.generations.push(Generation::default());
        true
    }

    /// The key as of `at_rev`, if it was live then.
    pub fn get(&self, at_rev: i64) -> Option<KeyAt> {
        let g = self.find_generation(at_rev)?;
        let n = g.walk_back(|rev| rev.main > at_rev)?;
        Some(KeyAt {
            modified: g.revs[n],
            created: g.created,
            version: g.ver - (g.revs.len() - n - 1) as i64,
        })
    }

    /// Changes with main revision ≥ `rev`, oldest first, at most one per
    /// main revision (the last change of a txn wins).
    pub fn since(&self, rev: i64) -> Vec<Revision> {
        let mut out: Vec<Revision> = Vec::new();
        for g in self.generations.iter() {
            for &r in g.revs.iter().filter(|r| r.main >= rev) {
                match out.last_mut() {
                    Some(last) if last.main == r.main => *last = r,
                    _ => out.push(r),
                }
            }
        }
        out
    }

    fn find_generation(&self, rev: i64) -> Option<&Generation> {
        let last = self.generations.len() - 1;
        for (i, g) in self.generations.iter().enumerate().rev() {
            let Some(first) = g.revs.first() else {
                continue;
            };
            if i != last && g.revs[g.revs.len() - 1].main <= rev {
                // Deleted at or before `rev`: the key was not live then.
                return None;
            }
            if first.main <= rev {
                return Some(g);
            }
        }
        None
    }

    /// Finds the generation compaction at `at_rev` starts from, adding to
    /// `keep` every rev ≤ `at_rev` that a scan from there meets first.
    fn compaction_point(
        &self,
        at_rev: i64,
        keep: &mut HashSet<Revision>,
    ) -> (usize, Option<usize>) {
        let mut gen = 0;
        // Skip generations deleted before at_rev, but never the last. A
        // generation deleted *at* at_rev is kept down to its tombstone: a
        // watch from at_rev (still allowed) must see that delete (etcd
        // #18089, fixed in etcd 3.5.16 and 3.4.34) — unless the same
        // revision created the key again (possible inside one mvcc txn,
        // never through etcd's API), whose put is then the change to keep.
        while gen < self.generations.len() - 1 {
            let tomb = self.generations[gen].revs[self.generations[gen].revs.len() - 1].main;
            let recreated_by = self.generations[gen + 1].revs.first().map(|r| r.main);
            if tomb > at_rev || (tomb == at_rev && recreated_by.is_none_or(|c| c > at_rev)) {
                break;
            }
            gen += 1;
        }
        let rev_idx = self.generations[gen].walk_back(|rev| {
            if rev.main <= at_rev {
                keep.insert(rev);
                false
            } else {
                true
            }
        });
        (gen, rev_idx)
    }

    /// Drops history older than `at_rev`, keeping the latest change ≤ it,
    /// even a tombstone at `at_rev` itself (the next compaction past it
    /// drops it). Adds the revisions that must survive in the backend to
    /// `keep`.
    ///
    /// # Panics
    /// On an empty key index: it should have been removed.
    pub fn compact(&mut self, at_rev: i64, keep: &mut HashSet<Revision>) {
        assert!(!self.is_empty(), "compacting an empty key index");
        let (gen, rev_idx) = self.compaction_point(at_rev, keep);
        let g = &mut self.generations[gen];
        if let Some(i) = rev_idx {
            g.revs.drop_front(i);
        }
        self.generations.drop_front(gen);
    }

    /// The revisions ≤ `at_rev` that HashKV covers after a compaction at
    /// `at_rev`: what [`KeyIndex::compact`] keeps, except a tombstone at
    /// `at_rev`, which releases before etcd 3.5.16 and 3.4.34 deleted, so
    /// that every member hashes the same whichever kind compacted it.
    pub fn keep(&self, at_rev: i64, keep: &mut HashSet<Revision>) {
        if self.is_empty() {
            return;
        }
        let (gen, rev_idx) = self.compaction_point(at_rev, keep);
        let g = &self.generations[gen];
        if let Some(i) = rev_idx {
            if !g.is_empty() && i == g.revs.len() - 1 && gen != self.generations.len() - 1 {
                keep.remove(&g.revs[i]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(main: i64) -> Revision {
        Revision::new(main, 0)
    }

    /// put 2, put 4, delete 6, put 8, put 10, delete 12, put 14.
    fn history() -> KeyIndex {
        let mut ki = KeyIndex::default();
        ki.put(rev(2));
        ki.put(rev(4));
        assert!(ki.tombstone(rev(6)));
        ki.put(rev(8));
        ki.put(rev(10));
        assert!(ki.tombstone(rev(12)));
        ki.put(rev(14));
        ki
    }

    #[test]
    fn get_walks_generations() {
        let ki = history();
        let at = |r| ki.get(r).map(|k| (k.modified.main, k.created, k.version));
        assert_eq!(at(1), None);
        assert_eq!(at(2), Some((2, 2, 1)));
        assert_eq!(at(5), Some((4, 2, 2)));
        assert_eq!(at(6), None);
        assert_eq!(at(7), None);
        assert_eq!(at(9), Some((8, 8, 1)));
        assert_eq!(at(11), Some((10, 8, 2)));
        assert_eq!(at(12), None);
        assert_eq!(at(13), None);
        assert_eq!(at(100), Some((14, 14, 1)));
    }

    #[test]
    fn tombstone_of_a_dead_key_is_refused() {
        let mut ki = KeyIndex::default();
        ki.put(rev(1));
        assert!(ki.tombstone(rev(2)));
        assert!(!ki.tombstone(rev(3)));
        assert_eq!(ki.modified(), rev(2));
    }

    #[test]
    #[should_panic(expected = "not after last change")]
    fn revisions_never_go_back() {
        let mut ki = KeyIndex::default();
        ki.put(rev(5));
        ki.put(rev(4));
    }

    #[test]
    fn compaction_keeps_the_latest_live_change() {
        // (compact at, generations left, revisions kept, revisions hashed)
        type Case = (
            i64,
            &'static [&'static [i64]],
            &'static [i64],
            &'static [i64],
        );
        let cases: &[Case] = &[
            (1, &[&[2, 4, 6], &[8, 10, 12], &[14]], &[], &[]),
            (2, &[&[2, 4, 6], &[8, 10, 12], &[14]], &[2], &[2]),
            (5, &[&[4, 6], &[8, 10, 12], &[14]], &[4], &[4]),
            // A tombstone at the compaction stays (a watch from 6 sees
            // the delete), but is not hashed.
            (6, &[&[6], &[8, 10, 12], &[14]], &[6], &[]),
            (7, &[&[8, 10, 12], &[14]], &[], &[]),
            (9, &[&[8, 10, 12], &[14]], &[8], &[8]),
            (11, &[&[10, 12], &[14]], &[10], &[10]),
            (12, &[&[12], &[14]], &[12], &[]),
            (13, &[&[14]], &[], &[]),
            (14, &[&[14]], &[14], &[14]),
            (20, &[&[14]], &[14], &[14]),
        ];
        for &(at, gens, kept, hashed) in cases {
            let mut ki = history();
            let mut keep = HashSet::new();
            let mut would_keep = HashSet::new();
            ki.keep(at, &mut would_keep);
            ki.compact(at, &mut keep);
            let got: Vec<Vec<i64>> = ki
                .generations()
                .iter()
                .map(|g| g.revs.iter().map(|r| r.main).collect())
                .filter(|g: &Vec<i64>| !g.is_empty())
                .collect();
            assert_eq!(
                got,
                gens.iter().map(|g| g.to_vec()).collect::<Vec<_>>(),
                "at {at}"
            );
            let mut keep: Vec<i64> = keep.into_iter().map(|r| r.main).collect();
            keep.sort();
            assert_eq!(keep, kept, "keep at {at}");
            let mut would: Vec<i64> = would_keep.into_iter().map(|r| r.main).collect();
            would.sort();
            assert_eq!(would, hashed, "keep() at {at}");
        }
    }

    #[test]
    fn a_tombstone_at_the_compaction_lasts_until_the_next_one() {
        let mut ki = KeyIndex::default();
        ki.put(rev(1));
        assert!(ki.tombstone(rev(2)));
        let mut keep = HashSet::new();
        ki.compact(2, &mut keep);
        assert!(!ki.is_empty());
        assert_eq!(keep, HashSet::from([rev(2)]));
        assert_eq!(ki.get(2), None, "deleted at 2");
        let mut keep = HashSet::new();
        ki.compact(3, &mut keep);
        assert!(ki.is_empty());
        assert!(keep.is_empty());
    }

    #[test]
    fn a_restored_lone_tombstone_compacts_as_the_original() {
        let mut original = KeyIndex::default();
        original.put(rev(1));
        assert!(original.tombstone(rev(2)));
        original.compact(2, &mut HashSet::new());
        let mut restored = KeyIndex::restore_tombstone(rev(2));
        assert_eq!(restored.get(5), None);
        assert_eq!(restored.modified(), rev(2));
        for at in [2, 3] {
            let (mut a, mut b) = (HashSet::new(), HashSet::new());
            original.compact(at, &mut a);
            restored.compact(at, &mut b);
            assert_eq!(a, b, "keep at {at}");
            assert_eq!(original.is_empty(), restored.is_empty(), "at {at}");
        }
        // A key recreated after the lone tombstone gets a new generation.
        let mut again = KeyIndex::restore_tombstone(rev(2));
        again.put(rev(3));
        assert_eq!(again.get(3).map(|k| (k.created, k.version)), Some((3, 1)));
    }

    #[test]
    fn compacting_past_the_final_tombstone_empties_the_index() {
        let mut ki = KeyIndex::default();
        ki.put(rev(1));
        assert!(ki.tombstone(rev(2)));
        let mut keep = HashSet::new();
        ki.compact(3, &mut keep);
        assert!(ki.is_empty());
        assert!(keep.is_empty());
    }

    #[test]
    fn since_lists_changes_from_a_revision() {
        let ki = history();
        let mains: Vec<i64> = ki.since(5).iter().map(|r| r.main).collect();
        assert_eq!(mains, [6, 8, 10, 12, 14]);
    }
}
