//! Lease requests (LeaseGrant, LeaseRevoke, LeaseCheckpoint) applied to
//! the lessor, and the lessor kept in step with the keys the store writes.

use ironcd_api::EtcdError;
use ironcd_backend::Backend;
use ironcd_lease::{Lessor, RangeDeleter};
use ironcd_mvcc::TxnWrite;
use ironcd_proto::etcdserverpb::{
    LeaseCheckpointRequest, LeaseCheckpointResponse, LeaseGrantRequest, LeaseGrantResponse,
    LeaseRevokeRequest, LeaseRevokeResponse, ResponseHeader,
};
use ironcd_proto::mvccpb::{event::EventType, Event};

use super::{At, Domains};
use crate::state::{write_consistent_index, Applied, Outcome};

/// Maps a lessor error to etcd's.
pub(crate) fn lease_error(e: ironcd_lease::Error) -> EtcdError {
    use ironcd_lease::Error as E;
    match e {
        E::LeaseNotFound => EtcdError::LeaseNotFound,
        E::LeaseExists => EtcdError::LeaseExist,
        E::TtlTooLarge => EtcdError::LeaseTtlTooLarge,
        E::NotPrimary => EtcdError::NotLeader,
        other => EtcdError::Internal(other.to_string()),
    }
}

/// Binds and unbinds keys as a write txn's events say: a put binds its
/// key to the put's lease (or to none), a delete unbinds it.
pub(crate) fn track_leases(lessor: &Lessor, changes: &[Event]) {
    for e in changes {
        let Some(kv) = &e.kv else { continue };
        if e.r#type == EventType::Delete as i32 {
            lessor.detach_key(&kv.key);
        } else {
            lessor.attach_key(&kv.key, kv.lease);
        }
    }
}

/// The revoke's keys, deleted in one mvcc write txn.
struct KeyDeleter<'t, 'a, B: Backend>(&'t mut TxnWrite<'a, B>);

impl<'a, B: Backend> RangeDeleter for KeyDeleter<'_, 'a, B> {
    type Tx = B::BatchTx<'a>;

    fn delete_key(&mut self, key: &[u8]) {
        self.0.delete_range(key, None);
    }

    fn tx(&mut self) -> &mut Self::Tx {
        self.0.backend_tx()
    }
}

fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision,
        ..ResponseHeader::default()
    })
}

impl<B: Backend> Domains<'_, B> {
    pub(super) fn lease_grant(&self, at: At, r: &LeaseGrantRequest) -> Outcome {
        let store = self.state.store();
        let mut tx = store.backend().batch_tx();
        let granted = self.state.lessor.grant(&mut tx, r.id, r.ttl);
        write_consistent_index(&mut tx, at.index, at.term);
        drop(tx);
        let granted = granted.map_err(lease_error)?;
        Ok(Applied::LeaseGrant(LeaseGrantResponse {
            header: header(store.current_rev()),
            id: granted.id,
            ttl: granted.ttl_s,
            error: String::new(),
        }))
    }

    /// Deletes the lease's keys in one revision (one watch response), and
    /// its record, in the entry's batch.
    pub(super) fn lease_revoke(&self, at: At, r: &LeaseRevokeRequest) -> Outcome {
        let store = self.state.store();
        let lessor = &self.state.lessor;
        let mut txn = store.write();
        let revoked = lessor.revoke(r.id, &mut KeyDeleter(&mut txn));
        track_leases(lessor, txn.changes());
        write_consistent_index(txn.backend_tx(), at.index, at.term);
        drop(txn);
        revoked.map_err(lease_error)?;
        Ok(Applied::LeaseRevoke(LeaseRevokeResponse {
            header: header(store.current_rev()),
        }))
    }

    pub(super) fn lease_checkpoint(&self, at: At, r: &LeaseCheckpointRequest) -> Outcome {
        let store = self.state.store();
        let mut tx = store.backend().batch_tx();
        for cp in &r.checkpoints {
            self.state
                .lessor
                .checkpoint(&mut tx, cp.id, cp.remaining_ttl);
        }
        write_consistent_index(&mut tx, at.index, at.term);
        drop(tx);
        Ok(Applied::LeaseCheckpoint(LeaseCheckpointResponse {
            header: header(store.current_rev()),
        }))
    }
}
