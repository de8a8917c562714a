//! HTTP on the client (and metrics) URLs beside gRPC: `/health`,
//! `/livez`, `/readyz` (etcd 3.5's checks), `/version` and `/metrics`.

use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use ironcd_api::traits::KvApi;
use ironcd_api::RequestContext;
use ironcd_backend::Backend;
use ironcd_proto::etcdserverpb::{AlarmType, RangeRequest};

use crate::metrics::Gauges;
use crate::server::EtcdServer;
use crate::ETCD_VERSION;

/// The longest any health check waits for a read (etcd: its request
/// timeout for `/health`; the probe's own deadline for the others, which
/// ironcd bounds as well).
fn check_timeout(server: &EtcdServer) -> Duration {
    server.inner.request_timeout
}

/// The HTTP routes, to merge with the gRPC ones.
pub fn routes(server: EtcdServer) -> Router {
    Router::new()
        .route("/health", get(health_handler).fallback(method_not_allowed))
        .route("/livez", get(livez_handler).fallback(method_not_allowed))
        .route(
            "/livez/{check}",
            get(livez_check_handler).fallback(method_not_allowed),
        )
        .route("/readyz", get(readyz_handler).fallback(method_not_allowed))
        .route(
            "/readyz/{check}",
            get(readyz_check_handler).fallback(method_not_allowed),
        )
        .route("/version", get(version_handler))
        .route("/metrics", get(metrics_handler))
        .with_state(server)
}

/// Go's `http.Error`: a plain-text body with a newline.
fn plain_error(code: StatusCode, body: &str) -> Response {
    (
        code,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        format!("{body}\n"),
    )
        .into_response()
}

/// What a path nothing serves gets: gRPC's `Unimplemented` for a gRPC call
/// (as tonic answers an unknown method), Go's plain 404 for anything else
/// (as etcd's HTTP mux does, e.g. for `/v3/…` with the gateway off).
pub async fn fallback(request: axum::extract::Request) -> Response {
    let grpc = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    if grpc {
        tonic::Status::unimplemented("").into_http::<axum::body::Body>()
    } else {
        plain_error(StatusCode::NOT_FOUND, "404 page not found")
    }
}

/// What etcd's health handlers answer any method but GET.
async fn method_not_allowed() -> Response {
    let mut response = plain_error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    response
        .headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static("GET"));
    response
}

async fn version_handler() -> impl IntoResponse {
    let body = format!(
        "{{\"etcdserver\":\"{ETCD_VERSION}\",\"etcdcluster\":\"{ETCD_VERSION}\",\"ironcd\":\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    ([(header::CONTENT_TYPE, "application/json")], body)
}

/// The values of query parameter `name`, decoded as Go's `url.Query`
/// decodes them (`+` is a space, `%XX` a byte), empty ones left out.
fn query_values(query: Option<&str>, name: &str) -> Vec<String> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = |b: u8| (b as char).to_digit(16);
                    match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                        (Some(hi), Some(lo)) => {
                            out.push((hi * 16 + lo) as u8);
                            i += 2;
                        }
                        _ => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    query
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k) == name).then(|| decode(v))
        })
        .filter(|v| !v.is_empty())
        .collect()
}

/// A one-key, keys-only range, serializable (this member's store) or
/// linearizable (a read barrier through the leader), as etcd's checks
/// read; the error's message when it fails or takes too long.
async fn read_check(server: &EtcdServer, serializable: bool) -> Result<(), String> {
    let request = RangeRequest {
        key: vec![0],
        keys_only: true,
        limit: 1,
        serializable,
        ..Default::default()
    };
    let ctx = RequestContext::default();
    match tokio::time::timeout(check_timeout(server), server.range(&ctx, request)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(tonic::Status::from(e).message().to_string()),
        Err(_) => Err("etcdserver: request timed out".to_string()),
    }
}

fn active_alarms(server: &EtcdServer) -> Vec<AlarmType> {
    server
        .state()
        .alarms
        .read()
        .iter()
        .filter_map(|(_, a)| AlarmType::try_from(*a).ok())
        .filter(|a| *a != AlarmType::None)
        .collect()
}

/// etcd 3.5's `/health`: no alarm (but those `?exclude=`d), a leader
/// (unless `?serializable=true`), and a one-key range that completes.
async fn health_handler(State(server): State<EtcdServer>, RawQuery(query): RawQuery) -> Response {
    let excluded = query_values(query.as_deref(), "exclude");
    let serializable = query_values(query.as_deref(), "serializable") == ["true"];
    let alarm = active_alarms(&server)
        .into_iter()
        .find(|a| !excluded.iter().any(|e| e == a.as_str_name()));
    let reason = if let Some(alarm) = alarm {
        Some(match alarm {
            AlarmType::Nospace => "ALARM NOSPACE".to_string(),
            AlarmType::Corrupt => "ALARM CORRUPT".to_string(),
            AlarmType::None => "ALARM UNKNOWN".to_string(),
        })
    } else if !serializable && server.leader().await == 0 {
        Some("RAFT NO LEADER".to_string())
    } else {
        read_check(&server, serializable)
            .await
            .err()
            .map(|e| format!("RANGE ERROR:{e}"))
    };
    let metrics = &server.inner.metrics;
    let counter = match reason {
        None => &metrics.health_success,
        Some(_) => &metrics.health_failures,
    };
    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let body = format!(
        "{{\"health\":\"{}\",\"reason\":\"{}\"}}",
        reason.is_none(),
        reason.as_deref().unwrap_or("")
    );
    match reason {
        None => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            body,
        )
            .into_response(),
        Some(r) => {
            tracing::warn!(reason = %r, "/health error");
            plain_error(StatusCode::SERVICE_UNAVAILABLE, &body)
        }
    }
}

/// The checks of `/livez` and `/readyz`, in the order they are reported.
const LIVEZ: &[&str] = &["serializable_read"];
const READYZ: &[&str] = &[
    "data_corruption",
    "serializable_read",
    "linearizable_read",
    "non_learner",
];

/// Runs one named check.
async fn run_check(server: &EtcdServer, name: &str) -> Result<(), String> {
    match name {
        "serializable_read" => read_check(server, true).await,
        "linearizable_read" => read_check(server, false).await,
        "data_corruption" => match active_alarms(server).contains(&AlarmType::Corrupt) {
            true => Err("alarm activated: CORRUPT".to_string()),
            false => Ok(()),
        },
        "non_learner" => match server.is_learner() {
            true => Err("not supported for learner".to_string()),
            false => Ok(()),
        },
        _ => Ok(()),
    }
}

/// Runs `checks` of `kind` and answers as etcd 3.5 does: `ok` (with each
/// check's line first when `?verbose` is given), or 503 with every line.
async fn run_checks(
    server: &EtcdServer,
    kind: &str,
    checks: &[&str],
    query: Option<&str>,
) -> Response {
    let mut lines = String::new();
    let mut failed = false;
    for name in checks {
        let result = run_check(server, name).await;
        server
            .inner
            .metrics
            .checks
            .record(kind, name, result.is_ok());
        match result {
            Ok(()) => lines.push_str(&format!("[+]{name} ok\n")),
            Err(e) => {
                failed = true;
                lines.push_str(&format!("[-]{name} failed: {e}\n"));
            }
        }
    }
    if failed {
        tracing::error!(path = %format!("/{kind}"), reason = %lines, "Health check error");
        // Go's http.Error adds a newline after the reason's own.
        return plain_error(StatusCode::SERVICE_UNAVAILABLE, &lines);
    }
    let verbose = query
        .unwrap_or("")
        .split('&')
        .any(|p| p.split_once('=').map_or(p, |(k, _)| k) == "verbose");
    let body = if verbose {
        format!("{lines}ok\n")
    } else {
        "ok\n".to_string()
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// The root endpoint: every check but those `?exclude=`d (an unknown
/// name is ignored, for compatibility, as etcd does).
async fn root_checks(
    server: &EtcdServer,
    kind: &str,
    all: &[&str],
    query: Option<&str>,
) -> Response {
    let excluded = query_values(query, "exclude");
    let checks: Vec<&str> = all
        .iter()
        .copied()
        .filter(|c| !excluded.iter().any(|e| e == c))
        .collect();
    run_checks(server, kind, &checks, query).await
}

/// One check by name; 404 for a name that is not one.
async fn one_check(
    server: &EtcdServer,
    kind: &str,
    all: &[&str],
    name: &str,
    query: Option<&str>,
) -> Response {
    match all.iter().find(|c| **c == name) {
        Some(check) => run_checks(server, kind, &[check], query).await,
        None => plain_error(StatusCode::NOT_FOUND, "404 page not found"),
    }
}

async fn livez_handler(State(server): State<EtcdServer>, RawQuery(q): RawQuery) -> Response {
    root_checks(&server, "livez", LIVEZ, q.as_deref()).await
}

async fn readyz_handler(State(server): State<EtcdServer>, RawQuery(q): RawQuery) -> Response {
    root_checks(&server, "readyz", READYZ, q.as_deref()).await
}

async fn livez_check_handler(
    State(server): State<EtcdServer>,
    Path(check): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    one_check(&server, "livez", LIVEZ, &check, q.as_deref()).await
}

async fn readyz_check_handler(
    State(server): State<EtcdServer>,
    Path(check): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    one_check(&server, "readyz", READYZ, &check, q.as_deref()).await
}

async fn metrics_handler(State(server): State<EtcdServer>) -> impl IntoResponse {
    let status = server.inner.node.status().await.ok();
    let gauges = {
        let store = server.state().store();
        let keys = store
            .range(
                &[0],
                // An empty end: every key from the first.
                Some(&[]),
                ironcd_mvcc::RangeOptions {
                    count_only: true,
                    ..Default::default()
                },
            )
            .map_or(0, |r| r.count);
        let watchable = &server.inner.watchable;
        let (_, unsynced, victims) = watchable.group_sizes();
        Gauges {
            member_id: server.id(),
            has_leader: status.as_ref().is_some_and(|s| s.leader != 0),
            is_leader: status.as_ref().is_some_and(|s| s.leader == server.id()),
            is_learner: server.is_learner(),
            applied_index: server.state().applied_index(),
            committed_index: status.as_ref().map_or(0, |s| s.commit),
            term: status.as_ref().map_or(0, |s| s.term),
            db_size_bytes: store.backend().size_bytes(),
            db_size_in_use_bytes: store.backend().size_in_use_bytes(),
            current_revision: store.current_rev(),
            compact_revision: store.compact_rev(),
            keys,
            quota_bytes: server.inner.cfg.quota_backend_bytes,
            watchers: watchable.watcher_count() as u64,
            watch_streams: watchable.stream_count(),
            slow_watchers: (unsynced + victims) as u64,
            leases: server.state().lessor.len() as u64,
        }
    };
    let body = server.inner.metrics.render(&gauges);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

#[cfg(test)]
mod tests {
    use super::query_values;

    #[test]
    fn query_values_decode_as_go_does() {
        let q = Some("exclude=NOSPACE&exclude=&x=1&exclude=A%42+C&serializable=true");
        assert_eq!(query_values(q, "exclude"), ["NOSPACE", "AB C"]);
        assert_eq!(query_values(q, "serializable"), ["true"]);
        assert!(query_values(None, "exclude").is_empty());
        assert_eq!(query_values(Some("exclude=%4"), "exclude"), ["%4"]);
    }
}
