//! The Maintenance service on `EtcdServer`.

use std::time::{Duration, Instant};

use ironcd_api::{ApiResult, EtcdError, MaintenanceApi, RequestContext, SnapshotChunks};
use ironcd_backend::Backend;
use ironcd_proto::etcdserverpb::{
    alarm_request::AlarmAction, AlarmMember, AlarmRequest, AlarmResponse, AlarmType,
    DefragmentRequest, DefragmentResponse, HashKvRequest, HashKvResponse, HashRequest,
    HashResponse, InternalRaftRequest, MoveLeaderRequest, MoveLeaderResponse, StatusRequest,
    StatusResponse,
};
use ironcd_raft_node::Role;

use crate::kv::mvcc_error;
use crate::server::{raft_error, EtcdServer};
use crate::snapshot_file::{SnapshotSender, SNAPSHOT_STREAM_MESSAGES};
use crate::ETCD_VERSION;

fn internal(e: impl std::fmt::Display) -> EtcdError {
    EtcdError::Internal(e.to_string())
}

impl EtcdServer {
    fn alarm_list(&self, of: i32) -> Vec<AlarmMember> {
        self.state()
            .alarms
            .read()
            .iter()
            .filter(|(_, a)| of == AlarmType::None as i32 || *a == of)
            .map(|(member_id, alarm)| AlarmMember {
                member_id: *member_id,
                alarm: *alarm,
            })
            .collect()
    }
}

impl MaintenanceApi for EtcdServer {
    async fn alarm(&self, _ctx: &RequestContext, r: AlarmRequest) -> ApiResult<AlarmResponse> {
        if r.action() == AlarmAction::Get {
            // etcd answers alarms without a header.
            return Ok(AlarmResponse {
                header: None,
                alarms: self.alarm_list(r.alarm),
            });
        }
        let req = InternalRaftRequest {
            alarm: Some(r),
            ..Default::default()
        };
        self.propose_as(req).await
    }

    async fn status(&self, _ctx: &RequestContext, _r: StatusRequest) -> ApiResult<StatusResponse> {
        let status = self.inner.node.status().await.map_err(raft_error)?;
        let (db_size, db_size_in_use) = {
            let store = self.state().store();
            (
                store.backend().size_bytes(),
                store.backend().size_in_use_bytes(),
            )
        };
        let errors = self
            .alarm_list(AlarmType::None as i32)
            .iter()
            .map(|a| {
                format!(
                    "memberID:{} alarm:{} ",
                    a.member_id,
                    AlarmType::try_from(a.alarm)
                        .unwrap_or(AlarmType::None)
                        .as_str_name()
                )
            })
            .collect();
        let is_learner = self.is_learner();
        Ok(StatusResponse {
            header: self.current_header(),
            version: ETCD_VERSION.into(),
            db_size: db_size as i64,
            leader: status.leader,
            raft_index: status.commit,
            raft_term: status.term,
            raft_applied_index: self.state().applied_index(),
            errors,
            db_size_in_use: db_size_in_use as i64,
            is_learner,
            storage_version: String::new(),
            db_size_quota: self.inner.cfg.quota_backend_bytes as i64,
            downgrade_info: None,
        })
    }

    async fn defragment(
        &self,
        _ctx: &RequestContext,
        _r: DefragmentRequest,
    ) -> ApiResult<DefragmentResponse> {
        let server = self.clone();
        tokio::task::spawn_blocking(move || server.state().store().backend().defrag())
            .await
            .map_err(internal)?
            .map_err(internal)?;
        // etcd answers this one without a header.
        Ok(DefragmentResponse { header: None })
    }

    async fn hash(&self, _ctx: &RequestContext, _r: HashRequest) -> ApiResult<HashResponse> {
        let hash = self
            .state()
            .store()
            .backend()
            .hash(&|_, _| false)
            .map_err(internal)?;
        Ok(HashResponse {
            header: self.current_header(),
            hash,
        })
    }

    async fn hash_kv(&self, _ctx: &RequestContext, r: HashKvRequest) -> ApiResult<HashKvResponse> {
        let h = self
            .state()
            .store()
            .hash_by_rev(r.revision)
            .map_err(mvcc_error)?;
        Ok(HashKvResponse {
            header: self.header(h.current_rev),
            hash: h.hash,
            compact_revision: h.compact_rev,
            hash_revision: h.hash_rev,
        })
    }

    async fn snapshot(&self, _ctx: &RequestContext) -> ApiResult<SnapshotChunks> {
        let (tx, rx) = tokio::sync::mpsc::channel(SNAPSHOT_STREAM_MESSAGES);
        let header = self.current_header();
        let server = self.clone();
        // The backend is read as the client takes the messages: a snapshot
        // in progress holds a few chunks, never the database.
        tokio::task::spawn_blocking(move || {
            let mut sender = SnapshotSender::new(tx, header);
            let length = sender.length_slot();
            let written = server.state().write_backend_snapshot(
                &mut |len| {
                    length.announce(len);
                    Ok(())
                },
                &mut sender,
            );
            match written {
                Ok(_) => {
                    if let Err(e) = sender.finish() {
                        tracing::debug!(error = %e, "snapshot stream ended early");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "snapshot failed");
                    sender.fail(internal(e));
                }
            }
        });
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }

    async fn move_leader(
        &self,
        _ctx: &RequestContext,
        r: MoveLeaderRequest,
    ) -> ApiResult<MoveLeaderResponse> {
        let status = self.inner.node.status().await.map_err(raft_error)?;
        if status.role != Role::Leader {
            return Err(EtcdError::NotLeader);
        }
        if !status.membership.voters.contains(&r.target_id) {
            return Err(EtcdError::BadLeaderTransferee);
        }
        if r.target_id != self.id() {
            self.inner
                .node
                .transfer_leader(r.target_id)
                .await
                .map_err(raft_error)?;
            let deadline = Instant::now() + self.inner.request_timeout;
            while self.leader().await != r.target_id {
                if Instant::now() > deadline {
                    return Err(EtcdError::Timeout);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        // etcd answers this one without a header.
        Ok(MoveLeaderResponse { header: None })
    }
}
