//! Limits of the WAL and the snapshotter, validated once.

use crate::error::{Error, Result};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// Default size segments are preallocated to and cut at (etcd's 64 MiB).
pub const DEFAULT_SEGMENT_SIZE_BYTES: u64 = 64 * MIB;
/// Smallest allowed segment size: small segments only make sense in tests.
pub const MIN_SEGMENT_SIZE_BYTES: u64 = 4 * KIB;
/// Largest allowed segment size.
pub const MAX_SEGMENT_SIZE_BYTES: u64 = 4 * GIB;

/// Largest raft entry data the default configuration is meant to carry.
pub const DEFAULT_MAX_ENTRY_DATA_BYTES: u64 = 10 * MIB;
/// Room in a record for what wraps the entry data (index, term) and for the
/// raft entry encoding raft-node puts around a request.
pub const RECORD_OVERHEAD_BYTES: u64 = 64 * KIB;
/// Default limit on one record's payload.
pub const DEFAULT_MAX_RECORD_BYTES: u64 = DEFAULT_MAX_ENTRY_DATA_BYTES + RECORD_OVERHEAD_BYTES;
/// Smallest allowed record limit: a hard state or marker must always fit.
pub const MIN_MAX_RECORD_BYTES: u64 = KIB;
/// Largest allowed record limit; the length field on disk is a `u32`, and a
/// reader must be able to hold one record in memory.
pub const MAX_MAX_RECORD_BYTES: u64 = GIB;

/// Default number of snapshot files kept by `purge`.
pub const DEFAULT_MAX_SNAPSHOTS: usize = 5;
/// Largest allowed `max_snapshots`.
pub const MAX_MAX_SNAPSHOTS: usize = 1024;

/// Default limit on the data of one snapshot file.
pub const DEFAULT_MAX_SNAPSHOT_BYTES: u64 = 512 * MIB;
/// Largest allowed snapshot data limit (a `u32` length on disk).
pub const MAX_MAX_SNAPSHOT_BYTES: u64 = 2 * GIB;

/// Limits of a WAL and its snapshot directory. Build it, then let
/// [`Wal`](crate::Wal) or [`Snapshotter`](crate::Snapshotter) validate it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalConfig {
    /// A segment is preallocated to this size and a new one is cut once a
    /// save leaves the current one at or beyond it. Default 64 MiB, at least
    /// 4 KiB, at most 4 GiB.
    pub segment_size_bytes: u64,
    /// Largest payload of one record, in bytes (an entry's payload is its
    /// data plus 16 bytes). Longer input is refused by `save`; a longer
    /// length read from disk is an error before anything is allocated.
    /// Default 10 MiB + 64 KiB, at least 1 KiB, at most 1 GiB.
    pub max_record_bytes: u64,
    /// Snapshot files kept by `Snapshotter::purge`. Default 5, at least 1,
    /// at most 1024.
    pub max_snapshots: usize,
    /// Largest opaque data in one snapshot file, in bytes. Default 512 MiB,
    /// at least 1 KiB, at most 2 GiB.
    pub max_snapshot_bytes: u64,
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig {
            segment_size_bytes: DEFAULT_SEGMENT_SIZE_BYTES,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            max_snapshots: DEFAULT_MAX_SNAPSHOTS,
            max_snapshot_bytes: DEFAULT_MAX_SNAPSHOT_BYTES,
        }
    }
}

impl WalConfig {
    /// Checks every field against its documented range.
    pub fn validate(&self) -> Result<()> {
        check_range(
            "segment_size_bytes",
            self.segment_size_bytes,
            MIN_SEGMENT_SIZE_BYTES,
            MAX_SEGMENT_SIZE_BYTES,
        )?;
        check_range(
            "max_record_bytes",
            self.max_record_bytes,
            MIN_MAX_RECORD_BYTES,
            MAX_MAX_RECORD_BYTES,
        )?;
        check_range(
            "max_snapshots",
            self.max_snapshots as u64,
            1,
            MAX_MAX_SNAPSHOTS as u64,
        )?;
        check_range(
            "max_snapshot_bytes",
            self.max_snapshot_bytes,
            KIB,
            MAX_MAX_SNAPSHOT_BYTES,
        )
    }
}

fn check_range(field: &'static str, value: u64, min: u64, max: u64) -> Result<()> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(Error::InvalidConfig {
            field,
            reason: format!("is {value}, must be in {min}..={max}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        WalConfig::default().validate().expect("default config");
    }

    #[test]
    fn every_field_is_range_checked() {
        type Breaker = fn(&mut WalConfig);
        let cases: [(&str, Breaker); 8] = [
            ("segment_size_bytes", |c| {
                c.segment_size_bytes = MIN_SEGMENT_SIZE_BYTES - 1
            }),
            ("segment_size_bytes", |c| {
                c.segment_size_bytes = MAX_SEGMENT_SIZE_BYTES + 1
            }),
            ("max_record_bytes", |c| {
                c.max_record_bytes = MIN_MAX_RECORD_BYTES - 1
            }),
            ("max_record_bytes", |c| {
                c.max_record_bytes = MAX_MAX_RECORD_BYTES + 1
            }),
            ("max_snapshots", |c| c.max_snapshots = 0),
            ("max_snapshots", |c| c.max_snapshots = MAX_MAX_SNAPSHOTS + 1),
            ("max_snapshot_bytes", |c| c.max_snapshot_bytes = 0),
            ("max_snapshot_bytes", |c| {
                c.max_snapshot_bytes = MAX_MAX_SNAPSHOT_BYTES + 1
            }),
        ];
        for (field, break_it) in cases {
            let mut config = WalConfig::default();
            break_it(&mut config);
            match config.validate() {
                Err(Error::InvalidConfig { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: expected InvalidConfig, got {other:?}"),
            }
        }
    }

    #[test]
    fn bounds_are_inclusive() {
        let config = WalConfig {
            segment_size_bytes: MIN_SEGMENT_SIZE_BYTES,
            max_record_bytes: MAX_MAX_RECORD_BYTES,
            max_snapshots: 1,
            max_snapshot_bytes: MAX_MAX_SNAPSHOT_BYTES,
        };
        config.validate().expect("bounds are allowed");
    }
}
