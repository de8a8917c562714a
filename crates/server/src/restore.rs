//! `ironcd snapshot restore FILE [flags]`: a new member's data directory
//! from a file `etcdctl snapshot save` wrote from ironcd. Run it for every
//! member of the new cluster with that member's `--name` and the same
//! `--initial-cluster`, then start the members as a new cluster: they share
//! the keys and revisions of the snapshot and nothing of the old cluster's
//! membership, alarms or raft log.

use std::path::Path;

use ironcd_backend::{Backend, BackendConfig, BatchTx, Bucket, ReadTx, RocksBackend};

use crate::config::ServerConfig;
use crate::error::{Error, Result};
use crate::state::write_consistent_index;

/// Drops every key of `bucket`.
fn clear(backend: &RocksBackend, bucket: Bucket) -> Result<()> {
    let keys = backend.read_tx().range(bucket, &[], Some(&[]), 0)?;
    let mut tx = backend.batch_tx();
    for (k, _) in keys {
        tx.delete(bucket, &k);
    }
    Ok(())
}

/// Writes `cfg.data_dir` from `snapshot_file`; the directory must not exist.
pub fn restore(cfg: &ServerConfig, snapshot_file: &Path) -> Result<()> {
    if cfg.data_dir.exists() {
        return Err(Error::DataDir(format!(
            "data-dir {:?} exists",
            cfg.data_dir
        )));
    }
    // Read twice, in pieces: once for the checksum, once to restore.
    let data_len = crate::snapshot_file::verify_file(snapshot_file)?;
    let db = cfg.member_dir().join("db");
    std::fs::create_dir_all(&db)?;
    let backend = RocksBackend::open(&db, BackendConfig::default())?;
    let file = std::io::BufReader::new(std::fs::File::open(snapshot_file)?);
    ironcd_backend::restore_snapshot(&backend, &mut std::io::Read::take(file, data_len))?;
    for bucket in [Bucket::MEMBERS, Bucket::MEMBERS_REMOVED, Bucket::ALARM] {
        clear(&backend, bucket)?;
    }
    {
        // The new cluster's log starts again at 1.
        let mut tx = backend.batch_tx();
        write_consistent_index(&mut tx, 0, 0);
    }
    backend.force_commit()?;
    tracing::info!(data_dir = %cfg.data_dir.display(), "restored snapshot");
    Ok(())
}
