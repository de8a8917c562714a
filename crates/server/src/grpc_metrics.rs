//! go-grpc-prometheus's server metrics, as etcd exports them: requests
//! started, handled (by status code) and their handling time, by method.
//!
//! A middleware on the client router: it knows each call by its path,
//! counts it as started, and records its code when the status arrives —
//! in the response headers for a trailers-only answer, else in the
//! trailers at the body's end. A call whose body is dropped first (the
//! client went away) counts as `Canceled`. Only etcd's own methods are
//! counted (a fixed table), so the label set is bounded.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Body as HttpBody, Frame, SizeHint};
use ironcd_metrics::{Counter, Histogram, Text};

/// How a method streams (go-grpc-prometheus's `grpc_type`).
#[derive(Clone, Copy)]
enum Kind {
    Unary,
    ServerStream,
    BidiStream,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Unary => "unary",
            Kind::ServerStream => "server_stream",
            Kind::BidiStream => "bidi_stream",
        }
    }
}

/// Every method ironcd serves to clients: (service, method, kind).
const METHODS: &[(&str, &str, Kind)] = &[
    ("etcdserverpb.KV", "Range", Kind::Unary),
    ("etcdserverpb.KV", "Put", Kind::Unary),
    ("etcdserverpb.KV", "DeleteRange", Kind::Unary),
    ("etcdserverpb.KV", "Txn", Kind::Unary),
    ("etcdserverpb.KV", "Compact", Kind::Unary),
    ("etcdserverpb.Watch", "Watch", Kind::BidiStream),
    ("etcdserverpb.Lease", "LeaseGrant", Kind::Unary),
    ("etcdserverpb.Lease", "LeaseRevoke", Kind::Unary),
    ("etcdserverpb.Lease", "LeaseKeepAlive", Kind::BidiStream),
    ("etcdserverpb.Lease", "LeaseTimeToLive", Kind::Unary),
    ("etcdserverpb.Lease", "LeaseLeases", Kind::Unary),
    ("etcdserverpb.Cluster", "MemberAdd", Kind::Unary),
    ("etcdserverpb.Cluster", "MemberRemove", Kind::Unary),
    ("etcdserverpb.Cluster", "MemberUpdate", Kind::Unary),
    ("etcdserverpb.Cluster", "MemberList", Kind::Unary),
    ("etcdserverpb.Cluster", "MemberPromote", Kind::Unary),
    ("etcdserverpb.Maintenance", "Alarm", Kind::Unary),
    ("etcdserverpb.Maintenance", "Status", Kind::Unary),
    ("etcdserverpb.Maintenance", "Defragment", Kind::Unary),
    ("etcdserverpb.Maintenance", "Hash", Kind::Unary),
    ("etcdserverpb.Maintenance", "HashKV", Kind::Unary),
    ("etcdserverpb.Maintenance", "Snapshot", Kind::ServerStream),
    ("etcdserverpb.Maintenance", "MoveLeader", Kind::Unary),
    ("etcdserverpb.Maintenance", "Downgrade", Kind::Unary),
    ("v3electionpb.Election", "Campaign", Kind::Unary),
    ("v3electionpb.Election", "Proclaim", Kind::Unary),
    ("v3electionpb.Election", "Leader", Kind::Unary),
    ("v3electionpb.Election", "Observe", Kind::ServerStream),
    ("v3electionpb.Election", "Resign", Kind::Unary),
    ("v3lockpb.Lock", "Lock", Kind::Unary),
    ("v3lockpb.Lock", "Unlock", Kind::Unary),
];

/// gRPC's status codes by number, as Go's `codes.Code` prints them.
const CODES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// The code a call ends with when its body is dropped unfinished.
const CANCELED: usize = 1;

/// Prometheus's default buckets, which go-grpc-prometheus uses.
static HANDLING_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// One method's counters.
struct MethodStats {
    started: Counter,
    handled: [Counter; CODES.len()],
    handling: Histogram,
}

const fn method_stats() -> MethodStats {
    MethodStats {
        started: Counter::new(),
        handled: [const { Counter::new() }; CODES.len()],
        handling: Histogram::new(&HANDLING_BUCKETS),
    }
}

/// Room for every entry of [`METHODS`].
const MAX_METHODS: usize = 40;
static STATS: [MethodStats; MAX_METHODS] = [const { method_stats() }; MAX_METHODS];

fn lookup(path: &str) -> Option<usize> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    METHODS
        .iter()
        .position(|(s, m, _)| *s == service && *m == method)
        .filter(|i| *i < MAX_METHODS)
}

/// The status code in a header map, if it has one.
fn code_in(headers: &axum::http::HeaderMap) -> Option<usize> {
    let code: usize = headers.get("grpc-status")?.to_str().ok()?.parse().ok()?;
    // A code gRPC does not define is reported as Unknown.
    Some(if code < CODES.len() { code } else { 2 })
}

/// Records one finished call.
fn finish(method: usize, code: usize, started: Instant) {
    let stats = &STATS[method];
    stats.handled[code].inc();
    stats.handling.observe_duration(started.elapsed());
}

/// The middleware: counts etcd's calls, passes everything else through.
pub async fn track(request: Request, next: Next) -> Response {
    let Some(method) = lookup(request.uri().path()) else {
        return next.run(request).await;
    };
    STATS[method].started.inc();
    let started = Instant::now();
    let response = next.run(request).await;
    if let Some(code) = code_in(response.headers()) {
        finish(method, code, started);
        return response;
    }
    response.map(|body| {
        Body::new(Tracked {
            inner: body,
            call: Some((method, started)),
        })
    })
}

/// A response body that records its call when the trailers pass.
struct Tracked {
    inner: Body,
    /// The call still to record (taken once recorded).
    call: Option<(usize, Instant)>,
}

impl Tracked {
    fn record(&mut self, code: usize) {
        if let Some((method, started)) = self.call.take() {
            finish(method, code, started);
        }
    }
}

impl HttpBody for Tracked {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(code_in) {
                    self.record(code);
                }
            }
            // An error or an end without a status: the call did not
            // finish as gRPC would have it.
            Poll::Ready(Some(Err(_)) | None) => self.record(CANCELED),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.record(CANCELED);
    }
}

/// Writes every method's counters (those never called included, as
/// go-grpc-prometheus preregisters them) and the handling histograms of
/// the methods that were called.
pub fn render(text: &mut Text) {
    for (i, (service, method, kind)) in METHODS.iter().enumerate().take(MAX_METHODS) {
        let labels = [
            ("grpc_method", *method),
            ("grpc_service", *service),
            ("grpc_type", kind.label()),
        ];
        text.counter(
            "grpc_server_started_total",
            "Total number of RPCs started on the server.",
            &labels,
            STATS[i].started.get(),
        );
    }
    for (i, (service, method, kind)) in METHODS.iter().enumerate().take(MAX_METHODS) {
        for (code, name) in CODES.iter().enumerate() {
            let count = STATS[i].handled[code].get();
            if count == 0 {
                continue;
            }
            let labels = [
                ("grpc_code", *name),
                ("grpc_method", *method),
                ("grpc_service", *service),
                ("grpc_type", kind.label()),
            ];
            text.counter(
                "grpc_server_handled_total",
                "Total number of RPCs completed on the server, regardless of success or failure.",
                &labels,
                count,
            );
        }
    }
    for (i, (service, method, kind)) in METHODS.iter().enumerate().take(MAX_METHODS) {
        if STATS[i].handling.count() == 0 {
            continue;
        }
        let labels = [
            ("grpc_method", *method),
            ("grpc_service", *service),
            ("grpc_type", kind.label()),
        ];
        text.histogram(
            "grpc_server_handling_seconds",
            "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
            &labels,
            &STATS[i].handling,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_fits_and_is_found_by_path() {
        assert!(METHODS.len() <= MAX_METHODS);
        assert_eq!(lookup("/etcdserverpb.KV/Range"), Some(0));
        assert_eq!(lookup("/v3lockpb.Lock/Unlock"), Some(METHODS.len() - 1));
        assert_eq!(lookup("/etcdserverpb.KV/Nope"), None);
        assert_eq!(lookup("/health"), None);
    }

    #[test]
    fn codes_out_of_range_count_as_unknown() {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("grpc-status", "14".parse().unwrap());
        assert_eq!(code_in(&headers), Some(14));
        headers.insert("grpc-status", "99".parse().unwrap());
        assert_eq!(code_in(&headers), Some(2));
        headers.insert("grpc-status", "x".parse().unwrap());
        assert_eq!(code_in(&headers), None);
    }
}
