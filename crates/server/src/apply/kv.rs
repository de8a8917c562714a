//! KV requests (Put, DeleteRange, Txn, Compaction) applied to the store:
//! each in one mvcc write txn whose backend batch also records the entry's
//! index.

use ironcd_backend::Backend;
use ironcd_mvcc::TxnWrite;
use ironcd_proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, PutRequest, ResponseHeader,
    TxnRequest,
};

use super::lease::track_leases;
use super::{At, Domains};
use crate::kv;
use crate::state::{write_consistent_index, Applied, Outcome};

impl<B: Backend> Domains<'_, B> {
    /// Runs `f` in one mvcc write txn that also records the index; on an
    /// error nothing but the index is written. The lessor follows the
    /// keys the txn wrote.
    fn write_kv(&self, at: At, f: impl FnOnce(&mut TxnWrite<'_, B>) -> Outcome) -> Outcome {
        let store = self.state.store();
        let mut txn = store.write();
        let outcome = f(&mut txn);
        track_leases(&self.state.lessor, txn.changes());
        write_consistent_index(txn.backend_tx(), at.index, at.term);
        outcome
    }

    pub(super) fn put(&self, at: At, p: &PutRequest) -> Outcome {
        if p.lease != 0 && !self.state.lessor.exists(p.lease) {
            self.mark_only(at);
            return Err(ironcd_api::EtcdError::LeaseNotFound);
        }
        self.write_kv(at, |txn| kv::put(txn, p).map(Applied::Put))
    }

    pub(super) fn delete_range(&self, at: At, d: &DeleteRangeRequest) -> Outcome {
        self.write_kv(at, |txn| kv::delete_range(txn, d).map(Applied::Delete))
    }

    pub(super) fn txn(&self, at: At, t: &TxnRequest) -> Outcome {
        let store = self.state.store();
        let lessor = &self.state.lessor;
        let result = match kv::txn_write(&store, t, &|id| lessor.exists(id)) {
            Ok((mut txn, response)) => {
                track_leases(lessor, txn.changes());
                write_consistent_index(txn.backend_tx(), at.index, at.term);
                Ok(Applied::Txn(response))
            }
            Err(err) => Err(err),
        };
        drop(store);
        if result.is_err() {
            self.mark_only(at);
        }
        result
    }

    pub(super) fn compaction(&self, at: At, c: &CompactionRequest) -> Outcome {
        let outcome = {
            let store = self.state.store();
            store
                .compact(c.revision)
                .map_err(kv::mvcc_error)
                .map(|wait| {
                    let header = Some(ResponseHeader {
                        revision: store.current_rev(),
                        ..ResponseHeader::default()
                    });
                    Applied::Compact(CompactionResponse { header }, Some(wait))
                })
        };
        self.mark_only(at);
        outcome
    }
}

/// Whether a txn may write (a put on either branch, nested included): the
/// quota refuses those while NOSPACE is raised.
pub(super) fn has_put(t: &TxnRequest) -> bool {
    use ironcd_proto::etcdserverpb::request_op::Request;
    t.success
        .iter()
        .chain(&t.failure)
        .any(|op| match &op.request {
            Some(Request::RequestPut(_)) => true,
            Some(Request::RequestTxn(inner)) => has_put(inner),
            _ => false,
        })
}
