//! HTTP on the client (and metrics) URLs: `/health`, `/version`,
//! `/metrics`, beside gRPC on the same port.

use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use ironcd_backend::Backend;
use ironcd_proto::etcdserverpb::AlarmType;

use crate::metrics::Gauges;
use crate::server::EtcdServer;
use crate::ETCD_VERSION;

/// How long `/health` waits for a linearizable read barrier.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);

/// The HTTP routes, to merge with the gRPC ones.
pub fn routes(server: EtcdServer) -> Router {
    let (health, metrics) = (server.clone(), server);
    Router::new()
        .route("/health", get(move || health_handler(health.clone())))
        .route("/version", get(version_handler))
        .route("/metrics", get(move || metrics_handler(metrics.clone())))
}

async fn version_handler() -> impl IntoResponse {
    let body = format!(
        "{{\"etcdserver\":\"{ETCD_VERSION}\",\"etcdcluster\":\"{ETCD_VERSION}\",\"ironcd\":\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    ([(header::CONTENT_TYPE, "application/json")], body)
}

/// etcd's health: a leader, no alarm, and a read barrier that completes.
async fn health_handler(server: EtcdServer) -> impl IntoResponse {
    let reason = if server
        .state()
        .alarms
        .read()
        .iter()
        .any(|(_, a)| *a != AlarmType::None as i32)
    {
        Some("ALARM")
    } else if server.leader().await == 0 {
        Some("RAFT NO LEADER")
    } else {
        match tokio::time::timeout(HEALTH_TIMEOUT, server.linearize()).await {
            Ok(Ok(())) => None,
            _ => Some("QGET ERROR"),
        }
    };
    let (code, body) = match reason {
        None => (
            StatusCode::OK,
            "{\"health\":\"true\",\"reason\":\"\"}".to_string(),
        ),
        Some(r) => {
            tracing::warn!(reason = r, "/health error");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{{\"health\":\"false\",\"reason\":\"{r}\"}}"),
            )
        }
    };
    (code, [(header::CONTENT_TYPE, "application/json")], body)
}

async fn metrics_handler(server: EtcdServer) -> impl IntoResponse {
    let status = server.inner.node.status().await.ok();
    let gauges = {
        let store = server.state().store();
        Gauges {
            has_leader: status.as_ref().is_some_and(|s| s.leader != 0),
            is_leader: status.as_ref().is_some_and(|s| s.leader == server.id()),
            applied_index: server.state().applied_index(),
            committed_index: status.as_ref().map_or(0, |s| s.commit),
            term: status.as_ref().map_or(0, |s| s.term),
            db_size_bytes: store.backend().size_bytes(),
            db_size_in_use_bytes: store.backend().size_in_use_bytes(),
            current_revision: store.current_rev(),
            compact_revision: store.compact_rev(),
            quota_bytes: server.inner.cfg.quota_backend_bytes,
        }
    };
    let body = server.inner.metrics.render(&gauges);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
