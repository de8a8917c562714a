use std::collections::BTreeMap;
use std::ops::{Bound, ControlFlow};

use crate::buffered::EngineRead;
use crate::small_key::SmallKey;
use crate::{Bucket, ValueReader, Visitor};

/// Writes not yet in the engine, per bucket, in key order. `None` marks a
/// delete that must hide the engine's value.
#[derive(Clone, Debug, Default)]
pub struct TxBuffer {
    buckets: [BTreeMap<SmallKey, Option<Vec<u8>>>; Bucket::COUNT],
    writes: u64,
}

/// What the buffer says about a key.
pub(crate) enum Lookup<'a> {
    /// Not buffered: ask the engine.
    Miss,
    /// Buffered delete.
    Deleted,
    /// Buffered value.
    Value(&'a [u8]),
}

impl TxBuffer {
    pub(crate) fn put(&mut self, bucket: Bucket, key: &[u8], value: &[u8]) {
        self.buckets[bucket.index()].insert(key.into(), Some(value.to_vec()));
        self.writes += 1;
    }

    pub(crate) fn delete(&mut self, bucket: Bucket, key: &[u8]) {
        self.buckets[bucket.index()].insert(key.into(), None);
        self.writes += 1;
    }

    /// Writes recorded since the buffer was last cleared (overwrites count).
    pub fn writes(&self) -> u64 {
        self.writes
    }

    /// True when nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.buckets.iter().all(BTreeMap::is_empty)
    }

    pub(crate) fn clear(&mut self) {
        self.buckets.iter_mut().for_each(BTreeMap::clear);
        self.writes = 0;
    }

    /// Moves every entry of `other` into `self` (later writes win).
    pub(crate) fn absorb(&mut self, other: &mut TxBuffer) {
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets.iter_mut()) {
            if mine.is_empty() {
                std::mem::swap(mine, theirs);
            } else {
                // Not BTreeMap::append: it rebuilds the whole tree, O(n) per
                // txn over a buffer that holds up to a batch of writes.
                for (k, v) in std::mem::take(theirs) {
                    mine.insert(k, v);
                }
            }
        }
        self.writes += other.writes;
        other.writes = 0;
    }

    pub(crate) fn lookup(&self, bucket: Bucket, key: &[u8]) -> Lookup<'_> {
        match self.buckets[bucket.index()].get(key) {
            None => Lookup::Miss,
            Some(None) => Lookup::Deleted,
            Some(Some(v)) => Lookup::Value(v),
        }
    }

    /// Every buffered entry of `bucket` in key order (`None` = delete).
    pub fn entries(&self, bucket: Bucket) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
        self.buckets[bucket.index()]
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_deref()))
    }

    pub(crate) fn range<'a>(
        &'a self,
        bucket: Bucket,
        start: &'a [u8],
        end: &'a [u8],
    ) -> impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)> + 'a {
        let map = &self.buckets[bucket.index()];
        let upper = if end.is_empty() {
            Bound::Unbounded
        } else {
            Bound::Excluded(end)
        };
        // BTreeMap::range panics when start > end; an empty range is meant.
        let nonempty = end.is_empty() || start < end;
        let it = nonempty.then(|| map.range::<[u8], _>((Bound::Included(start), upper)));
        it.into_iter()
            .flatten()
            .map(|(k, v)| (k.as_slice(), v.as_deref()))
    }
}

/// Reads `key` of `bucket` through a stack of buffers (most recent first)
/// over `lower`: the first layer that mentions the key decides.
pub(crate) fn get_layered(
    layers: &[&TxBuffer],
    lower: &impl EngineRead,
    bucket: Bucket,
    key: &[u8],
    read: ValueReader<'_>,
) -> crate::Result<bool> {
    for layer in layers {
        match layer.lookup(bucket, key) {
            Lookup::Miss => continue,
            Lookup::Deleted => return Ok(false),
            Lookup::Value(v) => {
                read(v);
                return Ok(true);
            }
        }
    }
    lower.get_with(bucket, key, read)
}

/// Scans `bucket` through buffers (most recent first) over `lower`, with
/// [`crate::ReadTx::scan`]'s bounds. Deleted keys are skipped; buffered
/// values win.
pub(crate) fn scan_layered(
    layers: &[&TxBuffer],
    lower: &impl EngineRead,
    bucket: Bucket,
    start: &[u8],
    end: Option<&[u8]>,
    visit: Visitor<'_>,
) -> crate::Result<()> {
    let Some(end) = end else {
        get_layered(layers, lower, bucket, start, &mut |v| {
            let _ = visit(start, v);
        })?;
        return Ok(());
    };
    // Fold the buffers into one ordered overlay (they hold at most one batch
    // interval of writes), earlier layers winning.
    let mut overlay: BTreeMap<&[u8], Option<&[u8]>> = BTreeMap::new();
    for layer in layers.iter().rev() {
        overlay.extend(layer.range(bucket, start, end));
    }
    if overlay.is_empty() {
        return lower.scan(bucket, start, end, visit);
    }
    let mut pending = overlay.into_iter().peekable();
    let mut stopped = false;
    lower.scan(bucket, start, end, &mut |k, v| {
        // Emit buffered keys that sort before (or replace) the engine's key.
        while let Some(&(bk, bv)) = pending.peek() {
            if bk > k {
                break;
            }
            pending.next();
            if let Some(bv) = bv {
                if visit(bk, bv).is_break() {
                    stopped = true;
                    return ControlFlow::Break(());
                }
            }
            if bk == k {
                return ControlFlow::Continue(());
            }
        }
        if visit(k, v).is_break() {
            stopped = true;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    })?;
    if !stopped {
        for (bk, bv) in pending {
            if let Some(bv) = bv {
                if visit(bk, bv).is_break() {
                    break;
                }
            }
        }
    }
    Ok(())
}
