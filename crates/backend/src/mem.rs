//! The in-memory engine: for unit tests of the layers above, never instead
//! of RocksDB in the server.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::buffered::{Engine, EngineRead};
use crate::small_key::SmallKey;
use crate::{BackendConfig, Bucket, BufferedBackend, Result, TxBuffer, ValueReader, Visitor};

type Maps = [BTreeMap<SmallKey, Vec<u8>>; Bucket::COUNT];

/// Buckets as ordered maps; a view shares them copy-on-write. Clones share
/// the data: a backend opened over a clone, after the first is dropped,
/// is a restart over the same disk (what was committed is there, what
/// was only buffered is not).
#[derive(Default, Clone)]
pub struct MemEngine {
    maps: Arc<RwLock<Arc<Maps>>>,
}

/// The buffered backend over the in-memory engine.
pub type MemBackend = BufferedBackend<MemEngine>;

impl MemBackend {
    /// An empty in-memory backend.
    pub fn open_in_memory(config: BackendConfig) -> MemBackend {
        BufferedBackend::new(MemEngine::default(), config)
            .expect("in-memory backend: invalid config or no committer thread")
    }

    /// A backend over `engine`'s data (see [`MemEngine`]).
    pub fn over(engine: MemEngine, config: BackendConfig) -> Result<MemBackend> {
        BufferedBackend::new(engine, config)
    }
}

/// A point-in-time view of a [`MemEngine`].
pub struct MemView(Arc<Maps>);

fn get_in(maps: &Maps, bucket: Bucket, key: &[u8], read: ValueReader<'_>) -> bool {
    match maps[bucket.index()].get(key) {
        Some(v) => {
            read(v);
            true
        }
        None => false,
    }
}

fn scan_in(maps: &Maps, bucket: Bucket, start: &[u8], end: &[u8], visit: Visitor<'_>) {
    if !end.is_empty() && start >= end {
        return;
    }
    let upper = if end.is_empty() {
        Bound::Unbounded
    } else {
        Bound::Excluded(end)
    };
    for (k, v) in maps[bucket.index()].range::<[u8], _>((Bound::Included(start), upper)) {
        if visit(k.as_slice(), v).is_break() {
            break;
        }
    }
}

impl EngineRead for MemEngine {
    fn get_with(&self, bucket: Bucket, key: &[u8], read: ValueReader<'_>) -> Result<bool> {
        Ok(get_in(&self.maps.read(), bucket, key, read))
    }

    fn scan(&self, bucket: Bucket, start: &[u8], end: &[u8], visit: Visitor<'_>) -> Result<()> {
        scan_in(&self.maps.read(), bucket, start, end, visit);
        Ok(())
    }
}

impl EngineRead for MemView {
    fn get_with(&self, bucket: Bucket, key: &[u8], read: ValueReader<'_>) -> Result<bool> {
        Ok(get_in(&self.0, bucket, key, read))
    }

    fn scan(&self, bucket: Bucket, start: &[u8], end: &[u8], visit: Visitor<'_>) -> Result<()> {
        scan_in(&self.0, bucket, start, end, visit);
        Ok(())
    }
}

impl Engine for MemEngine {
    type View<'a> = MemView;

    fn view(&self) -> MemView {
        MemView(Arc::clone(&self.maps.read()))
    }

    fn write(&self, buf: &TxBuffer) -> Result<()> {
        let mut guard = self.maps.write();
        // Copies the maps only while a view still shares them.
        let maps = Arc::make_mut(&mut guard);
        for bucket in Bucket::all() {
            let map = &mut maps[bucket.index()];
            for (k, v) in buf.entries(bucket) {
                match v {
                    Some(v) => map.insert(k.into(), v.to_vec()),
                    None => map.remove(k),
                };
            }
        }
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        Ok(())
    }

    fn size_bytes(&self) -> u64 {
        self.size_in_use_bytes()
    }

    fn size_in_use_bytes(&self) -> u64 {
        let maps = self.maps.read();
        maps.iter()
            .flat_map(|m| m.iter())
            .map(|(k, v)| (k.as_slice().len() + v.len()) as u64)
            .sum()
    }

    fn defrag(&self) -> Result<()> {
        Ok(())
    }
}
