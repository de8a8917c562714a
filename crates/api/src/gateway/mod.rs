//! etcd's HTTP+JSON gateway: the paths grpc-gateway v1 serves on etcd's
//! client URLs next to gRPC (`/v3/kv/range`, `/v3/watch`, …), each a POST
//! whose body is the request message in JSON (`json.rs`).
//!
//! etcd's gateway is a gRPC client of its own server. ironcd's calls the
//! very tonic service methods [`Services`] implements, with a
//! `tonic::Request` built from the HTTP request — so validation, admission
//! and error mapping are the gRPC ones, with no second implementation. The
//! `Authorization` header becomes the `token` metadata (etcd reads either),
//! `Grpc-Metadata-<key>` headers become `<key>` metadata (grpc-gateway's
//! rule, e.g. `Grpc-Metadata-Hasleader: true`), and the HTTP request's
//! extensions (the listener's [`crate::VerifiedClientName`]) are kept.
//!
//! Unary answers are the response message in JSON, or grpc-gateway's error
//! (`errors.rs`). Streams (`stream.rs`): Watch and LeaseKeepAlive read a
//! sequence of JSON requests from the body; Watch, LeaseKeepAlive,
//! Snapshot and Observe answer newline-delimited `{"result":…}` chunks.
//!
//! Paths are etcd 3.5's. etcd 3.4 has no `/v3/maintenance/downgrade` and
//! no HashKV path (it registers HashKV at `/v3/maintenance/hash` too,
//! where Hash answers; 3.5 moved it to `/v3/maintenance/hashkv`).
//! `/v3beta/…` is `/v3/…`, as in both. Auth is not built: its paths answer
//! `Unimplemented`, as the gRPC service does.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # fn serve<S: ironcd_api::EtcdApi>(server: Arc<S>, limits: ironcd_api::Limits) {
//! let services = ironcd_api::Services::new(server, limits);
//! let router = services.routes().into_axum_router()
//!     .merge(ironcd_api::gateway::routes(services.clone(), limits));
//! # }
//! ```

mod errors;
mod json;
mod stream;

use std::future::Future;

use axum::body::Body;
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::routing::{post, MethodRouter};
use axum::Router;
use futures_util::StreamExt;
use ironcd_proto::etcdserverpb::cluster_server::Cluster;
use ironcd_proto::etcdserverpb::kv_server::Kv;
use ironcd_proto::etcdserverpb::lease_server::Lease;
use ironcd_proto::etcdserverpb::maintenance_server::Maintenance;
use ironcd_proto::etcdserverpb::{LeaseKeepAliveRequest, WatchRequest};
use ironcd_proto::v3electionpb::election_server::Election;
use ironcd_proto::v3lockpb::lock_server::Lock;
use ironcd_proto::watch_reply::WatchReply;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::Status;

use crate::service::GRPC_OVERHEAD_BYTES;
use crate::validate::Limits;
use crate::{EtcdApi, Services, FORWARDED_METADATA_KEY, TOKEN_METADATA_KEY};
use errors::{json_response, plain_text, stream_error, unary_error};
use stream::{AfterBody, JsonReader};

/// The prefix grpc-gateway turns into gRPC metadata (`runtime.MetadataHeaderPrefix`).
const METADATA_HEADER_PREFIX: &str = "grpc-metadata-";

/// JSON is longer than the protobuf it carries: bytes grow by 4/3 in
/// base64, numbers become decimal strings, and every field is named. A
/// body may be this many times the gRPC message limit.
const JSON_EXPANSION_FACTOR: usize = 3;

/// The gateway's limits, from the services' [`Limits`].
#[derive(Clone, Copy, Debug)]
struct BodyLimits {
    /// The largest request message, encoded (what gRPC admits:
    /// `--max-request-bytes` plus gRPC's overhead).
    message_bytes: usize,
    /// The largest JSON text of one request message.
    json_bytes: usize,
}

impl BodyLimits {
    fn of(limits: Limits) -> Self {
        // A gRPC frame's length is 32 bits: no message is longer.
        let message_bytes = limits
            .max_request_bytes
            .saturating_add(GRPC_OVERHEAD_BYTES)
            .min(u64::from(u32::MAX));
        let message_bytes = usize::try_from(message_bytes).unwrap_or(usize::MAX);
        Self {
            message_bytes,
            json_bytes: message_bytes.saturating_mul(JSON_EXPANSION_FACTOR),
        }
    }

    /// gRPC refuses a message over its limit with this (grpc-go's text,
    /// which etcd's gateway passes on).
    fn check<T: prost::Message>(&self, message: &T) -> Result<(), Status> {
        let len = message.encoded_len();
        if len > self.message_bytes {
            return Err(Status::resource_exhausted(format!(
                "grpc: received message larger than max ({len} vs. {})",
                self.message_bytes
            )));
        }
        Ok(())
    }
}

/// The gateway's routes over `services`, whose requests are checked
/// against `limits` (the same the gRPC services were built with).
pub fn routes<S: EtcdApi>(services: Services<S>, limits: Limits) -> Router {
    let limits = BodyLimits::of(limits);
    let mut router = Router::new();
    for prefix in ["/v3", "/v3beta"] {
        router = kv_routes(router, prefix, &services, limits);
        router = lease_routes(router, prefix, &services, limits);
        router = cluster_routes(router, prefix, &services, limits);
        router = maintenance_routes(router, prefix, &services, limits);
        router = concurrency_routes(router, prefix, &services, limits);
        router = auth_routes(router, prefix);
        // Any other path under the prefix is Go's 404, not the gRPC
        // router's answer to an unknown method.
        router = router.route(
            &format!("{prefix}/{{*rest}}"),
            axum::routing::any(|| async { plain_text(StatusCode::NOT_FOUND) }),
        );
    }
    router
}

/// A POST route calling `$trait::$method` of the services with the body's
/// request, answered by `$driver` (`unary` or `server_stream`).
macro_rules! post_route {
    ($services:expr, $limits:expr, $driver:ident, $trait:ident :: $method:ident) => {{
        let services = $services.clone();
        let limits = $limits;
        on_post(move |request: Request| {
            let services = services.clone();
            async move {
                $driver(request, limits, move |r| async move {
                    $trait::$method(&services, r).await
                })
                .await
            }
        })
    }};
}

/// A unary call's route: its response as JSON.
macro_rules! unary {
    ($services:expr, $limits:expr, $($call:tt)+) => {
        post_route!($services, $limits, unary, $($call)+)
    };
}

/// A server-streaming call's route: its stream as `{"result":…}` lines.
macro_rules! server_stream {
    ($services:expr, $limits:expr, $($call:tt)+) => {
        post_route!($services, $limits, server_stream, $($call)+)
    };
}

fn kv_routes<S: EtcdApi>(r: Router, p: &str, s: &Services<S>, l: BodyLimits) -> Router {
    r.route(&format!("{p}/kv/range"), unary!(s, l, Kv::range))
        .route(&format!("{p}/kv/put"), unary!(s, l, Kv::put))
        .route(
            &format!("{p}/kv/deleterange"),
            unary!(s, l, Kv::delete_range),
        )
        .route(&format!("{p}/kv/txn"), unary!(s, l, Kv::txn))
        .route(&format!("{p}/kv/compaction"), unary!(s, l, Kv::compact))
        .route(&format!("{p}/watch"), watch_route(s, l))
}

fn lease_routes<S: EtcdApi>(r: Router, p: &str, s: &Services<S>, l: BodyLimits) -> Router {
    let revoke = unary!(s, l, Lease::lease_revoke);
    let time_to_live = unary!(s, l, Lease::lease_time_to_live);
    let leases = unary!(s, l, Lease::lease_leases);
    r.route(
        &format!("{p}/lease/grant"),
        unary!(s, l, Lease::lease_grant),
    )
    .route(&format!("{p}/lease/revoke"), revoke.clone())
    .route(&format!("{p}/kv/lease/revoke"), revoke)
    .route(&format!("{p}/lease/timetolive"), time_to_live.clone())
    .route(&format!("{p}/kv/lease/timetolive"), time_to_live)
    .route(&format!("{p}/lease/leases"), leases.clone())
    .route(&format!("{p}/kv/lease/leases"), leases)
    .route(&format!("{p}/lease/keepalive"), keep_alive_route(s, l))
}

fn cluster_routes<S: EtcdApi>(r: Router, p: &str, s: &Services<S>, l: BodyLimits) -> Router {
    r.route(
        &format!("{p}/cluster/member/add"),
        unary!(s, l, Cluster::member_add),
    )
    .route(
        &format!("{p}/cluster/member/remove"),
        unary!(s, l, Cluster::member_remove),
    )
    .route(
        &format!("{p}/cluster/member/update"),
        unary!(s, l, Cluster::member_update),
    )
    .route(
        &format!("{p}/cluster/member/list"),
        unary!(s, l, Cluster::member_list),
    )
    .route(
        &format!("{p}/cluster/member/promote"),
        unary!(s, l, Cluster::member_promote),
    )
}

fn maintenance_routes<S: EtcdApi>(r: Router, p: &str, s: &Services<S>, l: BodyLimits) -> Router {
    let m = |name: &str| format!("{p}/maintenance/{name}");
    r.route(&m("alarm"), unary!(s, l, Maintenance::alarm))
        .route(&m("status"), unary!(s, l, Maintenance::status))
        .route(&m("defragment"), unary!(s, l, Maintenance::defragment))
        .route(&m("hash"), unary!(s, l, Maintenance::hash))
        .route(&m("hashkv"), unary!(s, l, Maintenance::hash_kv))
        .route(&m("snapshot"), server_stream!(s, l, Maintenance::snapshot))
        .route(
            &m("transfer-leadership"),
            unary!(s, l, Maintenance::move_leader),
        )
        .route(&m("downgrade"), unary!(s, l, Maintenance::downgrade))
}

fn concurrency_routes<S: EtcdApi>(r: Router, p: &str, s: &Services<S>, l: BodyLimits) -> Router {
    let e = |name: &str| format!("{p}/election/{name}");
    r.route(&e("campaign"), unary!(s, l, Election::campaign))
        .route(&e("proclaim"), unary!(s, l, Election::proclaim))
        .route(&e("leader"), unary!(s, l, Election::leader))
        .route(&e("observe"), server_stream!(s, l, Election::observe))
        .route(&e("resign"), unary!(s, l, Election::resign))
        .route(&format!("{p}/lock/lock"), unary!(s, l, Lock::lock))
        .route(&format!("{p}/lock/unlock"), unary!(s, l, Lock::unlock))
}

/// etcd 3.5's auth paths. The Auth service is not built, so each answers
/// what a gRPC call to it gets: `Unimplemented` (grpc-go's wording, as
/// etcd's gateway would pass it on).
fn auth_routes(r: Router, p: &str) -> Router {
    const PATHS: &[&str] = &[
        "enable",
        "disable",
        "status",
        "authenticate",
        "user/add",
        "user/get",
        "user/list",
        "user/delete",
        "user/changepw",
        "user/grant",
        "user/revoke",
        "role/add",
        "role/get",
        "role/list",
        "role/delete",
        "role/grant",
        "role/revoke",
    ];
    PATHS.iter().fold(r, |r, path| {
        r.route(
            &format!("{p}/auth/{path}"),
            on_post(|| async {
                unary_error(&Status::unimplemented("unknown service etcdserverpb.Auth"))
            }),
        )
    })
}

/// `handler` for POST; OPTIONS answered 200 (etcd's CORS preflight) and
/// any other method Go's 405.
fn on_post<H, T>(handler: H) -> MethodRouter
where
    H: axum::handler::Handler<T, ()>,
    T: 'static,
{
    post(handler).fallback(|method: Method| async move {
        if method == Method::OPTIONS {
            Response::new(Body::empty())
        } else {
            plain_text(StatusCode::METHOD_NOT_ALLOWED)
        }
    })
}

/// The tonic request a service method takes, carrying the HTTP request's
/// caller: `Authorization` as the `token`, `Grpc-Metadata-*` headers as
/// metadata, and the extensions.
fn grpc_request<T>(parts: Parts, message: T) -> tonic::Request<T> {
    let mut metadata = MetadataMap::new();
    for (name, value) in &parts.headers {
        let Some(key) = name.as_str().strip_prefix(METADATA_HEADER_PREFIX) else {
            continue;
        };
        // A member sets this on requests it forwards over the peer port;
        // nothing arriving on the client gateway is one.
        if key == FORWARDED_METADATA_KEY {
            continue;
        }
        if let (Ok(key), Ok(value)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value.as_bytes()),
        ) {
            metadata.insert(key, value);
        }
    }
    if let Some(token) = parts.headers.get(axum::http::header::AUTHORIZATION) {
        if let Ok(token) = MetadataValue::try_from(token.as_bytes()) {
            metadata.insert(TOKEN_METADATA_KEY, token);
        }
    }
    tonic::Request::from_parts(metadata, parts.extensions, message)
}

/// Reads a whole body of at most `limit` bytes.
async fn read_body(body: Body, limit: usize) -> Result<Vec<u8>, Status> {
    let mut data = body.into_data_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = data.next().await {
        let chunk = chunk.map_err(|e| Status::invalid_argument(e.to_string()))?;
        if bytes.len() + chunk.len() > limit {
            return Err(Status::resource_exhausted(format!(
                "gateway: request body larger than max ({limit} bytes)"
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// The request message of a unary or server-streaming call: an undecodable
/// body is `InvalidArgument` with the decoder's text, as grpc-gateway's.
async fn read_request<T>(request: Request, limits: BodyLimits) -> Result<tonic::Request<T>, Status>
where
    T: DeserializeOwned + Default + prost::Message,
{
    let (parts, body) = request.into_parts();
    let bytes = read_body(body, limits.json_bytes).await?;
    let message: T = json::decode_body(&bytes).map_err(|e| Status::invalid_argument(e.0))?;
    limits.check(&message)?;
    Ok(grpc_request(parts, message))
}

/// The JSON answer of a successful call. grpc-gateway copies the gRPC
/// response headers as `Grpc-Metadata-*`; etcd's only one is the content
/// type.
fn ok_response(body: impl Into<Body>) -> Response {
    with_grpc_metadata(json_response(StatusCode::OK, body))
}

fn with_grpc_metadata(mut response: Response) -> Response {
    response.headers_mut().insert(
        "grpc-metadata-content-type",
        HeaderValue::from_static("application/grpc"),
    );
    response
}

async fn unary<Req, Resp, F, Fut>(request: Request, limits: BodyLimits, call: F) -> Response
where
    Req: DeserializeOwned + Default + prost::Message,
    Resp: Serialize,
    F: FnOnce(tonic::Request<Req>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<Resp>, Status>>,
{
    let request = match read_request::<Req>(request, limits).await {
        Ok(request) => request,
        Err(status) => return unary_error(&status),
    };
    match call(request).await {
        Ok(response) => ok_response(json::encode(response.get_ref())),
        Err(status) => unary_error(&status),
    }
}

async fn server_stream<Req, Resp, St, F, Fut>(
    request: Request,
    limits: BodyLimits,
    call: F,
) -> Response
where
    Req: DeserializeOwned + Default + prost::Message,
    Resp: Serialize + Send + 'static,
    St: tokio_stream::Stream<Item = Result<Resp, Status>> + Send + 'static,
    F: FnOnce(tonic::Request<Req>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<St>, Status>>,
{
    let request = match read_request::<Req>(request, limits).await {
        Ok(request) => request,
        Err(status) => return unary_error(&status),
    };
    match call(request).await {
        Ok(response) => forward_stream(response.into_inner()).await,
        // The call's error reaches grpc-gateway through the stream's
        // first receive, so it is written as a stream error.
        Err(status) => stream_error(&status),
    }
}

async fn forward_stream<Resp, St>(responses: St) -> Response
where
    Resp: Serialize + Send + 'static,
    St: tokio_stream::Stream<Item = Result<Resp, Status>> + Send + 'static,
{
    let response = stream::forward(responses).await;
    if response.status() == StatusCode::OK {
        with_grpc_metadata(response)
    } else {
        response
    }
}

/// A bidirectional call: the first message is read before the call (an
/// undecodable one is grpc-gateway's `Unknown` error, as its
/// `request_Watch_Watch_0` returns the decoder's plain error), the rest
/// are fed to the service as they arrive.
async fn bidi<Req, Resp, St, F, Fut>(
    request: Request,
    limits: BodyLimits,
    after: AfterBody,
    call: F,
) -> Response
where
    Req: DeserializeOwned + Default + prost::Message + Send + 'static,
    Resp: Serialize + Send + 'static,
    St: tokio_stream::Stream<Item = Result<Resp, Status>> + Send + 'static,
    F: FnOnce(tonic::Request<tonic::Streaming<Req>>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<St>, Status>>,
{
    let (parts, body) = request.into_parts();
    let mut reader = JsonReader::new(body, limits.json_bytes);
    let first = match reader.next::<Req>().await {
        Ok(first) => first,
        Err(e) => return unary_error(&Status::unknown(e.0)),
    };
    if let Some(first) = &first {
        if let Err(status) = limits.check(first) {
            return unary_error(&status);
        }
    }
    let requests = stream::request_stream(first, reader, after, limits.message_bytes);
    match call(grpc_request(parts, requests)).await {
        Ok(response) => forward_stream(response.into_inner()).await,
        // The call's error reaches grpc-gateway through the stream's
        // first receive, so it is written as a stream error.
        Err(status) => stream_error(&status),
    }
}

fn watch_route<S: EtcdApi>(services: &Services<S>, limits: BodyLimits) -> MethodRouter {
    let services = services.clone();
    on_post(move |request: Request| {
        let services = services.clone();
        async move {
            bidi::<WatchRequest, _, _, _, _>(request, limits, AfterBody::HoldOpen, |r| async move {
                // The gateway writes each response's fields as JSON: the
                // shared events are copied out.
                let response = services.watch(r).await?;
                Ok(response.map(|replies| replies.map(|r| r.map(WatchReply::into_message))))
            })
            .await
        }
    })
}

fn keep_alive_route<S: EtcdApi>(services: &Services<S>, limits: BodyLimits) -> MethodRouter {
    let services = services.clone();
    on_post(move |request: Request| {
        let services = services.clone();
        async move {
            bidi::<LeaseKeepAliveRequest, _, _, _, _>(
                request,
                limits,
                AfterBody::Close,
                |r| async move { Lease::lease_keep_alive(&services, r).await },
            )
            .await
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RequestContext, VerifiedClientName};

    #[test]
    fn the_caller_reaches_the_grpc_request() {
        let mut http = axum::http::Request::builder()
            .method(Method::POST)
            .uri("/v3/kv/range")
            .header("authorization", "tok.12")
            .header("grpc-metadata-hasleader", "true")
            .header("grpc-metadata-ironcd-forwarded", "true")
            .header("x-other", "ignored")
            .body(())
            .unwrap();
        http.extensions_mut()
            .insert(VerifiedClientName("client-1".into()));
        let (parts, ()) = http.into_parts();
        let request = grpc_request(parts, ());
        let context = RequestContext::of(&request);
        assert_eq!(context.auth_token.as_deref(), Some("tok.12"));
        assert!(context.require_leader);
        assert_eq!(context.client_cert_name.as_deref(), Some("client-1"));
        // Only a member forwarding over the peer port may say so.
        assert!(!context.forwarded);
        assert!(request.metadata().get("x-other").is_none());
    }

    #[test]
    fn limits_follow_the_request_limit() {
        let limits = BodyLimits::of(Limits {
            max_txn_ops: 128,
            max_request_bytes: 1024,
        });
        assert_eq!(limits.message_bytes, 1024 + 512 * 1024);
        let put = ironcd_proto::etcdserverpb::PutRequest {
            key: b"k".to_vec(),
            value: vec![0; limits.message_bytes],
            ..Default::default()
        };
        let status = limits.check(&put).unwrap_err();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert_eq!(
            status.message(),
            format!(
                "grpc: received message larger than max ({} vs. {})",
                prost::Message::encoded_len(&put),
                limits.message_bytes
            )
        );
        let small = ironcd_proto::etcdserverpb::PutRequest::default();
        assert!(limits.check(&small).is_ok());
    }
}
