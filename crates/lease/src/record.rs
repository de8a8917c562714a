//! The `lease` bucket: one record per lease, as etcd stores it.
//!
//! ```text
//! key:   lease id as 8 bytes, big endian (etcd's int64ToBytes)
//! value: leasepb.Lease protobuf { ID = 1, TTL = 2, RemainingTTL = 3 }
//! ```
//!
//! `TTL` is the granted TTL (after the minimum is applied); `RemainingTTL`
//! is the last checkpointed remaining TTL, 0 when never checkpointed or
//! cleared by a renewal.

use ironcd_backend::{BatchTx, Bucket, ReadTx};
use ironcd_proto::leasepb;
use prost::Message;

use crate::{Error, LeaseId, Result};

/// The bucket key of lease `id`.
pub fn key(id: LeaseId) -> [u8; 8] {
    (id as u64).to_be_bytes()
}

/// A lease as persisted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    /// The lease.
    pub id: LeaseId,
    /// Granted TTL, seconds.
    pub ttl_s: i64,
    /// Checkpointed remaining TTL, seconds (0 = none).
    pub remaining_ttl_s: i64,
}

impl Record {
    /// Writes this record into `tx`.
    pub fn put(&self, tx: &mut impl BatchTx) {
        assert!(
            self.ttl_s > 0,
            "lease {:x} persisted with ttl {}",
            self.id,
            self.ttl_s
        );
        let value = leasepb::Lease {
            id: self.id,
            ttl: self.ttl_s,
            remaining_ttl: self.remaining_ttl_s,
        }
        .encode_to_vec();
        tx.put(Bucket::LEASE, &key(self.id), &value);
    }

    /// Removes lease `id`'s record from `tx`.
    pub fn delete(id: LeaseId, tx: &mut impl BatchTx) {
        tx.delete(Bucket::LEASE, &key(id));
    }

    /// Every record in the bucket, in key order. A record whose key and
    /// body disagree, or that does not decode, is corruption.
    pub fn load_all(tx: &impl ReadTx) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        for (k, v) in tx.range(Bucket::LEASE, &[], Some(&[]), 0)? {
            let l = leasepb::Lease::decode(v.as_slice())
                .map_err(|e| Error::Corrupt(format!("record under {k:02x?}: {e}")))?;
            if k.as_slice() != key(l.id) || l.ttl <= 0 {
                return Err(Error::Corrupt(format!(
                    "record under {k:02x?} holds lease {:x} with ttl {}",
                    l.id, l.ttl
                )));
            }
            out.push(Record {
                id: l.id,
                ttl_s: l.ttl,
                remaining_ttl_s: l.remaining_ttl,
            });
        }
        Ok(out)
    }
}
