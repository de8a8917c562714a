//! `ironcd snapshot restore FILE [flags]`: a new member's data directory
//! from a file `etcdctl snapshot save` wrote from ironcd. Run it for every
//! member of the new cluster with that member's `--name` and the same
//! `--initial-cluster`, then start the members as a new cluster: they share
//! the keys and revisions of the snapshot and nothing of the old cluster's
//! membership, alarms or raft log.

use std::path::Path;

use ironcd_backend::{Backend, BackendConfig, BatchTx, Bucket, ReadTx, RocksBackend};
use sha2::Digest;

use crate::config::ServerConfig;
use crate::error::{Error, Result};
use crate::state::write_consistent_index;

/// Size of the SHA-256 trailer etcd's snapshot files end with.
const CHECKSUM_BYTES: usize = 32;

/// Checks the file's trailer and returns the data before it.
fn verified(file: &[u8]) -> Result<&[u8]> {
    if file.len() < CHECKSUM_BYTES || !(file.len() - CHECKSUM_BYTES).is_multiple_of(512) {
        return Err(Error::DataDir(format!(
            "snapshot of {} bytes has no SHA-256 trailer",
            file.len()
        )));
    }
    let (data, sum) = file.split_at(file.len() - CHECKSUM_BYTES);
    if sha2::Sha256::digest(data).as_slice() != sum {
        return Err(Error::DataDir("snapshot SHA-256 mismatch".into()));
    }
    Ok(data)
}

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
    let file = std::fs::read(snapshot_file)?;
    let data = verified(&file)?;
    let db = cfg.member_dir().join("db");
    std::fs::create_dir_all(&db)?;
    let backend = RocksBackend::open(&db, BackendConfig::default())?;
    ironcd_backend::restore_snapshot(&backend, &mut &data[..])?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailer_is_checked() {
        let good = crate::maintenance_api::with_checksum(b"data".to_vec());
        assert_eq!(&verified(&good).unwrap()[..4], b"data");
        let mut bad = good.clone();
        bad[0] ^= 1;
        assert!(verified(&bad).is_err());
        assert!(verified(&good[..good.len() - 1]).is_err());
    }
}
