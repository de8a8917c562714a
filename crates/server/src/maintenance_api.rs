//! The Maintenance service on `EtcdServer`.

use std::time::{Duration, Instant};

use ironcd_api::{ApiResult, EtcdError, MaintenanceApi, SnapshotChunks};
use ironcd_backend::Backend;
use ironcd_proto::etcdserverpb::{
    alarm_request::AlarmAction, AlarmMember, AlarmRequest, AlarmResponse, AlarmType,
    DefragmentRequest, DefragmentResponse, HashKvRequest, HashKvResponse, HashRequest,
    HashResponse, InternalRaftRequest, MoveLeaderRequest, MoveLeaderResponse, SnapshotResponse,
    StatusRequest, StatusResponse,
};
use ironcd_raft_node::Role;

use crate::kv::mvcc_error;
use crate::server::{raft_error, EtcdServer};
use crate::state::Applied;
use crate::ETCD_VERSION;

/// Bytes per Snapshot message (etcd sends 32 KiB chunks).
const SNAPSHOT_CHUNK_BYTES: usize = 32 * 1024;

fn internal(e: impl std::fmt::Display) -> EtcdError {
    EtcdError::Internal(e.to_string())
}

/// etcd's snapshot file layout, which `etcdctl snapshot save` checks: the
/// data padded with zeros to a multiple of 512 bytes, then its SHA-256.
/// The backend's stream ends with its own trailer, so the padding is
/// ignored on restore.
pub fn with_checksum(mut data: Vec<u8>) -> Vec<u8> {
    use sha2::Digest;
    data.resize(data.len().div_ceil(512) * 512, 0);
    let digest = sha2::Sha256::digest(&data);
    data.extend_from_slice(&digest);
    data
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
    async fn alarm(&self, r: AlarmRequest) -> ApiResult<AlarmResponse> {
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
        match self.propose(req).await? {
            Applied::Alarm(resp) => Ok(resp),
            _ => Err(internal("unexpected apply result for alarm")),
        }
    }

    async fn status(&self, _r: StatusRequest) -> ApiResult<StatusResponse> {
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
        let is_learner = self
            .state()
            .members
            .read()
            .get(self.id())
            .is_some_and(|m| m.is_learner);
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

    async fn defragment(&self, _r: DefragmentRequest) -> ApiResult<DefragmentResponse> {
        let server = self.clone();
        tokio::task::spawn_blocking(move || server.state().store().backend().defrag())
            .await
            .map_err(internal)?
            .map_err(internal)?;
        Ok(DefragmentResponse {
            header: self.current_header(),
        })
    }

    async fn hash(&self, _r: HashRequest) -> ApiResult<HashResponse> {
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

    async fn hash_kv(&self, r: HashKvRequest) -> ApiResult<HashKvResponse> {
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

    async fn snapshot(&self) -> ApiResult<SnapshotChunks> {
        let server = self.clone();
        let data = tokio::task::spawn_blocking(move || server.state().backend_snapshot())
            .await
            .map_err(internal)?
            .map_err(internal)?;
        let data = with_checksum(data);
        let header = self.current_header();
        // Chunks are copied out one at a time as the stream is polled, so
        // the snapshot is held once, not twice.
        let data = std::sync::Arc::new(data);
        let chunks = (0..data.len().div_ceil(SNAPSHOT_CHUNK_BYTES)).map(move |i| {
            let start = i * SNAPSHOT_CHUNK_BYTES;
            let end = (start + SNAPSHOT_CHUNK_BYTES).min(data.len());
            Ok(SnapshotResponse {
                header,
                remaining_bytes: (data.len() - end) as u64,
                blob: data[start..end].to_vec(),
                version: ETCD_VERSION.into(),
            })
        });
        Ok(Box::pin(tokio_stream::iter(chunks)))
    }

    async fn move_leader(&self, r: MoveLeaderRequest) -> ApiResult<MoveLeaderResponse> {
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
        Ok(MoveLeaderResponse {
            header: self.current_header(),
        })
    }
}
