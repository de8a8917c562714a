//! The RocksDB engine: one column family per bucket.
//!
//! RocksDB's own WAL stays on but is not fsynced per commit: a batch commit
//! is one unsynced WAL append (it survives a process kill), `sync()` fsyncs
//! it (`force_commit`), and recovery in point-in-time mode yields exactly a
//! prefix of the committed batches. Durability against power loss comes from
//! the raft WAL plus `consistent_index` replay, as in etcd.

use std::path::{Path, PathBuf};

use rocksdb::{
    BlockBasedOptions, BottommostLevelCompaction, Cache, ColumnFamily, ColumnFamilyDescriptor,
    CompactOptions, DBCompressionType, DBRecoveryMode, Options, ReadOptions,
    SnapshotWithThreadMode, WriteBatch, WriteOptions, DB,
};

use crate::buffered::{Engine, EngineRead};
use crate::{
    BackendConfig, Bucket, BufferedBackend, Error, Result, TxBuffer, ValueReader, Visitor,
};

/// RocksDB under the buffering layer.
pub struct RocksEngine {
    db: DB,
    path: PathBuf,
}

/// The buffered backend over RocksDB: what the server runs on.
pub type RocksBackend = BufferedBackend<RocksEngine>;

impl RocksBackend {
    /// Opens (creating if needed) the backend stored in `path`.
    pub fn open(path: impl AsRef<Path>, config: BackendConfig) -> Result<RocksBackend> {
        config.validate()?;
        let engine = RocksEngine::open(path.as_ref(), &config)?;
        BufferedBackend::new(engine, config)
    }
}

impl RocksEngine {
    fn open(path: &Path, config: &BackendConfig) -> Result<Self> {
        std::fs::create_dir_all(path).map_err(|e| Error::Open {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let cache = Cache::new_lru_cache(config.block_cache_bytes as usize);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&cache);
        table.set_bloom_filter(10.0, false);
        table.set_cache_index_and_filter_blocks(true);

        let mut cf_opts = Options::default();
        cf_opts.set_block_based_table_factory(&table);
        cf_opts.set_compression_type(DBCompressionType::Lz4);
        cf_opts.set_level_compaction_dynamic_level_bytes(true);

        let mut db_opts = cf_opts.clone();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_wal_recovery_mode(DBRecoveryMode::PointInTime);
        db_opts.set_db_write_buffer_size(config.write_buffer_bytes as usize);
        db_opts.set_max_background_jobs(2);
        db_opts.set_keep_log_file_num(4);

        let cfs = Bucket::all().map(|b| ColumnFamilyDescriptor::new(b.name(), cf_opts.clone()));
        let db = DB::open_cf_descriptors(&db_opts, path, cfs).map_err(|e| Error::Open {
            path: path.to_owned(),
            reason: e.into_string(),
        })?;
        Ok(Self {
            db,
            path: path.to_owned(),
        })
    }

    fn cf(&self, bucket: Bucket) -> &ColumnFamily {
        self.db
            .cf_handle(bucket.name())
            .unwrap_or_else(|| panic!("column family {} was created at open", bucket.name()))
    }

    fn int_property(&self, bucket: Bucket, name: &str) -> u64 {
        self.db
            .property_int_value_cf(self.cf(bucket), name)
            .ok()
            .flatten()
            .unwrap_or(0)
    }
}

fn scan_iter(
    mut it: rocksdb::DBRawIteratorWithThreadMode<'_, DB>,
    start: &[u8],
    visit: Visitor<'_>,
) -> Result<()> {
    it.seek(start);
    while let (Some(k), Some(v)) = (it.key(), it.value()) {
        if visit(k, v).is_break() {
            return Ok(());
        }
        it.next();
    }
    it.status()?;
    Ok(())
}

fn bounded(end: &[u8]) -> ReadOptions {
    let mut opts = ReadOptions::default();
    if !end.is_empty() {
        opts.set_iterate_upper_bound(end.to_vec());
    }
    opts
}

impl EngineRead for RocksEngine {
    fn get_with(&self, bucket: Bucket, key: &[u8], read: ValueReader<'_>) -> Result<bool> {
        let value = self.db.get_pinned_cf(self.cf(bucket), key)?;
        Ok(value.map(|v| read(&v)).is_some())
    }

    fn scan(&self, bucket: Bucket, start: &[u8], end: &[u8], visit: Visitor<'_>) -> Result<()> {
        if !end.is_empty() && start >= end {
            return Ok(());
        }
        let mut opts = bounded(end);
        if start.is_empty() && end.is_empty() {
            // A whole bucket (index rebuild at open, snapshot stream, hash):
            // read once, so its blocks would only evict the working set.
            opts.fill_cache(false);
        }
        scan_iter(
            self.db.raw_iterator_cf_opt(self.cf(bucket), opts),
            start,
            visit,
        )
    }
}

/// A RocksDB snapshot with the engine it reads through.
pub struct RocksView<'a> {
    engine: &'a RocksEngine,
    snapshot: SnapshotWithThreadMode<'a, DB>,
}

impl EngineRead for RocksView<'_> {
    fn get_with(&self, bucket: Bucket, key: &[u8], read: ValueReader<'_>) -> Result<bool> {
        let value = self.snapshot.get_pinned_cf(self.engine.cf(bucket), key)?;
        Ok(value.map(|v| read(&v)).is_some())
    }

    fn scan(&self, bucket: Bucket, start: &[u8], end: &[u8], visit: Visitor<'_>) -> Result<()> {
        if !end.is_empty() && start >= end {
            return Ok(());
        }
        let it = self
            .snapshot
            .raw_iterator_cf_opt(self.engine.cf(bucket), bounded(end));
        scan_iter(it, start, visit)
    }
}

impl Engine for RocksEngine {
    type View<'a> = RocksView<'a>;

    fn view(&self) -> RocksView<'_> {
        RocksView {
            engine: self,
            snapshot: self.db.snapshot(),
        }
    }

    fn write(&self, buf: &TxBuffer) -> Result<()> {
        let mut batch = WriteBatch::default();
        for bucket in Bucket::all() {
            let cf = self.cf(bucket);
            for (k, v) in buf.entries(bucket) {
                match v {
                    Some(v) => batch.put_cf(cf, k, v),
                    None => batch.delete_cf(cf, k),
                }
            }
        }
        let mut opts = WriteOptions::default();
        opts.set_sync(false);
        Ok(self.db.write_opt(batch, &opts)?)
    }

    fn sync(&self) -> Result<()> {
        Ok(self.db.flush_wal(true)?)
    }

    fn size_bytes(&self) -> u64 {
        dir_size(&self.path)
    }

    fn size_in_use_bytes(&self) -> u64 {
        Bucket::all()
            .map(|b| {
                self.int_property(b, "rocksdb.estimate-live-data-size")
                    + self.int_property(b, "rocksdb.cur-size-all-mem-tables")
            })
            .sum()
    }

    fn defrag(&self) -> Result<()> {
        let mut opts = CompactOptions::default();
        opts.set_bottommost_level_compaction(BottommostLevelCompaction::Force);
        for bucket in Bucket::all() {
            self.db
                .compact_range_cf_opt(self.cf(bucket), None::<&[u8]>, None::<&[u8]>, &opts);
        }
        Ok(())
    }
}

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}
