//! The KV service on `EtcdServer`.

use std::sync::atomic::Ordering;

use ironcd_api::{ApiResult, EtcdError, KvApi, RequestContext};
use ironcd_proto::etcdserverpb::{
    AlarmRequest, AlarmType, CompactionRequest, CompactionResponse, DeleteRangeRequest,
    DeleteRangeResponse, InternalRaftRequest, PutRequest, PutResponse, RangeRequest, RangeResponse,
    TxnRequest, TxnResponse,
};

use crate::kv;
use crate::server::EtcdServer;

impl EtcdServer {
    /// Refuses a write that would take the backend past the quota, raising
    /// the NOSPACE alarm as etcd does; refuses every write while it is up.
    async fn check_quota(&self, cost: u64) -> ApiResult<()> {
        let size = self.state().db_size_bytes.load(Ordering::Relaxed);
        if size + cost <= self.inner.cfg.quota_backend_bytes {
            return Ok(());
        }
        let raised = self
            .state()
            .alarms
            .read()
            .iter()
            .any(|(_, a)| *a == AlarmType::Nospace as i32);
        if !raised {
            let alarm = AlarmRequest {
                action: ironcd_proto::etcdserverpb::alarm_request::AlarmAction::Activate as i32,
                member_id: self.id(),
                alarm: AlarmType::Nospace as i32,
            };
            let req = InternalRaftRequest {
                alarm: Some(alarm),
                ..Default::default()
            };
            let _ = self.propose(req).await;
        }
        Err(EtcdError::NoSpace)
    }

    fn read_range(&self, r: &RangeRequest) -> ApiResult<RangeResponse> {
        let store = self.state().store();
        let txn = store.read();
        let mut resp = kv::range(&txn, r)?;
        drop(txn);
        self.complete(&mut resp.header);
        Ok(resp)
    }
}

impl KvApi for EtcdServer {
    async fn range(&self, _ctx: &RequestContext, r: RangeRequest) -> ApiResult<RangeResponse> {
        if !r.serializable {
            self.linearize().await?;
        }
        self.inner.metrics.ranges.fetch_add(1, Ordering::Relaxed);
        self.read_range(&r)
    }

    async fn put(&self, _ctx: &RequestContext, r: PutRequest) -> ApiResult<PutResponse> {
        self.check_quota((r.key.len() + r.value.len()) as u64)
            .await?;
        let req = InternalRaftRequest {
            put: Some(r),
            ..Default::default()
        };
        let mut resp: PutResponse = self.propose_as(req).await?;
        self.complete(&mut resp.header);
        Ok(resp)
    }

    async fn delete_range(
        &self,
        _ctx: &RequestContext,
        r: DeleteRangeRequest,
    ) -> ApiResult<DeleteRangeResponse> {
        let req = InternalRaftRequest {
            delete_range: Some(r),
            ..Default::default()
        };
        let mut resp: DeleteRangeResponse = self.propose_as(req).await?;
        self.complete(&mut resp.header);
        Ok(resp)
    }

    async fn txn(&self, _ctx: &RequestContext, r: TxnRequest) -> ApiResult<TxnResponse> {
        if kv::is_read_only(&r) {
            if !kv::is_serializable(&r) {
                self.linearize().await?;
            }
            let store = self.state().store();
            let txn = store.read();
            let mut resp = kv::txn_read(&txn, &r, txn.rev())?;
            drop(txn);
            drop(store);
            self.complete(&mut resp.header);
            return Ok(resp);
        }
        let cost = prost::Message::encoded_len(&r) as u64;
        self.check_quota(cost).await?;
        let req = InternalRaftRequest {
            txn: Some(r),
            ..Default::default()
        };
        let mut resp: TxnResponse = self.propose_as(req).await?;
        self.complete(&mut resp.header);
        Ok(resp)
    }

    async fn compact(
        &self,
        _ctx: &RequestContext,
        r: CompactionRequest,
    ) -> ApiResult<CompactionResponse> {
        let physical = r.physical;
        let req = InternalRaftRequest {
            compaction: Some(r),
            ..Default::default()
        };
        let (mut resp, wait): (CompactionResponse, _) = self.propose_as(req).await?;
        if let (true, Some(wait)) = (physical, wait) {
            tokio::task::spawn_blocking(move || wait.wait())
                .await
                .map_err(|e| EtcdError::Internal(e.to_string()))?
                .map_err(kv::mvcc_error)?;
        }
        self.complete(&mut resp.header);
        Ok(resp)
    }
}
